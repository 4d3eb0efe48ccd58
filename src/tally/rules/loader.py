"""Reads a rule set from TOML and checks all of it before anything runs.

Every problem found is collected with its location (`rules[2] (id=usage.default).vouchers[0].lines[1]
.amount: unknown name 'fee' at column 5 of "bps(fee, 2)"`), so one `tally rules check FILE` run lists
them all; a rule set with any problem is refused as a whole.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from os import PathLike
from pathlib import Path

from tally.domain.accounts import CUSTOMER_TYPES, AccountType, FloorPolicy, Side
from tally.domain.errors import ErrorKind
from tally.domain.money import fits_int64
from tally.rules import limits
from tally.rules.controls import parse_controls
from tally.rules.engine import RuleSet
from tally.rules.expr import BOOL, BUILTIN, BUILTIN_NAMES, INT, LET, PARAM, RESERVED, VALUE, Node, pattern_refs
from tally.rules.interest import parse_interest
from tally.rules.model import AccountTemplate, FlowSpec, Guard, LineRule, Mode, Presence, Rule, VoucherRule
from tally.rules.parser import REMAINDER, ExprError, parse_expression
from tally.rules.patterns import NAME, Pattern, PatternError, overlaps, parse_pattern
from tally.rules.summaries import parse_summaries

DEFAULT_RULE_SET = "default.toml"

TOP_KEYS = ("version", "description", "params", "flows", "accounts", "rules", "interest", "summaries", "statements")
# A CSV statement layout: the header name of each column reconciliation reads (service/settlement).
STATEMENT_KEYS = ("reference", "amount", "value_date", "line_id", "description")
STATEMENT_LAYOUTS_MAX = 64
FLOW_KEYS = ("values", "parties", "tags", "description")
TEMPLATE_KEYS = ("type", "normal_side", "floor", "description", "controls")
RULE_KEYS = ("id", "flow", "description", "when", "mode", "params", "let", "requires", "vouchers")
GUARD_KEYS = ("check", "reason", "kind", "message")
VOUCHER_KEYS = ("name", "memo", "lines")
LINE_KEYS = ("side", "account", "amount", "when", "split", "split_default", "memo")

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FLOW_NAME = re.compile(r"[a-z][a-z0-9_]*")
_REASON = re.compile(r"[A-Z][A-Z0-9_]*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_SIDES = {side.value: side for side in Side}
_TYPES = {kind.value: kind for kind in AccountType}
_FLOORS = {floor.value: floor for floor in FloorPolicy}
_MODES = {mode.value: mode for mode in Mode}
_GUARD_KINDS = {kind.value: kind for kind in (ErrorKind.FAILED_PRECONDITION, ErrorKind.INVALID_ARGUMENT)}
_FIELD_RESERVED = RESERVED | {"currency", "party"}  # placeholders the engine fills itself


@dataclass(frozen=True)
class Problem:
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class RuleSetError(ValueError):
    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source, self.problems = source, list(problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the rule set\n"
                         + "\n".join(f"  {problem}" for problem in self.problems))


class RuleSetTooDeep(RuleSetError):
    """Nested deeper than the parser can follow: not a rule set, whatever else it holds."""


def parse_rule_set(text: str, source: str = "<string>") -> RuleSet:
    if len(text.encode()) > limits.FILE_SIZE_BYTES_MAX:
        raise RuleSetError(source, [Problem("", f"larger than {limits.FILE_SIZE_BYTES_MAX} bytes")])
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleSetError(source, [Problem("", f"not valid TOML: {exc}")]) from None
    except RecursionError:  # tomllib recurses once per level of nested arrays and tables
        raise RuleSetTooDeep(source, [Problem("", "arrays or tables are nested too deeply")]) from None
    loader = _Loader()
    rule_set = loader.load(document, source)
    if loader.problems:
        raise RuleSetError(source, loader.problems)
    return rule_set


def load_rule_set(path: str | PathLike[str]) -> RuleSet:
    return parse_rule_set(Path(path).read_text(encoding="utf-8"), source=str(path))


def load_default_rule_set() -> RuleSet:
    text = resources.files("tally.rules").joinpath(DEFAULT_RULE_SET).read_text(encoding="utf-8")
    return parse_rule_set(text, source=f"tally.rules/{DEFAULT_RULE_SET}")


def check_file(path: str | PathLike[str]) -> list[str]:
    """The problems of a rule-set file as lines for people (`tally rules check FILE`); empty when valid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path}: cannot be read: {exc}"]
    try:
        parse_rule_set(text, source=str(path))
    except RuleSetError as exc:
        return [f"{path}: {problem}" for problem in exc.problems]
    return []


def _at(location: str, key: str) -> str:
    return f"{location}.{key}" if location else key


@dataclass
class _RuleContext:
    """What the expressions of one rule may name."""

    flow: FlowSpec
    params: dict[str, int]
    lets: dict[str, Node] = field(default_factory=dict)

    def resolve(self, name: str) -> tuple[str, str] | None:
        if name in self.flow.values:
            return VALUE, INT
        if name in self.lets:
            return LET, self.lets[name].type
        if name in self.params:
            return PARAM, INT
        if name in BUILTIN_NAMES:
            return BUILTIN, INT
        return None


class _Loader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.templates: tuple[AccountTemplate, ...] = ()

    def add(self, location: str, message: str) -> None:
        self.problems.append(Problem(location, message))

    def load(self, document: dict, source: str) -> RuleSet:
        self.keys(document, "", TOP_KEYS, required=("version", "flows", "accounts", "rules"))
        version = ""
        if "version" in document:
            version = self.text(document["version"], "version", _VERSION, "letters, digits and _.+-") or ""
        params = self.params(document.get("params", {}), "params")
        flows = self.flows(document.get("flows", {}))
        self.templates = self.account_templates(document.get("accounts", {}))
        rules = self.rules(document.get("rules", []), params, flows)
        for name in sorted(set(flows) - {rule.flow.name for rule in rules}):
            self.add(f"flows.{name}", "no rule handles this flow")
        interest = parse_interest(document["interest"], self.add) if "interest" in document else ()
        summaries = parse_summaries(document["summaries"], self.add) if "summaries" in document else {}
        statements = self.statements(document.get("statements", {}))
        return RuleSet(version, flows, self.templates, rules, source, interest=interest, summaries=summaries,
                       statements=statements)

    def statements(self, raw: object) -> dict[str, dict[str, str]]:
        """Named CSV statement layouts: `[statements.NAME]` with the header name of each column."""
        table = self.table(raw, "statements")
        if table is None:
            return {}
        if len(table) > STATEMENT_LAYOUTS_MAX:
            self.add("statements", f"more than {STATEMENT_LAYOUTS_MAX} statement layouts")
        layouts = {}
        for name, spec in table.items():
            location = f"statements.{name}"
            if not _FLOW_NAME.fullmatch(name):
                self.add(location, "a layout name is lower-case letters, digits and _, starting with a letter")
            elif self.table(spec, location) is not None and self.keys(spec, location, STATEMENT_KEYS):
                columns = {key: self.text(value, _at(location, key), length_max=limits.ID_LENGTH_MAX)
                           for key, value in spec.items()}
                layouts[name] = {key: value for key, value in columns.items() if value}
        return layouts

    # ------------------------------------------------------------------------------ plain values

    def table(self, value: object, location: str) -> dict | None:
        if isinstance(value, dict):
            return value
        self.add(location, "must be a table")
        return None

    def keys(self, table: dict, location: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> bool:
        """Reports unknown and missing keys; False when a required one is missing, so the caller stops
        there instead of reporting the same absence again as a bad value."""
        for key in table:
            if key not in allowed:
                self.add(_at(location, key), f"unknown key (expected one of: {', '.join(allowed)})")
        missing = [key for key in required if key not in table]
        for key in missing:
            self.add(_at(location, key), "is required")
        return not missing

    def text(self, value: object, location: str, pattern: re.Pattern[str] | None = None, what: str = "",
             length_max: int = limits.ID_LENGTH_MAX) -> str | None:
        if not isinstance(value, str):
            self.add(location, "must be a string")
            return None
        if len(value) > length_max:
            self.add(location, f"longer than {length_max} characters")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.add(location, f"{value!r} must be {what}")
            return None
        return value

    def choice(self, value: object, location: str, options: dict):
        if isinstance(value, str) and value in options:
            return options[value]
        self.add(location, f"must be one of: {', '.join(options)}")
        return None

    def integer(self, value: object, location: str) -> int | None:
        # TOML booleans are Python bools, which are ints; a param is never true/false.
        if not isinstance(value, int) or isinstance(value, bool):
            self.add(location, "must be an integer (no fractions: rates are basis points)")
            return None
        if not fits_int64(value):
            self.add(location, "is beyond 64-bit integers")
            return None
        return value

    def name(self, value: object, location: str, reserved: frozenset[str] = RESERVED) -> str | None:
        if not isinstance(value, str) or not NAME.fullmatch(value):
            self.add(location, f"{value!r} must be a name: a letter, then letters, digits or _")
            return None
        if value in reserved:
            self.add(location, f"{value!r} is reserved")
            return None
        return value

    # -------------------------------------------------------------------------- params and flows

    def params(self, raw: object, location: str) -> dict[str, int]:
        table = self.table(raw, location)
        if table is None:
            return {}
        if len(table) > limits.PARAMS_MAX:
            self.add(location, f"more than {limits.PARAMS_MAX} params")
        params = {}
        for key, value in table.items():
            name, number = self.name(key, _at(location, key)), self.integer(value, _at(location, key))
            if name is not None and number is not None:
                params[name] = number
        return params

    def flows(self, raw: object) -> dict[str, FlowSpec]:
        table = self.table(raw, "flows")
        if table is None:
            return {}
        if len(table) > limits.FLOWS_MAX:
            self.add("flows", f"more than {limits.FLOWS_MAX} flows")
        flows = {}
        for name, spec in table.items():
            location = f"flows.{name}"
            if not _FLOW_NAME.fullmatch(name):
                self.add(location, "a flow type is lower-case letters, digits and _, starting with a letter")
            elif self.table(spec, location) is not None:
                flows[name] = self.flow(name, spec, location)
        return flows

    def flow(self, name: str, spec: dict, location: str) -> FlowSpec:
        self.keys(spec, location, FLOW_KEYS)
        lists = {key: self.name_list(spec.get(key, []), _at(location, key)) for key in ("values", "parties", "tags")}
        seen: set[str] = set()
        for key, names in lists.items():
            for duplicate in sorted(seen & set(names)):
                self.add(_at(location, key), f"{duplicate!r} is declared twice")
            seen |= set(names)
        if len(seen) > limits.NAMES_PER_FLOW_MAX:
            self.add(location, f"more than {limits.NAMES_PER_FLOW_MAX} names")
        return FlowSpec(name, lists["values"], lists["parties"], lists["tags"])

    def name_list(self, raw: object, location: str) -> tuple[str, ...]:
        if not isinstance(raw, list):
            self.add(location, "must be an array of names")
            return ()
        names = [self.name(item, f"{location}[{i}]", _FIELD_RESERVED) for i, item in enumerate(raw)]
        valid = [name for name in names if name is not None]
        if len(set(valid)) != len(valid):
            self.add(location, "lists a name twice")
        return tuple(valid)

    # ------------------------------------------------------------------------------ templates

    def account_templates(self, raw: object) -> tuple[AccountTemplate, ...]:
        table = self.table(raw, "accounts")
        if table is None:
            return ()
        if len(table) > limits.TEMPLATES_MAX:
            self.add("accounts", f"more than {limits.TEMPLATES_MAX} account templates")
        loaded: list[tuple[str, AccountTemplate]] = []
        for key, spec in table.items():
            location = f'accounts."{key}"'
            template = self.account_template(key, spec, location)
            if template is None:
                continue
            for earlier_location, earlier in loaded:
                if overlaps(earlier.pattern, template.pattern):
                    self.add(location, f"can match the same account codes as {earlier_location}")
            loaded.append((location, template))
        return tuple(template for _, template in loaded)

    def account_template(self, key: str, spec: object, location: str) -> AccountTemplate | None:
        pattern = self.pattern(key, location, code=True)
        if self.table(spec, location) is None or pattern is None:
            return None
        if not self.keys(spec, location, TEMPLATE_KEYS, required=("type",)):
            return None
        account_type = self.choice(spec.get("type"), _at(location, "type"), _TYPES)
        if account_type is None:
            return None
        controls = (parse_controls(spec["controls"], _at(location, "controls"), self.add, pattern)
                    if "controls" in spec else None)
        if account_type in CUSTOMER_TYPES:
            return replace(self.customer_template(pattern, account_type, spec, location), controls=controls)
        side = self.choice(spec.get("normal_side"), _at(location, "normal_side"), _SIDES)
        floor = self.choice(spec.get("floor", FloorPolicy.UNBOUNDED.value), _at(location, "floor"), _FLOORS)
        if side is None or floor is None:
            return None
        return AccountTemplate(pattern, account_type, side, floor, controls)

    def customer_template(self, pattern: Pattern, account_type: AccountType, spec: dict,
                          location: str) -> AccountTemplate:
        # Money held for customers is a credit-normal liability that never goes below its floor.
        if spec.get("normal_side", Side.CREDIT.value) != Side.CREDIT.value:
            self.add(_at(location, "normal_side"), f"{account_type.value} accounts are credit-normal")
        if "floor" in spec:
            self.add(_at(location, "floor"), "only internal accounts choose a floor")
        return AccountTemplate(pattern, account_type, Side.CREDIT, FloorPolicy.NON_NEGATIVE)

    def pattern(self, value: object, location: str, *, code: bool) -> Pattern | None:
        text = self.text(value, location, length_max=512)
        if text is None:
            return None
        try:
            return parse_pattern(text, code=code)
        except PatternError as exc:
            self.add(location, f"{exc.message} at column {exc.offset + 1} of '{text}'")
            return None

    def pattern_use(self, pattern: Pattern, location: str, flow: FlowSpec, *, split: bool = False,
                    where: str = "") -> None:
        """A pattern a rule posts to or reads: its placeholders are the flow's, and a template covers it."""
        allowed = flow.fields | ({"party"} if split else set())
        for name in pattern.names:
            if name not in allowed:
                hint = "{party} is only for split lines" if name == "party" else \
                    f"not a party or tag of flow '{flow.name}'"
                self.add(location, f"placeholder {{{name}}} of '{pattern.text}'{where}: {hint}")
        if not any(t.pattern.shape == pattern.shape or (not pattern.names and t.pattern.match(pattern.text))
                   for t in self.templates):
            self.add(location, f"no [accounts] template for '{pattern.text}'{where}")

    # ----------------------------------------------------------------------------------- rules

    def rules(self, raw: object, params: dict[str, int], flows: dict[str, FlowSpec]) -> tuple[Rule, ...]:
        if not isinstance(raw, list) or not raw:
            self.add("rules", "must be a non-empty array of [[rules]] tables")
            return ()
        if len(raw) > limits.RULES_MAX:
            self.add("rules", f"more than {limits.RULES_MAX} rules")
        loaded: list[tuple[str, Rule]] = []
        for i, item in enumerate(raw):
            location = f"rules[{i}]"
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                location += f" (id={item['id']})"
            rule = self.rule(item, location, params, flows)
            if rule is None:
                continue
            if any(rule.id == earlier.id for _, earlier in loaded):
                self.add(_at(location, "id"), f"{rule.id!r} is used by an earlier rule")
            self.check_reachable(rule, location, loaded)
            loaded.append((location, rule))
        return tuple(rule for _, rule in loaded)

    def check_reachable(self, rule: Rule, location: str, loaded: list[tuple[str, Rule]]) -> None:
        for earlier_location, earlier in loaded:
            if earlier.flow.name == rule.flow.name and earlier.when.items() <= rule.when.items():
                self.add(location, f"is never used: {earlier_location} comes first and matches all its flows")
                return

    def rule(self, raw: object, location: str, params: dict[str, int], flows: dict[str, FlowSpec]) -> Rule | None:
        if self.table(raw, location) is None:
            return None
        if not self.keys(raw, location, RULE_KEYS, required=("id", "flow")):
            return None
        rule_id = self.text(raw.get("id", ""), _at(location, "id"), _ID, "letters, digits and _.-")
        flow = self.rule_flow(raw.get("flow", ""), _at(location, "flow"), flows)
        mode = self.choice(raw.get("mode", Mode.VOUCHERS.value), _at(location, "mode"), _MODES)
        if rule_id is None or flow is None or mode is None:
            return None
        description = self.text(raw.get("description", ""), _at(location, "description"), length_max=1024)
        ctx = _RuleContext(flow, {**params, **self.params(raw.get("params", {}), _at(location, "params"))})
        self.check_param_names(ctx, location)
        if mode is Mode.PROPORTIONAL_REVERSAL:
            return self.reversal_rule(raw, location, rule_id, ctx, description or "")
        lets = self.lets(raw.get("let", {}), _at(location, "let"), ctx)
        return Rule(
            id=rule_id, flow=flow, when=self.when(raw.get("when", {}), _at(location, "when"), flow), mode=mode,
            params=ctx.params, lets=lets, let_texts={name: raw["let"][name] for name, _ in lets},
            requires=self.guards(raw.get("requires", []), _at(location, "requires"), ctx),
            vouchers=self.vouchers(raw.get("vouchers"), _at(location, "vouchers"), ctx),
            description=description or "",
        )

    def rule_flow(self, value: object, location: str, flows: dict[str, FlowSpec]) -> FlowSpec | None:
        name = self.text(value, location)
        if name is not None and name not in flows:
            self.add(location, f"flow {name!r} is not declared in [flows]")
        return flows.get(name) if name is not None else None

    def reversal_rule(self, raw: dict, location: str, rule_id: str, ctx: _RuleContext, description: str) -> Rule:
        # The service reverses the original vouchers; lines, guards or lets here would never run.
        for key in ("vouchers", "requires", "let"):
            if key in raw:
                self.add(_at(location, key), "a proportional_reversal rule has none")
        when = self.when(raw.get("when", {}), _at(location, "when"), ctx.flow)
        return Rule(id=rule_id, flow=ctx.flow, when=when, mode=Mode.PROPORTIONAL_REVERSAL, params=ctx.params,
                    description=description)

    def check_param_names(self, ctx: _RuleContext, location: str) -> None:
        for name in sorted(set(ctx.params) & set(ctx.flow.values)):
            self.add(location, f"param {name!r} has the name of a value of flow '{ctx.flow.name}'")

    def when(self, raw: object, location: str, flow: FlowSpec) -> dict[str, str]:
        table = self.table(raw, location)
        if table is None:
            return {}
        when = {}
        for tag, value in table.items():
            if tag not in flow.tags:
                self.add(_at(location, tag), f"not a tag of flow '{flow.name}'")
            elif self.text(value, _at(location, tag), length_max=256) is not None:
                when[tag] = value
        return when

    def lets(self, raw: object, location: str, ctx: _RuleContext) -> tuple[tuple[str, Node], ...]:
        table = self.table(raw, location)
        if table is None:
            return ()
        if len(table) > limits.LETS_PER_RULE_MAX:
            self.add(location, f"more than {limits.LETS_PER_RULE_MAX} lets")
        taken = set(ctx.params) | set(ctx.flow.values) | set(ctx.flow.parties) | set(ctx.flow.tags)
        for key, value in table.items():
            name = self.name(key, _at(location, key))
            if name in taken:
                self.add(_at(location, key), f"{name!r} is already a param or a name of flow '{ctx.flow.name}'")
            # Added in file order, so a let can only use the lets before it: no cycles.
            node = self.expression(value, _at(location, key), ctx, want=None)
            if name is not None and node is not None:
                ctx.lets[name] = node
        return tuple(ctx.lets.items())

    def guards(self, raw: object, location: str, ctx: _RuleContext) -> tuple[Guard, ...]:
        if not isinstance(raw, list):
            self.add(location, "must be an array of [[rules.requires]] tables")
            return ()
        if len(raw) > limits.REQUIRES_PER_RULE_MAX:
            self.add(location, f"more than {limits.REQUIRES_PER_RULE_MAX} requirements")
        guards = (self.guard(item, f"{location}[{i}]", ctx) for i, item in enumerate(raw))
        return tuple(guard for guard in guards if guard is not None)

    def guard(self, raw: object, location: str, ctx: _RuleContext) -> Guard | None:
        if self.table(raw, location) is None:
            return None
        if not self.keys(raw, location, GUARD_KEYS, required=("check", "reason")):
            return None
        check = self.expression(raw.get("check", ""), _at(location, "check"), ctx, want=BOOL)
        reason = self.text(raw.get("reason", ""), _at(location, "reason"), _REASON, "UPPER_SNAKE_CASE",
                           limits.REASON_LENGTH_MAX)
        kind = self.choice(raw.get("kind", ErrorKind.FAILED_PRECONDITION.value), _at(location, "kind"), _GUARD_KINDS)
        message = self.text(raw.get("message", ""), _at(location, "message"), length_max=limits.MESSAGE_LENGTH_MAX)
        if check is None or reason is None or kind is None or message is None:
            return None
        return Guard(check, raw["check"], reason, kind, message)

    def expression(self, value: object, location: str, ctx: _RuleContext, *, want: str | None) -> Node | None:
        text = self.text(value, location, length_max=limits.EXPRESSION_LENGTH_MAX)
        if text is None:
            return None
        try:
            node = parse_expression(text, ctx.resolve, want=want)
        except ExprError as exc:
            self.add(location, str(exc))
            return None
        for ref in pattern_refs(node):
            self.pattern_use(ref.pattern, location, ctx.flow, where=f" at column {ref.pos + 1}")
        return node

    # -------------------------------------------------------------------------------- vouchers

    def vouchers(self, raw: object, location: str, ctx: _RuleContext) -> tuple[VoucherRule, ...]:
        if not isinstance(raw, list) or not raw:
            self.add(location, "must be a non-empty array of [[rules.vouchers]] tables")
            return ()
        if len(raw) > limits.VOUCHERS_PER_RULE_MAX:
            self.add(location, f"more than {limits.VOUCHERS_PER_RULE_MAX} vouchers")
        vouchers: list[VoucherRule] = []
        for i, item in enumerate(raw):
            voucher = self.voucher(item, f"{location}[{i}]", ctx)
            if voucher is not None and any(voucher.name == v.name for v in vouchers):
                self.add(f"{location}[{i}].name", f"{voucher.name!r} names an earlier voucher of this rule")
            if voucher is not None:
                vouchers.append(voucher)
        return tuple(vouchers)

    def voucher(self, raw: object, location: str, ctx: _RuleContext) -> VoucherRule | None:
        if self.table(raw, location) is None:
            return None
        if not self.keys(raw, location, VOUCHER_KEYS, required=("name", "lines")):
            return None
        name = self.text(raw.get("name", ""), _at(location, "name"), _ID, "letters, digits and _.-")
        memo = self.memo(raw.get("memo"), _at(location, "memo"), ctx.flow)
        raw_lines = raw.get("lines", [])
        if not isinstance(raw_lines, list):
            self.add(_at(location, "lines"), "must be an array of [[rules.vouchers.lines]] tables")
            return None
        lines = [self.line(item, f"{location}.lines[{i}]", ctx) for i, item in enumerate(raw_lines)]
        if name is None or None in lines:
            return None
        voucher = VoucherRule(name, tuple(lines), memo)
        self.check_voucher(voucher, location)
        return voucher

    def check_voucher(self, voucher: VoucherRule, location: str) -> None:
        sides = {line.side for line in voucher.lines}
        if sides != {Side.DEBIT, Side.CREDIT}:
            self.add(location, "needs at least one debit and one credit line")
        if sum(line.is_remainder for line in voucher.lines) > 1:
            self.add(location, "at most one line of a voucher can be 'remainder'")
        expanded = sum(limits.SHARES_MAX if line.split else 1 for line in voucher.lines)
        if expanded > limits.LINES_PER_VOUCHER_MAX:
            self.add(location, f"may have {expanded} lines once split lines take {limits.SHARES_MAX} shares; "
                     f"a voucher has at most {limits.LINES_PER_VOUCHER_MAX}")
        by_side: dict[str, set[Side]] = {}
        for line in voucher.lines:
            by_side.setdefault(line.account.text, set()).add(line.side)
        for text, both in by_side.items():
            if len(both) == 2:
                self.add(location, f"'{text}' is on both sides")

    def memo(self, raw: object, location: str, flow: FlowSpec) -> Pattern | None:
        if raw is None:
            return None
        pattern = self.pattern(raw, location, code=False)
        known = flow.fields | set(flow.values)
        for name in pattern.names if pattern else ():
            if name not in known:
                self.add(location, f"placeholder {{{name}}} is not a value, party or tag of flow '{flow.name}'")
        return pattern

    def line(self, raw: object, location: str, ctx: _RuleContext) -> LineRule | None:
        if self.table(raw, location) is None:
            return None
        if not self.keys(raw, location, LINE_KEYS, required=("side", "account", "amount")):
            return None
        side = self.choice(raw.get("side"), _at(location, "side"), _SIDES)
        split, split_default = self.split(raw, location, ctx.flow)
        account = self.pattern(raw.get("account", ""), _at(location, "account"), code=True)
        if account is not None:
            self.pattern_use(account, _at(location, "account"), ctx.flow, split=split)
            if split and "party" not in account.names:
                self.add(_at(location, "account"), "a split line names each share's account with {party}")
        amount = self.amount(raw.get("amount", ""), _at(location, "amount"), ctx)
        when = self.presence(raw["when"], _at(location, "when"), ctx.flow) if "when" in raw else None
        memo = self.memo(raw.get("memo"), _at(location, "memo"), ctx.flow)
        if side is None or account is None or amount is None or ("when" in raw and when is None):
            return None
        return LineRule(side, account, amount, when, split, split_default, memo, raw["amount"])

    def split(self, raw: dict, location: str, flow: FlowSpec) -> tuple[bool, str]:
        split = "split" in raw
        if split and raw["split"] != "shares":
            self.add(_at(location, "split"), 'the only split is "shares"')
        if "split_default" not in raw:
            return split, ""
        default = self.text(raw["split_default"], _at(location, "split_default"))
        if not split:
            self.add(_at(location, "split_default"), 'only a line with split = "shares" has a default')
        elif default is not None and default not in flow.parties:
            self.add(_at(location, "split_default"), f"{default!r} is not a party of flow '{flow.name}'")
        return split, default or ""

    def amount(self, value: object, location: str, ctx: _RuleContext) -> Node | str | None:
        if isinstance(value, str) and value.strip() == REMAINDER:
            return REMAINDER
        return self.expression(value, location, ctx, want=INT)

    def presence(self, value: object, location: str, flow: FlowSpec) -> Presence | None:
        words = value.split() if isinstance(value, str) else []
        negate = len(words) == 2 and words[0] == "not"
        name = words[-1] if len(words) == 1 or negate else ""
        if name not in (*flow.values, *flow.parties, *flow.tags):
            self.add(location, f"must be a value, party or tag of flow '{flow.name}', optionally after 'not'")
            return None
        return Presence(name, negate)
