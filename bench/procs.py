"""What /proc says about a process (memory, CPU) and about the machine; parsers are pure and tested."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def parse_status_kib(text: str, fields: Iterable[str] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """The named fields of /proc/<pid>/status in KiB (lines like 'VmRSS:\t  12345 kB')."""
    wanted = set(fields)
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in wanted:
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[key] = int(parts[0])
    return out


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    cpu_ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime: of its children that have exited and been waited for


def parse_stat(text: str) -> Stat:
    """/proc/<pid>/stat: the command name is in parentheses and may hold spaces, so split after the last ')'."""
    head, _, rest = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()
    # fields[0] is field 3 (state); ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
    return Stat(pid=pid, ppid=int(fields[1]), cpu_ticks=int(fields[11]) + int(fields[12]),
                reaped_ticks=int(fields[13]) + int(fields[14]))


def parse_cpu_line(text: str) -> tuple[int, int]:
    """The first line of /proc/stat: (busy ticks, total ticks) over all cores; idle and iowait are not busy."""
    first = text.splitlines()[0].split()
    if first[0] != "cpu":
        raise ValueError(f"unexpected /proc/stat line: {first[:3]}")
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(values)
    idle = values[3] + values[4]
    return total - idle, total


# ---------------------------------------------------------------------------------------------- readers


def memory_kib(pid: int) -> dict[str, int]:
    """{'VmRSS': .., 'VmHWM': ..} of a live process, or {} when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return parse_status_kib(f.read())
    except OSError:
        return {}


def cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_stat(f.read()).cpu_ticks
    except (OSError, ValueError, IndexError):
        return None


def tree_cpu_ticks(root_pid: int) -> int:
    """CPU ticks of a process and its direct children (PostgreSQL's postmaster and its backends), those
    that have exited included: a backend whose connection closes inside a window still counts."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                st = parse_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue
        if st.pid == root_pid:
            total += st.cpu_ticks + st.reaped_ticks
        elif st.ppid == root_pid:
            total += st.cpu_ticks
    return total


def machine_cpu() -> tuple[int, int]:
    with open("/proc/stat") as f:
        return parse_cpu_line(f.read())
