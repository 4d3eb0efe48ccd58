"""default rules: merchants' accounts as sub-accounts, every party's code with its currency

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07

Issue 21: rule set 2026.12.1 opens a merchant's accounts as sub-accounts of one main account per merchant
and currency (`merchant:m1:USD` with `/pending`, `/settled`, `/guarantee`, `/guarantee_due`,
`/guarantee_deduction`, `/guarantee_commitment`) and a consumer's or affiliate's as `consumer:alice:USD`.
This migration moves ledgers made with the earlier default rules onto those codes, so that postings through
the new rules land on the same accounts (no balance split between an old and a new account):

- each account the earlier default templates opened (`merchant_pending:m1`, `consumer:alice`, ...: that
  shape, that type and side) is renamed in place to its new code: its id, balance, entries and hash chain
  stay as they are (a voucher's lines and hash name account ids, never codes);
- a merchant's main account is opened when it does not exist yet (deposit, the sub-account's currency, zero)
  and each renamed sub-account without a parent becomes its child;
- the old code keeps leading to the renamed account the way a merged account's code does (migration 0017):
  a closed account with the old code, holding nothing, and an `account_merges` row from it to the renamed
  account, so a posting, a hold or a custom rule naming the old code posts to the renamed account.

An account whose new code is taken already is left as it is. Rows are written as the schema owner, with no
events (an account's `account.created` event keeps the code it was opened with). Operators' own rule files
are not read: those that name the old codes keep working through the old codes' redirects.
Downgrade renames back what this migration renamed and removes the redirects; main accounts stay.
"""

import json
import os
import time

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

REQUEST_ID = "migration:0020"
MERGED_BY = "migration 0020"
CHUNK_ROWS = 1000
CODE_LENGTH_MAX = 128
VALUE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@/-")

# Old template prefix -> (new code's party prefix, sub-account name or "" for none, type, normal side).
RENAMES = {
    "consumer": ("consumer", "", "deposit", "credit"),
    "affiliate": ("affiliate", "", "deposit", "credit"),
    "merchant_pending": ("merchant", "pending", "deposit", "credit"),
    "merchant_settled": ("merchant", "settled", "deposit", "credit"),
    "merchant_guarantee": ("merchant", "guarantee", "security_deposit", "credit"),
    "guarantee_due": ("merchant", "guarantee_due", "internal", "debit"),
    "guarantee_deduction": ("merchant", "guarantee_deduction", "internal", "debit"),
    "guarantee_commitment": ("merchant", "guarantee_commitment", "internal", "credit"),
}

accounts = sa.table("accounts", *(sa.column(c) for c in (
    "id", "tenant_id", "code", "name", "type", "normal_side", "currency", "status", "parent_id", "credit_limit",
    "floor_policy", "metadata", "created_us", "updated_us")))
balances = sa.table("balances", *(sa.column(c) for c in (
    "account_id", "tenant_id", "current", "locked", "previous_day", "last_date", "entry_count", "updated_us")))
merges = sa.table("account_merges", *(sa.column(c) for c in (
    "source_id", "tenant_id", "target_id", "voucher_id", "request_id", "merged_by", "merged_us")))


def _new_id() -> str:
    """A version 7 UUID's text, as tally.domain.ids makes them (inlined: a migration stays as it was written)."""
    unix_ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms << 80) | (0x7 << 76) | ((rand >> 68) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_code(old_code: str, currency: str) -> tuple[str, str] | None:
    """(new code, main account code or "") of an account the earlier default templates opened, else None."""
    prefix, colon, value = old_code.partition(":")
    if not colon or prefix not in RENAMES or not value or not set(value) <= VALUE_CHARS:
        return None
    party, sub, _, _ = RENAMES[prefix]
    main = f"{party}:{value}:{currency}"
    code = f"{main}/{sub}" if sub else main
    return (code, main if sub else "") if len(code) <= CODE_LENGTH_MAX else None


def _system_scope(conn) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('tally.tenants', '*', true)"))  # row security binds the owner


def _old_accounts(conn, page_rows: int):
    """Pages of at most `page_rows` accounts the earlier default templates opened, in (tenant, code) order: a
    ledger of millions of consumers is never held in memory at once. A renamed account sorts after the page
    it was in and no longer has an old code's shape, so a later page skips it."""
    prefix_match = sa.or_(*(accounts.c.code.like(f"{p}:%") for p in RENAMES))
    after = None
    while True:
        query = sa.select(accounts).where(prefix_match)
        if after is not None:
            query = query.where(sa.tuple_(accounts.c.tenant_id, accounts.c.code) > sa.tuple_(*after))
        page = conn.execute(query.order_by(accounts.c.tenant_id, accounts.c.code).limit(page_rows)).all()
        if not page:
            return
        after = (page[-1].tenant_id, page[-1].code)
        yield [r for r in page if r.code.partition(":")[0] in RENAMES
               and RENAMES[r.code.partition(":")[0]][2:] == (r.type, r.normal_side)]


def _existing(conn, tenant_id: str, codes: list[str]) -> dict:
    found = {}
    for start in range(0, len(codes), CHUNK_ROWS):
        part = codes[start:start + CHUNK_ROWS]
        rows = conn.execute(sa.select(accounts).where(accounts.c.tenant_id == tenant_id, accounts.c.code.in_(part)))
        found.update({r.code: r for r in rows})
    return found


def _insert(conn, table, rows: list[dict]) -> None:
    for start in range(0, len(rows), CHUNK_ROWS):
        conn.execute(sa.insert(table), rows[start:start + CHUNK_ROWS])


def _account(tenant_id: str, code: str, template, status: str, metadata: dict, now_us: int) -> dict:
    return {"id": _new_id(), "tenant_id": tenant_id, "code": code, "name": "", "type": template.type,
            "normal_side": template.normal_side, "currency": template.currency, "status": status,
            "parent_id": None, "credit_limit": 0, "floor_policy": template.floor_policy,
            "metadata": json.dumps(metadata, sort_keys=True), "created_us": now_us, "updated_us": now_us}


def _balance(account: dict) -> dict:
    return {"account_id": account["id"], "tenant_id": account["tenant_id"], "current": 0, "locked": 0,
            "previous_day": 0, "last_date": "", "entry_count": 0, "updated_us": account["created_us"]}


def upgrade() -> None:
    conn = op.get_bind()
    _system_scope(conn)
    rename_all(conn, time.time_ns() // 1000)


def rename_all(conn, now_us: int, page_rows: int = CHUNK_ROWS) -> None:
    for page in _old_accounts(conn, page_rows):
        by_tenant: dict[str, list] = {}
        for row in page:
            by_tenant.setdefault(row.tenant_id, []).append(row)
        for tenant_id, rows in by_tenant.items():  # main accounts opened for a page are found by the next
            _upgrade_tenant(conn, tenant_id, rows, now_us)


def _upgrade_tenant(conn, tenant_id: str, rows: list, now_us: int) -> None:
    planned = {r.id: new_code(r.code, r.currency) for r in rows}
    rows = [r for r in rows if planned[r.id] is not None]
    existing = _existing(conn, tenant_id, sorted({c for r in rows for c in planned[r.id] if c}))
    mains: dict[str, dict] = {}  # main code -> {"id", "currency"}, existing or opened here
    opened: list[dict] = []
    renames, placeholders, redirects = [], [], []
    for row in rows:
        code, main_code = planned[row.id]
        if code in existing:
            continue  # taken: this account keeps its code
        parent_id = row.parent_id
        if main_code and parent_id is None:
            main = mains.get(main_code)
            if main is None:
                found = existing.get(main_code)
                if found is None:
                    main_row = _account(tenant_id, main_code, _MainTemplate(row.currency), "active", {}, now_us)
                    opened.append(main_row)
                    main = {"id": main_row["id"], "currency": row.currency, "status": "active"}
                else:
                    main = {"id": found.id, "currency": found.currency, "status": found.status}
                mains[main_code] = main
            if main["currency"] == row.currency and main["status"] != "closed":
                parent_id = main["id"]
        renames.append({"row_id": row.id, "new_code": code, "new_parent": parent_id, "now": now_us})
        placeholder = _account(tenant_id, row.code, row, "closed", {"renamed_to": code}, now_us)
        placeholders.append(placeholder)
        redirects.append({"source_id": placeholder["id"], "tenant_id": tenant_id, "target_id": row.id,
                          "voucher_id": "", "request_id": REQUEST_ID, "merged_by": MERGED_BY, "merged_us": now_us})
    _insert(conn, accounts, opened)
    _insert(conn, balances, [_balance(a) for a in opened])
    for start in range(0, len(renames), CHUNK_ROWS):  # renamed first: the old codes are free then
        conn.execute(accounts.update().where(accounts.c.id == sa.bindparam("row_id")).values(
            code=sa.bindparam("new_code"), parent_id=sa.bindparam("new_parent"), updated_us=sa.bindparam("now")),
            renames[start:start + CHUNK_ROWS])
    _insert(conn, accounts, placeholders)
    _insert(conn, balances, [_balance(a) for a in placeholders])
    _insert(conn, merges, redirects)


class _MainTemplate:
    """A merchant's main account, as the default template `merchant:{merchant}:{currency}` opens it."""

    type, normal_side, floor_policy = "deposit", "credit", "non_negative"

    def __init__(self, currency: str) -> None:
        self.currency = currency


def downgrade() -> None:
    conn = op.get_bind()
    _system_scope(conn)
    rows = conn.execute(sa.select(merges.c.source_id, merges.c.target_id, accounts.c.code).join(
        accounts, accounts.c.id == merges.c.source_id).where(merges.c.request_id == REQUEST_ID)).all()
    for start in range(0, len(rows), CHUNK_ROWS):
        part = rows[start:start + CHUNK_ROWS]
        ids = [r.source_id for r in part]
        conn.execute(merges.delete().where(merges.c.source_id.in_(ids)))
        conn.execute(balances.delete().where(balances.c.account_id.in_(ids)))
        conn.execute(accounts.delete().where(accounts.c.id.in_(ids)))
    for start in range(0, len(rows), CHUNK_ROWS):
        conn.execute(accounts.update().where(accounts.c.id == sa.bindparam("target")).values(
            code=sa.bindparam("old_code")),
            [{"target": r.target_id, "old_code": r.code} for r in rows[start:start + CHUNK_ROWS]])
