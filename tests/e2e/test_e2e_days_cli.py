"""`tally days close|show|list|balances` and the demo's closing day, as real processes against a real
`tally serve` (the served fixture of test_e2e_cli: SQLite in a temp file)."""

from __future__ import annotations

import csv
import json

from tests.e2e.test_e2e_cli import client, ok, provision, served  # noqa: F401 - served is a fixture
from tests.e2e.test_e2e_days import next_day, statement_day_ending


def test_days_verbs_close_show_list_and_balances(served) -> None:  # noqa: F811
    key = provision(served, "cli-days", "operator")
    ok(client(served, key, "accounts", "create", "cash", "--type", "internal", "--currency", "USD",
              "--normal-side", "debit", "--floor", "unbounded"))
    ok(client(served, key, "accounts", "create", "carol", "--type", "deposit", "--currency", "USD"))
    posted = json.loads(ok(client(served, key, "adjust", "--line", "debit:cash:4200:USD", "--line",
                                  "credit:carol:4200:USD", "--reason", "opening", "--json")))
    date = posted["vouchers"][0]["accounting_date"]

    early = client(served, key, "days", "close", date)
    assert early.returncode == 1 and "DAY_NOT_OVER" in early.stderr
    closed = ok(client(served, key, "days", "close", date, "--early", "--scale", "2"))
    assert "state            closed" in closed and "balanced" in closed and "NOT BALANCED" not in closed
    assert "42.00" in closed and "adjustment" in closed
    shown = json.loads(ok(client(served, key, "days", "show", date, "--json")))
    assert shown["day"]["state"] == "DAY_STATE_CLOSED" and shown["day"]["voucher_count"] == "1"
    assert shown["day"]["currency_totals"][0]["debit_total"] == "4200"
    assert date in ok(client(served, key, "days", "list"))
    balances = ok(client(served, key, "days", "balances", date))
    assert balances.count("4200") == 2

    bad = client(served, key, "days", "show", "2026-02-30")
    assert bad.returncode == 2 and "2026-02-30" in bad.stderr


def test_the_demo_ends_with_the_close_of_its_day(served) -> None:  # noqa: F811
    key = provision(served, "cli-days-demo", "operator")
    out = ok(client(served, key, "demo", "--run", "d1"))
    assert "== accounting day " in out and " closed" in out
    assert "trial balance of the day's postings" in out and "per flow type" in out
    report = json.loads(ok(client(served, key, "demo", "--run", "d1", "--json")))  # a rerun: the same day
    assert report["day"]["state"] == "DAY_STATE_CLOSED" and report["replayed"] == 13
    assert {f["flow_type"] for f in report["day"]["flow_totals"]} >= {"funding", "usage", "payout"}


def test_statements_verbs_and_the_balance_show_the_issued_statement(served) -> None:  # noqa: F811
    key = provision(served, "cli-statements", "operator")
    ok(client(served, key, "accounts", "create", "cash", "--type", "internal", "--currency", "USD",
              "--normal-side", "debit", "--floor", "unbounded"))
    ok(client(served, key, "accounts", "create", "probe", "--type", "deposit", "--currency", "USD"))
    probe = json.loads(ok(client(served, key, "adjust", "--line", "debit:cash:1:USD", "--line",
                                 "credit:probe:1:USD", "--reason", "probe", "--json")))
    date = probe["vouchers"][0]["accounting_date"]
    day, end = statement_day_ending(date)
    ok(client(served, key, "accounts", "create", "erin", "--type", "deposit", "--currency", "USD", "--meta",
              f"statement_day={day}"))
    ok(client(served, key, "adjust", "--line", "debit:cash:6000:USD", "--line", "credit:erin:6000:USD",
              "--reason", "opening"))
    assert "no issued statements" in ok(client(served, key, "statements", "list", "erin"))
    assert "so far" in ok(client(served, key, "statements", "show", "erin", date))
    on = date
    while on <= end:
        ok(client(served, key, "days", "close", on, "--early"))
        on = next_day(on)
    listed = ok(client(served, key, "statements", "list", "erin"))
    assert end in listed and "6000" in listed
    shown = ok(client(served, key, "statements", "show", "erin", end, "--scale", "2"))
    assert "60.00" in shown and "opening" in shown and "adjustment" in shown and shown.startswith("issued")
    balance = ok(client(served, key, "balance", "erin"))
    assert "previous_statement_date" in balance and end in balance


def test_days_summaries_detail_and_export(served, tmp_path) -> None:  # noqa: F811
    key = provision(served, "cli-days-export", "operator")
    report = json.loads(ok(client(served, key, "demo", "--run", "x1", "--json")))
    date = report["day"]["accounting_date"]
    [usage] = report["summaries"]  # the default rule set summarizes usage
    assert usage["flow_type"] == "usage" and usage["voucher_count"] == "4"
    assert "summary:" in ok(client(served, key, "days", "summaries", date))
    detail = ok(client(served, key, "days", "detail", date, "usage", "USD", "--json"))
    assert len(json.loads(detail)["vouchers"]) == 4

    out = tmp_path / "gl.csv"
    ok(client(served, key, "days", "export", date, "--output", str(out)))
    rows = list(csv.DictReader(out.open()))
    assert {r["kind"] for r in rows} == {"summary", "detail"}
    assert "usage" not in {r["flow_type"] for r in rows if r["kind"] == "detail"}
    summed = {(r["account_code"], r["side"]): int(r["amount"]) for r in rows if r["kind"] == "summary"}
    assert sum(summed.values()) == sum(int(ln["amount"]) for ln in usage["lines"])
    lines = ok(client(served, key, "days", "export", date, "--format", "jsonl")).splitlines()
    assert [json.loads(line)["amount"] for line in lines] == [int(r["amount"]) for r in rows]
    net = sum(int(r["amount"]) * (1 if r["side"] == "debit" else -1) for r in rows)
    assert net == 0
