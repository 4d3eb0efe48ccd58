"""The pure text helpers of the `tally` command line: tables, decimals, account refs and argument parsing."""

from __future__ import annotations

import pytest

from tally.cli import format as fmt
from tally.v1 import types_pb2

UUID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

# ---------------------------------------------------------------------------------------------- tables


def test_table_aligns_columns_and_right_aligns_numbers():
    text = fmt.format_table(["code", "amount", "memo"], [["alice", 5, "lunch"], ["bob", 1234567, ""]])
    assert text.splitlines() == [
        "code    amount  memo",
        "-----  -------  -----",
        "alice        5  lunch",
        "bob    1234567",
    ]


def test_table_right_aligns_named_numeric_columns_holding_strings():
    text = fmt.format_table(["amount_dec"], [["1.5"], ["-0.25"]], numeric=["amount_dec"])
    assert text.splitlines() == ["amount_dec", "----------", "       1.5", "     -0.25"]


def test_table_column_with_any_text_is_left_aligned():
    text = fmt.format_table(["code"], [[7], ["x"]])
    assert text.splitlines()[2:] == ["7", "x"]


def test_table_without_rows_prints_header_and_rule():
    assert fmt.format_table(["id", "amount"], []) == "id  amount\n--  ------"


def test_table_cells_none_bool_and_newlines():
    text = fmt.format_table(["a", "b", "c"], [[None, True, "two\nlines"], ["x", False, "y"]])
    assert text.splitlines()[2:] == ["   yes  two lines", "x  no   y"]


def test_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="expected 2"):
        fmt.format_table(["a", "b"], [[1]])


def test_fields_pad_names_and_mark_empty_values():
    assert fmt.format_fields([("id", "x"), ("parent_id", ""), ("credit_limit", 0)]) == (
        "id            x\nparent_id     -\ncredit_limit  0")


# ---------------------------------------------------------------------------------------------- decimals


@pytest.mark.parametrize(("value", "scale", "text"), [
    (1234567, 6, "1.234567"),
    (1234567, 2, "12345.67"),
    (5, 6, "0.000005"),
    (0, 6, "0.000000"),
    (1000000, 6, "1.000000"),
    (-1234567, 6, "-1.234567"),
    (-5, 6, "-0.000005"),
    (-1, 1, "-0.1"),
    (1234567, 0, "1234567"),
    (-1234567, 0, "-1234567"),
    (0, 0, "0"),
    (2**63 - 1, 18, "9.223372036854775807"),
    (-(2**63), 18, "-9.223372036854775808"),
    (10**30 + 1, 18, "1000000000000.000000000000000001"),  # beyond float precision: exact
])
def test_format_decimal(value, scale, text):
    assert fmt.format_decimal(value, scale) == text


def test_format_decimal_uses_no_float(monkeypatch):
    import builtins

    def no_float(*_args):
        raise AssertionError("float used")

    monkeypatch.setattr(builtins, "float", no_float)
    assert fmt.format_decimal(-987654321, 4) == "-98765.4321"


@pytest.mark.parametrize("value", [1.5, "12", True, None])
def test_format_decimal_rejects_non_int_values(value):
    with pytest.raises(TypeError):
        fmt.format_decimal(value, 2)


@pytest.mark.parametrize("scale", [-1, 1.0, True])
def test_format_decimal_rejects_bad_scales(scale):
    with pytest.raises(ValueError):
        fmt.format_decimal(100, scale)


def test_amount_text_adds_the_decimal_only_with_a_scale():
    assert fmt.amount_text(1234567, None) == "1234567"
    assert fmt.amount_text(-1234567, 6) == "-1234567 (-1.234567)"


def test_parse_scale():
    assert fmt.parse_scale("0") == 0
    assert fmt.parse_scale("18") == 18
    for bad in ("-1", "19", "1.5", "x", ""):
        with pytest.raises(ValueError, match="scale"):
            fmt.parse_scale(bad)


# ---------------------------------------------------------------------------------------------- account refs


@pytest.mark.parametrize("text", [UUID, UUID.upper(), "00000000-0000-0000-0000-000000000000"])
def test_uuid_like_text_is_an_id(text):
    assert fmt.looks_like_uuid(text)
    ref = fmt.account_ref(text)
    assert ref.WhichOneof("ref") == "id"
    assert ref.id == text


@pytest.mark.parametrize("text", [
    "alice",
    "cash:usd",
    UUID[:-1],  # 35 characters
    UUID + "0",  # 37 characters
    UUID.replace("-", ""),  # no dashes
    "0190a1b2c-3d4-7e5f-8a9b-0c1d2e3f4a5b",  # a dash in the wrong place
    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g",  # not hex
    "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
    "customer-0001-0000-0000-000000000000",  # a code shaped like a uuid but not hex
])
def test_anything_else_is_a_code(text):
    assert not fmt.looks_like_uuid(text)
    ref = fmt.account_ref(text)
    assert ref.WhichOneof("ref") == "code"
    assert ref.code == text


def test_empty_account_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        fmt.account_ref("")


# ---------------------------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("1500000", 1500000), ("007", 7), (str(2**63 - 1), 2**63 - 1)])
def test_parse_amount_accepts_positive_integers(text, value):
    assert fmt.parse_amount(text) == value
    assert type(fmt.parse_amount(text)) is int


@pytest.mark.parametrize("text", ["1.5", "1.0", "1,5", ".5", "abc", "", " 5", "5 ", "+5", "1e3", "1_000", "0x10",
                                  "٣", "inf", "nan"])
def test_parse_amount_rejects_anything_but_digits(text):
    with pytest.raises(ValueError, match="integer count of atomic units"):
        fmt.parse_amount(text)


def test_parse_amount_explains_the_decimal_point():
    with pytest.raises(ValueError, match="no decimal point"):
        fmt.parse_amount("1.5")


@pytest.mark.parametrize("text", ["-3", "0", "-0"])
def test_parse_amount_is_positive_by_default(text):
    with pytest.raises(ValueError, match="must be positive"):
        fmt.parse_amount(text)


def test_parse_amount_with_minimum_zero_allows_zero_but_not_negatives():
    assert fmt.parse_amount("0", minimum=0) == 0
    with pytest.raises(ValueError, match="credit limit must be zero or more, got -3"):
        fmt.parse_amount("-3", minimum=0, what="credit limit")


def test_parse_amount_allows_negatives_only_when_asked():
    assert fmt.parse_amount("-3", minimum=-(2**63)) == -3


def test_parse_amount_rejects_values_beyond_int64():
    with pytest.raises(ValueError, match="at most 9223372036854775807"):
        fmt.parse_amount(str(2**63))


# ---------------------------------------------------------------------------------------------- other arguments


def test_parse_line():
    line = fmt.parse_line("debit:cash:10:usd")
    assert (line.account.code, line.side, line.amount, line.currency) == ("cash", types_pb2.SIDE_DEBIT, 10, "USD")
    line = fmt.parse_line(f"CREDIT:{UUID}:5:USD")
    assert (line.account.id, line.side) == (UUID, types_pb2.SIDE_CREDIT)
    assert fmt.parse_line("credit:a:b:7:USD").account.code == "a:b"


@pytest.mark.parametrize("text", ["debit:cash:10", "sideways:cash:10:USD", "debit::10:USD", "debit:cash:10:",
                                  "debit:cash:1.5:USD", "credit:cash:-1:USD"])
def test_parse_line_rejects_malformed_lines(text):
    with pytest.raises(ValueError):
        fmt.parse_line(text)


def test_parse_meta():
    assert fmt.parse_meta("k=v") == ("k", "v")
    assert fmt.parse_meta("k=a=b") == ("k", "a=b")
    assert fmt.parse_meta("k=") == ("k", "")
    for bad in ("k", "=v"):
        with pytest.raises(ValueError, match="key=value"):
            fmt.parse_meta(bad)


def test_parse_iso_date():
    assert fmt.parse_iso_date("2024-02-29") == "2024-02-29"
    for bad in ("2023-02-29", "20240101", "2024-1-1", "yesterday"):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            fmt.parse_iso_date(bad)


def test_enum_labels_round_trip():
    assert fmt.enum_labels(types_pb2.AccountType) == ["deposit", "credit", "security_deposit", "internal"]
    assert fmt.enum_value(types_pb2.AccountType, "security_deposit") == types_pb2.ACCOUNT_TYPE_SECURITY_DEPOSIT
    assert fmt.enum_label(types_pb2.FloorPolicy, types_pb2.FLOOR_POLICY_NON_NEGATIVE) == "non_negative"
    assert fmt.enum_label(types_pb2.Side, 99) == "99"


# ---------------------------------------------------------------------------------------------- messages


def test_vouchers_table_totals_debits_per_currency():
    lines = [types_pb2.VoucherLine(line_no=1, side=types_pb2.SIDE_DEBIT, amount=1500000, currency="USD"),
             types_pb2.VoucherLine(line_no=2, side=types_pb2.SIDE_CREDIT, amount=1500000, currency="USD")]
    mixed = [types_pb2.VoucherLine(line_no=1, side=types_pb2.SIDE_DEBIT, amount=1, currency="EUR"),
             types_pb2.VoucherLine(line_no=2, side=types_pb2.SIDE_CREDIT, amount=1, currency="USD")]
    vouchers = [types_pb2.Voucher(sequence=1, id="v1", lines=lines),
                types_pb2.Voucher(sequence=2, id="v2", lines=mixed)]
    rows = fmt.vouchers_table(vouchers, 6).splitlines()
    assert rows[0].split() == ["seq", "id", "flow", "date", "lines", "debits", "debits_dec", "currency",
                               "reversed_by", "memo"]
    assert rows[2].split() == ["1", "v1", "2", "1500000", "1.500000", "USD"]
    assert rows[3].split() == ["2", "v2", "2", "EUR,USD"]


def test_balance_fields_show_decimals_with_a_scale():
    balance = types_pb2.Balance(current=-250, available=0, entry_count=3)
    fields = dict(fmt.balance_fields(balance, 2))
    assert fields["current"] == "-250 (-2.50)"
    assert fields["available"] == "0 (0.00)"
    assert fields["entry_count"] == 3
    assert dict(fmt.balance_fields(balance, None))["current"] == "-250"


def test_accounts_and_vouchers_show_their_tenant():
    account = dict(fmt.account_fields(types_pb2.Account(id="A1", tenant_id="acme", code="cash")))
    assert account["tenant"] == "acme"
    text = fmt.voucher_text(types_pb2.Voucher(id="V1", tenant_id="acme", sequence=1), None)
    assert text.splitlines()[1].split() == ["tenant", "acme"]
