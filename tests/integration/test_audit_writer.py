"""The audit writer: rows go in batches, in the order they were recorded; a row the database refuses
for its content is kept in the log instead and cannot stop the rows around it or after it."""

from __future__ import annotations

import asyncio
import logging

from tally.service.auth.audit import AuditLog
from tally.service.posting.pipeline import now_us
from tally.storage import auth_repo
from tally.storage.auth_repo import AuditRow
from tests.integration.conftest import TENANT

FLUSH_TIMEOUT_S = 30


def row(request_id: str, role: str = "admin", time_us: int | None = None) -> AuditRow:
    return AuditRow(TENANT, "tests", role, "Post", "flow:transfer", "ok", request_id, "ipv4:127.0.0.1:1",
                    now_us() if time_us is None else time_us)


def stored_request_ids(ledger) -> list[str]:
    rows = ledger.uow.read({TENANT}, lambda conn: auth_repo.list_audit(conn, TENANT, after_id=0, limit=500))
    return [audit_row.request_id for _, audit_row in rows]


async def test_a_batch_is_stored_whole_in_the_order_recorded(database_url, make_ledger):
    ledger = make_ledger(database_url, start=False)
    audit = AuditLog(ledger.uow, flush_ms=20)
    audit.start()
    names = [f"r-{i:03d}" for i in range(300)]
    for name in names:
        await audit.record(row(name))
    await audit.stop()
    assert stored_request_ids(ledger) == names


async def test_a_row_the_database_refuses_is_logged_and_the_others_are_stored(postgres_url, make_ledger, caplog):
    ledger = make_ledger(postgres_url, start=False)
    audit = AuditLog(ledger.uow, flush_ms=20)
    audit.start()
    past_int64 = 2**63  # time_us is a bigint: nothing the audit writer cleans makes this storable
    with caplog.at_level(logging.ERROR, logger="tally.service.auth.audit"):
        for audit_row in (row("before"), row("refused", time_us=past_int64), row("after")):
            await audit.record(audit_row)
        await asyncio.wait_for(audit.flush(), FLUSH_TIMEOUT_S)  # a writer stuck on the row never gets here
        await audit.record(row("later"))
    await audit.stop()
    assert stored_request_ids(ledger) == ["before", "after", "later"]
    refused = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refused) == 1 and "refused" in refused[0].getMessage() and str(past_int64) in refused[0].getMessage()


async def test_every_text_a_caller_put_in_a_row_is_made_storable(database_url, make_ledger):
    """NUL and lone surrogates (PostgreSQL refuses both; a JWT subject with NUL once kept every refusal of
    that caller out of the log) become U+FFFD, and every text is cut to its column."""
    ledger = make_ledger(database_url, start=False)
    audit = AuditLog(ledger.uow, flush_ms=20)
    audit.start()
    await audit.record(AuditRow(TENANT, "jwt:svc\x00x", "r" * 40, "Get\udc80", "t" * 1000, "o" * 200, "q\x00" * 100,
                                "p" * 300, now_us()))
    await asyncio.wait_for(audit.flush(), FLUSH_TIMEOUT_S)
    await audit.stop()
    [(_, stored)] = ledger.uow.read({TENANT}, lambda conn: auth_repo.list_audit(conn, TENANT, after_id=0, limit=5))
    assert stored.actor == "jwt:svc\ufffdx"
    assert (stored.role, stored.action) == ("r" * 16, "Get\ufffd")
    assert (stored.target, stored.outcome, stored.peer) == ("t" * 256, "o" * 96, "p" * 128)
    assert stored.request_id == "q\ufffd" * 64
