"""The ledger audit through the real server and the real wire, on SQLite and PostgreSQL: VerifyChain,
AuditLedger (progress, and work that stops when its caller does), `tally verify` and `--full`, the scheduled
audit, ACCOUNT_INCONSISTENT, and the audit log read by the auditor role."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest

from tally import cli
from tally.domain.auth import Role
from tally.service.auth import keys
from tally.service.books import ledger_audit
from tally.service.posting.pipeline import now_us
from tally.storage import audit_repo
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import bookkeeping_service_pb2 as bk_pb
from tally.v1 import bookkeeping_service_pb2_grpc as bk_grpc
from tally.v1 import types_pb2
from tests.e2e.conftest import (
    Server,
    TenantKeys,
    e2e_settings,
    error_info,
    md,
    ref,
    running_server,
    transfer_request,
    wait_until,
)
from tests.integration.test_tamper import as_owner

TENANT = "audited"
INVENTED = 777_000_000


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def key_of(server: Server, role: Role, tenant: str = TENANT) -> str:
    provisioner = TenantKeys.for_target(server.target)
    provisioner.key_for(tenant)  # the tenant exists
    return keys.create_key(provisioner.uow, tenant, role, role.value, "audit-test", now_us).secret_key


def books(server: Server) -> bk_grpc.BookkeepingServiceStub:
    return bk_grpc.BookkeepingServiceStub(server.channel())


def ledger_with_two_accounts(server: Server) -> tuple[str, str]:
    alice = server.create_account(TENANT, "alice").id
    bob = server.create_account(TENANT, "bob").id
    server.fund(TENANT, "alice", 10_000)
    server.fund(TENANT, "bob", 5_000)
    server.transfer(TENANT, "alice", "bob", 1_000)
    return alice, bob


def flush_audit_log(server: Server) -> None:
    asyncio.run_coroutine_threadsafe(server.app.services.audit.flush(), server.loop).result(30)


def tally_verify(capsys, server: Server, key: str, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main(["verify", "--target", server.target, "--api-key", key, *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_issue_scenario_over_the_wire_and_the_cli(server: Server, capsys) -> None:
    alice, bob = ledger_with_two_accounts(server)
    operator = key_of(server, Role.OPERATOR)
    status, out, _ = tally_verify(capsys, server, operator)
    assert status == 0 and out.startswith("intact: 3 vouchers checked"), out
    assert "audit: full" in out  # the first run has no checkpoint to start from

    assert as_owner(server.database_url, "UPDATE balances SET current = current + :x WHERE account_id IN (:a, :b)",
                    x=INVENTED, a=alice, b=bob) == 2
    report = books(server).VerifyChain(bk_pb.VerifyChainRequest(), metadata=md(TENANT))
    assert not report.intact and not report.full and report.vouchers_read == 0  # routine: nothing new to read
    current = {(f.account_id, f.expected, f.found) for f in report.findings
               if f.kind == bk_pb.AUDIT_FINDING_KIND_BALANCE_CURRENT}
    assert current == {(alice, "9000", str(9_000 + INVENTED)), (bob, "6000", str(6_000 + INVENTED))}
    assert sorted(report.marked_inconsistent_account_ids) == sorted([alice, bob])
    account = server.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref(id=alice)), metadata=md(TENANT))
    assert account.account.status == types_pb2.ACCOUNT_STATUS_INCONSISTENT

    with pytest.raises(grpc.RpcError) as refused:
        server.transfer(TENANT, "alice", "bob", INVENTED)
    code, reason, metadata = error_info(refused.value)
    assert (code, reason, metadata["account_id"]) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_INCONSISTENT",
                                                      alice)

    status, out, _ = tally_verify(capsys, server, operator)  # the CLI names both, with expected and found
    assert status == cli.EXIT_REFUSED and out.startswith("INCONSISTENT: 0 vouchers checked"), out
    assert f"BALANCE_CURRENT account {alice}: expected 9000, found {9_000 + INVENTED}" in out, out
    assert f"BALANCE_CURRENT account {bob}: expected 6000, found {6_000 + INVENTED}" in out, out

    # The operator repairs the rows and reactivates the accounts: they post again, and the books check out.
    as_owner(server.database_url, "UPDATE balances SET current = current - :x WHERE account_id IN (:a, :b)",
             x=INVENTED, a=alice, b=bob)
    for code_ in ("alice", "bob"):
        assert server.set_status(TENANT, code_, types_pb2.ACCOUNT_STATUS_ACTIVE).status == \
            types_pb2.ACCOUNT_STATUS_ACTIVE
    server.transfer(TENANT, "alice", "bob", 100)
    status, out, _ = tally_verify(capsys, server, operator, "--full")
    assert status == 0 and out.startswith("intact: 4 vouchers checked"), out
    assert "audit: full, vouchers 1..4: 4 vouchers, 8 lines" in out, out
    status, out, _ = tally_verify(capsys, server, operator)
    assert status == 0 and "audit: routine, vouchers 5..4: 0 vouchers, 0 lines" in out, out


def test_an_operator_cannot_mark_an_account_inconsistent(server: Server) -> None:
    server.create_account(TENANT, "carol")
    with pytest.raises(grpc.RpcError) as refused:
        server.set_status(TENANT, "carol", types_pb2.ACCOUNT_STATUS_INCONSISTENT)
    assert error_info(refused.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "ACCOUNT_STATUS_RESERVED")


def test_audit_ledger_streams_progress_then_the_result(server: Server, monkeypatch) -> None:
    monkeypatch.setattr(ledger_audit, "PAGE_VOUCHERS", 1)
    ledger_with_two_accounts(server)
    responses = list(books(server).AuditLedger(bk_pb.AuditLedgerRequest(full=True), metadata=md(TENANT)))
    progress = [r.progress for r in responses if r.HasField("progress")]
    assert [p.through_sequence for p in progress] == [1, 2, 3] and progress[-1].last_sequence == 3
    assert responses[-1].HasField("result") and responses[-1].result.intact and responses[-1].result.full


def test_a_cancelled_audit_stops_on_the_server(server: Server, monkeypatch) -> None:
    """The caller reads the first progress message and cancels: the server's run stops at its next page
    instead of reading the rest of the journal for nobody."""
    monkeypatch.setattr(ledger_audit, "PAGE_VOUCHERS", 1)
    pages = []
    read_page = audit_repo.voucher_page

    def slow_page(*args, **kwargs):
        pages.append(time.monotonic())
        time.sleep(0.2)
        return read_page(*args, **kwargs)

    ledger_with_two_accounts(server)
    for n in range(7):
        server.transfer(TENANT, "bob", "alice", n + 1)
    monkeypatch.setattr(audit_repo, "voucher_page", slow_page)
    auditor = server.app.services.auditor
    call = books(server).AuditLedger(bk_pb.AuditLedgerRequest(full=True), metadata=md(TENANT))
    first = next(call)
    assert first.HasField("progress") and first.progress.last_sequence == 10
    call.cancel()
    wait_until(lambda: auditor.cancelled == 1 and auditor.running == 0, "the cancelled audit to stop")
    assert len(pages) < 6, f"the server read {len(pages)} pages of 11 after its caller went away"
    assert TENANT not in auditor.last  # nothing published: the run did not finish

    with pytest.raises(grpc.RpcError) as expired:  # a deadline stops it the same way
        books(server).VerifyChain(bk_pb.VerifyChainRequest(full=True), metadata=md(TENANT), timeout=0.5)
    assert expired.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: auditor.cancelled == 2 and auditor.running == 0, "the expired audit to stop")


def test_the_auditor_role_reads_the_audit_log_and_nothing_more(server: Server) -> None:
    ledger_with_two_accounts(server)
    with pytest.raises(grpc.RpcError):
        server.transfer(TENANT, "alice", "bob", 10**9)  # refused: INSUFFICIENT_FUNDS, an audited error
    auditor, reader, operator = (key_of(server, role) for role in (Role.AUDITOR, Role.READER, Role.OPERATOR))
    flush_audit_log(server)
    stub = books(server)
    everything = stub.ListAuditLog(bk_pb.ListAuditLogRequest(page_size=500), metadata=bearer(auditor))
    rows = list(everything.entries)
    assert len(rows) >= 6 and not everything.next_page_token
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert all(len(r.hash) == 64 for r in rows)
    assert all(a.hash == b.previous_hash for a, b in zip(rows, rows[1:], strict=False))  # one chain

    posts = stub.ListAuditLog(bk_pb.ListAuditLogRequest(action="Post"), metadata=bearer(auditor)).entries
    assert {r.action for r in posts} == {"Post"} and len(posts) == 4
    errors = stub.ListAuditLog(bk_pb.ListAuditLogRequest(outcome="error:FAILED_PRECONDITION"),
                               metadata=bearer(auditor)).entries
    assert [r.outcome for r in errors] == ["error:FAILED_PRECONDITION:INSUFFICIENT_FUNDS"]
    actor = rows[0].actor
    assert {r.actor for r in stub.ListAuditLog(bk_pb.ListAuditLogRequest(actor=actor),
                                               metadata=bearer(auditor)).entries} == {actor}
    window = bk_pb.ListAuditLogRequest(start_time=rows[1].time, end_time=rows[3].time, page_size=500)
    assert all(rows[1].time.ToMicroseconds() <= r.time.ToMicroseconds() < rows[3].time.ToMicroseconds()
               for r in stub.ListAuditLog(window, metadata=bearer(auditor)).entries)

    paged, token = [], ""
    while True:  # AIP-158: small pages, opaque tokens, every row once
        page = stub.ListAuditLog(bk_pb.ListAuditLogRequest(page_size=2, page_token=token), metadata=bearer(auditor))
        paged += page.entries
        token = page.next_page_token
        if not token:
            break
        assert len(page.entries) == 2
    # Every row once, in order; the log grows meanwhile (reading it is audited too), so rows listed
    # before the paging came first.
    assert [r.id for r in paged][:len(rows)] == [r.id for r in rows]
    assert [r.id for r in paged] == sorted({r.id for r in paged})
    with pytest.raises(grpc.RpcError) as bad_token:  # a token is bound to its filter
        stub.ListAuditLog(bk_pb.ListAuditLogRequest(page_size=2, page_token=token or "x", action="Post"),
                          metadata=bearer(auditor))
    assert error_info(bad_token.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")

    # The admin may read it too; reader and operator may not; the auditor changes nothing and runs no audit.
    assert stub.ListAuditLog(bk_pb.ListAuditLogRequest(), metadata=md(TENANT)).entries
    for key, call in ((reader, lambda k: stub.ListAuditLog(bk_pb.ListAuditLogRequest(), metadata=bearer(k))),
                      (operator, lambda k: stub.ListAuditLog(bk_pb.ListAuditLogRequest(), metadata=bearer(k))),
                      (auditor, lambda k: stub.VerifyChain(bk_pb.VerifyChainRequest(), metadata=bearer(k))),
                      (auditor, lambda k: server.accounting().Post(transfer_request("aud-1", "alice", "bob", 1),
                                                                   metadata=bearer(k)))):
        with pytest.raises(grpc.RpcError) as denied:
            call(key)
        assert error_info(denied.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    # The auditor's reads of the balances work (read permission).
    assert server.accounts().GetBalance(acc_pb.GetBalanceRequest(account=ref("alice")),
                                        metadata=bearer(auditor)).balance.current == 9_000


def test_the_scheduled_audit_marks_tampered_accounts_and_logs_an_error(database_url: str, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="tally.audit"), \
            running_server(e2e_settings(database_url, audit_interval_s=1)) as server:
        alice, _ = ledger_with_two_accounts(server)
        auditor = server.app.services.auditor
        wait_until(lambda: auditor.last.get(TENANT) is not None, "the first scheduled audit", timeout_s=30)
        assert auditor.findings_by_tenant()[TENANT] == 0
        as_owner(server.database_url, "UPDATE balances SET locked = 3 WHERE account_id = :a", a=alice)

        def status() -> int:
            return server.accounts().GetAccount(acc_pb.GetAccountRequest(account=ref(id=alice)),
                                                metadata=md(TENANT)).account.status

        wait_until(lambda: status() == types_pb2.ACCOUNT_STATUS_INCONSISTENT, "the audit to mark alice", 30)
        wait_until(lambda: auditor.findings_by_tenant()[TENANT] == 1, "the gauge to show the finding", 30)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "tally.audit"]
        assert errors and alice in errors[0].getMessage() and "LOCKED" in errors[0].getMessage()
        flush_audit_log(server)
        marked = books(server).ListAuditLog(bk_pb.ListAuditLogRequest(actor=ledger_audit.AUDIT_ACTOR),
                                            metadata=md(TENANT)).entries
        assert [(r.target, r.outcome) for r in marked] == [(f"account:{alice}", "marked:inconsistent:LOCKED")]
