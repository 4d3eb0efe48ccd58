"""Bytes on disk per transfer voucher (PostgreSQL): every table a transfer writes, with its indexes and TOAST,
after VACUUM (ANALYZE), the growth over N vouchers posted through the real gRPC API, divided by N.

    .venv/bin/python bench/disk.py --vouchers 100000 [other bench/run.py options, e.g. --accounts 1000]

is `bench/run.py --only disk-uniform --disk-vouchers N`: the same PostgreSQL, server (as the service role) and
tenant set-up as the benchmark. `bench/run.py --disk-vouchers N` adds it, last, to a full run.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

# Every table a transfer voucher writes to (balances, accounts and ledger heads are updated in place).
TABLES = ("vouchers", "voucher_lines", "events", "idempotency", "balances", "accounts", "ledger_heads")


def table_sizes(conn: psycopg.Connection) -> dict[str, int | None]:
    """VACUUM (ANALYZE) then pg_total_relation_size (table, indexes, TOAST) of each of TABLES; None for a
    table the schema does not have. Needs the owner or a superuser, in autocommit."""
    out: dict[str, int | None] = {}
    for table in TABLES:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            out[table] = None
            continue
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        out[table] = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()[0]
    return out


def per_voucher(before: Mapping[str, int | None], after: Mapping[str, int | None], vouchers: int) -> dict[str, int]:
    """Growth per voucher in whole bytes (rounded half up) per table and as 'total'; tables missing on
    either side are left out."""
    if vouchers <= 0:
        raise ValueError("vouchers must be positive")
    grown = {t: after[t] - before[t] for t in before if before[t] is not None and after.get(t) is not None}
    out = {t: (d * 2 + vouchers) // (vouchers * 2) for t, d in grown.items()}
    out["total"] = (sum(grown.values()) * 2 + vouchers) // (vouchers * 2)
    return out


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.harness import main as run_main

    rest = list(argv)
    vouchers = "100000"
    if "--vouchers" in rest:
        i = rest.index("--vouchers")
        vouchers = rest[i + 1]
        del rest[i:i + 2]
    return run_main(["--only", "disk-uniform", "--disk-vouchers", vouchers, "--quiet-wait-s", "0", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
