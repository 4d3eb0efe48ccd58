"""Holds by state, with their expiry."""

from __future__ import annotations

from tally.console.html import el, href, join, link, table
from tally.console.money import when
from tally.console.request import Page, Request
from tally.console.views.common import account_link, money, pager, short
from tally.domain.errors import invalid
from tally.domain.holds import HoldStatus
from tally.service.lookups import account_codes


def listing(req: Request) -> Page:
    s, tenant = req.services, req.tenant_id
    state = _state(req.arg("state", HoldStatus.ACTIVE.value))
    page = s.queries.list_holds(tenant, page_size=req.page_size(), page_token=req.arg("page"), status=state)
    codes = account_codes(s.uow, tenant, {h.account_id for h in page.items})
    now_us = s.clock()
    rows = [(el("code", short(h.id), title=h.id), account_link(h.account_id, codes),
             money(req, h.amount, h.currency), money(req, h.captured, h.currency), h.status.value,
             _expiry(h.expires_us, now_us, h.status), when(h.created_us), h.memo,
             join(link(f"/vouchers/{v}", short(v)) for v in h.capture_voucher_ids)) for h in page.items]
    tabs = el("nav", [link(href("/holds", state=st.value), st.value, class_="tab current" if st is state else "tab")
                      for st in HoldStatus], class_="tabs")
    body = table(("Hold", "Account", "Amount", "Captured", "State", "Expires", "Created", "Memo", "Captures"), rows,
                 class_="holds") if rows else el("p", f"No {state.value} holds.")
    return Page("Holds", join([tabs, body, pager(req, page.next_page_token, state=state.value)]))


def _state(text: str) -> HoldStatus:
    try:
        return HoldStatus(text)
    except ValueError:
        raise invalid("HOLD_STATUS_INVALID", "state must be one of active, captured, released, expired",
                      field="state") from None


def _expiry(expires_us: int | None, now_us: int, status: HoldStatus):
    if not expires_us:
        return "never"
    if status is HoldStatus.ACTIVE and expires_us > now_us:
        left_s = (expires_us - now_us) // 1_000_000
        return el("span", when(expires_us), el("small", f" in {left_s // 60} min {left_s % 60} s"))
    return when(expires_us)
