"""DayService over the real gRPC wire, on SQLite and PostgreSQL: closing a day (early, as an operator's end of
day), what the close stored, the day.closed event on a stream, refusals, roles, and the scheduled close."""

from __future__ import annotations

import datetime as dt
import threading
import time
from importlib import resources

import grpc
import pytest

from tally.domain.auth import Role
from tally.service.auth import keys
from tally.service.posting.pipeline import now_us
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import bookkeeping_service_pb2 as bk_pb
from tally.v1 import bookkeeping_service_pb2_grpc as bk_grpc
from tally.v1 import day_service_pb2 as day_pb
from tally.v1 import day_service_pb2_grpc as day_grpc
from tally.v1 import types_pb2
from tests.e2e.conftest import (
    Server,
    TenantKeys,
    e2e_settings,
    error_info,
    md,
    running_server,
    transfer_request,
    wait_until,
)

T, OTHER = "days-acme", "days-other"
CLOSED, OPEN = day_pb.DAY_STATE_CLOSED, day_pb.DAY_STATE_OPEN


def refused(call, request, tenant=T, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, **({"metadata": md(tenant)} | kwargs))
    code, reason, _ = error_info(caught.value)
    return code, reason


def next_day(iso: str) -> str:
    return (dt.date.fromisoformat(iso) + dt.timedelta(days=1)).isoformat()


def test_close_a_day_early_read_it_back_and_see_its_event(server: Server) -> None:
    days = day_grpc.DayServiceStub(server.channel())
    server.create_account(T, "alice")
    server.create_account(T, "bob")
    funded = server.fund(T, "alice", 10_000)
    server.transfer(T, "alice", "bob", 2_500)
    date = funded.accounting_date
    stream = server.accounting().StreamEvents(post_pb.StreamEventsRequest(from_sequence=0, types=["day.closed"]),
                                              metadata=md(T), timeout=20)

    assert days.GetAccountingDay(day_pb.GetAccountingDayRequest(accounting_date=date),
                                 metadata=md(T)).day.state == OPEN
    assert refused(days.CloseAccountingDay, day_pb.CloseAccountingDayRequest(accounting_date=date)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "DAY_NOT_OVER")
    for bad in ("", "2026-13-01", "20261201", "x" * 200):
        assert refused(days.GetAccountingDay, day_pb.GetAccountingDayRequest(accounting_date=bad)) == (
            grpc.StatusCode.INVALID_ARGUMENT, "ACCOUNTING_DATE_INVALID")

    closed = days.CloseAccountingDay(day_pb.CloseAccountingDayRequest(accounting_date=date, early=True,
                                                                      request_id="close-1"), metadata=md(T)).day
    assert (closed.state, closed.voucher_count, closed.accounts_closed) == (CLOSED, 2, 3)
    assert [(c.currency, c.debit_total, c.credit_total, c.line_count) for c in closed.currency_totals] == [
        ("USD", 12_500, 12_500, 4)]
    assert {(f.flow_type, f.voucher_count, f.amount_total) for f in closed.flow_totals} == {
        ("adjustment", 1, 10_000), ("transfer", 1, 2_500)}
    again = days.CloseAccountingDay(day_pb.CloseAccountingDayRequest(accounting_date=date, early=True,
                                                                     request_id="close-2"), metadata=md(T)).day
    assert again == closed

    event = next(iter(stream)).event
    stream.cancel()
    assert event.type == "day.closed" and event.sequence == closed.event_sequence

    later = server.transfer(T, "bob", "alice", 1)
    assert later.vouchers[0].accounting_date == next_day(date)  # the closed day takes nothing more
    balances = days.ListClosingBalances(day_pb.ListClosingBalancesRequest(accounting_date=date, page_size=2),
                                        metadata=md(T))
    rest = days.ListClosingBalances(day_pb.ListClosingBalancesRequest(
        accounting_date=date, page_size=2, page_token=balances.next_page_token), metadata=md(T))
    assert sorted(b.balance for b in [*balances.balances, *rest.balances]) == [2_500, 7_500, 10_000]
    assert rest.next_page_token == ""
    listed = days.ListAccountingDays(day_pb.ListAccountingDaysRequest(), metadata=md(T)).days
    assert [d.accounting_date for d in listed] == [date]
    book = bk_grpc.BookkeepingServiceStub(server.channel())

    def audited() -> list:
        return list(book.ListAuditLog(bk_pb.ListAuditLogRequest(action="CloseAccountingDay"),
                                      metadata=md(T)).entries)

    wait_until(lambda: len(audited()) >= 3, "the closes in the audit log")  # refused, closed, closed again
    assert {e.target for e in audited()} == {f"accounting_date:{date}"}

    # Another tenant sees none of it.
    assert days.GetAccountingDay(day_pb.GetAccountingDayRequest(accounting_date=date),
                                 metadata=md(OTHER)).day.state == OPEN
    assert list(days.ListAccountingDays(day_pb.ListAccountingDaysRequest(), metadata=md(OTHER)).days) == []


def test_a_reader_may_read_days_but_not_close_them(server: Server) -> None:
    days = day_grpc.DayServiceStub(server.channel())
    TenantKeys.for_target(server.target).key_for(T)  # the tenant exists
    owner = TenantKeys.for_target(server.target)
    reader = keys.create_key(owner.uow, T, Role.READER, "e2e reader", "tests", now_us).secret_key
    auth = (("authorization", f"Bearer {reader}"),)
    days.ListAccountingDays(day_pb.ListAccountingDaysRequest(), metadata=auth)
    with pytest.raises(grpc.RpcError) as caught:
        days.CloseAccountingDay(day_pb.CloseAccountingDayRequest(accounting_date="2026-01-01"), metadata=auth)
    assert error_info(caught.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")


def test_the_server_closes_due_days_itself(tmp_path) -> None:
    settings = e2e_settings(f"sqlite:///{tmp_path / 'tally.db'}", day_close_auto=True, day_close_grace_s=0,
                            day_close_interval_s=1)
    with running_server(settings) as srv:
        TenantKeys.for_target(srv.target).key_for(T)
        days = day_grpc.DayServiceStub(srv.channel())
        yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()

        def closed() -> bool:
            listed = days.ListAccountingDays(day_pb.ListAccountingDaysRequest(), metadata=md(T)).days
            return any(d.accounting_date >= yesterday and d.state == CLOSED for d in listed)

        wait_until(closed, "the scheduled close of yesterday", timeout_s=15)


def test_a_close_accrues_interest_under_a_rule_set_with_a_policy(database_url, tmp_path) -> None:
    rules = tmp_path / "rules.toml"
    default = (resources.files("tally.rules") / "default.toml").read_text()
    rules.write_text(default + '\n[[interest]]\naccount_type = "deposit"\nrate_bp = 500\n')
    with running_server(e2e_settings(database_url, rules_file=str(rules))) as srv:
        days = day_grpc.DayServiceStub(srv.channel())
        alice = srv.create_account(T, "alice")
        date = srv.fund(T, "alice", 365_000_000).accounting_date
        days.CloseAccountingDay(day_pb.CloseAccountingDayRequest(accounting_date=date, early=True,
                                                                 request_id="close"), metadata=md(T))
        accrued = [v for v in srv.all_vouchers(T) if v.metadata.get("accrued_for") == date]
        month_end = (dt.date.fromisoformat(date) + dt.timedelta(days=1)).day == 1
        assert len(accrued) == 1 + month_end  # the accrual, and its capitalization at a month's end
        lines = {ln.account_code: ln.amount for ln in accrued[0].lines}
        assert lines == {"interest_expense:USD": 50_000, f"interest_accrued:{alice.id}": 50_000}
        assert accrued[0].accounting_date == next_day(date)


def statement_day_ending(date: str) -> tuple[int, str]:
    """A statement day whose cycle ends on `date`, or at its month's end when no day 1..28 does; and that end."""
    tomorrow = dt.date.fromisoformat(date) + dt.timedelta(days=1)
    if tomorrow.day <= 28:
        return tomorrow.day, date
    month_end = (tomorrow.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return 1, month_end.isoformat()


def close_through(days, tenant: str, first: str, last: str) -> None:
    """Closes `first` and each day after it through `last`, early: the tenant's business date moves on."""
    day = first
    while day <= last:
        days.CloseAccountingDay(day_pb.CloseAccountingDayRequest(accounting_date=day, early=True,
                                                                 request_id=f"close-{day}"), metadata=md(tenant))
        day = next_day(day)


def test_statements_and_the_previous_statement_balance(server: Server) -> None:
    tenant = "days-statements"
    days = day_grpc.DayServiceStub(server.channel())
    probe = server.create_account(tenant, "probe")
    date = server.fund(tenant, "probe", 1).accounting_date
    day, end = statement_day_ending(date)
    dora = server.create_account(tenant, "dora", metadata={"statement_day": str(day)})
    server.fund(tenant, "dora", 9_000)
    server.transfer(tenant, "dora", "probe", 1_500)
    assert server.balance(tenant, "dora").previous_statement_date == ""
    so_far = days.GetStatement(day_pb.GetStatementRequest(account=ref_of(dora), date=date), metadata=md(tenant))
    assert (so_far.statement.issued, so_far.statement.closing_balance) == (False, 7_500)

    close_through(days, tenant, date, end)
    listed = days.ListStatements(day_pb.ListStatementsRequest(account=ref_of(dora)), metadata=md(tenant))
    [statement] = listed.statements
    assert (statement.end_date, statement.opening_balance, statement.closing_balance, statement.credit_total,
            statement.debit_total, statement.entry_count) == (end, 0, 7_500, 9_000, 1_500, 2)
    got = days.GetStatement(day_pb.GetStatementRequest(account=ref_of(dora), date=date, page_size=1),
                            metadata=md(tenant))
    assert got.statement == statement and statement.issued
    assert [e.amount for e in got.entries] == [9_000] and got.next_page_token
    balance = server.balance(tenant, "dora")
    assert (balance.previous_statement_date, balance.previous_statement_balance) == (end, 7_500)
    assert probe.id != dora.id


def ref_of(account) -> types_pb2.AccountRef:
    return types_pb2.AccountRef(id=account.id)


def test_summaries_detail_and_export_over_the_wire(database_url, tmp_path) -> None:
    rules = tmp_path / "rules.toml"
    default = (resources.files("tally.rules") / "default.toml").read_text()
    rules.write_text(default + '\n[[summaries]]\nflow = "transfer"\n')
    with running_server(e2e_settings(database_url, rules_file=str(rules))) as srv:
        days = day_grpc.DayServiceStub(srv.channel())
        srv.create_account(T, "alice")
        srv.create_account(T, "bob")
        date = srv.fund(T, "alice", 10_000).accounting_date
        sent = [srv.transfer(T, "alice", "bob", amount).vouchers[0].id for amount in (100, 250, 40)]
        assert refused(days.ListSummaries, day_pb.ListSummariesRequest(accounting_date=date)) == (
            grpc.StatusCode.FAILED_PRECONDITION, "DAY_NOT_CLOSED")
        days.CloseAccountingDay(day_pb.CloseAccountingDayRequest(accounting_date=date, early=True,
                                                                 request_id="close"), metadata=md(T))
        [summary] = days.ListSummaries(day_pb.ListSummariesRequest(accounting_date=date), metadata=md(T)).summaries
        assert (summary.flow_type, summary.voucher_count) == ("transfer", 3)
        assert {(ln.account_code, ln.side, ln.amount, ln.line_count) for ln in summary.lines} == {
            ("alice", types_pb2.SIDE_DEBIT, 390, 3), ("bob", types_pb2.SIDE_CREDIT, 390, 3)}
        first = days.ListSummaryDetail(day_pb.ListSummaryDetailRequest(
            accounting_date=date, flow_type="transfer", currency="USD", page_size=2), metadata=md(T))
        rest = days.ListSummaryDetail(day_pb.ListSummaryDetailRequest(
            accounting_date=date, flow_type="transfer", currency="USD", page_size=2,
            page_token=first.next_page_token), metadata=md(T))
        assert [v.id for v in [*first.vouchers, *rest.vouchers]] == sent and not rest.next_page_token
        rows = days.ExportGeneralLedger(day_pb.ExportGeneralLedgerRequest(accounting_date=date, page_size=500),
                                        metadata=md(T)).rows
        kinds = [(r.kind, r.flow_type, r.amount) for r in rows]
        assert kinds[:2] == [(day_pb.LEDGER_ROW_KIND_SUMMARY, "transfer", 390)] * 2
        assert {k for k in kinds[2:]} == {(day_pb.LEDGER_ROW_KIND_DETAIL, "adjustment", 10_000)} and len(kinds) == 4


def test_an_early_close_while_clients_post_loses_nothing_and_splits_nothing(server: Server) -> None:
    tenant = "days-race"
    server.create_account(tenant, "ann")
    server.create_account(tenant, "ben")
    date = server.fund(tenant, "ann", 1_000_000).accounting_date
    acknowledged: list = []
    errors: list = []
    started = threading.Barrier(5)

    def client() -> None:
        channel = server.channel()
        stub = post_grpc.AccountingServiceStub(channel)
        started.wait()
        for _ in range(40):
            try:
                response = stub.Post(transfer_request(server.request_id("race"), "ann", "ben", 1), metadata=md(tenant))
                acknowledged.extend(response.vouchers)
            except grpc.RpcError as exc:  # nothing may be refused: ann has plenty
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(0.05)  # let the clients get going, then close their day under them
    days = day_grpc.DayServiceStub(server.channel())
    day = days.CloseAccountingDay(day_pb.CloseAccountingDayRequest(accounting_date=date, early=True,
                                                                   request_id="close-race"), metadata=md(tenant)).day
    for thread in threads:
        thread.join()
    assert not errors and len(acknowledged) == 160
    stored = {v.id: v for v in server.all_vouchers(tenant)}
    assert all(v.id in stored for v in acknowledged)  # none lost
    in_day = sorted(v.sequence for v in stored.values() if v.accounting_date == date)
    assert in_day == list(range(day.after_sequence + 1, day.last_sequence + 1))  # the closed day is exactly these
    assert all(v.accounting_date == next_day(date) for v in stored.values() if v.sequence > day.last_sequence)
    assert day.voucher_count == len(in_day) >= 1
    [usd] = day.currency_totals
    assert usd.debit_total == sum(ln.amount for v in stored.values() if v.accounting_date == date
                                  for ln in v.lines if ln.side == types_pb2.SIDE_DEBIT)
