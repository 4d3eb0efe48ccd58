"""`tally days close|show|list|balances` and the demo's closing day, as real processes against a real
`tally serve` (the served fixture of test_e2e_cli: SQLite in a temp file)."""

from __future__ import annotations

import json

from tests.e2e.test_e2e_cli import client, ok, provision, served  # noqa: F401 - served is a fixture


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
