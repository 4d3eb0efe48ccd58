"""The rule engine: turns a business flow's Facts into balanced VoucherDrafts, as a TOML rule set says.

Pure Python: the standard library and tally.domain only. FORMAT.md next to this file is the full
reference; in short, a rule-set file has

    version = "2026.12.1"           # recorded on every voucher as rule_set_version
    [params]                        # named integers (rates in basis points), overridable per rule
    platform_fee_bps = 250
    [flows.usage]                   # the names a flow type carries; anything else is a load error
    parties = ["consumer", "merchant", "affiliate"]
    values = ["amount"]
    tags = []
    [accounts."consumer:{consumer}:{currency}"]  # templates: accounts opened on first use
    type = "deposit"                   # deposit | credit | security_deposit | internal
    [accounts."platform_fee_income:{currency}"]
    type = "internal"
    normal_side = "credit"             # internal only, required
    floor = "unbounded"                # internal only: unbounded (default) | non_negative

    [[rules]]                       # the first rule (file order) whose `when` matches the flow's tags wins
    id = "usage.default"
    flow = "usage"
    when = { }                      # tag = "value" equalities; an absent tag is ""
    mode = "vouchers"               # or "proportional_reversal" (refunds; no vouchers, see refunds.py)
    [rules.params]                  # overrides of [params] for this rule
    [rules.let]                     # named expressions, usable by later lets, guards and amounts
    fee = "bps(amount, platform_fee_bps)"
    [[rules.requires]]              # guards checked before vouchers are built
    check = "meta('merchant:{merchant}:{currency}/settled', 'kyc_status') == 'verified'"
    reason = "KYC_NOT_VERIFIED"     # the error's reason; kind failed_precondition (default) | invalid_argument
    [[rules.vouchers]]
    name = "consumption"
    memo = "usage by {consumer}"    # placeholders: parties, tags, values, currency; absent ones render empty
    [[rules.vouchers.lines]]
    side = "debit"                  # debit | credit
    account = "consumer:{consumer}:{currency}"  # a pattern with a template; {party} names each share on a split line
    amount = "amount"               # integer expression, or "remainder": what balances the voucher
    when = "affiliate"              # optional: kept only if that party/tag is non-empty or value non-zero
    split = "shares"                # optional: spread the amount over the share table (largest remainder)
    split_default = "merchant"      # with no share table, that party takes it all

Expressions are integers only: `+ - *`, unary minus, parentheses, names (facts values, params, lets,
`bank_unit`) and the functions bps, bps_up, bps_round, min, max, round_down, balance, meta and meta_int.
Guards add `== != < <= > >=`, `and`, `or`, `not` and 'single-quoted' strings. Parsed at load time by a
hand-written parser; nothing is ever handed to Python's eval.

Building: lines whose amount is 0 are dropped, a voucher left with none is skipped, a negative amount is
INVALID_ARGUMENT RULE_AMOUNT_NEGATIVE, and a flow that posts nothing is FLOW_POSTS_NOTHING.
"""

from tally.rules.engine import VOUCHER_METADATA_KEY, RuleSet
from tally.rules.loader import (
    DEFAULT_RULE_SET,
    Problem,
    RuleSetError,
    check_file,
    load_default_rule_set,
    load_rule_set,
    parse_rule_set,
)
from tally.rules.model import AccountTemplate, FlowSpec, Guard, LineRule, Mode, Rule, VoucherRule
from tally.rules.refunds import scale_reversal
from tally.rules.splits import allocate

__all__ = [
    "DEFAULT_RULE_SET", "VOUCHER_METADATA_KEY", "AccountTemplate", "FlowSpec", "Guard", "LineRule", "Mode",
    "Problem", "Rule", "RuleSet", "RuleSetError", "VoucherRule", "allocate", "check_file", "load_default_rule_set",
    "load_rule_set", "parse_rule_set", "scale_reversal",
]
