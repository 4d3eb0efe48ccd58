"""Bits several views share: account references from a path, amount cells, the pager."""

from __future__ import annotations

from tally.console.html import Html, el, href, link
from tally.console.money import amount
from tally.console.request import Request
from tally.domain.vouchers import AccountRef

_UUID_DASHES = frozenset((8, 13, 18, 23))
_HEX = frozenset("0123456789abcdef")


def looks_like_id(text: str) -> bool:
    return len(text) == 36 and all((c == "-") if i in _UUID_DASHES else (c in _HEX) for i, c in enumerate(text))


def account_ref(text: str) -> AccountRef:
    """An account named in a URL: by id when it is one, else by code."""
    return AccountRef(id=text) if looks_like_id(text) else AccountRef(code=text)


def money(req: Request, units: int, currency: str) -> Html:
    return el("span", amount(units, currency, req.services.settings.currencies),
              class_="amount negative" if units < 0 else "amount")


def account_link(account_id: str, codes: dict[str, str]) -> Html:
    code = codes.get(account_id)
    return link(f"/accounts/{account_id}", code or short(account_id), class_="account", title=account_id)


def pager(req: Request, next_token: str, **keep: str) -> Html | None:
    """"First page" and "Next page" links, keeping the page's filters."""
    links = []
    if req.arg("page"):
        links.append(link(href(req.path, size=req.arg("size"), **keep), "First page"))
    if next_token:
        links.append(link(href(req.path, page=next_token, size=req.arg("size"), **keep), "Next page", rel="next"))
    return el("nav", links, class_="pager") if links else None


def short(identifier: str) -> str:
    """The last eight characters of an id: its random part (a UUIDv7 begins with the time, alike for neighbours)."""
    return identifier[-8:]
