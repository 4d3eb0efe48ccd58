"""PostgreSQL's own account of a scenario: pg_stat_statements over the measured window, per voucher.

`bench/run.py --pg-statements` loads the extension (planning tracked too) into the benchmark's PostgreSQL,
resets it before each Tally scenario on PostgreSQL and reads it after: each statement's calls, planning
and execution time, in microseconds per voucher posted in the window. The statements that functions run
(the write function's inserts and updates) are listed too, marked as nested: their time is inside their
function's, and the totals count top-level statements only. Parse and analysis, the protocol, WAL flushes
and commits are not statement time; the row's PG CPU column holds all of it.
"""

from __future__ import annotations

import psycopg

SETTINGS = {"shared_preload_libraries": "'pg_stat_statements'", "pg_stat_statements.track_planning": "on",
            "pg_stat_statements.max": "1000", "pg_stat_statements.track": "all"}
TOP_N = 20
_READ = """
SELECT calls, total_plan_time, total_exec_time, rows, regexp_replace(query, '\\s+', ' ', 'g'), toplevel
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s)
ORDER BY total_plan_time + total_exec_time DESC
"""


def install(conn: psycopg.Connection) -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def reset(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_stat_statements_reset()")


def read(conn: psycopg.Connection, dbname: str, vouchers: int) -> dict:
    """Totals and the top statements, in integer microseconds per voucher (vouchers >= 1)."""
    rows = conn.execute(_READ, (dbname,)).fetchall()
    per = max(1, vouchers)

    def us(ms: float) -> int:
        return int(round(ms * 1000 / per))

    return {
        "vouchers": vouchers,
        "plan_us_per_voucher": us(sum(r[1] for r in rows if r[5])),
        "exec_us_per_voucher": us(sum(r[2] for r in rows if r[5])),
        "top": [{"calls": r[0], "plan_us_per_voucher": us(r[1]), "exec_us_per_voucher": us(r[2]), "rows": r[3],
                 "query": r[4][:160], "nested": not r[5]} for r in rows[:TOP_N]],
    }


def summary_lines(name: str, found: dict) -> list[str]:
    lines = [f"{name}: PostgreSQL statements {found['plan_us_per_voucher']} us planning + "
             f"{found['exec_us_per_voucher']} us executing per voucher ({found['vouchers']} vouchers)"]
    lines += [f"  {t['plan_us_per_voucher']:>5} + {t['exec_us_per_voucher']:>5} us  x{t['calls']:<7} "
              f"{'  (nested) ' if t.get('nested') else ''}{t['query'][:110]}" for t in found["top"]]
    return lines
