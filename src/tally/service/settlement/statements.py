"""Statement files -> `Statement`: CSV with a column mapping, and ISO 20022 camt.053 XML parsed with
defusedxml (no DTD, no entities, no external references). A file is read whole before anything is
imported: one bad line refuses it, naming the line and field, so nothing is half imported."""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import re
from dataclasses import dataclass
from xml.etree import ElementTree

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from tally.domain.errors import invalid
from tally.domain.limits import AMOUNT_MAX
from tally.domain.money import Currency
from tally.domain.reconciliation import Statement, StatementLine

STATEMENT_SIZE_BYTES_MAX = 2 * 1024 * 1024
STATEMENT_LINES_MAX = 10_000
TEXT_CHARS_MAX = 256
STATEMENT_ID_CHARS_MAX = 128
_ID = re.compile(r"^[A-Za-z0-9_.:/@-]{1,128}$")
_DECIMAL = re.compile(r"^([+-]?)(\d{1,19})(?:\.(\d+))?$")


class StatementFormat(enum.Enum):
    CSV = "csv"
    CAMT053 = "camt053"


@dataclass(frozen=True)
class CsvColumns:
    reference: str = "reference"
    amount: str = "amount"
    value_date: str = "date"
    line_id: str = "id"
    description: str = "description"


def malformed(message: str, line: int, field: str) -> Exception:
    return invalid("STATEMENT_MALFORMED", f"line {line}, {field}: {message}; nothing was imported",
                   line=line, field=field)


def check_size(content: bytes) -> None:
    if not content:
        raise invalid("STATEMENT_EMPTY", "the statement file is empty")
    if len(content) > STATEMENT_SIZE_BYTES_MAX:
        raise invalid("STATEMENT_TOO_LARGE", f"a statement file is at most {STATEMENT_SIZE_BYTES_MAX} bytes; "
                      "nothing was imported", size_bytes_max=STATEMENT_SIZE_BYTES_MAX)


def parse_amount(text: str, currency: Currency, line: int, field: str) -> int:
    """A signed decimal in the currency's major unit -> atomic units, exactly (no float)."""
    found = _DECIMAL.fullmatch(text.strip())
    if found is None:
        raise malformed(f"{text!r} is not a decimal amount", line, field)
    sign, whole, fraction = found.group(1), found.group(2), found.group(3) or ""
    if len(fraction) > currency.scale:
        raise malformed(f"{text!r} has more than {currency.scale} decimals for {currency.code}", line, field)
    units = int(whole) * 10**currency.scale + int(fraction.ljust(currency.scale, "0") or "0")
    if units > AMOUNT_MAX:
        raise malformed(f"{text!r} is too large", line, field)
    return -units if sign == "-" else units


def parse_date(text: str, line: int, field: str) -> str:
    try:
        return dt.date.fromisoformat(text.strip()[:10]).isoformat()
    except ValueError:
        raise malformed(f"{text!r} is not a date (YYYY-MM-DD)", line, field) from None


def check_statement_id(statement_id: str) -> str:
    if not _ID.fullmatch(statement_id or ""):
        raise invalid("STATEMENT_ID_INVALID", "a statement id is 1 to 128 letters, digits or _.:/@-",
                      field="statement_id")
    return statement_id


def _text(value: str, line: int, field: str) -> str:
    value = value.strip()
    if len(value) > TEXT_CHARS_MAX or "\x00" in value:
        raise malformed(f"longer than {TEXT_CHARS_MAX} characters or not text", line, field)
    return value


def _check_lines_count(count: int) -> None:
    if count > STATEMENT_LINES_MAX:
        raise invalid("STATEMENT_TOO_LARGE", f"a statement has at most {STATEMENT_LINES_MAX} lines; nothing was "
                      "imported", lines_max=STATEMENT_LINES_MAX)


# ------------------------------------------------------------------------------------------------ CSV


def parse_csv(content: bytes, currency: Currency, statement_id: str, columns: CsvColumns,
              closing_balance: int | None) -> Statement:
    check_size(content)
    check_statement_id(statement_id)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise malformed("not UTF-8", text_line(content, exc.start), "encoding") from None
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(rows, None)
        if header is None:
            raise invalid("STATEMENT_EMPTY", "the statement file is empty")
        index = _columns(header, columns)
        lines = []
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            _check_lines_count(len(lines) + 1)
            lines.append(_csv_line(row, index, rows.line_num, currency))
    except csv.Error as exc:
        raise malformed(str(exc), rows.line_num, "csv") from None
    return Statement(statement_id, currency.code, tuple(lines), closing_balance=closing_balance)


def text_line(content: bytes, offset: int) -> int:
    return content.count(b"\n", 0, offset) + 1


def _columns(header: list[str], columns: CsvColumns) -> dict[str, int]:
    names = [h.strip() for h in header]
    index: dict[str, int] = {}
    for field, required in (("reference", True), ("amount", True), ("value_date", True), ("line_id", False),
                            ("description", False)):
        name = getattr(columns, field) or getattr(CsvColumns(), field)
        if name in names:
            index[field] = names.index(name)
        elif required:
            raise malformed(f"no column {name!r} in the header (columns: {', '.join(names)})", 1, field)
    return index


def _csv_line(row: list[str], index: dict[str, int], line: int, currency: Currency) -> StatementLine:
    def cell(field: str) -> str:
        position = index.get(field)
        if position is None:
            return ""
        if position >= len(row):
            raise malformed("the row has too few columns", line, field)
        return row[position]

    return StatementLine(
        line_no=line, reference=_text(cell("reference"), line, "reference"),
        amount=parse_amount(cell("amount"), currency, line, "amount"),
        value_date=parse_date(cell("value_date"), line, "value_date"),
        line_id=_text(cell("line_id"), line, "line_id"), description=_text(cell("description"), line, "description"))


# ------------------------------------------------------------------------------------------ camt.053


class _LineTreeBuilder(ElementTree.TreeBuilder):
    """Remembers the line each element starts on, so an error can name it."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: DefusedXMLParser | None = None
        self.lines: dict[int, int] = {}

    def start(self, tag, attrs):
        element = super().start(tag, attrs)
        self.lines[id(element)] = self.parser.parser.CurrentLineNumber if self.parser else 0
        return element


def parse_camt053(content: bytes, currency: Currency) -> Statement:
    check_size(content)
    builder = _LineTreeBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder.parser = parser
    try:
        parser.feed(content)
        root = parser.close()
    except ElementTree.ParseError as exc:
        raise malformed(f"not well-formed XML ({exc})", exc.position[0], "xml") from None
    except DefusedXmlException as exc:
        raise invalid("STATEMENT_MALFORMED", f"refused XML construct ({type(exc).__name__}); nothing was imported",
                      field="xml") from None
    return _Camt(builder.lines, currency).statement(root)


class _Camt:
    def __init__(self, lines: dict[int, int], currency: Currency) -> None:
        self.lines, self.currency = lines, currency

    def line(self, element) -> int:
        return self.lines.get(id(element), 0)

    def statement(self, root) -> Statement:
        stmt = _find(root, "BkToCstmrStmt", "Stmt")
        if stmt is None:
            raise malformed("no BkToCstmrStmt/Stmt: not a camt.053 statement", self.line(root), "Stmt")
        statement_id = check_statement_id(self.required_text(stmt, "Id"))
        entries = _children(stmt, "Ntry")
        _check_lines_count(len(entries))
        balances = {self.balance_code(b): b for b in _children(stmt, "Bal")}
        start = _find(stmt, "FrToDt", "FrDtTm")
        end = _find(stmt, "FrToDt", "ToDtTm")
        return Statement(
            statement_id, self.currency.code, tuple(self.entry(n) for n in entries),
            closing_balance=self.amount_of(balances["CLBD"]) if "CLBD" in balances else None,
            opening_balance=self.amount_of(balances["OPBD"]) if "OPBD" in balances else None,
            start_date=parse_date(start.text or "", self.line(start), "FrDtTm") if start is not None else "",
            end_date=parse_date(end.text or "", self.line(end), "ToDtTm") if end is not None else "")

    def balance_code(self, bal) -> str:
        code = _find(bal, "Tp", "CdOrPrtry", "Cd")
        return (code.text or "").strip() if code is not None else ""

    def entry(self, ntry) -> StatementLine:
        line = self.line(ntry)
        date = _first(_find(ntry, "ValDt", "Dt"), _find(ntry, "BookgDt", "Dt"))
        if date is None:
            raise malformed("an entry needs ValDt/Dt or BookgDt/Dt", line, "ValDt")
        reference = _first(_find(ntry, "NtryDtls", "TxDtls", "Refs", "EndToEndId"), _find(ntry, "NtryRef"),
                           _find(ntry, "AcctSvcrRef"))
        info = _first(_find(ntry, "NtryDtls", "TxDtls", "RmtInf", "Ustrd"), _find(ntry, "AddtlNtryInf"))
        line_id = _find(ntry, "AcctSvcrRef")
        return StatementLine(
            line_no=line, reference=_text(_value(reference), line, "EndToEndId"), amount=self.amount_of(ntry),
            value_date=parse_date(date.text or "", self.line(date), "ValDt"),
            line_id=_text(_value(line_id), line, "AcctSvcrRef"), description=_text(_value(info), line, "Ustrd"))

    def amount_of(self, element) -> int:
        """Amt with its currency and CdtDbtInd: a credit to the account holder is positive."""
        amt = _find(element, "Amt")
        if amt is None:
            raise malformed("missing Amt", self.line(element), "Amt")
        line = self.line(amt)
        if amt.get("Ccy") != self.currency.code:
            raise malformed(f"currency {amt.get('Ccy')!r} is not the account's {self.currency.code}", line, "Amt/@Ccy")
        units = parse_amount(amt.text or "", self.currency, line, "Amt")
        if units < 0:
            raise malformed("Amt is unsigned; CdtDbtInd gives the direction", line, "Amt")
        found = _find(element, "CdtDbtInd")
        indicator = _value(found)
        if indicator not in ("CRDT", "DBIT"):
            raise malformed(f"CdtDbtInd is {indicator!r}, not CRDT or DBIT",
                            self.line(element if found is None else found), "CdtDbtInd")
        return units if indicator == "CRDT" else -units

    def required_text(self, element, name: str) -> str:
        found = _find(element, name)
        if found is None or not (found.text or "").strip():
            raise malformed(f"missing {name}", self.line(element), name)
        return found.text.strip()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element, name: str) -> list:
    return [child for child in element if _local(child.tag) == name]


def _find(element, *path: str):
    """The first descendant along `path` of local names (any namespace: camt.053.001.02 to .13)."""
    for name in path:
        found = _children(element, name)
        if not found:
            return None
        element = found[0]
    return element


def _first(*elements):
    """The first element that exists (an Element without children is falsy: never test it with `or`)."""
    return next((e for e in elements if e is not None), None)


def _value(element) -> str:
    return (element.text or "").strip() if element is not None else ""
