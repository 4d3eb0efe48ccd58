#!/usr/bin/env python3
"""Generate the Python code for the tally.v1 protos into src/tally/v1.

Usage:
    python scripts/gen_protos.py           # regenerate src/tally/v1 in place
    python scripts/gen_protos.py --check   # fail if src/tally/v1 is not what the generator would write

The generator runs grpc_tools.protoc over protos/tally/v1/*.proto, with grpc_tools' bundled
well-known protos (google/protobuf/*) on the include path, and writes *_pb2.py, *_pb2.pyi and
*_pb2_grpc.py plus an __init__.py. src/tally/v1 is owned entirely by this script: files in it that
the generator does not produce are removed on regeneration and reported by --check.

Output is deterministic for a given grpcio-tools version (its bundled protoc decides the gencode).
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO_PACKAGE_DIR = Path("tally") / "v1"  # relative to PROTO_ROOT, and to the output root
OUT_DIR = ROOT / "src" / PROTO_PACKAGE_DIR

INIT_CONTENT = '''\
"""Generated code for the tally.v1 protos: DO NOT EDIT.

Everything in this folder is written by scripts/gen_protos.py from protos/tally/v1/*.proto.
Change the protos and run `python scripts/gen_protos.py` instead of editing these files.
"""
'''

# Files inside OUT_DIR that are neither generated nor compared.
_IGNORED_NAMES = {"__pycache__"}


def _grpc_tools_include() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def _grpc_tools_version() -> str:
    try:
        from importlib.metadata import version

        return version("grpcio-tools")
    except Exception:  # pragma: no cover - informational only
        return "unknown"


def proto_files() -> list[str]:
    """The protos to compile, as paths relative to PROTO_ROOT, in a stable order."""
    files = sorted(
        p.relative_to(PROTO_ROOT).as_posix() for p in (PROTO_ROOT / PROTO_PACKAGE_DIR).glob("*.proto")
    )
    if not files:
        raise SystemExit(f"gen_protos: no .proto files found under {PROTO_ROOT / PROTO_PACKAGE_DIR}")
    return files


def generate(out_dir: Path) -> None:
    """Write the generated package (what belongs in src/tally/v1) into out_dir, which must be empty."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tally-gen-") as tmp:
        tmp_root = Path(tmp)
        args = [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--proto_path={_grpc_tools_include()}",
            f"--python_out={tmp_root}",
            f"--pyi_out={tmp_root}",
            f"--grpc_python_out={tmp_root}",
            *proto_files(),
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise SystemExit(f"gen_protos: grpc_tools.protoc failed with exit code {rc}")

        generated = tmp_root / PROTO_PACKAGE_DIR
        for src in sorted(generated.iterdir()):
            if src.is_file():
                shutil.copyfile(src, out_dir / src.name)
    (out_dir / "__init__.py").write_text(INIT_CONTENT, encoding="utf-8")


def _listing(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {p.name for p in directory.iterdir() if p.name not in _IGNORED_NAMES}


def diff(expected_dir: Path, actual_dir: Path) -> list[str]:
    """Human-readable differences between a fresh generation and the committed files (empty if none)."""
    problems: list[str] = []
    expected, actual = _listing(expected_dir), _listing(actual_dir)
    for name in sorted(expected - actual):
        problems.append(f"missing: {name}")
    for name in sorted(actual - expected):
        problems.append(f"not generated (stale or hand-written): {name}")
    for name in sorted(expected & actual):
        exp, act = expected_dir / name, actual_dir / name
        if act.is_dir() or not filecmp.cmp(exp, act, shallow=False):
            problems.append(f"differs: {name}")
            if act.is_file():
                try:
                    lines = difflib.unified_diff(
                        act.read_text(encoding="utf-8").splitlines(keepends=True),
                        exp.read_text(encoding="utf-8").splitlines(keepends=True),
                        fromfile=f"committed/{name}",
                        tofile=f"generated/{name}",
                        n=1,
                    )
                    snippet = "".join(list(lines)[:40])
                except UnicodeDecodeError:
                    snippet = ""
                if snippet:
                    problems.append(snippet.rstrip("\n"))
    return problems


def check(out_dir: Path = OUT_DIR) -> list[str]:
    """Regenerate into a temp dir and compare with out_dir; returns the differences (empty: up to date)."""
    with tempfile.TemporaryDirectory(prefix="tally-gen-check-") as tmp:
        fresh = Path(tmp) / "v1"
        generate(fresh)
        return diff(fresh, out_dir)


def write(out_dir: Path = OUT_DIR) -> None:
    """Regenerate out_dir in place, removing files the generator no longer produces."""
    with tempfile.TemporaryDirectory(prefix="tally-gen-write-") as tmp:
        fresh = Path(tmp) / "v1"
        generate(fresh)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(_listing(out_dir) - _listing(fresh)):
            stale = out_dir / name
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        for name in sorted(_listing(fresh)):
            shutil.copyfile(fresh / name, out_dir / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temp dir and fail if src/tally/v1 differs, without changing it",
    )
    args = parser.parse_args(argv)
    rel_out = OUT_DIR.relative_to(ROOT)
    if args.check:
        problems = check()
        if problems:
            print(
                f"gen_protos: {rel_out} is out of date with protos/ (grpcio-tools {_grpc_tools_version()}):",
                file=sys.stderr,
            )
            for problem in problems:
                print(textwrap.indent(problem, "  "), file=sys.stderr)
            print("Run `python scripts/gen_protos.py` and commit the result.", file=sys.stderr)
            return 1
        print(f"gen_protos: {rel_out} is up to date")
        return 0
    write()
    print(f"gen_protos: wrote {rel_out} from {len(proto_files())} protos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
