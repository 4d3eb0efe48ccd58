"""Summarises a py-spy `--format raw` (collapsed stacks) profile: the top functions by own samples and by
samples with the function anywhere on the stack, and the share per top-level area (package).

    python -m bench.profile_summary PROFILE.txt [--top 25]
    python -m bench.profile_summary PROFILE.txt --thread tally-writer    # one thread of a --threads profile

A profile recorded with `--threads` (bench/run.py --py-spy-threads) starts each stack with its thread; the
summary then opens with each thread's share, and `--thread` keeps the threads whose name starts so.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

_THREAD = re.compile(r"^thread \([^)]*\): (?P<name>.*)$")
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


def thread_of(frames: list[str]) -> str | None:
    m = _THREAD.match(frames[0]) if frames else None
    return m.group("name") if m else None


def by_thread(stacks: list[tuple[list[str], int]], prefix: str | None) -> tuple[list[tuple[list[str], int]], Counter]:
    """The stacks without their thread frame (only those of threads named `prefix`..., when given), and the
    samples per thread."""
    kept, threads = [], Counter()
    for frames, n in stacks:
        name = thread_of(frames)
        if name is None:
            kept.append((frames, n))
            continue
        threads[name] += n
        if prefix is None or name.startswith(prefix):
            kept.append((frames[1:], n))
    return kept, threads


def summarise(stacks: list[tuple[list[str], int]], top: int = 25, thread: str | None = None) -> str:
    stacks, threads = by_thread(stacks, thread)
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
    out = [f"{total} samples" + (f" of threads {thread}*" if thread else "")]
    if threads:
        out.append("\nsamples by thread (with waits, each thread gets one a tick):")
        out += [f"  {n:6d}  {name}" for name, n in threads.most_common(15)]
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
    p.add_argument("--thread", help="only threads whose name starts with this (a --threads profile)")
    args = p.parse_args(argv)
    with open(args.profile) as f:
        print(summarise(parse(f.readlines()), args.top, args.thread))
    return 0


if __name__ == "__main__":
    sys.exit(main())
