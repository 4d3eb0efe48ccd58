"""The failover run's short form: the bank workload on two `tally serve` processes over a pg_auto_failover pair
(real monitor, real synchronous standby), the primary killed under load. Tally must reconnect to the promoted
standby by itself, lose and duplicate nothing, and acknowledge a transfer within 10 s of the kill.
(`python -m reliability.run --mode failover` is the long form: several kills, the killed node rejoining.)"""

from __future__ import annotations

import pytest

from reliability.failover import FAILOVER_MODES, FIRST_ACK_GOAL_S, run_failover_plan
from reliability.ha import available

pytestmark = pytest.mark.postgres


def test_primary_killed_under_load_loses_nothing_and_tally_reconnects(tmp_path) -> None:
    assert available(), "pg_autoctl missing: scripts/test installs pg-auto-failover-cli and the extension"
    [plan] = FAILOVER_MODES["failover-short"]
    report = run_failover_plan(plan, tmp_path, seed=11)
    assert not any(report["checker"].values()), report
    [failover] = report["failovers"]
    assert failover["first_ack_s"] is not None and failover["first_ack_s"] < FIRST_ACK_GOAL_S, failover
    operations = report["operations"]
    assert operations["transfers_acknowledged"] > 0 and operations["server_errors"] == 0, operations
    # Every stream consumer saw every event, across the servers' reconnects to the new primary.
    assert set(report["final"]["stream_events_seen"]) == {report["final"]["event_sequence"]}, report["final"]
