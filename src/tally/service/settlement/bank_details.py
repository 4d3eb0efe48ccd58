"""A linked bank account's details, validated: IBAN and BIC with schwifty (checksums, lengths, country
formats, the BIC's country against the IBAN's), or an ABA routing number (its checksum) and an account
number."""

from __future__ import annotations

import re
from dataclasses import dataclass

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from tally.domain.errors import invalid

HOLDER_NAME_CHARS_MAX = 140
_ACCOUNT_NUMBER = re.compile(r"^[0-9]{4,17}$")
_ROUTING = re.compile(r"^[0-9]{9}$")
_ABA_WEIGHTS = (3, 7, 1, 3, 7, 1, 3, 7, 1)


@dataclass(frozen=True)
class BankDetails:
    holder_name: str
    iban: str = ""
    bic: str = ""
    aba_routing: str = ""
    account_number: str = ""


def checked(details: BankDetails) -> BankDetails:
    """The details in their compact form, or INVALID_ARGUMENT naming the field that is wrong."""
    name = details.holder_name.strip()
    if not name or len(name) > HOLDER_NAME_CHARS_MAX or "\x00" in name:
        raise invalid("BANK_ACCOUNT_INVALID", f"holder_name is 1 to {HOLDER_NAME_CHARS_MAX} characters",
                      field="holder_name")
    if details.iban or details.bic:
        if details.aba_routing or details.account_number:
            raise invalid("BANK_ACCOUNT_INVALID", "give an IBAN and BIC, or an ABA routing and account number, "
                          "not both", field="aba_routing")
        iban, bic = _iban(details.iban), _bic(details.bic)
        if bic.country_code != iban.country_code and iban.country_code not in _SEPA_SHARED.get(bic.country_code, ()):
            raise invalid("BANK_ACCOUNT_INVALID", f"the BIC's country {bic.country_code} is not the IBAN's "
                          f"{iban.country_code}", field="bic")
        return BankDetails(name, iban=str(iban.compact), bic=str(bic.compact))
    if not _ROUTING.fullmatch(details.aba_routing) or not aba_checksum_ok(details.aba_routing):
        raise invalid("BANK_ACCOUNT_INVALID", "aba_routing must be 9 digits with a valid checksum (or give an IBAN "
                      "and BIC)", field="aba_routing")
    if not _ACCOUNT_NUMBER.fullmatch(details.account_number):
        raise invalid("BANK_ACCOUNT_INVALID", "account_number must be 4 to 17 digits", field="account_number")
    return BankDetails(name, aba_routing=details.aba_routing, account_number=details.account_number)


# Territories whose IBANs use another country's BICs (a French bank's BIC for a Monaco IBAN, say).
_SEPA_SHARED = {"FR": ("MC", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF", "NC", "PF", "WF"),
                "GB": ("GG", "JE", "IM"), "FI": ("AX",)}


def _iban(text: str) -> IBAN:
    try:
        return IBAN(text)
    except SchwiftyException as exc:
        raise invalid("BANK_ACCOUNT_INVALID", f"iban: {exc}", field="iban") from None


def _bic(text: str) -> BIC:
    try:
        return BIC(text)
    except SchwiftyException as exc:
        raise invalid("BANK_ACCOUNT_INVALID", f"bic: {exc}", field="bic") from None


def aba_checksum_ok(routing: str) -> bool:
    """The ABA check: 3·d1 + 7·d2 + d3 + 3·d4 + 7·d5 + d6 + 3·d7 + 7·d8 + d9 is a multiple of 10."""
    return sum(w * int(d) for w, d in zip(_ABA_WEIGHTS, routing, strict=True)) % 10 == 0
