"""Summary vouchers of a closed day and its general-ledger export.

The close stores, for each flow the rule set summarizes (`[[summaries]]`), one summary voucher per currency:
a line per account and side with the exact sum of that day's detail lines (days_repo.sum_day). The detail
vouchers stay in the journal; a summary's detail is the flow's vouchers in the day's sequence range with a
line in its currency, listed by sequence. The general-ledger export of a closed day is its summarized
journal: the summary lines, then every line no summary holds (of the other flows, and of the accounts a
partial summary leaves out).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection

from tally.domain.days import AccountingDay, DayState, SummaryLine, parse_date
from tally.domain.errors import invalid, precondition
from tally.domain.vouchers import Voucher
from tally.service import paging
from tally.storage import days_repo, journal_repo
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class Summary:
    accounting_date: str
    flow_type: str
    currency: str
    voucher_count: int
    lines: tuple[SummaryLine, ...]
    account_codes: dict[str, str]
    account_prefixes: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return summary_id(self.accounting_date, self.flow_type, self.currency)


@dataclass(frozen=True)
class ExportRow:
    """One line of the general-ledger export."""

    accounting_date: str
    kind: str  # "summary" or "detail"
    voucher_id: str  # the summary's id, or the detail voucher's
    flow_type: str
    line_no: int
    account_id: str
    account_code: str
    side: str
    amount: int
    currency: str
    line_count: int  # detail lines summed into this one (1 for a detail line)
    memo: str = ""


def summary_id(date: str, flow_type: str, currency: str) -> str:
    return f"summary:{date}:{flow_type}:{currency}"


class SummaryBook:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def summaries(self, tenant_id: str, date_text: str, page_size: int = 0,
                  page_token: str = "") -> tuple[list[Summary], str]:
        """The closed day's summary vouchers, by flow type and currency."""
        date = parse_date(date_text)
        limit = paging.page_size(page_size)
        query = {"list": "summaries", "date": date}
        offset = paging.decode(page_token, query, 0)

        def read(conn: Connection) -> list[Summary]:
            return _summaries(conn, tenant_id, _closed(conn, tenant_id, date))

        found = self.uow.read([tenant_id], read)
        page = found[offset:offset + limit]
        return page, paging.encode(offset + limit, query) if offset + limit < len(found) else ""

    def detail(self, tenant_id: str, date_text: str, flow_type: str, currency: str, page_size: int,
               page_token: str) -> tuple[list[Voucher], str]:
        """The detail vouchers of one summary, by sequence."""
        date = parse_date(date_text)
        limit = paging.page_size(page_size)
        query = {"list": "summary_detail", "date": date, "flow": flow_type, "currency": currency}
        after = paging.decode(page_token, query, 0)

        def read(conn: Connection) -> tuple[list[Voucher], str]:
            day = _closed(conn, tenant_id, date)
            if not any(f.summarized and (f.flow_type, f.currency) == (flow_type, currency) for f in day.flows):
                return [], ""  # no such summary that day: nothing stands behind it
            ids = days_repo.detail_voucher_ids(conn, tenant_id, day, flow_type, currency, after_sequence=after,
                                               limit=limit + 1)
            found = journal_repo.get_vouchers(conn, tenant_id, ids[:limit])
            token = paging.encode(found[-1].sequence, query) if len(ids) > limit else ""
            return found, token

        return self.uow.read([tenant_id], read)

    def export(self, tenant_id: str, date_text: str, page_size: int, page_token: str) -> tuple[list[ExportRow], str]:
        """A page of the closed day's general-ledger export: the summary lines first, then the detail lines
        of the flows not summarized, in journal order."""
        date = parse_date(date_text)
        limit = paging.page_size(page_size)
        query = {"list": "ledger_export", "date": date}
        position = paging.decode(page_token, query, "s:0")

        def read(conn: Connection) -> tuple[list[ExportRow], str]:
            day = _closed(conn, tenant_id, date)
            rows: list[ExportRow] = []
            kind, _, rest = position.partition(":")
            if kind == "s":
                summary_rows = [row for s in _summaries(conn, tenant_id, day) for row in _summary_rows(s)]
                offset = _int(rest)
                rows = summary_rows[offset:offset + limit]
                if len(rows) == limit:  # the page is full: summaries go on, or the detail starts next page
                    following = f"s:{offset + limit}" if offset + limit < len(summary_rows) else "d:0:0"
                    return rows, paging.encode(following, query)
                after = (0, 0)
            else:
                after = tuple(_int(part) for part in rest.split(":", 1)) if rest.count(":") == 1 else (0, 0)
            summarized = {f.flow_type: f.summary_accounts for f in day.flows if f.summarized}
            lines = days_repo.detail_lines(conn, tenant_id, day, summarized, after=after,
                                           limit=limit - len(rows) + 1)
            more = len(lines) > limit - len(rows)
            lines = lines[:limit - len(rows)]
            rows += [ExportRow(date, "detail", r.id, r.flow_type, r.line_no, r.account_id, r.code, r.side, r.amount,
                               r.currency, 1, r.memo) for r in lines]
            last = lines[-1] if lines else None
            return rows, paging.encode(f"d:{last.sequence}:{last.line_no}", query) if more and last else ""

        return self.uow.read([tenant_id], read)


def _closed(conn: Connection, tenant_id: str, date: str) -> AccountingDay:
    day = days_repo.get_day(conn, tenant_id, date)
    if day is None or day.state is not DayState.CLOSED:
        raise precondition("DAY_NOT_CLOSED", f"{date} is not closed: its summaries and export come with its close",
                           accounting_date=date)
    return day


def _summaries(conn: Connection, tenant_id: str, day: AccountingDay) -> list[Summary]:
    lines: dict[tuple[str, str], list[SummaryLine]] = defaultdict(list)
    for line in days_repo.summary_lines(conn, tenant_id, day.date):
        lines[line.flow_type, line.currency].append(line)
    codes = days_repo.account_codes(conn, tenant_id, {ln.account_id for group in lines.values() for ln in group})
    return [Summary(day.date, f.flow_type, f.currency, f.voucher_count, tuple(lines[f.flow_type, f.currency]), codes,
                    f.summary_accounts) for f in day.flows if f.summarized]


def _summary_rows(summary: Summary) -> list[ExportRow]:
    return [ExportRow(summary.accounting_date, "summary", summary.id, summary.flow_type, i + 1, ln.account_id,
                      summary.account_codes.get(ln.account_id, ""), ln.side, ln.amount, ln.currency, ln.line_count)
            for i, ln in enumerate(summary.lines)]


def _int(text: str) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        raise invalid("PAGE_TOKEN_INVALID", "page_token is malformed") from None
