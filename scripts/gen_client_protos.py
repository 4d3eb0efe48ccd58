#!/usr/bin/env python3
"""Generate the code tally-client ships (clients/python/tally_client/_gen) from protos/tally/v1/*.proto and
the client's own clients/python/protos (a wire copy of google.rpc.Status and ErrorInfo).

Usage:
    python scripts/gen_client_protos.py           # regenerate in place
    python scripts/gen_client_protos.py --check   # fail if the shipped code is not what this would write

The server's generated code imports itself as `tally.v1`; the client's copy is the same output with those
imports rewritten to `tally_client._gen`, so the wheel needs no `tally` package.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import gen_protos  # noqa: E402  (the server's generator: same protoc, same protos)

CLIENT_PROTOS = ROOT / "clients" / "python" / "protos"
OUT_DIR = ROOT / "clients" / "python" / "tally_client" / "_gen"
_SERVER_IMPORT = re.compile(r"\bfrom tally\.v1 import\b")
INIT_CONTENT = '''\
"""Generated code for tally-client: DO NOT EDIT. Written by scripts/gen_client_protos.py."""
'''


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tally-client-gen-") as tmp:
        server = Path(tmp) / "server"
        gen_protos.generate(server)
        for src in sorted(server.iterdir()):
            if src.suffix in {".py", ".pyi"} and src.name != "__init__.py":
                text = _SERVER_IMPORT.sub("from tally_client._gen import", src.read_text(encoding="utf-8"))
                (out_dir / src.name).write_text(text, encoding="utf-8")
        own = Path(tmp) / "own"
        own.mkdir()
        rc = protoc.main(["grpc_tools.protoc", f"--proto_path={CLIENT_PROTOS}",
                          f"--proto_path={gen_protos._grpc_tools_include()}", f"--python_out={own}",
                          f"--pyi_out={own}", "tally_client/_gen/rpc_status.proto"])
        if rc != 0:
            raise SystemExit(f"gen_client_protos: protoc failed with exit code {rc}")
        for src in sorted((own / "tally_client" / "_gen").iterdir()):
            shutil.copyfile(src, out_dir / src.name)
    (out_dir / "__init__.py").write_text(INIT_CONTENT, encoding="utf-8")


def check(out_dir: Path = OUT_DIR) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="tally-client-check-") as tmp:
        fresh = Path(tmp) / "_gen"
        generate(fresh)
        return gen_protos.diff(fresh, out_dir)


def write(out_dir: Path = OUT_DIR) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    generate(out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the shipped generated code is stale")
    args = parser.parse_args(argv)
    rel_out = OUT_DIR.relative_to(ROOT)
    if not args.check:
        write()
        print(f"gen_client_protos: wrote {rel_out}")
        return 0
    problems = check()
    if problems:
        print(f"gen_client_protos: {rel_out} is out of date:", *problems, sep="\n  ", file=sys.stderr)
        print("Run `python scripts/gen_client_protos.py` and commit the result.", file=sys.stderr)
        return 1
    print(f"gen_client_protos: {rel_out} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
