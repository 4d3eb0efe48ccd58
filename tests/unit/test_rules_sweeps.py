"""A rule set's sweeps, in pure code: each account a template opens gets them with the other account's code
filled from its own, and the loader locates every malformed one."""

from __future__ import annotations

import pytest

from tally.domain.controls import SweepKind
from tally.rules.loader import RuleSetError, parse_rule_set
from tally.service.posting.controls import template_controls

# A rule set of its own (the default one is not the place to try sweeps): wallets, their reserves and savings.
RULES = '''
version = "sweeps.1"

[flows.funding]
parties = ["consumer", "processor"]
values = ["amount"]

[accounts."wallet:{consumer}"]
type = "deposit"
[accounts."wallet:{consumer}".controls]
top_up = { threshold = 100, target = 500, from = "reserve:{consumer}" }
excess = { ceiling = 2000, target = 1000, to = "savings:{consumer}" }

[accounts."reserve:{consumer}"]
type = "security_deposit"

[accounts."savings:{consumer}"]
type = "deposit"

[accounts."team:{team}"]
type = "deposit"
[accounts."team:{team}".controls]
team_velocity = [{ window = "day", limit = 1000 }]

[accounts."processor_clearing:{processor}"]
type = "internal"
normal_side = "debit"

[[rules]]
id = "funding.default"
flow = "funding"
[[rules.vouchers]]
name = "funding"
[[rules.vouchers.lines]]
side = "debit"
account = "processor_clearing:{processor}"
amount = "amount"
[[rules.vouchers.lines]]
side = "credit"
account = "wallet:{consumer}"
amount = "amount"
'''

WALLET = 'top_up = { threshold = 100, target = 500, from = "reserve:{consumer}" }'


def test_each_account_gets_the_sweeps_with_its_own_codes_filled() -> None:
    lookup = template_controls(parse_rule_set(RULES))
    assert lookup is not None and lookup.sweeps and lookup.teams
    top_up, excess = lookup("wallet:c7").sweeps
    assert (top_up.kind, top_up.trigger, top_up.target, top_up.counter_code) == (
        SweepKind.TOP_UP, 100, 500, "reserve:c7")
    assert (excess.kind, excess.counter_code, excess.counter_account_id) == (SweepKind.EXCESS, "savings:c7", "")
    assert lookup("reserve:c7") is None
    shared = template_controls(parse_rule_set(RULES.replace('"reserve:{consumer}"', '"treasury"')))
    assert shared("wallet:c7").sweeps[0].counter_code == "treasury"  # one account for every wallet


@pytest.mark.parametrize(("sweep", "where", "why"), [
    ('top_up = { threshold = 100, target = 500 }', "controls.top_up", "exactly threshold, target, from"),
    ('top_up = { threshold = -1, target = 500, from = "r:{consumer}" }', "controls.top_up.threshold", "amount"),
    ('top_up = { threshold = 100, target = 500, from = "r:{owner}" }', "controls.top_up.from", "placeholder {owner}"),
    ('top_up = { threshold = 100, target = 500, from = "wallet:{consumer}" }', "controls.top_up.from",
     "another account"),
    ('top_up = { threshold = 100, target = 500, from = "r {consumer}" }', "controls.top_up.from", "cannot be part"),
    ('top_up = { threshold = 100, target = 500, from = 7 }', "controls.top_up.from", "code pattern"),
    ('top_up = { threshold = 600, target = 500, from = "r:{consumer}" }', "controls", "at or above its threshold"),
])
def test_a_bad_sweep_is_located(sweep: str, where: str, why: str) -> None:
    assert RULES.count(WALLET) == 1
    with pytest.raises(RuleSetError) as caught:
        parse_rule_set(RULES.replace(WALLET, sweep))
    text = str(caught.value)
    assert f'accounts."wallet:{{consumer}}".{where}' in text and why in text, text
