"""The rule set's `[[interest]]` tables: which accounts earn interest at day close, and how.

    [[interest]]
    account_type = "deposit"      # or: account = "CODE" (one account; it wins over its type)
    rate_bp = 150                 # annual rate in basis points
    day_count = "act/365"         # or "act/360"
    capitalize = "monthly"        # or "never"

Checked with the rest of the rule set; each problem names its location (`interest[0].rate_bp`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tally.domain.accounts import AccountType
from tally.domain.errors import LedgerError
from tally.domain.interest import DayCount, InterestPolicy

INTEREST_KEYS = ("account_type", "account", "rate_bp", "day_count", "capitalize", "description")
INTEREST_RULES_MAX = 100
_CAPITALIZE = {"monthly": True, "never": False}


@dataclass(frozen=True)
class InterestRule:
    policy: InterestPolicy
    account_type: AccountType | None = None
    code: str = ""


def policy_for(rules: tuple[InterestRule, ...], code: str, account_type: str) -> InterestPolicy | None:
    """The policy of an account: the rule naming its code, else the first naming its type."""
    by_code = next((r for r in rules if r.code == code), None)
    by_type = next((r for r in rules if r.account_type is not None and r.account_type.value == account_type), None)
    chosen = by_code or by_type
    return chosen.policy if chosen else None


def parse_interest(raw: object, add: Callable[[str, str], None]) -> tuple[InterestRule, ...]:
    """The interest rules of a rule set; problems go to `add(location, message)`."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        add("interest", "must be an array of [[interest]] tables")
        return ()
    if len(raw) > INTEREST_RULES_MAX:
        add("interest", f"more than {INTEREST_RULES_MAX} interest rules")
        return ()
    rules = [_rule(item, f"interest[{i}]", add) for i, item in enumerate(raw)]
    return tuple(r for r in rules if r is not None)


def _rule(table: dict, location: str, add: Callable[[str, str], None]) -> InterestRule | None:
    unknown = []
    for key in table:
        if key not in INTEREST_KEYS:
            add(f"{location}.{key}", f"unknown key (expected one of: {', '.join(INTEREST_KEYS)})")
            unknown.append(key)
    if ("account_type" in table) == ("account" in table):
        add(location, "names either account_type or account")
        return None
    account_type, code = None, ""
    if "account_type" in table:
        account_type = _choice(table["account_type"], f"{location}.account_type",
                               {kind.value: kind for kind in AccountType}, add)
    elif isinstance(table["account"], str) and 0 < len(table["account"]) <= 128:
        code = table["account"]
    else:
        add(f"{location}.account", "must be an account code (1 to 128 characters)")
    day_count = _choice(table.get("day_count", "act/365"), f"{location}.day_count",
                        {d.value: d for d in DayCount}, add)
    capitalize = _choice(table.get("capitalize", "monthly"), f"{location}.capitalize", _CAPITALIZE, add)
    rate = table.get("rate_bp")
    try:
        policy = InterestPolicy(rate, day_count or DayCount.ACT_365, bool(capitalize))
    except LedgerError as error:
        add(f"{location}.rate_bp", error.message)
        return None
    if unknown or day_count is None or capitalize is None or (account_type is None and not code):
        return None
    return InterestRule(policy, account_type, code)


def _choice(value: object, location: str, options: dict, add: Callable[[str, str], None]):
    if isinstance(value, str) and value in options:
        return options[value]
    add(location, f"must be one of: {', '.join(options)}")
    return None
