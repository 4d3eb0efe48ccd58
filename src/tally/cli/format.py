"""Text helpers for the `tally` command line: argument parsing, plain-text tables, proto messages as text.

No gRPC calls happen here and no float is used anywhere: amounts are int counts of atomic units, and every
decimal rendering is derived with integer arithmetic only.

Amounts for people: a client verb shows them in the currency's units (`12.345678 USD`, or `12.345678` in a
table beside its currency column), at the scale the ledger counts the currency in (TALLY_CURRENCIES, default
the server's USD:6, EUR:6, GBP:6, JPY:3). `--atomic` shows the integer counts as they are stored, and
`--scale N` both the counts and their decimals at N places; `--json` is never touched. `use_amounts` sets
the style once per invocation; until then (tests, other callers) amounts stay atomic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import re
from collections.abc import Iterable, Iterator, Sequence

from tally.domain.limits import AMOUNT_MAX
from tally.domain.money import DEFAULT_CURRENCIES, parse_currencies
from tally.v1 import types_pb2

_UUID_DASHES = frozenset((8, 13, 18, 23))
_HEX = frozenset("0123456789abcdefABCDEF")
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]*[.,][0-9]*")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# ---------------------------------------------------------------------------------------------- parsing


def looks_like_uuid(text: str) -> bool:
    """True for 36 characters with dashes at 8, 13, 18 and 23 and hex digits everywhere else."""
    if len(text) != 36:
        return False
    return all((ch == "-") if i in _UUID_DASHES else (ch in _HEX) for i, ch in enumerate(text))


def account_ref(text: str) -> types_pb2.AccountRef:
    """An account argument: sent as AccountRef.id when it looks like a UUID, otherwise as AccountRef.code."""
    if not text:
        raise ValueError("an account id or code must not be empty")
    return types_pb2.AccountRef(id=text) if looks_like_uuid(text) else types_pb2.AccountRef(code=text)


def parse_amount(text: str, *, minimum: int = 1, what: str = "amount") -> int:
    """An integer count of atomic units, at least `minimum` and at most the int64 maximum.

    Only ASCII digits with an optional leading minus are accepted: no decimal point, exponent, sign `+`,
    underscore or surrounding space, so that nothing is rounded or guessed.
    """
    if not _INTEGER.fullmatch(text):
        hint = " (no decimal point: give atomic units, e.g. 1.5 USD at scale 6 is 1500000)" \
            if _DECIMAL.fullmatch(text) else ""
        raise ValueError(f"{what} must be an integer count of atomic units, got {text!r}{hint}")
    value = int(text)
    if value < minimum:
        bound = {1: "positive", 0: "zero or more"}.get(minimum, f"at least {minimum}")
        raise ValueError(f"{what} must be {bound}, got {value}")
    if value > AMOUNT_MAX:
        raise ValueError(f"{what} must be at most {AMOUNT_MAX}, got {value}")
    return value


def parse_scale(text: str) -> int:
    """The number of decimal places of a currency's atomic unit, 0 to 18."""
    if not text.isascii() or not text.isdigit() or int(text) > 18:
        raise ValueError(f"scale must be an integer from 0 to 18, got {text!r}")
    return int(text)


def parse_iso_date(text: str) -> str:
    """A calendar date written YYYY-MM-DD."""
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def parse_meta(text: str) -> tuple[str, str]:
    """A `key=value` metadata entry (the value may itself contain `=`)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"metadata must be written key=value, got {text!r}")
    return key, value


def parse_line(text: str) -> types_pb2.LineInput:
    """An adjustment line `debit|credit:ACCOUNT:AMOUNT:CURRENCY` (the account may contain colons)."""
    side, _, rest = text.partition(":")
    parts = rest.rsplit(":", 2)
    if side.lower() not in ("debit", "credit") or len(parts) != 3 or not parts[0] or not parts[2]:
        raise ValueError(f"a line must be written debit|credit:ACCOUNT:AMOUNT:CURRENCY, got {text!r}")
    account, amount, currency = parts
    return types_pb2.LineInput(account=account_ref(account), side=enum_value(types_pb2.Side, side),
                               amount=parse_amount(amount, what="line amount"), currency=currency.upper())


# ---------------------------------------------------------------------------------------------- enums


def _enum_prefix(enum) -> str:
    return enum.Name(0).removesuffix("UNSPECIFIED")


def enum_label(enum, value: int) -> str:
    """`ACCOUNT_TYPE_SECURITY_DEPOSIT` -> `security_deposit`; unknown numbers are shown as numbers."""
    try:
        name = enum.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(_enum_prefix(enum)).lower()


def enum_labels(enum) -> list[str]:
    """The labels of an enum's values, without the unspecified zero value."""
    return [enum_label(enum, value) for value in enum.values() if value != 0]


def enum_value(enum, label: str) -> int:
    return enum.Value(_enum_prefix(enum) + label.upper())


# ---------------------------------------------------------------------------------------------- text


def format_decimal(value: int, scale: int) -> str:
    """`value` atomic units as a decimal with `scale` places, by integer arithmetic only."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"value must be an int, got {type(value).__name__}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
        raise ValueError(f"scale must be a non-negative int, got {scale!r}")
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(value), 10**scale)
    return f"{sign}{whole}.{fraction:0{scale}d}" if scale else f"{sign}{whole}"


def amount_text(value: int, scale: int | None, currency: str = "") -> str:
    """`1234567`, `1234567 (1.234567)` when a scale is given, or `1.234567 USD` for people (see use_amounts)."""
    if people(scale) and currency:
        return money_text(value, currency)
    return str(value) if scale is None else f"{value} ({format_decimal(value, scale)})"


@dataclasses.dataclass
class _Amounts:
    atomic: bool = True
    scales: dict[str, int] = dataclasses.field(default_factory=dict)


_AMOUNTS = _Amounts()


def currency_scales(spec: str | None) -> dict[str, int]:
    """Decimal places per currency code, from a TALLY_CURRENCIES value (`USD:6:2,...`) or the default."""
    return {code: c.scale for code, c in parse_currencies(spec or DEFAULT_CURRENCIES).items()}


@contextlib.contextmanager
def use_amounts(*, atomic: bool, scales: dict[str, int]) -> Iterator[None]:
    """How amounts are shown while one invocation runs: atomic counts, or each currency's units for people;
    atomic again afterwards (tests run many invocations in one process)."""
    _AMOUNTS.atomic, _AMOUNTS.scales = atomic, dict(scales)
    try:
        yield
    finally:
        _AMOUNTS.atomic, _AMOUNTS.scales = True, {}


def people(scale: int | None) -> bool:
    """Whether amounts are shown in currency units: neither --atomic nor an explicit --scale."""
    return scale is None and not _AMOUNTS.atomic


def units(value: int, currency: str) -> str:
    """`value` in the currency's units without its code (`1.234567`); a currency this CLI does not know keeps
    its atomic count with a `?` (`1234567?`), never a guessed scale."""
    scale = _AMOUNTS.scales.get(currency)
    return f"{value}?" if scale is None else format_decimal(value, scale)


def money_text(value: int, currency: str) -> str:
    """`1.234567 USD`."""
    return f"{units(value, currency)} {currency}"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).splitlines())


def _is_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Iterable[str] = ()) -> str:
    """An aligned plain-text table: a header, a rule, one line per row.

    A column is right-aligned when it is named in `numeric` or every non-empty cell in it is an int.
    """
    rows = [list(row) for row in rows]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} cells, expected {len(columns)}: {row!r}")
    named = set(numeric)
    right = []
    for i, column in enumerate(columns):
        filled = [row[i] for row in rows if row[i] is not None and row[i] != ""]
        right.append(column in named or (bool(filled) and all(_is_number(v) for v in filled)))
    text = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(column), *(len(row[i]) for row in text)]) for i, column in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(row) for row in text)])


def rollup_text(rollup, scale: int | None) -> str:
    """One currency of a subtree: the account's own balance, its descendants' and the total."""
    names = ("own", "descendants", "total", "total_locked")
    return f"subtree ({rollup.currency}, {rollup.descendant_accounts} accounts under it)\n" + format_fields(
        [(name, amount_text(getattr(rollup, name), scale, rollup.currency)) for name in names])


def format_fields(pairs: Iterable[tuple[str, object]]) -> str:
    """`name  value` lines with the names padded to one width; empty values show as `-`."""
    pairs = [(name, _cell(value) or "-") for name, value in pairs]
    width = max((len(name) for name, _ in pairs), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in pairs)


def timestamp_text(ts) -> str:
    return ts.ToJsonString() if (ts.seconds or ts.nanos) else ""


def metadata_text(metadata) -> str:
    return ", ".join(f"{key}={metadata[key]}" for key in sorted(metadata))


# ---------------------------------------------------------------------------------------------- messages


def account_fields(account: types_pb2.Account) -> list[tuple[str, object]]:
    return [
        ("id", account.id), ("tenant", account.tenant_id), ("code", account.code), ("name", account.name),
        ("type", enum_label(types_pb2.AccountType, account.type)),
        ("normal_side", enum_label(types_pb2.Side, account.normal_side)),
        ("currency", account.currency), ("status", enum_label(types_pb2.AccountStatus, account.status)),
        ("parent_id", account.parent_id), ("credit_limit", amount_text(account.credit_limit, None, account.currency)),
        ("floor_policy", enum_label(types_pb2.FloorPolicy, account.floor_policy)),
        ("metadata", metadata_text(account.metadata)),
        ("create_time", timestamp_text(account.create_time)), ("update_time", timestamp_text(account.update_time)),
    ]


def balance_fields(balance: types_pb2.Balance, scale: int | None, account: str | None = None,
                   ) -> list[tuple[str, object]]:
    """The balance's fields; for people (see use_amounts) the account by `account` (its code) when given."""
    amounts = ("current", "locked", "available", "credit_limit", "previous_day")
    named = ("account", account) if account and people(scale) else ("account_id", balance.account_id)
    return [
        named, ("currency", balance.currency),
        *((name, amount_text(getattr(balance, name), scale, balance.currency)) for name in amounts),
        ("previous_day_date", balance.previous_day_date), ("accounting_date", balance.accounting_date),
        ("entry_count", balance.entry_count),
        *((("previous_statement", amount_text(balance.previous_statement_balance, scale, balance.currency)),
           ("previous_statement_date", balance.previous_statement_date)) if balance.previous_statement_date else ()),
    ]


def _with_decimals(columns: list[str], amounts: Sequence[str], scale: int | None) -> tuple[list[str], list[str]]:
    """Adds a `<name>_dec` column after each amount column when a scale is given."""
    if scale is None:
        return columns, list(amounts)
    out: list[str] = []
    for column in columns:
        out += [column, f"{column}_dec"] if column in amounts else [column]
    return out, [*amounts, *(f"{a}_dec" for a in amounts)]


def amount_cells(value: int, scale: int | None, currency: str = "") -> list[object]:
    """A table's cells for one amount: the count, the count and its decimals (--scale), or the units."""
    if people(scale) and currency:
        return [units(value, currency)]
    return [value] if scale is None else [value, format_decimal(value, scale)]


def accounts_table(accounts: Iterable[types_pb2.Account]) -> str:
    if people(None):  # codes and names; the ids are in --atomic and --json
        rows = [[a.code, a.name, enum_label(types_pb2.AccountType, a.type), a.currency,
                 enum_label(types_pb2.AccountStatus, a.status), units(a.credit_limit, a.currency)] for a in accounts]
        return format_table(["code", "name", "type", "currency", "status", "credit_limit"], rows,
                            numeric=["credit_limit"])
    columns = ["id", "code", "type", "currency", "status", "credit_limit", "name"]
    rows = [[a.id, a.code, enum_label(types_pb2.AccountType, a.type), a.currency,
             enum_label(types_pb2.AccountStatus, a.status), a.credit_limit, a.name] for a in accounts]
    return format_table(columns, rows, numeric=["credit_limit"])


def entries_table(entries: Iterable[types_pb2.Entry], scale: int | None, *, accounts: bool = False) -> str:
    """An account's entries; with `accounts`, a subtree's, each naming its account by code."""
    columns, numeric = _with_decimals(
        ["#", *(["account"] if accounts else []), "date", "voucher_id", "side", "amount", "currency",
         "balance_after", "flow", "memo"],
        ["amount", "balance_after"], scale)
    rows = [[e.entry_number, *([e.account_code or e.account_id] if accounts else []), e.accounting_date,
             e.voucher_id, enum_label(types_pb2.Side, e.side),
             *amount_cells(e.amount, scale, e.currency), e.currency,
             *amount_cells(e.balance_after, scale, e.currency),
             e.flow_type, e.memo] for e in entries]
    return format_table(columns, rows, numeric=["#", *numeric])


def voucher_lines_table(lines: Iterable[types_pb2.VoucherLine], scale: int | None) -> str:
    if people(scale):  # the account by its code; the id is in --atomic and --json
        rows = [[line.line_no, line.account_code or line.account_id, enum_label(types_pb2.Side, line.side),
                 units(line.amount, line.currency), line.currency, line.memo] for line in lines]
        return format_table(["line", "account", "side", "amount", "currency", "memo"], rows,
                            numeric=["line", "amount"])
    columns, numeric = _with_decimals(["line", "account_code", "account_id", "side", "amount", "currency", "memo"],
                                      ["amount"], scale)
    rows = [[line.line_no, line.account_code, line.account_id, enum_label(types_pb2.Side, line.side),
             *amount_cells(line.amount, scale), line.currency, line.memo] for line in lines]
    return format_table(columns, rows, numeric=["line", *numeric])


def voucher_text(voucher: types_pb2.Voucher, scale: int | None) -> str:
    fields = format_fields([
        ("id", voucher.id), ("tenant", voucher.tenant_id), ("sequence", voucher.sequence),
        ("flow_type", voucher.flow_type),
        ("accounting_date", voucher.accounting_date), ("effective_time", timestamp_text(voucher.effective_time)),
        ("post_time", timestamp_text(voucher.post_time)), ("request_id", voucher.request_id),
        ("memo", voucher.memo), ("metadata", metadata_text(voucher.metadata)),
        ("reverses", voucher.reverses_voucher_id), ("reversed_by", voucher.reversed_by_voucher_id),
        ("rule", f"{voucher.rule_id} {voucher.rule_set_version}".strip()), ("hash", voucher.hash),
    ])
    return f"{fields}\n\n{voucher_lines_table(voucher.lines, scale)}"


def debit_total(voucher: types_pb2.Voucher) -> tuple[int | None, str]:
    """The voucher's debit total and its currency; no total when the lines are in several currencies."""
    currencies = sorted({line.currency for line in voucher.lines})
    if len(currencies) != 1:
        return None, ",".join(currencies)
    return sum(line.amount for line in voucher.lines if line.side == types_pb2.SIDE_DEBIT), currencies[0]


def vouchers_table(vouchers: Iterable[types_pb2.Voucher], scale: int | None) -> str:
    columns, numeric = _with_decimals(
        ["seq", "id", "flow", "date", "lines", "debits", "currency", "reversed_by", "memo"], ["debits"], scale)
    rows = []
    for v in vouchers:
        total, currency = debit_total(v)
        if people(scale):
            debits = [None if total is None else units(total, currency)]
        elif scale is None:
            debits = [total]
        else:
            debits = [total, None if total is None else format_decimal(total, scale)]
        rows.append([v.sequence, v.id, v.flow_type, v.accounting_date, len(v.lines), *debits, currency,
                     v.reversed_by_voucher_id, v.memo])
    return format_table(columns, rows, numeric=["seq", "lines", *numeric])
