"""Spending controls from the rule set, on SQLite and PostgreSQL: an account template's `controls` bind every
account it opens (opened in the same batch or before), a problem in them is located by the loader, and
controls set through the API replace the template's for that account."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from tally.domain.controls import Controls
from tally.domain.errors import LedgerError
from tally.domain.facts import Facts
from tally.domain.flows import RuleFlow
from tally.rules import load_default_rule_set
from tally.rules.loader import RuleSetError, parse_rule_set
from tally.service.commands import PostFlow
from tally.service.posting.controls import template_controls
from tests.integration.conftest import TENANT, outcome, ref

DEFAULT = resources.files("tally.rules").joinpath("default.toml").read_text()
CONSUMER = '[accounts."consumer:{consumer}:{currency}"]\ntype = "deposit"\n'
CONTROLLED = CONSUMER + '''[accounts."consumer:{consumer}:{currency}".controls]
per_voucher_max = 1000
flows = ["usage"]
velocity = [{ window = "day", limit = 1500 }, { window = "hour", limit = 1500, sliding = true }]
'''


def rules_with(text: str) -> str:
    assert DEFAULT.count(CONSUMER) == 1
    return DEFAULT.replace(CONSUMER, text)


def test_template_controls_are_loaded_and_their_problems_located() -> None:
    rules = parse_rule_set(rules_with(CONTROLLED))
    lookup = template_controls(rules)
    assert lookup is not None and lookup("consumer:c1:USD").per_voucher_max == 1000
    assert lookup("merchant:m1:USD/settled") is None
    assert template_controls(load_default_rule_set()) is None  # the default rules carry none: no cost
    bad = (CONSUMER + '[accounts."consumer:{consumer}:{currency}".controls]\n'
           'velocity = [{ window = "week", limit = 5 }]\n')
    with pytest.raises(RuleSetError) as caught:
        parse_rule_set(rules_with(bad))
    assert 'accounts."consumer:{consumer}:{currency}".controls.velocity[0]' in str(caught.value)
    with pytest.raises(RuleSetError, match="unknown key"):
        parse_rule_set(rules_with(CONSUMER + '[accounts."consumer:{consumer}:{currency}".controls]\nsweeps = []\n'))


async def test_template_controls_bind_the_accounts_it_opens(database_url, make_ledger, tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(rules_with(CONTROLLED))
    ledger = make_ledger(database_url, rules_file=str(path))

    async def flow(name: str, amount: int, consumer: str = "c1") -> object:
        parties = {"consumer": consumer, "processor": "card"} if name == "funding" else {"consumer": consumer,
                                                                                         "merchant": "m1"}
        facts = Facts(name, "USD", {"amount": amount}, parties)
        return await outcome(ledger.posting.post(PostFlow(TENANT, ledger.request_id(name), RuleFlow(facts))))

    assert not isinstance(await flow("funding", 10_000), LedgerError)  # money in: no spend, account opened
    refused = await flow("usage", 1_001)
    assert isinstance(refused, LedgerError) and refused.reason == "SPEND_LIMIT_EXCEEDED"
    posted = await flow("usage", 1_000)
    assert posted.vouchers[0].metadata["controls_checked"] == (
        "consumer:c1:USD:flows,consumer:c1:USD:per_voucher_max,consumer:c1:USD:calendar_day,consumer:c1:USD:sliding_hour")
    refused = await flow("usage", 501)
    assert isinstance(refused, LedgerError) and refused.reason == "VELOCITY_LIMIT_EXCEEDED"
    # Controls set through the API replace the template's for that account only.
    ledger.pipeline.controls.set_controls(TENANT, ref("consumer:c1:USD"), Controls(per_voucher_max=5_000), [],
                                          ledger.request_id("ctl"))
    assert not isinstance(await flow("usage", 2_000), LedgerError)
    assert not isinstance(await flow("funding", 10_000, "c2"), LedgerError)
    refused = await flow("usage", 1_001, "c2")
    assert isinstance(refused, LedgerError) and refused.reason == "SPEND_LIMIT_EXCEEDED"


MERCHANT = ('[accounts."merchant:{merchant}:{currency}"]\ntype = "deposit"\n'
            'description = "a merchant\'s main account in one currency: its sub-accounts below"\n')


async def test_a_main_accounts_team_budget_binds_sub_accounts_opened_with_it(database_url, make_ledger,
                                                                             tmp_path: Path) -> None:
    """The batch that opens a merchant's main account and its /pending (the acquisition's fee spends from the
    /pending it credits) holds that spend to the main account's team budget already."""
    assert DEFAULT.count(MERCHANT) == 1
    path = tmp_path / "rules.toml"
    path.write_text(DEFAULT.replace(MERCHANT, MERCHANT + '[accounts."merchant:{merchant}:{currency}".controls]\n'
                                              'team_velocity = [{ window = "month", limit = 5000 }]\n'))
    ledger = make_ledger(database_url, rules_file=str(path))

    async def acquisition(merchant: str, amount: int) -> object:
        facts = Facts("acquisition", "USD", {"amount": amount, "coupon_amount": 0, "coupon_merchant_share_bps": 0},
                      {"merchant": merchant, "channel": "visa"})
        return await outcome(ledger.posting.post(PostFlow(TENANT, ledger.request_id(merchant), RuleFlow(facts))))

    refused = await acquisition("m1", 1_000_000)  # a fee of 6,000 (60 bps) from merchant:m1:USD/pending
    assert isinstance(refused, LedgerError) and refused.reason == "TEAM_BUDGET_EXCEEDED"
    posted = await acquisition("m2", 500_000)  # 3,000
    assert not isinstance(posted, LedgerError)
    # The evidence names the spending account and the budget above it that it passed.
    assert posted.vouchers[1].metadata["controls_checked"] == "team:merchant:m2:USD/pending:team_calendar_month"
