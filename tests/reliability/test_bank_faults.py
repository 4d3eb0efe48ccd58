"""The reliability suite's short mode: the bank workload on real server processes and a real, durable
PostgreSQL, under every fault kind, checked by the history checker; and the control run that proves the
checker catches a weakened ledger. (`python -m reliability.run --mode long` is the long mode.)"""

from __future__ import annotations

from collections import Counter

import pytest

from reliability.faults import KINDS
from reliability.run import MODES, run_plan

pytestmark = pytest.mark.postgres


def test_short_mode_loses_nothing_under_every_fault_kind(tmp_path) -> None:
    reports = [run_plan(plan, tmp_path / f"plan-{i}", seed=7) for i, plan in enumerate(MODES["short"])]
    for report in reports:
        assert not any(report["checker"].values()), report
    injected = Counter()
    for report in reports:
        injected.update(report["faults"])
    assert all(injected[kind] for kind in KINDS), injected
    operations = [report["operations"] for report in reports]
    assert all(o["transfers_acknowledged"] > 0 for o in operations), operations
    # The faults bit: some answers were lost and later learnt by resending.
    assert sum(o["transfers_unknown_then_resolved"] for o in operations) > 0, operations


def test_control_run_on_a_weakened_ledger_is_caught(tmp_path) -> None:
    plan = next(p for p in MODES["control"] if p.unprotect)
    report = run_plan(plan, tmp_path, seed=7)
    caught = {name: count for name, count in report["checker"].items() if count}
    assert caught, report
