"""The console's rendering helpers (amounts in currency units, escaping by default, the voucher drawing) and
its setting."""

from __future__ import annotations

import re

import pytest

from tally.config import ConfigError, Settings
from tally.console.html import Html, el, href
from tally.console.login import safe_next
from tally.console.money import amount, when
from tally.console.svg import STROKE_MAX, STROKE_MIN, voucher_svg
from tally.domain.accounts import Side
from tally.domain.money import parse_currencies
from tally.domain.vouchers import PostedLine, Voucher

CURRENCIES = parse_currencies("USD:6:2,JPY:0:0,BHD:3:3")


@pytest.mark.parametrize(("units", "currency", "shown"), [
    (12_345_678, "USD", "12.345678 USD"),
    (-5, "USD", "-0.000005 USD"),
    (0, "USD", "0.000000 USD"),
    (1500, "JPY", "1500 JPY"),
    (1_234, "BHD", "1.234 BHD"),
    (9_223_372_036_854_775_807, "USD", "9223372036854.775807 USD"),
    (42, "XYZ", "42 XYZ"),  # a currency this server does not count: atomic units
])
def test_amounts_are_shown_in_the_currency_units_with_the_code(units: int, currency: str, shown: str) -> None:
    assert amount(units, currency, CURRENCIES) == shown


def test_times_are_utc_and_none_is_empty() -> None:
    assert when(1_796_515_200_000_000) == "2026-12-06 00:00:00 UTC"
    assert when(0) == "" and when(None) == ""


def test_text_and_attributes_are_escaped_unless_already_markup() -> None:
    page = el("p", "<script>alert(1)</script>", el("b", "&"), title='"quoted"', class_="x", data_n=3, hidden=True)
    assert page == ('<p title="&quot;quoted&quot;" class="x" data-n="3" hidden>'
                    "&lt;script&gt;alert(1)&lt;/script&gt;<b>&amp;</b></p>")
    assert isinstance(page, Html)
    assert href("/holds", state="active", page="") == "/holds?state=active"


@pytest.mark.parametrize(("asked", "kept"), [
    ("/accounts/alice?size=1", "/accounts/alice?size=1"), ("//evil.example/x", "/"),
    ("https://evil.example/", "/"), ("/\\evil", "/"), ("", "/"),
    ("/x\r\nSet-Cookie: a=b", "/"), ("/a b", "/")])
def test_after_sign_in_only_a_local_path_is_followed(asked: str, kept: str) -> None:
    assert safe_next(asked) == kept


def test_voucher_drawing_has_one_path_per_line_sized_by_amount() -> None:
    lines = (PostedLine(1, "a" * 36, "bank", Side.DEBIT, 1_000_000, "USD", "", 1, 0),
             PostedLine(2, "b" * 36, "alice</text><script>", Side.CREDIT, 990_000, "USD", "", 1, 0),
             PostedLine(3, "c" * 36, "fees", Side.CREDIT, 10_000, "USD", "", 1, 0))
    voucher = Voucher("v" * 36, "t", 1, "adjustment", "r", "2026-12-07", 0, 0, lines)
    svg = voucher_svg(voucher, lambda units, code: amount(units, code, CURRENCIES))
    widths = [int(w) for w in re.findall(r'<path d="M[^"]+" stroke-width="(\d+)" class="flow', svg)]
    assert widths == [STROKE_MAX, STROKE_MAX * 990_000 // 1_000_000, STROKE_MIN]
    assert "<script>" not in svg and "alice&lt;/text&gt;" in svg
    assert svg.index('class="box debit"') < svg.index(">bank<") < svg.index('class="box credit"')


def test_the_console_is_off_unless_its_address_is_set() -> None:
    assert Settings.from_env({}).console_address == ""
    assert Settings.from_env({"TALLY_CONSOLE_ADDRESS": "127.0.0.1:8080"}).console_address == "127.0.0.1:8080"
    with pytest.raises(ConfigError, match="TALLY_CONSOLE_ADDRESS"):
        Settings.from_env({"TALLY_CONSOLE_ADDRESS": "8080"})
