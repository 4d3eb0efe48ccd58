"""The demo month of issue 25 as a test, through `tally demo --month` against the real server on SQLite
and PostgreSQL: the statement's one missing line, one extra line and fee difference are found exactly,
resolved into short/long-fall vouchers, the channel, bank and merchant settle, a payout batch is exported
and sent, one payout is returned; every clearing account ends at zero and the trial balance is zero. A
second run with the same label replays everything."""

from __future__ import annotations

import json

from tally import cli
from tests.e2e.conftest import Server, TenantKeys


def demo(server: Server, capsys, *extra: str) -> tuple[int, dict]:
    key = TenantKeys.for_target(server.target).key_for("month")
    capsys.readouterr()
    status = cli.main(["demo", "--month", "--json", "--run", "m1", "--target", server.target, "--api-key", key,
                       *extra])
    out = capsys.readouterr()
    assert status == 0, out.err
    return status, json.loads(out.out)


def test_the_demo_month(server: Server, capsys) -> None:
    _, report = demo(server, capsys)
    month = report["month"]
    assert month["items"] == {"matched": 2, "difference": 1, "unmatched_ours": 1, "unmatched_theirs": 1}
    before, after = month["proof_before"], month["proof_after"]
    assert before["proven"] and before["closing_balance"] == "13490000"
    assert before["open_items"] == str(10_000 + 2_000_000 - 1_500_000)
    assert after["proven"] and after["open_items"] == "0" and month["open_items_after"] == 0
    assert int(after["ledger_balance"]) + int(after["resolutions"]) == 13_490_000
    resolution = next(s for s in report["steps"] if s["title"].startswith("resolution"))
    assert sorted(v["rule_id"] for v in resolution["vouchers"]) == [
        "reconciliation.channel_clearing_longfall", "reconciliation.channel_clearing_shortfall",
        "reconciliation.channel_clearing_shortfall"]
    assert month["batch"]["pain001_control_sum"] == "12.34" and month["batch"]["total"] == "12340000"
    assert set(month["clearing_balances"].values()) == {"0"}
    assert report["balanced"] is True and report["replayed"] == 0

    _, again = demo(server, capsys)
    assert again["replayed"] == again["requests"]
    # The replay reads the report as it is now: resolved already.
    assert again["month"] == {**month, "proof_before": month["proof_after"]}
