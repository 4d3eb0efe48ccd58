"""The ledger audit at scale: a full run and routine runs on a ledger of (by default) 1,000,000 vouchers.

    .venv/bin/python bench/audit_scale.py                       # 1,000,000 vouchers, 10,000 accounts
    .venv/bin/python bench/audit_scale.py --vouchers 100000     # smaller
    .venv/bin/python bench/audit_scale.py --database-url postgresql+psycopg://...  # a server you run

Starts a throwaway PostgreSQL 15 with its default durable settings (bench/pg.py) unless --database-url names
one, migrates it, and loads one tenant's ledger straight into the tables, bypassing the service: vouchers
(each debits a funding account and credits one of the deposit accounts, over ten accounting days), their
lines with entry numbers and running balances, one event per voucher, balance rows and the ledger head. The
hash chain is computed here with the service's own voucher_hash (it is sequential); every table is filled
with COPY, one bulk statement per table. The ledger is what the writer would have left, so the audit must
find nothing.

Then it times, in this process (no gRPC; the RPC adds one message):
1. a full audit (what `tally verify --full` runs): every voucher and line, every balance;
2. a routine audit right after it (nothing new since the checkpoint);
3. a routine audit after --new more vouchers (default 1,000) were appended.
Each run must be intact; the vouchers it read are printed beside its time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pg import BenchPostgres  # noqa: E402
from tally.domain.accounts import Side  # noqa: E402
from tally.domain.vouchers import GENESIS_HASH, PostedLine, Voucher, chained  # noqa: E402
from tally.service.books.ledger_audit import LedgerAudit  # noqa: E402
from tally.service.posting.pipeline import now_us  # noqa: E402
from tally.storage.engine import make_engines  # noqa: E402
from tally.storage.migrate import migrate  # noqa: E402
from tally.storage.uow import UnitOfWork  # noqa: E402

TENANT = "bench-audit"
DAYS = 10
START = datetime.date(2026, 1, 1)
BASE_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
VOUCHER_COLUMNS = ("id", "tenant_id", "sequence", "flow_type", "request_id", "rule_id", "rule_set_version",
                   "accounting_date", "effective_us", "posted_us", "memo", "metadata", "reverses_id",
                   "previous_hash", "hash")
LINE_COLUMNS = ("voucher_id", "line_no", "tenant_id", "account_id", "entry_number", "side", "amount", "currency",
                "memo", "balance_after", "accounting_date", "posted_us")
EVENT_COLUMNS = ("tenant_id", "sequence", "type", "account_id", "voucher_id", "hold_id", "payload", "created_us")


def uuid_like(kind: int, n: int) -> str:
    return f"{kind:08x}-0000-4000-8000-{n:012x}"


class Ledger:
    """The generated ledger's running state: per account (entry count, balance, last date, previous day)."""

    def __init__(self, accounts: int, vouchers: int) -> None:
        self.funding = uuid_like(1, 0)
        self.deposits = [uuid_like(2, n) for n in range(accounts)]
        self.state = {a: [0, 0, "", 0] for a in (self.funding, *self.deposits)}
        self.per_day = max(1, vouchers // DAYS)
        self.sequence, self.hash = 0, GENESIS_HASH

    def date_of(self, sequence: int) -> str:
        return (START + datetime.timedelta(days=min(DAYS - 1, (sequence - 1) // self.per_day))).isoformat()

    def _line(self, line_no: int, account: str, side: Side, amount: int, date: str) -> PostedLine:
        state = self.state[account]
        if date > state[2]:
            state[3], state[2] = state[1], date  # previous day: the balance at the end of the day before
        state[0] += 1
        state[1] += amount  # funding is debit-normal and debited, deposits credit-normal and credited
        return PostedLine(line_no, account, "", side, amount, "USD", "", state[0], state[1])

    def next_voucher(self) -> Voucher:
        self.sequence += 1
        n, date = self.sequence, self.date_of(self.sequence)
        amount = 1_000 + n % 997
        deposit = self.deposits[n % len(self.deposits)]
        lines = (self._line(1, self.funding, Side.DEBIT, amount, date),
                 self._line(2, deposit, Side.CREDIT, amount, date))
        draft = Voucher(uuid_like(3, n), TENANT, 0, "adjustment", f"bench-{n}", date, BASE_US + n, BASE_US + n, lines)
        voucher = chained(draft, n, self.hash)
        self.hash = voucher.hash
        return voucher


def copy_vouchers(conn: psycopg.Connection, ledger: Ledger, count: int) -> None:
    """`count` more vouchers, their lines and one event each, by COPY."""
    made = [ledger.next_voucher() for _ in range(count)]
    with conn.cursor() as cur:
        with cur.copy(f"COPY vouchers ({', '.join(VOUCHER_COLUMNS)}) FROM STDIN") as copy:
            for v in made:
                copy.write_row((v.id, TENANT, v.sequence, v.flow_type, v.request_id, "", "", v.accounting_date,
                                v.effective_us, v.posted_us, "", "{}", None, bytes.fromhex(v.previous_hash),
                                bytes.fromhex(v.hash)))
        with cur.copy(f"COPY voucher_lines ({', '.join(LINE_COLUMNS)}) FROM STDIN") as copy:
            for v in made:
                for ln in v.lines:
                    copy.write_row((v.id, ln.line_no, TENANT, ln.account_id, ln.entry_number, ln.side.value,
                                    ln.amount, "USD", "", ln.balance_after, v.accounting_date, v.posted_us))
        with cur.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            for v in made:
                copy.write_row((TENANT, v.sequence, "ledger.entry.posted", None, v.id, None, "{}", v.posted_us))


def write_state(conn: psycopg.Connection, ledger: Ledger) -> None:
    """Balance rows and the ledger head as the writer would leave them (set-based: one statement each)."""
    rows = [(a, s[1], s[3], s[2], s[0]) for a, s in ledger.state.items()]
    with conn.cursor() as cur:
        cur.execute("UPDATE balances b SET current = v.current, previous_day = v.previous_day, last_date = "
                    "v.last_date, entry_count = v.entry_count FROM jsonb_to_recordset(%s::jsonb) AS v(account_id "
                    "text, current bigint, previous_day bigint, last_date text, entry_count bigint) "
                    "WHERE b.account_id = v.account_id",
                    (json.dumps([dict(zip(("account_id", "current", "previous_day", "last_date", "entry_count"), r,
                                          strict=True)) for r in rows]),))
        cur.execute("UPDATE ledger_heads SET voucher_sequence = %s, event_sequence = %s, last_hash = %s, "
                    "accounting_date = %s WHERE tenant_id = %s",
                    (ledger.sequence, ledger.sequence, ledger.hash, ledger.date_of(ledger.sequence), TENANT))


def load(conn: psycopg.Connection, ledger: Ledger, vouchers: int) -> None:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO tenants (id, name, created_us) VALUES (%s, 'audit bench', 0)", (TENANT,))
        cur.execute("INSERT INTO ledger_heads VALUES (%s, 0, 0, %s, '')", (TENANT, GENESIS_HASH))
        accounts = [(ledger.funding, "funding", "internal", "debit", "unbounded"),
                    *((a, f"acct-{n:06d}", "deposit", "credit", "non_negative") for n, a in enumerate(ledger.deposits))]
        with cur.copy("COPY accounts (id, tenant_id, code, name, type, normal_side, currency, status, parent_id, "
                      "credit_limit, floor_policy, metadata, created_us, updated_us) FROM STDIN") as copy:
            for id_, code, type_, side, floor in accounts:
                copy.write_row((id_, TENANT, code, code, type_, side, "USD", "active", None, 0, floor, "{}", 0, 0))
        with cur.copy("COPY balances (account_id, tenant_id, current, locked, previous_day, last_date, entry_count, "
                      "updated_us) FROM STDIN") as copy:
            for id_, *_ in accounts:
                copy.write_row((id_, TENANT, 0, 0, 0, "", 0, 0))
    chunk = 50_000
    for start in range(0, vouchers, chunk):
        copy_vouchers(conn, ledger, min(chunk, vouchers - start))
        print(f"  loaded {min(start + chunk, vouchers):,} vouchers", file=sys.stderr, flush=True)
    write_state(conn, ledger)
    with conn.cursor() as cur:
        cur.execute("ANALYZE")


def timed(audit: LedgerAudit, label: str, **options) -> dict:
    started = time.monotonic()
    report = audit.run(TENANT, **options)
    seconds = time.monotonic() - started
    if not report.intact:
        raise SystemExit(f"{label}: the audit found {report.finding_count} findings: {report.findings[:3]}")
    row = {"run": label, "seconds": round(seconds, 2), "vouchers_read": report.vouchers_read,
           "lines_read": report.lines_read, "events_checked": report.events_checked,
           "balances_read": report.accounts_checked, "full": report.full}
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vouchers", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--new", type=int, default=1_000, help="vouchers appended before the last routine run")
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database you run (superuser)")
    args = parser.parse_args()
    pg = None
    url = args.database_url
    if not url:
        pg = BenchPostgres().start()
        pg.create_database("audit")
        url = pg.sqlalchemy_url("audit")
    try:
        migrate(url)
        ledger = Ledger(args.accounts, args.vouchers)
        plain = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        started = time.monotonic()
        with psycopg.connect(plain, autocommit=False) as conn:
            load(conn, ledger, args.vouchers)
            conn.commit()
            with conn.cursor() as cur:
                size = cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        print(json.dumps({"loaded_vouchers": args.vouchers, "accounts": args.accounts + 1,
                          "load_seconds": round(time.monotonic() - started, 1), "database_size": size}), flush=True)
        engines = make_engines(url, pool_size=2)
        audit = LedgerAudit(UnitOfWork(engines), now_us)
        rows = [timed(audit, "full", full=True), timed(audit, "routine, nothing new")]
        with psycopg.connect(plain, autocommit=False) as conn:
            copy_vouchers(conn, ledger, args.new)
            write_state(conn, ledger)
            conn.commit()
        rows.append(timed(audit, f"routine, {args.new:,} new vouchers"))
        engines.dispose()
        print("\n| Run | Time | Vouchers read | Lines read | Balances read |\n| --- | --- | --- | --- | --- |")
        for r in rows:
            print(f"| {r['run']} | {r['seconds']} s | {r['vouchers_read']:,} | {r['lines_read']:,} | "
                  f"{r['balances_read']:,} |")
    finally:
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
