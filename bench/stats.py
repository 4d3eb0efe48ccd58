"""Pure helpers of the benchmark: percentiles, rates, target checks and table formatting.

Everything here is integer arithmetic on integer inputs (latencies in microseconds, durations in
nanoseconds, counts), so a rate or a PASS/MISS never depends on float rounding. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


def percentile(sorted_values: Sequence[int], pct: int) -> int | None:
    """Nearest-rank percentile of already sorted values: the smallest value with at least `pct` percent
    of the values at or below it. None for no values. `pct` is an integer in 1..100."""
    if not 1 <= pct <= 100:
        raise ValueError(f"percentile must be in 1..100, got {pct}")
    n = len(sorted_values)
    if n == 0:
        return None
    rank = (pct * n + 99) // 100  # ceil(pct * n / 100), at least 1 because pct >= 1 and n >= 1
    return sorted_values[rank - 1]


def rate_per_s(count: int, window_ns: int) -> int:
    """`count` events over `window_ns` nanoseconds, as an integer rate per second (rounded half up)."""
    if window_ns <= 0:
        return 0
    return (count * NS_PER_S * 2 + window_ns) // (window_ns * 2)


def ms_text(us: int | None) -> str:
    """Microseconds as milliseconds with one decimal, rounded half up ('-' when there is no value)."""
    if us is None:
        return "-"
    tenths = (us + 50) // 100
    return f"{tenths // 10}.{tenths % 10}"


def pct_text(part: int, whole: int) -> str:
    """part/whole as a percentage with one decimal ('-' when whole is 0)."""
    if whole <= 0:
        return "-"
    tenths = (part * 1000 * 2 + whole) // (whole * 2)
    sign = "-" if tenths < 0 else ""
    tenths = abs(tenths)
    return f"{sign}{tenths // 10}.{tenths % 10}%"


def cpu_pct(cpu_ticks: int, ticks_per_s: int, window_ns: int) -> int | None:
    """CPU time in clock ticks over a wall-clock window, as an integer percent of one core."""
    if window_ns <= 0 or ticks_per_s <= 0:
        return None
    return (cpu_ticks * 100 * NS_PER_S * 2 + ticks_per_s * window_ns) // (ticks_per_s * window_ns * 2)


def host_cpu_pct(busy_ticks: int, total_ticks: int, cores: int) -> int | None:
    """Machine CPU from /proc/stat deltas (all cores), as an integer percent of ONE core (0..100*cores)."""
    if total_ticks <= 0:
        return None
    return (busy_ticks * 100 * cores * 2 + total_ticks) // (total_ticks * 2)


def tenths_text(tenths: int) -> str:
    """An integer count of tenths as text with one decimal: 14 -> '1.4'."""
    return f"{tenths // 10}.{tenths % 10}"


def merge_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for key, n in c.items():
            total[key] = total.get(key, 0) + n
    return dict(sorted(total.items()))


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={n}" for k, n in sorted(counts.items())) or "-"


# ---------------------------------------------------------------------------------------------- targets

PASS, MISS, NOT_RUN = "PASS", "MISS", "NOT RUN"


@dataclass(frozen=True)
class Check:
    """One target the issue names, with what was measured and the verdict (reported, never asserted)."""

    name: str
    measured: str
    target: str
    verdict: str


def at_least_pct(name: str, value: int | None, reference: int | None, pct: int) -> Check:
    """value >= pct% of reference, decided in integers: value * 100 >= reference * pct."""
    target = f">= {pct}%"
    if value is None or reference is None:
        return Check(name, "-", target, NOT_RUN)
    if reference <= 0:
        return Check(name, f"{value} vs {reference}", target, MISS)
    measured = f"{pct_text(value, reference)} ({value} / {reference})"
    return Check(name, measured, target, PASS if value * 100 >= reference * pct else MISS)


def at_least(name: str, value: int | None, floor: int, unit: str) -> Check:
    target = f">= {floor:,} {unit}"
    if value is None:
        return Check(name, "-", target, NOT_RUN)
    return Check(name, f"{value:,} {unit}", target, PASS if value >= floor else MISS)


def below_ms(name: str, value_us: int | None, limit_ms: int) -> Check:
    target = f"< {limit_ms} ms"
    if value_us is None:
        return Check(name, "-", target, NOT_RUN)
    return Check(name, f"{ms_text(value_us)} ms", target, PASS if value_us < limit_ms * 1000 else MISS)


def at_most(name: str, value: int | None, ceiling: int, unit: str) -> Check:
    target = f"<= {ceiling:,} {unit}"
    if value is None:
        return Check(name, "-", target, NOT_RUN)
    return Check(name, f"{value:,} {unit}", target, PASS if value <= ceiling else MISS)


def p50_at_most_times_sum(name: str, value_us: int | None, references_us: Mapping[str, int | None],
                          tenths: int) -> Check:
    """value <= (tenths / 10) x the sum of the references (latencies in us), decided in integers."""
    target = f"<= {tenths_text(tenths)} x ({' + '.join(references_us)})"
    if value_us is None or any(v is None for v in references_us.values()):
        return Check(name, "-", target, NOT_RUN)
    total = sum(references_us.values())
    parts = " + ".join(ms_text(v) for v in references_us.values())
    measured = f"{ms_text(value_us)} ms vs {ms_text(total)} ms ({parts})"
    return Check(name, measured, target, PASS if value_us * 10 <= total * tenths else MISS)


def equals_zero(name: str, value: int | None, what: str) -> Check:
    if value is None:
        return Check(name, "-", "0", NOT_RUN)
    return Check(name, f"{value} {what}", "0", PASS if value == 0 else MISS)


def growth_at_most_pct(name: str, base_kib: int | None, peak_kib: int | None, pct: int) -> Check:
    """Memory growth (peak - base) / base no more than pct percent, in integers."""
    target = f"<= {pct}%"
    if base_kib is None or peak_kib is None or base_kib <= 0:
        return Check(name, "-", target, NOT_RUN)
    grown = max(0, peak_kib - base_kib)
    measured = f"{pct_text(peak_kib - base_kib, base_kib)} ({base_kib // 1024} -> {peak_kib // 1024} MiB)"
    return Check(name, measured, target, PASS if grown * 100 <= base_kib * pct else MISS)


def memory_growth(samples: Sequence[tuple[int, int]], warmup_s: int) -> tuple[int | None, int | None]:
    """From (elapsed_s, rss_kib) samples in time order: the RSS at the end of the warm-up (the last sample
    taken at or before warmup_s) and the largest RSS sampled after it. (None, None) without both."""
    base = None
    peak = None
    for elapsed_s, rss in samples:
        if elapsed_s <= warmup_s:
            base = rss
        elif base is not None:
            peak = rss if peak is None else max(peak, rss)
    if base is None or peak is None:
        return None, None
    return base, peak


# ---------------------------------------------------------------------------------------------- tables


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, markdown: bool = False,
                 right: Sequence[bool] | None = None) -> str:
    """A plain-text table (columns padded, a dashed rule under the header) or a Markdown one.
    `right[i]` right-aligns column i (numbers); None renders as '-'."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, the header {len(headers)}: {row}")
    right = list(right) if right is not None else [False] * len(headers)
    if markdown:
        def md(row: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

        rule = "|" + "|".join("---:" if r else "---" for r in right) + "|"
        return "\n".join([md(list(headers)), rule, *(md(r) for r in cells)])
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers)), "  ".join("-" * w for w in widths), *(line(r) for r in cells)])


def checks_table(checks: Sequence[Check], *, markdown: bool = False) -> str:
    return format_table(["target", "measured", "goal", "verdict"],
                        [[c.name, c.measured, c.target, c.verdict] for c in checks], markdown=markdown)
