"""Payout states, business-day settlement dates, linked bank account validation and the bank instruction
(pain.001, CSV) with totals that equal the batch: pure, no server."""

from __future__ import annotations

import csv
import io

import pytest
from defusedxml import ElementTree

from tally.domain.errors import LedgerError
from tally.domain.money import Currency
from tally.domain.payouts import (
    BankAccountStatus,
    BatchState,
    PayoutState,
    check_transition,
    parse_holidays,
    settlement_date,
    undo_state,
)
from tally.service.settlement.bank_details import BankDetails, aba_checksum_ok, checked
from tally.service.settlement.exports import Debtor, bank_amount, pain001, payouts_csv
from tally.storage.payouts_repo import BankAccount, Batch, Payout

USD, JPY = Currency("USD", 6, 2), Currency("JPY", 3, 0)
PAIN = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.09}"


@pytest.mark.parametrize("sent, days, holidays, expected", [
    ("2026-12-07", 1, "", "2026-12-08"),  # Monday -> Tuesday
    ("2026-12-11", 1, "", "2026-12-14"),  # Friday -> Monday
    ("2026-12-11", 3, "", "2026-12-16"),
    ("2026-12-12", 0, "", "2026-12-14"),  # sent on a Saturday: counts from Monday
    ("2026-12-24", 1, "2026-12-25", "2026-12-28"),  # Christmas Friday, then the weekend
    ("2026-12-31", 2, "2027-01-01", "2027-01-05"),
])
def test_settlement_dates_count_business_days(sent, days, holidays, expected):
    assert settlement_date(sent, days, parse_holidays(holidays)) == expected


def test_holidays_are_iso_dates():
    assert parse_holidays(" 2026-12-25 ,2027-01-01,") == {"2026-12-25", "2027-01-01"}
    with pytest.raises(ValueError):
        parse_holidays("25/12/2026")


def test_states_move_only_forward():
    check_transition(PayoutState.REQUESTED, PayoutState.BATCHED, "p")
    check_transition(PayoutState.SENT, PayoutState.RETURNED, "p")
    check_transition(PayoutState.SETTLED, PayoutState.RETURNED, "p")
    for current, target in ((PayoutState.BATCHED, PayoutState.FAILED), (PayoutState.RETURNED, PayoutState.SENT),
                            (PayoutState.FAILED, PayoutState.REQUESTED), (PayoutState.SETTLED, PayoutState.SENT)):
        with pytest.raises(LedgerError) as caught:
            check_transition(current, target, "p")
        assert caught.value.reason == "PAYOUT_STATE_INVALID"
    assert undo_state(PayoutState.REQUESTED) is PayoutState.FAILED
    assert undo_state(PayoutState.SETTLED) is PayoutState.RETURNED


@pytest.mark.parametrize("routing, ok", [("021000021", True), ("011000015", True), ("021000022", False)])
def test_aba_checksum(routing, ok):
    assert aba_checksum_ok(routing) is ok


def test_bank_details_are_compacted_and_checked():
    details = checked(BankDetails(" Acme ", "gb29 nwbk 6016 1331 9268 19", "NWBKGB2LXXX"))
    assert (details.holder_name, details.iban, details.bic) == ("Acme", "GB29NWBK60161331926819", "NWBKGB2LXXX")
    us = checked(BankDetails("Acme Inc", aba_routing="021000021", account_number="000123456789"))
    assert (us.aba_routing, us.account_number, us.iban) == ("021000021", "000123456789", "")
    for bad, field in ((BankDetails("", "GB29NWBK60161331926819", "NWBKGB2L"), "holder_name"),
                       (BankDetails("A", "GB29NWBK60161331926819", "COBADEFF"), "bic"),
                       (BankDetails("A", "GB00NWBK60161331926819", "NWBKGB2L"), "iban"),
                       (BankDetails("A", "GB29NWBK60161331926819", "NWBKGB2L", "021000021"), "aba_routing"),
                       (BankDetails("A"), "aba_routing")):
        with pytest.raises(LedgerError) as caught:
            checked(bad)
        assert (caught.value.reason, caught.value.metadata["field"]) == ("BANK_ACCOUNT_INVALID", field)


@pytest.mark.parametrize("units, currency, text", [
    (12_340_000, USD, "12.34"), (10_000, USD, "0.01"), (7_000, JPY, "7"), (1_230_000_000_000, USD, "1230000.00")])
def test_bank_amounts(units, currency, text):
    assert bank_amount(units, currency) == text


def _batch(amounts, account: BankAccount) -> tuple[Batch, list[Payout]]:
    payouts = [Payout(f"p{i}", "t", f"r{i}", "m1", account.id, "USD", a, PayoutState.BATCHED, "b1", "", (), 0, 0)
               for i, a in enumerate(amounts)]
    batch = Batch("b1-0000", "t", account.id, "USD", BatchState.BATCHED, len(payouts), sum(amounts), 0, "", "",
                  "2026-12-07", "", "r", 0, 0)
    return batch, payouts


def test_pain001_and_csv_carry_the_batch_total():
    account = BankAccount("ba", "t", "m1", "USD", "M One", "", "", "021000021", "123456789",
                          BankAccountStatus.VERIFIED, "r", 0, 0)
    batch, payouts = _batch([1_230_000, 1_000_000], account)
    root = ElementTree.fromstring(pain001(batch, payouts, account, Debtor("Platform"), USD, "2026-12-07T10:00:00Z"))
    initiation = root.find(f"{PAIN}CstmrCdtTrfInitn")
    assert initiation.findtext(f"{PAIN}GrpHdr/{PAIN}CtrlSum") == "2.23"
    transfer = initiation.find(f"{PAIN}PmtInf/{PAIN}CdtTrfTxInf")
    assert transfer.findtext(f"{PAIN}Amt/{PAIN}InstdAmt") == "2.23"
    assert transfer.findtext(f"{PAIN}CdtrAgt/{PAIN}FinInstnId/{PAIN}ClrSysMmbId/{PAIN}MbrId") == "021000021"
    assert transfer.findtext(f"{PAIN}CdtrAcct/{PAIN}Id/{PAIN}Othr/{PAIN}Id") == "123456789"
    assert len(transfer.findtext(f"{PAIN}PmtId/{PAIN}EndToEndId")) <= 35
    rows = list(csv.reader(io.StringIO(payouts_csv(batch, payouts, account, USD).decode())))
    assert rows[-1][1:2] + rows[-1][8:] == ["TOTAL", "2.23", "USD", "2230000"]
    broken = Batch(**{**vars_of(batch), "total": 1})
    with pytest.raises(RuntimeError):
        payouts_csv(broken, payouts, account, USD)


def vars_of(batch: Batch) -> dict:
    return {name: getattr(batch, name) for name in Batch.__slots__}
