"""A loaded rule set, and how it turns a flow's Facts into vouchers.

`build` picks the first rule for the flow type whose `when` matches the tags, checks the rule's
guards against the ledger, then builds each voucher: lines whose `when` fails are left out, amounts are
evaluated, `remainder` balances the voucher, split lines are spread over the share table, zero lines are
dropped and a voucher left empty is skipped. Nothing here writes; the ledger is only read through the
LedgerView handed in, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterator

from tally.domain.accounts import Side
from tally.domain.errors import LedgerError, invalid
from tally.domain.facts import Facts, LedgerView, Share
from tally.domain.money import Currency, fits_int64
from tally.domain.subaccounts import main_code_of
from tally.domain.vouchers import AccountRef, LineDraft, VoucherDraft, check_draft
from tally.rules.expr import LET, PARAM, VALUE, Node, pattern_refs
from tally.rules.model import AccountTemplate, FlowSpec, LineRule, Mode, Rule, VoucherRule
from tally.rules.patterns import Pattern
from tally.rules.splits import SHARE_BPS_TOTAL, allocate, check_share_table

VOUCHER_METADATA_KEY = "rule_voucher"  # each draft's metadata names the voucher of the rule that built it


class RuleSet:
    def __init__(self, version: str, flows: dict[str, FlowSpec], templates: tuple[AccountTemplate, ...],
                 rules: tuple[Rule, ...], source: str = "<string>", *, interest: tuple = (),
                 summaries: dict[str, tuple[str, ...]] | None = None,
                 statements: dict[str, dict[str, str]] | None = None) -> None:
        self.version, self.flows, self.templates, self.rules, self.source = version, flows, templates, rules, source
        self.interest = interest  # rules.interest.InterestRule: who earns interest at day close
        # flow type -> account code prefixes (() = every account) whose closed days get summary vouchers
        self.summaries = summaries or {}
        self.statements = statements or {}  # CSV statement layouts by name: field -> header name
        self._by_flow: dict[str, list[Rule]] = {}
        for rule in rules:
            self._by_flow.setdefault(rule.flow.name, []).append(rule)

    def __repr__(self) -> str:
        return f"RuleSet({self.source!r}, version={self.version!r}, rules={len(self.rules)})"

    @property
    def flow_types(self) -> frozenset[str]:
        return frozenset(self._by_flow)

    def rule_for(self, facts: Facts) -> Rule:
        """The first rule, in file order, for this flow type whose `when` matches the tags."""
        candidates = self._by_flow.get(facts.flow_type)
        if not candidates:
            raise invalid("FLOW_TYPE_UNKNOWN", f"no rule handles flow type {facts.flow_type!r}",
                          flow_type=facts.flow_type)
        for rule in candidates:
            if rule.matches(facts.tags):
                return rule
        raise invalid("RULE_NOT_FOUND", f"no {facts.flow_type} rule matches tags {dict(sorted(facts.tags.items()))}",
                      flow_type=facts.flow_type)

    def mode_for(self, facts: Facts) -> Mode:
        return self.rule_for(facts).mode

    def template_for(self, code: str) -> tuple[AccountTemplate, dict[str, str]] | None:
        """The template an account with this code is opened from, with its placeholder values. The loader
        refuses templates that could match the same code, so there is at most one."""
        for template in self.templates:
            values = template.pattern.match(code)
            if values is not None:
                return template, values
        return None

    def accounts_needed(self, facts: Facts) -> set[str]:
        """Every account code the rule for these facts may post to or read, known before any amount is
        evaluated: the accounts of kept lines (split lines expanded over the shares) and the patterns of
        balance(), meta() and meta_int(). A read pattern whose party is absent is left out, because
        evaluating it would fail the flow anyway."""
        rule = self.rule_for(facts)
        if rule.mode is not Mode.VOUCHERS:
            return set()
        fields = _fields(facts)
        shares = _share_table(rule, facts)
        codes = {code for voucher in rule.vouchers for line in _kept(voucher, facts)
                 for code, _ in _line_accounts(line, fields, shares, facts)}
        for pattern in _read_patterns(rule, facts):
            try:
                codes.add(pattern.fill(fields))
            except LedgerError as exc:
                if exc.reason != "FLOW_FIELD_MISSING":
                    raise
        return codes | self._mains_of(codes)

    @staticmethod
    def _mains_of(codes: set[str]) -> set[str]:
        """The main accounts of the sub-account codes (`MAIN/NAME`): the writer opens a template's sub-account
        as its main account's child (an existing one, or one its own template opens in the same batch)."""
        return {main for main in map(main_code_of, codes) if main is not None}

    def build(self, facts: Facts, view: LedgerView, currencies: dict[str, Currency]) -> tuple[VoucherDraft, ...]:
        rule = self.rule_for(facts)
        if rule.mode is not Mode.VOUCHERS:
            raise invalid("RULE_MODE_MISMATCH", f"rule {rule.id} is {rule.mode.value}: the service applies it",
                          rule=rule.id)
        currency = currencies.get(facts.currency)
        if currency is None:
            raise invalid("CURRENCY_UNKNOWN", f"currency {facts.currency!r} is not configured",
                          currency=facts.currency)
        scope = _Scope(rule, facts, view, currency)
        shares = _share_table(rule, facts)
        _check_requires(rule, scope)
        drafts = []
        for voucher in rule.vouchers:
            lines = _voucher_lines(voucher, scope, shares)
            if lines:
                drafts.append(self._draft(rule, voucher, facts, lines))
        if not drafts:
            raise invalid("FLOW_POSTS_NOTHING", f"rule {rule.id} builds no voucher for these facts", rule=rule.id)
        return tuple(drafts)

    def _draft(self, rule: Rule, voucher: VoucherRule, facts: Facts, lines: list[LineDraft]) -> VoucherDraft:
        memo = voucher.memo.render(_memo_fields(facts)) if voucher.memo else ""
        return check_draft(VoucherDraft(
            flow_type=facts.flow_type, lines=tuple(lines), memo=memo,
            metadata={VOUCHER_METADATA_KEY: voucher.name}, rule_id=rule.id, rule_set_version=self.version,
        ))


# -------------------------------------------------------------------------------------- evaluation


class _Scope:
    """Names, balances and metadata as one rule's expressions see them for one flow."""

    def __init__(self, rule: Rule, facts: Facts, view: LedgerView, currency: Currency) -> None:
        self.rule, self.facts, self.view, self.currency = rule, facts, view, currency
        self.fields = _fields(facts)
        self.let_nodes = dict(rule.lets)
        self.let_values: dict[str, int | str | bool] = {}

    def lookup(self, kind: str, name: str) -> int | str | bool:
        if kind == VALUE:
            return _fact_value(self.facts, name)
        if kind == PARAM:
            return self.rule.params[name]
        if kind == LET:
            # A let is evaluated once, when first used, so an unused one never asks for an absent value.
            if name not in self.let_values:
                self.let_values[name] = self.let_nodes[name].evaluate(self)
            return self.let_values[name]
        return 10 ** (self.currency.scale - self.currency.bank_scale)  # bank_unit, the only builtin

    def balance(self, pattern: Pattern) -> int:
        available = self.view.available(pattern.fill(self.fields))
        return 0 if available is None else available

    def metadata(self, pattern: Pattern) -> dict[str, str]:
        return self.view.metadata(pattern.fill(self.fields)) or {}


def _fact_value(facts: Facts, name: str) -> int:
    if name not in facts.values:
        raise invalid("FLOW_FIELD_MISSING", f"flow value {name!r} is missing", field=name)
    value = facts.values[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid("FLOW_FIELD_INVALID", f"flow value {name!r} must be an integer", field=name)
    if not fits_int64(value):
        raise invalid("AMOUNT_TOO_LARGE", f"flow value {name!r} is beyond 64-bit integers", field=name)
    return value


def _check_requires(rule: Rule, scope: _Scope) -> None:
    for guard in rule.requires:
        if not guard.check.evaluate(scope):
            message = guard.message or f"rule {rule.id} requires {guard.text}"
            raise LedgerError(guard.kind, guard.reason, message, rule=rule.id)


def _voucher_lines(voucher: VoucherRule, scope: _Scope, shares: tuple[Share, ...] | None) -> list[LineDraft]:
    kept = _kept(voucher, scope.facts)
    amounts = {i: _amount(line, scope) for i, line in enumerate(kept) if not line.is_remainder}
    for i, line in enumerate(kept):
        if line.is_remainder:
            amounts[i] = _remainder(kept, amounts, line.side, scope.rule)
    lines = []
    for i, line in enumerate(kept):
        if amounts[i]:
            lines.extend(_expand(line, amounts[i], scope, shares))
    return lines


def _kept(voucher: VoucherRule, facts: Facts) -> list[LineRule]:
    return [line for line in voucher.lines if line.when is None or _present(line.when.name, facts) != line.when.negate]


def _present(name: str, facts: Facts) -> bool:
    return bool(facts.parties.get(name) or facts.tags.get(name) or facts.values.get(name))


def _amount(line: LineRule, scope: _Scope) -> int:
    amount = line.amount.evaluate(scope)
    if amount < 0:
        raise invalid("RULE_AMOUNT_NEGATIVE", f"rule {scope.rule.id}: the {line.side.value} to {line.account.text} "
                      f"comes to {amount}", rule=scope.rule.id, account=line.account.text)
    return amount


def _remainder(kept: list[LineRule], amounts: dict[int, int], side: Side, rule: Rule) -> int:
    """What balances the voucher: the other side's total less this side's other lines."""
    other = sum(amounts[i] for i, line in enumerate(kept) if line.side is not side)
    same = sum(amounts[i] for i, line in enumerate(kept) if line.side is side and not line.is_remainder)
    if other - same < 0:
        raise invalid("RULE_AMOUNT_NEGATIVE", f"rule {rule.id}: the {side.value} lines already exceed the "
                      f"other side by {same - other}", rule=rule.id)
    return other - same


def _expand(line: LineRule, amount: int, scope: _Scope, shares: tuple[Share, ...] | None) -> Iterator[LineDraft]:
    """The line's drafts: one, or one per share with the amount allocated by largest remainder."""
    memo = line.memo.render(_memo_fields(scope.facts)) if line.memo else ""
    accounts = _line_accounts(line, scope.fields, shares, scope.facts)
    parts = allocate(amount, [weight for _, weight in accounts])
    for (code, _), part in zip(accounts, parts, strict=True):
        if part:
            yield LineDraft(AccountRef(code=code), line.side, part, scope.facts.currency, memo)


def _line_accounts(line: LineRule, fields: dict[str, str], shares: tuple[Share, ...] | None,
                   facts: Facts) -> list[tuple[str, int]]:
    """The account codes a line posts to, each with its weight: one account, or one per share."""
    if not line.split:
        return [(line.account.fill(fields), SHARE_BPS_TOTAL)]
    return [(line.account.fill({**fields, "party": share.party}), share.share_bps)
            for share in shares or _default_share(line, facts)]


def _default_share(line: LineRule, facts: Facts) -> tuple[Share, ...]:
    party = facts.parties.get(line.split_default, "") if line.split_default else ""
    if not party:
        if not line.split_default:
            raise invalid("SHARES_INVALID", f"{facts.flow_type} needs a share table")
        raise invalid("FLOW_FIELD_MISSING", f"flow field {line.split_default!r} is missing",
                      field=line.split_default)
    return (Share(party, SHARE_BPS_TOTAL),)


def _share_table(rule: Rule, facts: Facts) -> tuple[Share, ...] | None:
    """The flow's share table, checked; None when it has none (split lines then use their default)."""
    if not facts.shares:
        return None
    if not rule.splits:
        raise invalid("SHARES_INVALID", f"rule {rule.id} takes no share table", rule=rule.id)
    return check_share_table(facts.shares)


def _read_patterns(rule: Rule, facts: Facts) -> Iterator[Pattern]:
    nodes: list[Node] = [guard.check for guard in rule.requires] + [node for _, node in rule.lets]
    nodes += [line.amount for voucher in rule.vouchers for line in _kept(voucher, facts) if not line.is_remainder]
    for node in nodes:
        for ref in pattern_refs(node):
            yield ref.pattern


def _fields(facts: Facts) -> dict[str, str]:
    return {**facts.parties, **facts.tags, "currency": facts.currency}


def _memo_fields(facts: Facts) -> dict[str, str]:
    return {**{name: str(value) for name, value in facts.values.items()}, **_fields(facts)}
