"""A subtree's statement: every entry of an account and its descendants, one timeline in posting order (voucher
sequence, then line number: the tenant's commit order), keyset-paged, each page from one read snapshot.

A page reads a bounded range of each subtree account's entries after that account's own cursor (at most
`page size + 1`, in a few rounds of one statement each, see `_head`) and merges them, so no read grows with
the accounts' histories. The page token carries the position reached (voucher sequence, line number) and
every account's cursor; an account that joined the subtree since the last page has no cursor yet, and gets
one from the position by a binary search of its entries.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection, Row

from tally.domain import limits
from tally.domain.errors import invalid, precondition
from tally.domain.fields import check_tenant
from tally.domain.vouchers import AccountRef
from tally.service import paging
from tally.service.queries import Entry, Page, check_dates, require_account
from tally.storage import journal_repo, subtree_entries_repo
from tally.storage.tables import voucher_lines
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class _Position:
    """Where a page resumes: after line `line_no` of voucher `sequence`, and each account after its cursor."""

    sequence: int
    line_no: int
    cursors: dict[str, int]

    def encode(self, query: dict) -> str:
        return paging.encode({"s": self.sequence, "l": self.line_no, "c": self.cursors}, query)


def list_subtree_entries(uow: UnitOfWork, tenant_id: str, root: AccountRef, *, page_size: int, page_token: str,
                         start_date: str = "", end_date: str = "") -> Page:
    check_tenant(tenant_id)
    check_dates(start_date, end_date)
    size = paging.page_size(page_size)

    def read(conn: Connection) -> Page:
        account = require_account(conn, tenant_id, root)
        query = {"list": "subtree-entries", "tenant": tenant_id, "account": account.id, "start": start_date,
                 "end": end_date}
        position = _decode(page_token, query)
        codes = {account.id: account.code, **dict(_descendants(conn, tenant_id, account.id))}
        cursors = {a: _cursor(conn, a, position, start_date) for a in codes}
        merged = _head(conn, tenant_id, cursors, size + 1)
        if end_date:
            # Accounting dates never go back within a tenant: the timeline ends at the first entry past it.
            merged = [r for r in merged if r.accounting_date <= end_date]
        return _page(merged, size, cursors, codes, query)

    return uow.read({tenant_id}, read)


def _key(row: Row) -> tuple[int, int]:
    return row.sequence, row.line_no


def _head(conn: Connection, tenant_id: str, cursors: dict[str, int], want: int) -> list[Row]:
    """The timeline's first `want` entries after the cursors. Each round reads the next `limit` entries of
    the accounts that may still hold one of them, `limit` doubling from an even share up to `want`: an
    account is known in full up to its last entry read (or to its end, once a read returns fewer), so once
    every account is known up to the `want`-th entry read, those entries are exact. Spread entries take one
    round of about `want` entries in all (a fixed `want` per account read the subtree's size times as many);
    an account stops being read once it has `want` entries read, so there are at most about
    log2(want) + 2 rounds."""
    fetched: list[Row] = []
    after = dict(cursors)  # per account still being read, the last entry number read
    limit = max(2, -(-want // len(cursors)))
    while after:
        rows = subtree_entries_repo.next_entries(conn, tenant_id, after, limit)
        fetched.extend(rows)
        fetched.sort(key=_key)
        last: dict[str, Row] = {}
        for r in rows:
            if r.account_id not in last or r.entry_number > last[r.account_id].entry_number:
                last[r.account_id] = r
        read = Counter(r.account_id for r in rows)
        cut = _key(fetched[want - 1]) if len(fetched) >= want else None
        # Still to read: accounts not at their end and known only up to below the cut (all, while none).
        after = {a: last[a].entry_number for a in after
                 if read[a] == limit and (cut is None or _key(last[a]) < cut)}
        limit = min(limit * 2, want)
    return fetched[:want]


def _descendants(conn: Connection, tenant_id: str, root_id: str) -> list[tuple[str, str]]:
    accepted = limits.SUBTREE_ENTRIES_ACCOUNTS_MAX - 1
    found = subtree_entries_repo.descendants(conn, tenant_id, root_id, accepted + 1)
    if len(found) > accepted:
        raise precondition("SUBTREE_TOO_LARGE", f"a subtree statement merges at most "
                           f"{limits.SUBTREE_ENTRIES_ACCOUNTS_MAX} accounts (the account and its descendants): "
                           "list the entries of smaller subtrees", accounts_max=limits.SUBTREE_ENTRIES_ACCOUNTS_MAX)
    return found


def _cursor(conn: Connection, account_id: str, position: _Position | None, start_date: str) -> int:
    """The number of the account's last entry before this page."""
    if position is None:
        if not start_date:
            return 0
        return journal_repo.last_entry_where(conn, account_id, voucher_lines.c.accounting_date, start_date,
                                             inclusive=False)
    if account_id in position.cursors:
        return position.cursors[account_id]
    # New to the subtree since the last page: everything up to the position was listed or skipped already.
    return subtree_entries_repo.last_entry_at(conn, account_id, position.sequence, position.line_no)


def _page(rows: list[Row], size: int, cursors: dict[str, int], codes: dict[str, str], query: dict) -> Page:
    entries = [_entry(r, codes[r.account_id]) for r in rows[:size]]

    def resume_after(item: object) -> str:
        taken = rows[:entries.index(item) + 1]
        after = dict(cursors)
        for r in taken:
            after[r.account_id] = r.entry_number
        return _Position(taken[-1].sequence, taken[-1].line_no, after).encode(query)

    token = resume_after(entries[-1]) if len(rows) > size else ""
    return Page(entries, token, 0, resume_after)


def _entry(r: Row, code: str) -> Entry:
    return Entry(r.entry_number, r.voucher_id, r.line_no, r.account_id, r.side, r.amount, r.currency,
                 r.balance_after, r.flow_type, r.memo, r.accounting_date, r.posted_us, code)


def _decode(token: str, query: dict) -> _Position | None:
    data = paging.decode(token, query, {})
    if not data:
        return None
    sequence, line_no, cursors = data.get("s"), data.get("l"), data.get("c")
    if not (_position_int(sequence) and _position_int(line_no) and isinstance(cursors, dict)
            and len(cursors) <= limits.SUBTREE_ENTRIES_ACCOUNTS_MAX
            and all(isinstance(k, str) and _position_int(v) for k, v in cursors.items())):
        # A token is opaque but not sealed: a forged one must still fit the database's int64 columns.
        raise invalid("PAGE_TOKEN_INVALID", "page_token is malformed")
    return _Position(sequence, line_no, cursors)


def _position_int(value: object) -> bool:
    return type(value) is int and 0 <= value <= limits.AMOUNT_MAX

