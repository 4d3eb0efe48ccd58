"""The small pure parts of the scaling work: the stream listener's reading of a multi-host URL, the failover
run's time to the first acknowledgement, and the replica benchmark's table."""

from __future__ import annotations

from bench.replicas import table
from reliability.failover import first_ack_after
from reliability.history import Op
from tally.streaming.pg_listener import libpq_url


def test_a_multi_host_url_becomes_libpq_host_and_port_lists() -> None:
    url = ("postgresql+psycopg://app:s%40cret@/ledger?host=db-a:5432&host=db-b:5433"
           "&target_session_attrs=read-write&connect_timeout=2")
    conninfo = dict(part.split("=", 1) for part in libpq_url(url).split())
    assert conninfo["host"] == "db-a,db-b" and conninfo["port"] == "5432,5433"
    assert conninfo["target_session_attrs"] == "read-write" and conninfo["dbname"] == "ledger"
    assert conninfo["password"] == "s@cret"
    # One host stays a URL, as before.
    assert libpq_url("postgresql+psycopg://u@h:5/db") == "postgresql://u@h:5/db"


def _op(kind: str, outcome: str, invoked_s: float, completed_s: float) -> Op:
    return Op(1, 0, kind, outcome=outcome, invoked_s=invoked_s, completed_s=completed_s)


def test_first_ack_counts_only_posts_sent_after_the_kill() -> None:
    ops = [_op("transfer", "ok", 9.0, 10.5),  # sent before the kill: it may have committed on the old primary
           _op("transfer", "unknown", 10.1, 13.0), _op("snapshot", "ok", 10.2, 10.3),
           _op("resend", "ok", 11.0, 14.25), _op("transfer", "ok", 12.0, 15.0)]
    assert first_ack_after(ops, 10.0) == 4.25
    assert first_ack_after(ops, 20.0) is None


def test_replica_table_has_a_row_per_process_count() -> None:
    rows = [{"plan": {"servers": n}, "transfers_per_s": 100.0 * n,
             "cpu_cores_busy": {"servers": 0.5 * n, "postgres": 0.3, "load_generator": 0.2},
             "checker": {"a": 0, "b": 0}} for n in (1, 2)]
    lines = table(rows).splitlines()
    assert len(lines) == 4 and lines[3].startswith("| 2 | 200.0 | 1.0 / 0.3 / 0.2 | 0 |")
