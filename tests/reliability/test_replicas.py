"""Three `tally serve` processes on one PostgreSQL, three tenants, each tenant's clients spread over the
processes: every invariant of the reliability checker holds per tenant, and each tenant's stream consumer
and webhook receiver, served by one process, see every event whichever process wrote it.
(`bench/replicas.py` runs 1, 2 and 3 processes for throughput.)"""

from __future__ import annotations

import pytest

from reliability.replicas import ReplicaPlan, run_replicas

pytestmark = pytest.mark.postgres


def test_three_processes_keep_every_invariant_and_every_stream_sees_all_postings(tmp_path) -> None:
    report = run_replicas(ReplicaPlan(servers=3, tenants=3, clients_per_tenant=2, duration_s=4), tmp_path, seed=5)
    assert not any(report["checker"].values()), report
    assert report["transfers_acknowledged"] > 0, report
    for name, tenant in report["tenants"].items():
        assert tenant["stream_events_seen"] == tenant["event_sequence"] > 0, (name, tenant)
        assert tenant["webhook_events_acknowledged"] == tenant["event_sequence"], (name, tenant)
