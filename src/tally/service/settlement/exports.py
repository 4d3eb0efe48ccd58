"""A payout batch as the bank instruction it is: ISO 20022 pain.001 (CustomerCreditTransferInitiation,
version 09) with one payment information block and one credit transfer (the batch's payouts to one bank
account), and a CSV of the same payouts. The totals are the batch's, which its send voucher posted."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from tally.domain.money import Currency
from tally.storage.payouts_repo import BankAccount, Batch, Payout

PAIN_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
REMITTANCE_CHARS_MAX = 140


@dataclass(frozen=True)
class Debtor:
    name: str
    iban: str = ""
    bic: str = ""


def bank_amount(units: int, currency: Currency) -> str:
    """Atomic units -> the bank's decimal text (whole bank units: payouts are rounded down at request)."""
    step = 10 ** (currency.scale - currency.bank_scale)
    minor = units // step
    if currency.bank_scale == 0:
        return str(minor)
    whole, fraction = divmod(minor, 10**currency.bank_scale)
    return f"{whole}.{fraction:0{currency.bank_scale}d}"


def pain001(batch: Batch, payouts: Sequence[Payout], account: BankAccount, debtor: Debtor, currency: Currency,
            created: str) -> bytes:
    _check_totals(batch, payouts)
    ET.register_namespace("", PAIN_NAMESPACE)
    q = f"{{{PAIN_NAMESPACE}}}"
    total = bank_amount(batch.total, currency)
    root = ET.Element(f"{q}Document")
    initiation = ET.SubElement(root, f"{q}CstmrCdtTrfInitn")
    header = ET.SubElement(initiation, f"{q}GrpHdr")
    _text(header, q, "MsgId", batch.id.replace("-", ""))
    _text(header, q, "CreDtTm", created)
    _text(header, q, "NbOfTxs", "1")
    _text(header, q, "CtrlSum", total)
    _text(ET.SubElement(header, f"{q}InitgPty"), q, "Nm", debtor.name)
    info = ET.SubElement(initiation, f"{q}PmtInf")
    _text(info, q, "PmtInfId", batch.id.replace("-", ""))
    _text(info, q, "PmtMtd", "TRF")
    _text(info, q, "NbOfTxs", "1")
    _text(info, q, "CtrlSum", total)
    _text(ET.SubElement(info, f"{q}ReqdExctnDt"), q, "Dt", batch.sent_date or created[:10])
    _text(ET.SubElement(info, f"{q}Dbtr"), q, "Nm", debtor.name)
    _account(ET.SubElement(info, f"{q}DbtrAcct"), q, debtor.iban, f"bank_deposit:{batch.currency}")
    _agent(ET.SubElement(info, f"{q}DbtrAgt"), q, debtor.bic, "")
    transfer = ET.SubElement(info, f"{q}CdtTrfTxInf")
    _text(ET.SubElement(transfer, f"{q}PmtId"), q, "EndToEndId", batch.id.replace("-", ""))
    amount = ET.SubElement(ET.SubElement(transfer, f"{q}Amt"), f"{q}InstdAmt", Ccy=batch.currency)
    amount.text = total
    _agent(ET.SubElement(transfer, f"{q}CdtrAgt"), q, account.bic, account.aba_routing)
    _text(ET.SubElement(transfer, f"{q}Cdtr"), q, "Nm", account.holder_name)
    _account(ET.SubElement(transfer, f"{q}CdtrAcct"), q, account.iban, account.account_number)
    remittance = "payouts " + " ".join(p.id.replace("-", "")[:12] for p in payouts)
    _text(ET.SubElement(transfer, f"{q}RmtInf"), q, "Ustrd", remittance[:REMITTANCE_CHARS_MAX])
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def payouts_csv(batch: Batch, payouts: Sequence[Payout], account: BankAccount, currency: Currency) -> bytes:
    _check_totals(batch, payouts)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["batch_id", "payout_id", "merchant", "holder_name", "iban", "bic", "aba_routing",
                     "account_number", "amount", "currency", "amount_units"])
    for p in payouts:
        writer.writerow([batch.id, p.id, p.merchant, account.holder_name, account.iban, account.bic,
                         account.aba_routing, account.account_number, bank_amount(p.amount, currency), p.currency,
                         p.amount])
    writer.writerow([batch.id, "TOTAL", "", "", "", "", "", "", bank_amount(batch.total, currency), batch.currency,
                     batch.total])
    return out.getvalue().encode()


def _check_totals(batch: Batch, payouts: Sequence[Payout]) -> None:
    """Checked twice: the export must say exactly what the send voucher posts."""
    if sum(p.amount for p in payouts) != batch.total or len(payouts) != batch.payout_count:
        raise RuntimeError(f"batch {batch.id}: its payouts do not add up to its total")


def _text(parent: ET.Element, q: str, name: str, value: str) -> ET.Element:
    element = ET.SubElement(parent, f"{q}{name}")
    element.text = value
    return element


def _account(parent: ET.Element, q: str, iban: str, other: str) -> None:
    identifier = ET.SubElement(parent, f"{q}Id")
    if iban:
        _text(identifier, q, "IBAN", iban)
    else:
        _text(ET.SubElement(identifier, f"{q}Othr"), q, "Id", other)


def _agent(parent: ET.Element, q: str, bic: str, aba_routing: str) -> None:
    institution = ET.SubElement(parent, f"{q}FinInstnId")
    if bic:
        _text(institution, q, "BICFI", bic)
    elif aba_routing:
        member = ET.SubElement(institution, f"{q}ClrSysMmbId")
        _text(ET.SubElement(member, f"{q}ClrSysId"), q, "Cd", "USABA")
        _text(member, q, "MbrId", aba_routing)
    else:
        _text(ET.SubElement(institution, f"{q}Othr"), q, "Id", "NOTPROVIDED")
