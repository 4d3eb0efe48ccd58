"""The audit writer: rows go in batches, in the order they were recorded; a row the database refuses
for its content is kept in the log instead and cannot stop the rows around it or after it."""

from __future__ import annotations

import asyncio
import logging

from tally.service.audit import AuditLog
from tally.service.pipeline import now_us
from tally.storage import auth_repo
from tally.storage.auth_repo import AuditRow
from tests.integration.conftest import TENANT

FLUSH_TIMEOUT_S = 30


def row(request_id: str, role: str = "admin") -> AuditRow:
    return AuditRow(TENANT, "tests", role, "Post", "flow:transfer", "ok", request_id, "ipv4:127.0.0.1:1", now_us())


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
    too_long = "r" * 17  # audit_log.role is varchar(16)
    with caplog.at_level(logging.ERROR, logger="tally.service.audit"):
        for audit_row in (row("before"), row("refused", role=too_long), row("after")):
            await audit.record(audit_row)
        await asyncio.wait_for(audit.flush(), FLUSH_TIMEOUT_S)  # a writer stuck on the row never gets here
        await audit.record(row("later"))
    await audit.stop()
    assert stored_request_ids(ledger) == ["before", "after", "later"]
    refused = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refused) == 1 and "refused" in refused[0].getMessage() and too_long in refused[0].getMessage()
