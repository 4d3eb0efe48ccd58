"""Reconciliation rows: statements, their lines and items. Functions take a connection and never commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, update

from tally.domain.reconciliation import ItemState, Resolution, StatementLine
from tally.storage.tables import recon_items, recon_lines, recon_statements


@dataclass(frozen=True, slots=True)
class StatementRow:
    id: str
    tenant_id: str
    account_id: str
    statement_id: str
    digest: str
    format: str
    currency: str
    start_date: str
    end_date: str
    line_count: int
    closing_balance: int | None
    ledger_balance: int
    request_id: str
    created_by: str
    created_us: int


@dataclass(frozen=True, slots=True)
class ItemRow:
    id: str
    tenant_id: str
    statement_row_id: str
    account_id: str
    position: int
    state: ItemState
    rule: str
    ours: int
    theirs: int
    entry_keys: tuple[str, ...]
    resolution: Resolution
    resolution_request_id: str
    voucher_ids: tuple[str, ...]
    resolved_by: str
    resolved_us: int
    updated_us: int
    lines: tuple[StatementLine, ...] = ()

    @property
    def difference(self) -> int:
        return self.ours - self.theirs


def insert_statement(conn: Connection, row: StatementRow, items: Sequence[ItemRow],
                     lines: Sequence[tuple[str, StatementLine]]) -> None:
    """A statement with its items and its lines, each line with the id of its item."""
    conn.execute(insert(recon_statements), [vars_of(row)])
    if items:
        conn.execute(insert(recon_items), [_item_values(item) for item in items])
    if lines:
        conn.execute(insert(recon_lines), [
            {"statement_row_id": row.id, "line_no": ln.line_no, "tenant_id": row.tenant_id, "item_id": item_id,
             "reference": ln.reference, "amount": ln.amount, "value_date": ln.value_date, "line_id": ln.line_id,
             "description": ln.description} for item_id, ln in lines])


def vars_of(row: StatementRow) -> dict:
    return {name: getattr(row, name) for name in StatementRow.__slots__}


def _item_values(item: ItemRow) -> dict:
    values = {name: getattr(item, name) for name in ItemRow.__slots__ if name != "lines"}
    values.update(state=item.state.value, resolution=item.resolution.value, entry_keys=json.dumps(item.entry_keys),
                  voucher_ids=json.dumps(item.voucher_ids))
    return values


def find_statement(conn: Connection, tenant_id: str, account_id: str, *, statement_id: str = "",
                   digest: str = "") -> StatementRow | None:
    column, value = (recon_statements.c.statement_id, statement_id) if statement_id else \
        (recon_statements.c.digest, digest)
    row = conn.execute(select(recon_statements).where(
        recon_statements.c.tenant_id == tenant_id, recon_statements.c.account_id == account_id,
        column == value)).first()
    return StatementRow(**row._mapping) if row else None


def used_entry_keys(conn: Connection, tenant_id: str, account_id: str, start: str, end: str) -> set[str]:
    """The entries earlier statements of the account matched or reported: never matched twice. Only
    statements whose period meets [start, end] can hold entries of that period."""
    rows = conn.execute(select(recon_items.c.entry_keys)
                        .join(recon_statements, recon_statements.c.id == recon_items.c.statement_row_id)
                        .where(recon_items.c.tenant_id == tenant_id, recon_items.c.account_id == account_id,
                               recon_items.c.entry_keys != "[]", recon_statements.c.start_date <= end,
                               recon_statements.c.end_date >= start))
    return {key for (keys,) in rows for key in json.loads(keys)}


def resolving_voucher_ids(conn: Connection, tenant_id: str, account_id: str) -> set[str]:
    """The vouchers that resolved the account's items: their entries are reconciled by their items."""
    rows = conn.execute(select(recon_items.c.voucher_ids).where(
        recon_items.c.tenant_id == tenant_id, recon_items.c.account_id == account_id,
        recon_items.c.resolution != Resolution.NONE.value))
    return {vid for (ids,) in rows for vid in json.loads(ids)}


def count_items(conn: Connection, statement_row_id: str) -> list[tuple[str, str, int, int, int]]:
    """Per state and resolution: items, ours, theirs."""
    query = (select(recon_items.c.state, recon_items.c.resolution, func.count(), func.sum(recon_items.c.ours),
                    func.sum(recon_items.c.theirs))
             .where(recon_items.c.statement_row_id == statement_row_id)
             .group_by(recon_items.c.state, recon_items.c.resolution))
    return [(r[0], r[1], r[2], int(r[3] or 0), int(r[4] or 0)) for r in conn.execute(query)]


def list_items(conn: Connection, statement_row_id: str, *, after_position: int, limit: int,
               state: ItemState | None = None, open_only: bool = False) -> list[ItemRow]:
    conditions = [recon_items.c.statement_row_id == statement_row_id, recon_items.c.position > after_position]
    if state is not None:
        conditions.append(recon_items.c.state == state.value)
    if open_only:
        conditions += [recon_items.c.state != ItemState.MATCHED.value,
                       recon_items.c.resolution == Resolution.NONE.value]
    rows = conn.execute(select(recon_items).where(*conditions).order_by(recon_items.c.position).limit(limit)).all()
    return _with_lines(conn, [_item(r) for r in rows])


def get_item(conn: Connection, tenant_id: str, item_id: str) -> ItemRow | None:
    row = conn.execute(select(recon_items).where(recon_items.c.tenant_id == tenant_id,
                                                 recon_items.c.id == item_id)).first()
    return _with_lines(conn, [_item(row)])[0] if row else None


def get_statement_row(conn: Connection, statement_row_id: str) -> StatementRow:
    row = conn.execute(select(recon_statements).where(recon_statements.c.id == statement_row_id)).one()
    return StatementRow(**row._mapping)


def resolved_voucher_ids(conn: Connection, statement_row_id: str) -> list[str]:
    rows = conn.execute(select(recon_items.c.voucher_ids).where(
        recon_items.c.statement_row_id == statement_row_id, recon_items.c.resolution != Resolution.NONE.value))
    return [vid for (ids,) in rows for vid in json.loads(ids)]


def claim_item(conn: Connection, item: ItemRow, resolution: Resolution, request_id: str, actor: str,
               now_us: int) -> bool:
    """Marks an unresolved item as being resolved by `request_id`; False when someone else got it first."""
    done = conn.execute(update(recon_items).where(
        recon_items.c.id == item.id, recon_items.c.resolution == Resolution.NONE.value).values(
        resolution=resolution.value, resolution_request_id=request_id, resolved_by=actor, resolved_us=now_us,
        updated_us=now_us))
    return done.rowcount == 1


def finish_item(conn: Connection, item_id: str, request_id: str, voucher_ids: Sequence[str], now_us: int) -> None:
    conn.execute(update(recon_items).where(recon_items.c.id == item_id,
                                           recon_items.c.resolution_request_id == request_id)
                 .values(voucher_ids=json.dumps(list(voucher_ids)), updated_us=now_us))


def release_item(conn: Connection, item_id: str, request_id: str, now_us: int) -> None:
    """Gives up a claim whose posting was refused: the item is open again."""
    conn.execute(update(recon_items).where(recon_items.c.id == item_id,
                                           recon_items.c.resolution_request_id == request_id,
                                           recon_items.c.voucher_ids == "[]")
                 .values(resolution=Resolution.NONE.value, resolution_request_id="", resolved_by="", resolved_us=0,
                         updated_us=now_us))


def _item(row) -> ItemRow:
    values = dict(row._mapping)
    values.update(state=ItemState(values["state"]), resolution=Resolution(values["resolution"]),
                  entry_keys=tuple(json.loads(values["entry_keys"])),
                  voucher_ids=tuple(json.loads(values["voucher_ids"])))
    return ItemRow(**values)


def _with_lines(conn: Connection, items: list[ItemRow]) -> list[ItemRow]:
    if not items:
        return items
    rows = conn.execute(select(recon_lines).where(recon_lines.c.statement_row_id == items[0].statement_row_id,
                                                  recon_lines.c.item_id.in_([i.id for i in items]))
                        .order_by(recon_lines.c.line_no)).all()
    by_item: dict[str, list[StatementLine]] = {}
    for r in rows:
        by_item.setdefault(r.item_id, []).append(StatementLine(r.line_no, r.reference, r.amount, r.value_date,
                                                               r.line_id, r.description))
    return [ItemRow(**{**{n: getattr(i, n) for n in ItemRow.__slots__}, "lines": tuple(by_item.get(i.id, ()))})
            for i in items]
