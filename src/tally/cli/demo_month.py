"""`tally demo --month`: a month of the settlement side, end to end, against a running server.

Consumers fund by card and the processor settles it to the bank; they use a merchant's API; orders are
paid through a channel; the channel's statement arrives with one line missing, one extra and a fee kept
back; reconciliation finds exactly those three, an operator resolves them into short-fall and long-fall
vouchers, the channel and the bank settle what the statement says, the merchant is settled, its payouts are
batched, exported as pain.001 and sent, one comes back from the bank. At the end every clearing account is
at zero (or at its open items) and the trial balance is zero. Runs in the API key's tenant (operator or
admin key); parties and request ids carry the run label like `tally demo`.
"""

from __future__ import annotations

import datetime as dt

from defusedxml import ElementTree

from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import flows_pb2, types_pb2
from tally.v1 import settlement_service_pb2 as pb

USD = "USD"
FUNDING = 60_000_000
USAGE = 12_345_678
# Orders through the channel, by the channel's reference; the statement misses O3 and has O9 extra, and
# the channel kept 0.01 of O2 as a fee.
ORDERS = {"O1": 5_000_000, "O2": 3_000_000, "O3": 2_000_000, "O4": 4_000_000}
STATEMENT = (("O1", "5.00"), ("O2", "2.99"), ("O4", "4.00"), ("O9", "1.50"))
CLOSING = 13_490_000
ACQUISITION_FEE_BPS = 60  # the default rules' fee on an order, taken from the merchant's pending funds
PENDING = sum(amount - amount * ACQUISITION_FEE_BPS // 10_000 for amount in ORDERS.values())
PAYOUTS = (10_000_000, 2_345_678)
IBAN, BIC = "DE89370400440532013000", "COBADEFFXXX"
PAIN = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.09}"


def month_story(d, settle) -> dict:
    """Runs the month through `d` (a cli_demo.Demo) and the SettlementService stub; returns its figures."""
    card, visa, acme = d.party("card"), d.party("visa"), d.party("acme")
    clearing = f"channel_clearing:{visa}:{USD}"
    with d.step(f"funding: alice pays in {d.amount(FUNDING)} by card; the processor settles it to the bank"):
        d.post("m-fund", funding=flows_pb2.FundingFlow(consumer=d.party("alice"), processor=card, amount=FUNDING,
                                                       currency=USD))
        d.post("m-proc", settlement=flows_pb2.SettlementFlow(kind=flows_pb2.SETTLEMENT_KIND_PROCESSOR, processor=card,
                                                             amount=FUNDING, currency=USD))
        d.post("m-bank-card", settlement=flows_pb2.SettlementFlow(kind=flows_pb2.SETTLEMENT_KIND_BANK, channel=card,
                                                                  amount=FUNDING, currency=USD))
    with d.step(f"usage: alice uses acme's API for {d.amount(USAGE)}"):
        d.post("m-usage", usage=flows_pb2.UsageFlow(consumer=d.party("alice"), merchant=acme, amount=USAGE,
                                                    currency=USD))
    with d.step(f"payments: {len(ORDERS)} orders at acme paid through {visa}"):
        for ref, amount in ORDERS.items():
            d.post(f"m-order-{ref}", metadata={"channel_ref": f"{d.run}-{ref}"},
                   acquisition=flows_pb2.AcquisitionFlow(merchant=acme, channel=visa, amount=amount, currency=USD))

    statement_id = f"{d.run}-visa-statement-1"
    with d.step(f"reconciliation: {visa}'s statement (one line missing, one extra, a fee kept back)") as s:
        day = dt.datetime.now(dt.UTC).date().isoformat()
        csv = "reference,amount,date\n" + "".join(f"{d.run}-{ref},{amount},{day}\n" for ref, amount in STATEMENT)
        imported = settle.ImportStatement(pb.ImportStatementRequest(
            request_id=f"{d.run}.m-import", account=types_pb2.AccountRef(code=clearing),
            format=pb.STATEMENT_FORMAT_CSV, statement_file=csv.encode(), statement_id=statement_id,
            closing_balance=CLOSING))
        counts = {pb.ReconciliationItemState.Name(c.state).removeprefix("RECONCILIATION_ITEM_STATE_").lower():
                  c.items for c in imported.counts}
        s.notes.append(f"items: {counts}")
        report = settle.GetReconciliation(pb.GetReconciliationRequest(account=types_pb2.AccountRef(code=clearing),
                                                                       statement_id=statement_id))
        s.notes.append(_proof_note(d, report.fund_proof))

    with d.step("resolution: the fee and the missing order are short falls, the extra line a long fall") as s:
        for item in report.open_items:
            resolution = pb.RESOLUTION_SHORT_FALL if item.difference > 0 else pb.RESOLUTION_LONG_FALL
            resolved = settle.ResolveItem(pb.ResolveItemRequest(
                request_id=f"{d.run}.m-resolve-{item.id}", item_id=item.id, resolution=resolution))
            for voucher_id in resolved.voucher_ids:
                d.stage.vouchers.append(d.posting.GetVoucher(post_pb.GetVoucherRequest(voucher_id=voucher_id)).voucher)
        after = settle.GetReconciliation(pb.GetReconciliationRequest(account=types_pb2.AccountRef(code=clearing),
                                                                     statement_id=statement_id))
        s.notes.append(_proof_note(d, after.fund_proof) + f"; {len(after.open_items)} open items")

    with d.step(f"settlement: {visa} pays what its statement says, the bank receives it, acme is settled"):
        d.post("m-settle-visa", settlement=flows_pb2.SettlementFlow(
            kind=flows_pb2.SETTLEMENT_KIND_CHANNEL, channel=visa, amount=CLOSING, currency=USD))
        d.post("m-bank-visa", settlement=flows_pb2.SettlementFlow(
            kind=flows_pb2.SETTLEMENT_KIND_BANK, channel=visa, amount=CLOSING, currency=USD))
        d.post("m-settle-acme", settlement=flows_pb2.SettlementFlow(
            kind=flows_pb2.SETTLEMENT_KIND_MERCHANT, merchant=acme, amount=PENDING, currency=USD))

    batch, returned, control_sum = _payouts(d, settle, acme)
    codes = [clearing, f"processor_clearing:{card}:{USD}", f"bank_receivable:{visa}:{USD}",
             f"bank_receivable:{card}:{USD}", f"payouts_pending:{USD}"]
    return {"statement_id": statement_id, "items": counts, "proof_before": _proof(report.fund_proof),
            "proof_after": _proof(after.fund_proof), "open_items_after": len(after.open_items),
            "batch": {"id": batch.id, "total": str(batch.total), "payouts": str(batch.payout_count),
                      "pain001_control_sum": control_sum, "expected_settlement_date": batch.expected_settlement_date},
            "returned_payout": returned, "clearing_balances": {code: str(_current(d, code)) for code in codes}}


def _payouts(d, settle, acme: str):
    with d.step("payouts: acme's verified bank account, two payouts, one batch at the cut-off, pain.001") as s:
        d.update_metadata("m-kyc", f"merchant:{acme}:{USD}/settled", {"kyc_status": "verified"})
        bank = settle.LinkBankAccount(pb.LinkBankAccountRequest(
            request_id=f"{d.run}.m-link", merchant_account=types_pb2.AccountRef(code=f"merchant:{acme}:{USD}/settled"),
            currency=USD, holder_name="Acme Ltd", iban=IBAN, bic=BIC, verified=True)).bank_account
        payouts = [settle.RequestPayout(pb.RequestPayoutRequest(
            request_id=f"{d.run}.m-payout-{n}", bank_account_id=bank.id, amount=amount, currency=USD)).payout
            for n, amount in enumerate(PAYOUTS, 1)]
        d.stage.vouchers += [_voucher(d, p.voucher_ids[0]) for p in payouts]
        (batch,) = [b for b in settle.CreatePayoutBatches(pb.CreatePayoutBatchesRequest(
            request_id=f"{d.run}.m-cut", currency=USD)).batches if b.bank_account_id == bank.id]
        xml = settle.ExportPayoutBatch(pb.ExportPayoutBatchRequest(batch_id=batch.id,
                                                                   format=pb.PAYOUT_EXPORT_FORMAT_PAIN001)).content
        control_sum = ElementTree.fromstring(xml).findtext(f"{PAIN}CstmrCdtTrfInitn/{PAIN}GrpHdr/{PAIN}CtrlSum")
        s.notes.append(f"batch {batch.id}: {batch.payout_count} payouts, total {d.amount(batch.total)}; pain.001 "
                       f"CtrlSum {control_sum} ({len(xml)} bytes)")
    with d.step("the bank sends the batch, settles it, and returns one payout (AC04 account closed)") as s:
        sent = settle.SendPayoutBatch(pb.SendPayoutBatchRequest(request_id=f"{d.run}.m-send", batch_id=batch.id))
        d.stage.vouchers.append(_voucher(d, sent.batch.send_voucher_id))
        settle.SettlePayoutBatch(pb.SettlePayoutBatchRequest(request_id=f"{d.run}.m-settle", batch_id=batch.id))
        back = settle.ReturnPayout(pb.ReturnPayoutRequest(request_id=f"{d.run}.m-return", payout_id=payouts[1].id,
                                                          reason="AC04 account closed")).payout
        d.stage.vouchers.append(_voucher(d, back.voucher_ids[-1]))
        s.notes.append(f"expected settlement {sent.batch.expected_settlement_date}; payout {back.id} "
                       f"{pb.PayoutState.Name(back.state).removeprefix('PAYOUT_STATE_').lower()}: {back.reason}")
    return sent.batch, back.id, control_sum


def _voucher(d, voucher_id: str) -> types_pb2.Voucher:
    return d.posting.GetVoucher(post_pb.GetVoucherRequest(voucher_id=voucher_id)).voucher


def _current(d, code: str) -> int:
    return d.accounts.GetBalance(acc_pb.GetBalanceRequest(account=types_pb2.AccountRef(code=code))).balance.current


def _proof(p) -> dict:
    return {"ledger_balance": str(p.ledger_balance), "resolutions": str(p.resolutions),
            "closing_balance": str(p.closing_balance), "open_items": str(p.open_items), "proven": p.proven}


def _proof_note(d, p) -> str:
    return (f"fund proof {'holds' if p.proven else 'FAILS'}: ledger {d.amount(p.ledger_balance)} + resolutions "
            f"{d.amount(p.resolutions)} = closing {d.amount(p.closing_balance)} + open {d.amount(p.open_items)}")
