"""The live feed: the newest events, then whatever follows, fetched by a little script every few seconds."""

from __future__ import annotations

import orjson

from tally.console.html import el, join, link, table
from tally.console.money import when
from tally.console.request import Page, Request, Response
from tally.console.views.common import short
from tally.domain.errors import invalid
from tally.service.lookups import events_after
from tally.storage.ledger_repo import Event

FEED_EVENTS_MAX = 50
PAYLOAD_CHARS_MAX = 160
POLL_MS = 2000


def page(req: Request) -> Page:
    found = events_after(req.services.uow, req.tenant_id, None, FEED_EVENTS_MAX)
    after = found[-1].sequence if found else 0
    rows = [_row(e) for e in reversed(found)]
    feed = table(("Seq", "Time", "Type", "Account", "Voucher", "Hold", "Payload"), rows, class_="events",
                 id="events", data_after=after, data_poll_ms=POLL_MS, data_rows_max=FEED_EVENTS_MAX * 4)
    return Page("Live events", join([el("p", "Newest first; new events appear as they are committed.",
                                        el("span", "", id="feed-state", class_="hint"), class_="hint"), feed]))


def feed(req: Request) -> Response:
    """JSON for the page's script: events after `after`, oldest first."""
    raw = req.arg("after", "0")
    if not raw.isdigit() or len(raw) > 19:
        raise invalid("SEQUENCE_INVALID", "after must be a sequence number", field="after")
    found = events_after(req.services.uow, req.tenant_id, int(raw), FEED_EVENTS_MAX)
    body = {"after": found[-1].sequence if found else int(raw),
            "events": [{"sequence": e.sequence, "time": when(e.created_us), "type": e.type,
                        "account_id": e.account_id or "", "voucher_id": e.voucher_id or "",
                        "hold_id": e.hold_id or "", "payload": _payload(e)} for e in found]}
    return Response(200, "application/json", orjson.dumps(body))


def _row(e: Event) -> tuple:
    return (e.sequence, when(e.created_us), e.type,
            link(f"/accounts/{e.account_id}", short(e.account_id)) if e.account_id else "",
            link(f"/vouchers/{e.voucher_id}", short(e.voucher_id)) if e.voucher_id else "",
            short(e.hold_id) if e.hold_id else "", el("code", _payload(e)))


def _payload(e: Event) -> str:
    text = orjson.dumps(e.payload, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= PAYLOAD_CHARS_MAX else text[:PAYLOAD_CHARS_MAX - 1] + "…"
