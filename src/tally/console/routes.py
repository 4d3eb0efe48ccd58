"""Which view answers which path, and the RPC each mirrors: a view is allowed exactly when its RPC would be."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tally.console.views import accounts, audit, books, events, holds, settlement, vouchers

_RPC = "/tally.v1."


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern
    view: Callable
    method: str  # the gRPC method whose permission the view needs
    scripts: tuple[str, ...] = ()


def _route(pattern: str, view: Callable, method: str, *scripts: str) -> Route:
    return Route(re.compile(pattern), view, _RPC + method, scripts)


ROUTES = (
    _route(r"/", accounts.tree, "AccountService/ListAccounts"),
    _route(r"/accounts/([A-Za-z0-9._:@/-]{1,128})", accounts.detail, "AccountService/ListEntries"),
    _route(r"/vouchers", vouchers.listing, "AccountingService/ListVouchers"),
    _route(r"/vouchers/([0-9a-f-]{36})", vouchers.detail, "AccountingService/GetVoucher"),
    _route(r"/trial-balance", books.trial_balance, "BookkeepingService/GetTrialBalance"),
    _route(r"/days", books.days, "DayService/ListAccountingDays"),
    _route(r"/days/([0-9]{4}-[0-9]{2}-[0-9]{2})", books.day, "DayService/GetAccountingDay"),
    _route(r"/holds", holds.listing, "AccountingService/ListHolds"),
    _route(r"/events", events.page, "AccountingService/StreamEvents", "/static/events.js"),
    _route(r"/events\.json", events.feed, "AccountingService/StreamEvents"),
    _route(r"/reconciliation", settlement.reconciliation, "SettlementService/GetReconciliation"),
    _route(r"/audit", audit.audit_log, "BookkeepingService/ListAuditLog"),
)


def match(path: str) -> tuple[Route, tuple[str, ...]] | None:
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found:
            return route, found.groups()
    return None
