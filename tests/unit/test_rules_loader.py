"""Loading rule sets: each kind of bad file gives its problem with the location; check_file and limits."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.rules import RuleSetError, check_file, limits, load_rule_set, parse_rule_set
from tally.rules.loader import _Loader
from tally.rules.model import Mode

BASE = """
version = "t1"
[params]
fee_bps = 100
[flows.pay]
parties = ["payer", "payee"]
values = ["amount"]
tags = ["kind"]
[accounts."wallet:{owner}"]
type = "deposit"
[accounts."fees:{currency}"]
type = "internal"
normal_side = "credit"
[[rules]]
id = "pay.default"
flow = "pay"
[[rules.vouchers]]
name = "main"
[[rules.vouchers.lines]]
side = "debit"
account = "wallet:{payer}"
amount = "amount"
[[rules.vouchers.lines]]
side = "credit"
account = "fees:{currency}"
amount = "bps(amount, fee_bps)"
[[rules.vouchers.lines]]
side = "credit"
account = "wallet:{payee}"
amount = "remainder"
"""
R = "rules[0] (id=pay.default)"
LINE = f"{R}.vouchers[0].lines"

EXTRA_RULE = """
[[rules]]
id = "pay.second"
flow = "pay"
when = { kind = "x" }
[[rules.vouchers]]
name = "main"
[[rules.vouchers.lines]]
side = "debit"
account = "wallet:{payer}"
amount = "amount"
[[rules.vouchers.lines]]
side = "credit"
account = "wallet:{payee}"
amount = "remainder"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        parse_rule_set(text)
    return [str(problem) for problem in caught.value.problems]


def changed(old: str, new: str, base: str = BASE) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


def line_table(side: str, account: str, amount: str, extra: str = "") -> str:
    return f'[[rules.vouchers.lines]]\nside = "{side}"\naccount = "{account}"\namount = "{amount}"\n{extra}\n'


def test_the_base_file_loads():
    rules = parse_rule_set(BASE)
    assert rules.version == "t1" and rules.flow_types == {"pay"}
    (rule,) = rules.rules
    assert (rule.id, rule.flow.name, rule.mode, rule.params) == ("pay.default", "pay", Mode.VOUCHERS, {"fee_bps": 100})
    assert [line.account.text for line in rule.vouchers[0].lines] == ["wallet:{payer}", "fees:{currency}",
                                                                       "wallet:{payee}"]
    assert [line.amount_text for line in rule.vouchers[0].lines] == ["amount", "bps(amount, fee_bps)", "remainder"]


def test_the_example_problem_reads_exactly():
    assert problems(changed('"bps(amount, fee_bps)"', '"bps(amount, fee)"')) == [
        f"{LINE}[1].amount: unknown name 'fee' at column 13 of \"bps(amount, fee)\""]


CASES = [
    # top level
    (changed('version = "t1"', 'version = "t1"\ncolour = "red"'),
     "colour: unknown key (expected one of: version, description, params, flows, accounts, rules, interest, "
     "summaries, statements)"),
    (changed('version = "t1"', ""), "version: is required"),
    (changed('version = "t1"', 'version = "has space"'), "version: 'has space' must be letters, digits and _.+-"),
    (changed('version = "t1"', "version = 1"), "version: must be a string"),
    ("version = ", "not valid TOML: "),
    # params
    (changed("fee_bps = 100", "fee_bps = 1.5"), "params.fee_bps: must be an integer (no fractions: rates are "
                                                "basis points)"),
    (changed("fee_bps = 100", "fee_bps = 100\nflag = true"), "params.flag: must be an integer"),
    (changed("fee_bps = 100", "fee_bps = 100\nmin = 1"), "params.min: 'min' is reserved"),
    (changed("fee_bps = 100", "fee_bps = 100\nbank_unit = 1"), "params.bank_unit: 'bank_unit' is reserved"),
    (changed("fee_bps = 100", "fee_bps = 100\namount = 1"),
     f"{R}: param 'amount' has the name of a value of flow 'pay'"),
    (changed("fee_bps = 100", "fee_bps = 99999999999999999999"), "params.fee_bps: is beyond 64-bit integers"),
    # flows
    (changed('parties = ["payer", "payee"]', 'parties = ["payer", "payee", "currency"]'),
     "flows.pay.parties[2]: 'currency' is reserved"),
    (changed('parties = ["payer", "payee"]', 'parties = ["payer", "payee", "amount"]'),
     "flows.pay.parties: 'amount' is declared twice"),
    (changed('parties = ["payer", "payee"]', 'parties = ["payer", "payer"]'), "flows.pay.parties: lists a name twice"),
    (changed('tags = ["kind"]', 'tags = ["kind"]\nextra = 1'), "flows.pay.extra: unknown key"),
    (changed("[flows.pay]", "[flows.other]\nvalues = []\n[flows.pay]"), "flows.other: no rule handles this flow"),
    (changed("[flows.pay]", "[flows.Bad]\n[flows.pay]"), "flows.Bad: a flow type is lower-case letters"),
    # account templates
    (changed('normal_side = "credit"', 'normal_side = "left"'),
     'accounts."fees:{currency}".normal_side: must be one of: debit, credit'),
    (changed('normal_side = "credit"', ""), 'accounts."fees:{currency}".normal_side: must be one of: debit, credit'),
    (changed('type = "internal"', 'type = "asset"'),
     'accounts."fees:{currency}".type: must be one of: deposit, credit, security_deposit, internal'),
    (changed('type = "deposit"', 'type = "deposit"\nfloor = "unbounded"'),
     'accounts."wallet:{owner}".floor: only internal accounts choose a floor'),
    (changed('type = "deposit"', 'type = "deposit"\nnormal_side = "debit"'),
     'accounts."wallet:{owner}".normal_side: deposit accounts are credit-normal'),
    (changed('normal_side = "credit"', 'normal_side = "credit"\nfloor = "sometimes"'),
     'accounts."fees:{currency}".floor: must be one of: non_negative, unbounded'),
    (changed('[accounts."fees:{currency}"]', '[accounts."wallet:{x}"]\ntype = "deposit"\n[accounts."fees:{currency}"]'),
     'accounts."wallet:{x}": can match the same account codes as accounts."wallet:{owner}"'),
    (changed('[accounts."fees:{currency}"]',
             '[accounts."wal let:{x}"]\ntype = "deposit"\n[accounts."fees:{currency}"]'),
     """accounts."wal let:{x}": character ' ' cannot be part of an account code at column 4 of 'wal let:{x}'"""),
    (changed('type = "deposit"', 'kind = "deposit"'), 'accounts."wallet:{owner}".type: is required'),
    # rules
    (changed('flow = "pay"', 'flow = "payx"'), f"{R}.flow: flow 'payx' is not declared in [flows]"),
    (changed('id = "pay.default"', 'id = "pay default"'),
     "rules[0] (id=pay default).id: 'pay default' must be letters, digits and _.-"),
    (changed('flow = "pay"', 'flow = "pay"\ncolour = 1'), f"{R}.colour: unknown key"),
    (changed('flow = "pay"', 'flow = "pay"\nmode = "magic"'), f"{R}.mode: must be one of: vouchers, "
                                                              "proportional_reversal"),
    (changed('flow = "pay"', 'flow = "pay"\nmode = "proportional_reversal"'),
     f"{R}.vouchers: a proportional_reversal rule has none"),
    (changed('flow = "pay"', 'flow = "pay"\nwhen = { colour = "x" }'), f"{R}.when.colour: not a tag of flow 'pay'"),
    (changed('flow = "pay"', 'flow = "pay"\nwhen = { kind = 1 }'), f"{R}.when.kind: must be a string"),
    (BASE + EXTRA_RULE.replace("pay.second", "pay.default").replace('when = { kind = "x" }', ""),
     "rules[1] (id=pay.default).id: 'pay.default' is used by an earlier rule"),
    (BASE + EXTRA_RULE, "rules[1] (id=pay.second): is never used: rules[0] (id=pay.default) comes first and "
                        "matches all its flows"),
    (changed("[[rules.vouchers]]", ""), f"{R}.vouchers: must be a non-empty array of [[rules.vouchers]] tables"),
    ("version = \"t\"\nflows = {}\naccounts = {}\nrules = []", "rules: must be a non-empty array of [[rules]] tables"),
    # params and lets of a rule
    (changed('flow = "pay"', 'flow = "pay"\n[rules.params]\nfee_bps = "x"'), f"{R}.params.fee_bps: must be an integer"),
    (changed('flow = "pay"', 'flow = "pay"\n[rules.let]\nb = "a + 1"\na = "1"'),
     f"{R}.let.b: unknown name 'a' at column 1 of \"a + 1\""),
    (changed('flow = "pay"', 'flow = "pay"\n[rules.let]\namount = "1"'),
     f"{R}.let.amount: 'amount' is already a param or a name of flow 'pay'"),
    (changed('flow = "pay"', 'flow = "pay"\n[rules.let]\nx = "1 +"'),
     f"{R}.let.x: expected a number, a name or '(', got end of expression at column 4"),
    # requires
    (changed('flow = "pay"', 'flow = "pay"\n[[rules.requires]]\ncheck = "amount"\nreason = "R"'),
     f"{R}.requires[0].check: expected a true/false check, got an integer at column 1"),
    (changed('flow = "pay"', 'flow = "pay"\n[[rules.requires]]\ncheck = "amount > 1"\nreason = "too small"'),
     f"{R}.requires[0].reason: 'too small' must be UPPER_SNAKE_CASE"),
    (changed('flow = "pay"', 'flow = "pay"\n[[rules.requires]]\ncheck = "amount > 1"\nreason = "R"\nkind = "x"'),
     f"{R}.requires[0].kind: must be one of: failed_precondition, invalid_argument"),
    (changed('flow = "pay"', 'flow = "pay"\n[[rules.requires]]\nreason = "R"'), f"{R}.requires[0].check: is required"),
    (changed('flow = "pay"', 'flow = "pay"\n[[rules.requires]]\ncheck = "balance(\'nope:{payer}\') > 0"\nreason = "R"'),
     f"{R}.requires[0].check: no [accounts] template for 'nope:{{payer}}' at column 9"),
    (changed('flow = "pay"', 'flow = "pay"\n[[rules.requires]]\ncheck = "meta(\'wallet:{who}\', \'k\') == \'\'"\n'
                             'reason = "R"'),
     f"{R}.requires[0].check: placeholder {{who}} of 'wallet:{{who}}' at column 6: not a party or tag of flow 'pay'"),
    # vouchers and lines
    (changed('name = "main"', 'name = "main"\nmemo = "by {nobody}"'),
     f"{R}.vouchers[0].memo: placeholder {{nobody}} is not a value, party or tag of flow 'pay'"),
    (changed('name = "main"', 'name = "main"\nmemo = "by {payer"'),
     f"{R}.vouchers[0].memo: '{{' is never closed at column 4 of 'by {{payer'"),
    (changed('name = "main"', 'name = "main main"'), f"{R}.vouchers[0].name: 'main main' must be letters"),
    (changed('account = "wallet:{payer}"', 'account = "purse:{payer}"'),
     f"{LINE}[0].account: no [accounts] template for 'purse:{{payer}}'"),
    (changed('account = "wallet:{payer}"', 'account = "wallet:{payr}"'),
     f"{LINE}[0].account: placeholder {{payr}} of 'wallet:{{payr}}': not a party or tag of flow 'pay'"),
    (changed('account = "wallet:{payer}"', 'account = "wallet:{party}"'),
     f"{LINE}[0].account: placeholder {{party}} of 'wallet:{{party}}': {{party}} is only for split lines"),
    (changed('account = "wallet:{payee}"', 'account = "wallet:{payee}"\nsplit = "shares"'),
     f"{LINE}[2].account: a split line names each share's account with {{party}}"),
    (changed('account = "wallet:{payee}"', 'account = "wallet:{party}"\nsplit = "evenly"'),
     f'{LINE}[2].split: the only split is "shares"'),
    (changed('account = "wallet:{payee}"', 'account = "wallet:{payee}"\nsplit_default = "payee"'),
     f'{LINE}[2].split_default: only a line with split = "shares" has a default'),
    (changed('account = "wallet:{payee}"', 'account = "wallet:{party}"\nsplit = "shares"\nsplit_default = "x"'),
     f"{LINE}[2].split_default: 'x' is not a party of flow 'pay'"),
    (changed('side = "debit"', 'side = "left"'), f"{LINE}[0].side: must be one of: debit, credit"),
    (changed('side = "debit"', 'side = "credit"'), f"{R}.vouchers[0]: needs at least one debit and one credit line"),
    (changed('amount = "amount"', 'amount = "remainder"'),
     f"{R}.vouchers[0]: at most one line of a voucher can be 'remainder'"),
    (changed('amount = "amount"', "amount = 5"), f"{LINE}[0].amount: must be a string"),
    (changed('amount = "amount"', 'amount = "amount"\nwhen = "nobody"'),
     f"{LINE}[0].when: must be a value, party or tag of flow 'pay', optionally after 'not'"),
    (changed('amount = "amount"', 'amount = "amount"\nwhen = "payer or payee"'), f"{LINE}[0].when: must be a value"),
    (changed('amount = "amount"', 'amount = "amount"\ncolour = "red"'), f"{LINE}[0].colour: unknown key"),
    (changed('account = "fees:{currency}"', 'account = "wallet:{payer}"'),
     f"{R}.vouchers[0]: 'wallet:{{payer}}' is on both sides"),
    (changed('amount = "amount"', f'amount = "{"1+" * 300}1"'), f"{LINE}[0].amount: longer than 512 characters"),
    (changed('amount = "amount"', 'amount = "amount * (1 == 1)"'),
     f"{LINE}[0].amount: '*' needs an integer, got a true/false check at column 11"),
    (changed('amount = "amount"', 'amount = "__import__(\'os\').system(\'true\')"'),
     f"{LINE}[0].amount: names start with a letter at column 1"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_bad_file_names_its_problem_and_location(text, expected):
    found = problems(text)
    assert any(expected in problem for problem in found), found


def test_all_problems_are_reported_at_once():
    text = changed('amount = "amount"', 'amount = "amont"')
    text = changed('side = "debit"', 'side = "dbit"', text)
    text = changed("fee_bps = 100", "fee_bps = 1.0", text)
    found = problems(text)
    assert len(found) >= 3
    assert any(p.startswith("params.fee_bps") for p in found)
    assert any(p.startswith(f"{LINE}[0].side") for p in found)
    assert any(p.startswith(f"{LINE}[0].amount") for p in found)


def test_limits_are_checked_at_load_time():
    many_lines = "".join(line_table("credit", "wallet:{payee}", "1") for _ in range(limits.LINES_PER_VOUCHER_MAX))
    assert any(f"may have {limits.LINES_PER_VOUCHER_MAX + 3} lines" in p for p in problems(BASE + many_lines))
    # A split line counts as SHARES_MAX lines, so a built voucher can never pass the domain bound.
    split = line_table("credit", "wallet:{party}", "1", 'split = "shares"\nsplit_default = "payee"')
    some = "".join(line_table("credit", "fees:{currency}", "1") for _ in range(limits.LINES_PER_VOUCHER_MAX
                                                                               - limits.SHARES_MAX - 3))
    parse_rule_set(BASE + some + split)  # exactly at the bound
    assert any("a voucher has at most 64" in p for p in problems(BASE + some + split + line_table(
        "credit", "fees:{currency}", "1")))
    voucher = '[[rules.vouchers]]\nname = "v{i}"\n' + line_table("debit", "wallet:{payer}", "1") + line_table(
        "credit", "wallet:{payee}", "1")
    vouchers = "".join(voucher.replace("{i}", str(i)) for i in range(limits.VOUCHERS_PER_RULE_MAX))
    assert problems(BASE + vouchers) == [f"{R}.vouchers: more than {limits.VOUCHERS_PER_RULE_MAX} vouchers"]
    rules = "".join(EXTRA_RULE.replace("pay.second", f"pay.r{i}").replace('"x"', f'"x{i}"')
                    for i in range(limits.RULES_MAX))
    assert f"rules: more than {limits.RULES_MAX} rules" in problems(BASE + rules)


def test_file_size_is_bounded():
    assert problems(BASE + "#" * limits.FILE_SIZE_BYTES_MAX) == [f"larger than {limits.FILE_SIZE_BYTES_MAX} bytes"]


def test_check_file_and_load_rule_set(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(BASE)
    assert check_file(good) == []
    assert load_rule_set(good).source == str(good)
    bad = tmp_path / "bad.toml"
    bad.write_text(changed('"bps(amount, fee_bps)"', '"bps(amount, fee)"'))
    assert check_file(bad) == [f"{bad}: {LINE}[1].amount: unknown name 'fee' at column 13 of \"bps(amount, fee)\""]
    with pytest.raises(RuleSetError) as caught:
        load_rule_set(bad)
    assert str(bad) in str(caught.value) and "unknown name 'fee'" in str(caught.value)
    missing = tmp_path / "missing.toml"
    (line,) = check_file(missing)
    assert line.startswith(f"{missing}: cannot be read")


def test_lets_params_and_guards_are_kept():
    text = changed('flow = "pay"', 'flow = "pay"\n[rules.params]\nfee_bps = 7\nlocal = 3\n[rules.let]\n'
                                   'fee = "bps(amount, fee_bps)"\nkyc = "meta(\'wallet:{payer}\', \'kyc\')"\n'
                                   '[[rules.requires]]\ncheck = "kyc == \'ok\'"\nreason = "KYC"\n'
                                   'kind = "invalid_argument"\nmessage = "no kyc"')
    (rule,) = parse_rule_set(text).rules
    assert rule.params == {"fee_bps": 7, "local": 3}
    assert [name for name, _ in rule.lets] == ["fee", "kyc"]
    assert rule.let_texts == {"fee": "bps(amount, fee_bps)", "kyc": "meta('wallet:{payer}', 'kyc')"}
    (guard,) = rule.requires
    assert (guard.text, guard.reason, guard.kind.value, guard.message) == ("kyc == 'ok'", "KYC", "invalid_argument",
                                                                           "no kyc")


# ------------------------------------------------------------------------------------ robustness

JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12),
              st.sampled_from(["amount", "remainder", "wallet:{payer}", "shares", "debit", "internal", "payee"])),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=8,
)


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*path, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, (*path, i))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_damage_to_a_valid_document_is_a_rule_set_error_never_a_crash(data):
    document = tomllib.loads(BASE)
    path = data.draw(st.sampled_from(list(_paths(document))[1:]), label="path")
    target = document
    for key in path[:-1]:
        target = target[key]
    if data.draw(st.booleans(), label="delete"):
        del target[path[-1]]
    else:
        target[path[-1]] = data.draw(JUNK, label="junk")
    loader = _Loader()
    rules = loader.load(document, "<fuzz>")
    assert all(isinstance(p.location, str) and p.message for p in loader.problems)
    if not loader.problems:
        assert rules.rules


INTEREST_BAD = [
    ('[[interest]]\naccount_type = "deposit"\nrate_bp = -1\n', "interest[0].rate_bp"),
    ('[[interest]]\naccount_type = "savings"\nrate_bp = 100\n', "interest[0].account_type: must be one of"),
    ('[[interest]]\naccount = "x"\naccount_type = "deposit"\nrate_bp = 100\n', "interest[0]: names either"),
    ('[[interest]]\naccount = "x"\nrate_bp = 100\nday_count = "30/360"\n', "interest[0].day_count"),
    ('[[interest]]\naccount = "x"\nrate_bp = 100\ncapitalize = "daily"\n', "interest[0].capitalize"),
    ('[[interest]]\naccount = "x"\nrate_bp = 100\nrate = 3\n', "interest[0].rate: unknown key"),
    ('[interest]\nrate_bp = 5\n', "interest: must be an array"),
]


@pytest.mark.parametrize(("extra", "expected"), INTEREST_BAD)
def test_interest_policies_are_checked_with_their_location(extra, expected):
    from tally.rules.loader import RuleSetError, parse_rule_set

    base = resources.files("tally.rules").joinpath("default.toml").read_text()
    with pytest.raises(RuleSetError) as refused:
        parse_rule_set(base + "\n" + extra)
    assert any(expected in str(p) for p in refused.value.problems), refused.value.problems


def test_interest_policies_load_and_a_code_wins_over_a_type():
    from tally.domain.interest import DayCount
    from tally.rules.interest import policy_for
    from tally.rules.loader import parse_rule_set

    base = resources.files("tally.rules").joinpath("default.toml").read_text()
    rules = parse_rule_set(base + '\n[[interest]]\naccount_type = "deposit"\nrate_bp = 150\n\n[[interest]]\n'
                           'account = "vip"\nrate_bp = 300\nday_count = "act/360"\ncapitalize = "never"\n').interest
    assert policy_for(rules, "alice", "deposit").rate_bp == 150
    vip = policy_for(rules, "vip", "deposit")
    assert (vip.rate_bp, vip.day_count, vip.capitalize_monthly) == (300, DayCount.ACT_360, False)
    assert policy_for(rules, "bank", "internal") is None


def test_summaries_name_flows_and_optionally_account_prefixes():
    base = resources.files("tally.rules").joinpath("default.toml").read_text()
    rules = parse_rule_set(base + '\n[[summaries]]\nflow = "transfer"\naccounts = ["merchant:", "fee_"]\n')
    assert rules.summaries == {"usage": (), "transfer": ("fee_", "merchant:")}
    for extra, expected in (('[[summaries]]\nflow = "usage"\n', "summaries[1].flow: 'usage' is summarized twice"),
                            ('[[summaries]]\nflow = "Transfer"\n', "summaries[1].flow: must be a flow type"),
                            ('[[summaries]]\nflow = "x"\naccounts = "a"\n', "summaries[1].accounts: must be a list"),
                            ('[[summaries]]\nflow = "x"\naccounts = ["a,b"]\n', "summaries[1].accounts: must be"),
                            ('[[summaries]]\nflow = "x"\nevery = 1\n', "summaries[1].every: unknown key")):
        with pytest.raises(RuleSetError) as refused:
            parse_rule_set(base + "\n" + extra)
        assert any(expected in str(p) for p in refused.value.problems), refused.value.problems
