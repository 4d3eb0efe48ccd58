"""Summarises a py-spy `--format raw` (collapsed stacks) profile: the top functions by own samples and by
samples with the function anywhere on the stack, and the share per top-level area (package).

    python -m bench.profile_summary PROFILE.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

_LINE = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_key(frame: str) -> str:
    """'post_flow (tally/service/posting/handlers.py:30)' -> 'post_flow (tally/service/posting/handlers.py)'."""
    m = _LINE.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/src/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('name')} ({path})"


def area(key: str) -> str:
    """The package a frame belongs to: tally.api, sqlalchemy, grpc, asyncio, ..."""
    m = re.search(r"\(([^)]*)\)$", key)
    path = m.group(1) if m else key
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "?"
    if parts[0] == "tally" and len(parts) > 1:
        return "tally." + parts[1].removesuffix(".py")
    if parts[0].startswith("11/") or parts[0] in ("asyncio", "concurrent", "threading.py", "selectors.py"):
        return parts[0].removesuffix(".py")
    return parts[0].removesuffix(".py")


def parse(lines: list[str]) -> list[tuple[list[str], int]]:
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if f]
        stacks.append((frames, int(count)))
    return stacks


def summarise(stacks: list[tuple[list[str], int]], top: int = 25) -> str:
    total = sum(n for _, n in stacks)
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for frames, n in stacks:
        keys = [frame_key(f) for f in frames if "(" in f]
        if not keys:
            continue
        own[keys[-1]] += n
        areas[area(keys[-1])] += n
        for k in set(keys):
            incl[k] += n
    out = [f"{total} samples"]
    out.append("\nown time by area:")
    out += [f"  {n * 100 // max(total, 1):3d}%  {a}" for a, n in areas.most_common(15)]
    out.append("\ntop functions by own samples:")
    out += [f"  {n * 100 // max(total, 1):3d}%  {k}" for k, n in own.most_common(top)]
    out.append("\ntop functions by inclusive samples:")
    out += [f"  {n * 100 // max(total, 1):3d}%  {k}" for k, n in incl.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_summary")
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    with open(args.profile) as f:
        print(summarise(parse(f.readlines()), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
