"""The frame around every page: navigation, who is signed in, the stylesheet."""

from __future__ import annotations

from tally.console.html import Html, el, join, link, void
from tally.domain.auth import Principal

NAV = (("/", "Accounts"), ("/vouchers", "Vouchers"), ("/trial-balance", "Trial balance"), ("/days", "Days"),
       ("/holds", "Holds"), ("/events", "Live events"), ("/reconciliation", "Reconciliation"), ("/audit", "Audit"))


def document(title: str, body: Html, principal: Principal | None, *, scripts: tuple[str, ...] = ()) -> Html:
    head = el("head", void("meta", charset="utf-8"), void("meta", name="viewport", content="width=device-width"),
              el("title", f"{title} · Tally console"), void("link", rel="stylesheet", href="/static/console.css"),
              [el("script", src=s, defer=True) for s in scripts])
    return Html("<!doctype html>" + el("html", head, el("body", _header(principal), el("main", el("h1", title),
                                                                                         body)), lang="en"))


def _header(principal: Principal | None) -> Html:
    if principal is None:
        return el("header", el("span", "Tally", class_="brand"))
    who = el("span", f"tenant {principal.tenant_id} · {principal.role.value} · {principal.actor}", class_="who")
    logout = el("form", el("button", "Sign out", type="submit"), method="post", action="/logout", class_="logout")
    return el("header", el("span", "Tally", class_="brand"),
              el("nav", join(link(path, label) for path, label in NAV)), who, logout)
