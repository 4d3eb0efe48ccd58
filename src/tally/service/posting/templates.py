"""Opens the accounts a rule names from the rule set's templates, the first time a flow needs them."""

from __future__ import annotations

from tally.domain.accounts import Account, open_account
from tally.domain.ids import new_id
from tally.domain.money import Currency
from tally.rules.engine import RuleSet
from tally.service.posting.batch import Opener


def template_opener(rules: RuleSet, currencies: dict[str, Currency]) -> Opener:
    known = frozenset(currencies)

    def open_(tenant_id: str, code: str, currency: str, now_us: int) -> Account | None:
        found = rules.template_for(code)
        if found is None:
            return None
        template, _ = found
        return open_account(template.new_account(code, currency), account_id=new_id(), tenant_id=tenant_id,
                            now_us=now_us, currencies=known)

    return open_
