"""Reads that may lag, on a real streaming replica: a PostgreSQL primary of the test's own (so the base backup
copies one small cluster) and its hot standby from `pg_basebackup -R` on another port; the server gets the
standby as TALLY_READ_DATABASE_URL. Balances as of a time, entries and statements come from the standby;
a read naming a voucher sequence waits until the standby holds it, or answers UNAVAILABLE / REPLICA_BEHIND
(FAILED_PRECONDITION / VOUCHER_SEQUENCE_NOT_POSTED at once for a sequence the primary has not reached).
The standby's replay is paused to hold it behind on purpose. Without a replica (SQLite, and PostgreSQL
without the setting) the same field is accepted and checked against the primary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from tally.config import ConfigError, Settings
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import day_service_pb2 as day_pb
from tally.v1 import day_service_pb2_grpc as day_grpc
from tests.e2e.conftest import Server, TenantKeys, e2e_settings, error_info, md, ref, running_server, timestamp_in
from tests.pgserver import LocalServer
from tests.pgstandby import Standby, start_standby

T = "replica-tenant"
WAIT_MS = 1500


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[LocalServer, Standby]]:
    primary = LocalServer().start()
    try:
        primary.create_database("ledger")
        standby = start_standby(primary)
        try:
            yield primary, standby
        finally:
            standby.stop()
    finally:
        primary.stop()


@pytest.fixture
def replicated(cluster) -> Iterator[tuple[Server, Standby]]:
    primary, standby = cluster
    settings = e2e_settings(primary.url_for("ledger"), read_database_url=standby.url_for("ledger"),
                            replica_wait_ms_max=WAIT_MS)
    with running_server(settings) as server:
        yield server, standby


def _as_of_now(server: Server, account: str, sequence: int = 0) -> acc_pb.Balance:
    request = acc_pb.GetBalanceRequest(account=ref(account), as_of_time=timestamp_in(60),
                                       min_voucher_sequence=sequence)
    return server.accounts().GetBalance(request, metadata=md(T)).balance


def _entries(server: Server, account: str, sequence: int = 0) -> list:
    request = acc_pb.ListEntriesRequest(account=ref(account), page_size=500, min_voucher_sequence=sequence)
    return list(server.accounts().ListEntries(request, metadata=md(T)).entries)


@pytest.mark.postgres
def test_history_reads_come_from_the_replica_and_wait_for_the_sequence_they_name(replicated) -> None:
    server, standby = replicated
    server.create_account(T, "alice")
    server.create_account(T, "bob")
    funded = server.fund(T, "alice", 5_000_000)
    assert _as_of_now(server, "alice", funded.sequence).current == 5_000_000  # waited for the standby if needed
    standby.pause_replay()
    try:
        posted = server.transfer(T, "alice", "bob", 1_250_000).vouchers[0]
        assert server.current(T, "alice") == 3_750_000  # live: the primary
        # Without a sequence the standby answers what it has: the transfer is not there yet.
        assert _as_of_now(server, "alice").current == 5_000_000
        assert len(_entries(server, "bob")) == 0
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            _as_of_now(server, "alice", posted.sequence)
        code, reason, meta = error_info(caught.value)
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "REPLICA_BEHIND"), meta
        assert meta["wanted"] == str(posted.sequence) and int(meta["seen"]) < posted.sequence
        assert time.monotonic() - started >= WAIT_MS / 1000 * 0.9  # it waited, bounded
        # A sequence the primary does not hold either was never posted: refused at once, not waited for.
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            _entries(server, "bob", posted.sequence + 1_000)
        assert error_info(caught.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "VOUCHER_SEQUENCE_NOT_POSTED")
        assert time.monotonic() - started < WAIT_MS / 1000
        # A read that is waiting when replay goes on gets the transfer.
        got: dict[str, object] = {}
        reader = threading.Thread(target=lambda: got.update(entries=_entries(server, "bob", posted.sequence)))
        reader.start()
        time.sleep(0.2)
    finally:
        standby.resume_replay()
    reader.join(10)
    assert [e.voucher_id for e in got["entries"]] == [posted.id]
    assert _as_of_now(server, "alice", posted.sequence).current == 3_750_000
    statements = day_grpc.DayServiceStub(server.channel())
    page = statements.GetStatement(day_pb.GetStatementRequest(
        account=ref("bob"), date=posted.accounting_date, min_voucher_sequence=posted.sequence), metadata=md(T))
    assert page.statement.credit_total == 1_250_000 and [e.voucher_id for e in page.entries] == [posted.id]
    listed = statements.ListStatements(day_pb.ListStatementsRequest(account=ref("bob"),
                                                                    min_voucher_sequence=posted.sequence),
                                       metadata=md(T))
    assert list(listed.statements) == []  # no day closed: nothing issued, from the standby too
    # The CLI names the sequence too: `tally statement bob --min-sequence N`.
    key = TenantKeys.for_target(server.target).key_for(T)
    shown = subprocess.run([sys.executable, "-m", "tally.cli", "statement", "bob", "--min-sequence",
                            str(posted.sequence), "--target", server.target, "--json"], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "TALLY_API_KEY": key}, check=False)
    assert shown.returncode == 0, shown.stderr
    assert [e["voucher_id"] for e in json.loads(shown.stdout)["entries"]] == [posted.id]


@pytest.mark.postgres
def test_an_unreachable_replica_sends_the_read_to_the_primary(cluster) -> None:
    primary, _ = cluster
    settings = e2e_settings(primary.url_for("ledger"), read_database_url="postgresql+psycopg://postgres@127.0.0.1:1/x",
                            replica_wait_ms_max=WAIT_MS)
    with running_server(settings) as server:
        server.create_account(T, "carol")
        funded = server.fund(T, "carol", 700)
        assert _as_of_now(server, "carol", funded.sequence).current == 700
        assert server.app.services.queries.lagging.fallbacks >= 1


@pytest.mark.parametrize("database_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_without_a_replica_the_sequence_is_checked_on_the_primary(database_url) -> None:
    with running_server(e2e_settings(database_url, replica_wait_ms_max=200)) as server:
        server.create_account(T, "dora")
        funded = server.fund(T, "dora", 900)
        assert _as_of_now(server, "dora", funded.sequence).current == 900
        assert [e.voucher_id for e in _entries(server, "dora", funded.sequence)] == [funded.id]
        not_posted = (grpc.StatusCode.FAILED_PRECONDITION, "VOUCHER_SEQUENCE_NOT_POSTED")
        for sequence, expected in ((funded.sequence + 50, not_posted),
                                   (-1, (grpc.StatusCode.INVALID_ARGUMENT, "MIN_VOUCHER_SEQUENCE_INVALID"))):
            with pytest.raises(grpc.RpcError) as caught:
                _as_of_now(server, "dora", sequence)
            assert error_info(caught.value)[:2] == expected
        with pytest.raises(grpc.RpcError) as caught:  # a live read checks the value too
            server.accounts().GetBalance(acc_pb.GetBalanceRequest(account=ref("dora"), min_voucher_sequence=-1),
                                         metadata=md(T))
        assert error_info(caught.value)[1] == "MIN_VOUCHER_SEQUENCE_INVALID"


def test_a_replica_needs_postgresql_on_both_sides() -> None:
    with pytest.raises(ConfigError, match="TALLY_READ_DATABASE_URL"):
        Settings.from_env({"TALLY_DATABASE_URL": "sqlite:///x.db",
                           "TALLY_READ_DATABASE_URL": "postgresql+psycopg://u@h/db"})
