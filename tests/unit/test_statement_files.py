"""Statement files: CSV with a column mapping and camt.053, exact decimal amounts, bounds, and refusals
that name the line and field."""

from __future__ import annotations

import pytest

from tally.domain.errors import LedgerError
from tally.domain.money import Currency
from tally.service.settlement.statements import (
    STATEMENT_SIZE_BYTES_MAX,
    CsvColumns,
    parse_amount,
    parse_camt053,
    parse_csv,
)

USD = Currency("USD", 6, 2)
JPY = Currency("JPY", 3, 0)


def refused(call) -> LedgerError:
    with pytest.raises(LedgerError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("text, currency, units", [
    ("12.50", USD, 12_500_000), ("-0.000001", USD, -1), ("+3", USD, 3_000_000), ("7", JPY, 7_000),
    ("0.001", JPY, 1)])
def test_amounts_are_exact(text, currency, units):
    assert parse_amount(text, currency, 1, "amount") == units


@pytest.mark.parametrize("text", ["1e3", "1,50", "0.0000001", "", ".5", "12.", "NaN", "1" * 20])
def test_amounts_that_are_refused(text):
    error = refused(lambda: parse_amount(text, USD, 9, "amount"))
    assert (error.reason, error.metadata) == ("STATEMENT_MALFORMED", {"line": "9", "field": "amount"})


def test_csv_with_a_column_mapping_and_blank_lines():
    content = "\ufeffWhen,Ref,Value,Note\n2026-12-07,A,1.25,x\n\n2026-12-08,B,-2,\n".encode()
    s = parse_csv(content, USD, "s1", CsvColumns(reference="Ref", amount="Value", value_date="When",
                                                 description="Note"), 5)
    assert [(ln.line_no, ln.reference, ln.amount, ln.value_date, ln.description) for ln in s.lines] == [
        (2, "A", 1_250_000, "2026-12-07", "x"), (4, "B", -2_000_000, "2026-12-08", "")]
    assert s.period() == ("2026-12-07", "2026-12-08") and s.closing_balance == 5


@pytest.mark.parametrize("content, reason", [
    (b"", "STATEMENT_EMPTY"), (b"x" * (STATEMENT_SIZE_BYTES_MAX + 1), "STATEMENT_TOO_LARGE"),
    (b"reference,amount,date\n" + b"r,1,2026-12-07\n" * 10_001, "STATEMENT_TOO_LARGE"),
    (b"reference,amount,date\n\xff,1,2026-12-07\n", "STATEMENT_MALFORMED"),
    (b'reference,amount,date\n"unclosed,1,2026-12-07\n', "STATEMENT_MALFORMED")])
def test_csv_refusals(content, reason):
    assert refused(lambda: parse_csv(content, USD, "s1", CsvColumns(), None)).reason == reason


def test_a_statement_id_is_checked():
    assert refused(lambda: parse_csv(b"reference,amount,date\n", USD, "bad id", CsvColumns(), None)).reason == \
        "STATEMENT_ID_INVALID"


CAMT = b"""<?xml version="1.0"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>
<Id>S-9</Id>
<FrToDt><FrDtTm>2026-12-01T00:00:00Z</FrDtTm><ToDtTm>2026-12-31T23:59:59Z</ToDtTm></FrToDt>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">1.00</Amt><CdtDbtInd>DBIT</CdtDbtInd></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">9.50</Amt><CdtDbtInd>CRDT</CdtDbtInd></Bal>
<Ntry><Amt Ccy="USD">10.50</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-12-02</Dt></BookgDt>
<NtryRef>N-1</NtryRef><AddtlNtryInf>card batch</AddtlNtryInf></Ntry>
</Stmt></BkToCstmrStmt></Document>"""


def test_camt053_statement_balances_and_entries():
    s = parse_camt053(CAMT, USD)
    assert (s.statement_id, s.opening_balance, s.closing_balance) == ("S-9", -1_000_000, 9_500_000)
    assert s.period() == ("2026-12-01", "2026-12-31")
    (ln,) = s.lines
    assert (ln.line_no, ln.reference, ln.amount, ln.value_date, ln.description) == (
        7, "N-1", 10_500_000, "2026-12-02", "card batch")


@pytest.mark.parametrize("content, line, field", [
    (CAMT.replace(b'<Amt Ccy="USD">10.50', b'<Amt Ccy="EUR">10.50'), "7", "Amt/@Ccy"),
    (CAMT.replace(b"<BookgDt><Dt>2026-12-02</Dt></BookgDt>", b""), "7", "ValDt"),
    (CAMT.replace(b"<Id>S-9</Id>", b""), "2", "Id"),
    (CAMT.replace(b"</Stmt>", b""), "9", "xml"),
])
def test_camt053_refusals_name_line_and_field(content, line, field):
    error = refused(lambda: parse_camt053(content, USD))
    assert (error.reason, error.metadata["line"], error.metadata["field"]) == ("STATEMENT_MALFORMED", line, field)


@pytest.mark.parametrize("content", [
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><d>&b;</d>',
    b'<?xml version="1.0"?><!DOCTYPE d SYSTEM "http://example.invalid/x.dtd"><d/>',
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>'])
def test_camt053_refuses_dtds_and_entities(content):
    assert refused(lambda: parse_camt053(content, USD)).reason == "STATEMENT_MALFORMED"


def test_statement_layouts_in_the_rule_set():
    from tally.rules import load_default_rule_set, parse_rule_set
    from tally.rules.loader import RuleSetError

    assert load_default_rule_set().statements["channel_settlement_report"]["amount"] == "net_amount"
    text = resources_text()
    rules = parse_rule_set(text + '\n[statements.bank_csv]\nreference = "Ref"\namount = "Betrag"\n')
    assert rules.statements["bank_csv"] == {"reference": "Ref", "amount": "Betrag"}
    for bad, where in (('\n[statements.bank_csv]\nreferenz = "Ref"\n', "statements.bank_csv.referenz"),
                       ('\n[statements.Bank]\nreference = "Ref"\n', "statements.Bank"),
                       ('\n[statements.bank_csv]\namount = 3\n', "statements.bank_csv.amount")):
        with pytest.raises(RuleSetError) as caught:
            parse_rule_set(text + bad)
        assert where in str(caught.value)


def resources_text() -> str:
    from importlib import resources

    return resources.files("tally.rules").joinpath("default.toml").read_text(encoding="utf-8")
