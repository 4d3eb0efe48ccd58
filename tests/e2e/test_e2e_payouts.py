"""Payouts through the real server and the real gRPC wire, on SQLite and PostgreSQL: linked bank accounts
(validated), prerequisites at request and again at batching, batches per bank account exported as pain.001
and CSV with the vouchers' totals, sending out of bank_deposit (never below zero), business-day settlement
dates, a return with the bank's reason, and the books balanced throughout."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator

import grpc
import pytest
from defusedxml import ElementTree

from tally.domain.payouts import settlement_date
from tally.v1 import flows_pb2 as f
from tally.v1 import settlement_service_pb2 as pb
from tally.v1 import settlement_service_pb2_grpc as pb_grpc
from tests.e2e.conftest import Server, e2e_settings, error_info, ref, running_server
from tests.e2e.test_e2e_flows import Books

USD = "USD"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
IBAN, BIC = "DE89370400440532013000", "COBADEFFXXX"
HOLIDAYS = frozenset({(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=n)).isoformat() for n in (1, 2)})
M1 = ref("merchant:m1:USD/settled")
PAIN = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.09}"


@pytest.fixture
def payouts_server(database_url: str) -> Iterator[Server]:
    settings = e2e_settings(database_url, bank_holidays=HOLIDAYS, payout_settlement_days=2,
                            payout_debtor_iban="GB29NWBK60161331926819", payout_debtor_bic="NWBKGB2L")
    with running_server(settings) as srv:
        yield srv


class Desk(Books):
    def __init__(self, server: Server) -> None:
        super().__init__(server)
        self.settle = pb_grpc.SettlementServiceStub(server.channel())

    def call(self, name: str, **fields):
        request = getattr(pb, f"{name}Request")(**fields)
        return getattr(self.settle, name)(request, metadata=self.md)

    def refused_rpc(self, name: str, **fields) -> tuple[grpc.StatusCode, str, dict[str, str]]:
        return self.refused_call(lambda: self.call(name, **fields))

    def fund_the_bank(self, rid: str, amount: int) -> None:
        """Money really arrives: a processor collects it, settles it, and the bank credits it."""
        self.funding(f"{rid}-fund", "c1", amount)
        self.post(f"{rid}-proc", settlement=f.SettlementFlow(kind=f.SETTLEMENT_KIND_PROCESSOR, processor="card",
                                                             amount=amount, currency=USD))
        self.post(f"{rid}-bank", settlement=f.SettlementFlow(kind=f.SETTLEMENT_KIND_BANK, channel="card",
                                                             amount=amount, currency=USD))


@pytest.fixture
def desk(payouts_server: Server) -> Desk:
    return Desk(payouts_server)


def test_payouts_from_request_to_settlement_and_return(desk: Desk) -> None:
    desk.fund_the_bank("f1", 10_000_000)
    for merchant in ("m1", "m2"):
        desk.post(f"use-{merchant}", usage=f.UsageFlow(consumer="c1", merchant=merchant, amount=4_000_000,
                                                        currency=USD))
        desk.set_meta(f"merchant:{merchant}:USD/settled", kyc_status="verified")
    assert desk.bal("merchant:m1:USD/settled") == 3_900_000

    # Linked bank accounts are validated records.
    for fields, field in ((dict(iban="DE89370400440532013001", bic=BIC), "iban"),
                          (dict(iban=IBAN, bic="NWBKGB2L"), "bic"),
                          (dict(aba_routing="021000022", account_number="123456789"), "aba_routing"),
                          (dict(aba_routing="021000021", account_number="12"), "account_number")):
        code, reason, meta = desk.refused_rpc("LinkBankAccount", request_id="bad", merchant_account=M1,
                                              currency=USD, holder_name="M One GmbH", **fields)
        assert (code, reason, meta["field"]) == (INVALID, "BANK_ACCOUNT_INVALID", field)
    m1 = desk.call("LinkBankAccount", request_id="link-m1", merchant_account=M1, currency=USD,
                   holder_name="M One GmbH", iban="DE89 3704 0044 0532 0130 00", bic=BIC, verified=True).bank_account
    assert (m1.iban, m1.status) == (IBAN, pb.BANK_ACCOUNT_STATUS_VERIFIED)
    again = desk.call("LinkBankAccount", request_id="link-m1", merchant_account=M1, currency=USD,
                      holder_name="M One GmbH", iban=IBAN, bic=BIC, verified=True)
    assert again.replayed is True and again.bank_account.id == m1.id
    m2 = desk.call("LinkBankAccount", request_id="link-m2", merchant_account=ref("merchant:m2:USD/settled"),
                   currency=USD, holder_name="M Two Inc", aba_routing="021000021",
                   account_number="123456789").bank_account
    assert m2.status == pb.BANK_ACCOUNT_STATUS_UNVERIFIED

    # Prerequisites at request: a verified account in the payout's currency, KYC, the minimum.
    assert desk.refused_rpc("RequestPayout", request_id="p-m2-0", bank_account_id=m2.id,
                            amount=500_000, currency=USD)[:2] == (PRECONDITION, "BANK_ACCOUNT_NOT_VERIFIED")
    assert desk.refused_rpc("RequestPayout", request_id="p-x", bank_account_id=m2.id,
                            amount=500_000, currency="EUR")[:2] == (INVALID, "BANK_ACCOUNT_MISMATCH")
    assert desk.refused_rpc("LinkBankAccount", request_id="not-merchant", merchant_account=ref("bank_deposit:USD"),
                            currency=USD, holder_name="x", iban=IBAN, bic=BIC)[:2] == (
        INVALID, "MERCHANT_ACCOUNT_INVALID")
    desk.call("UpdateBankAccountStatus", request_id="verify-m2", bank_account_id=m2.id,
              status=pb.BANK_ACCOUNT_STATUS_VERIFIED)
    desk.set_meta("merchant:m1:USD/settled", kyc_status="verified", payout_minimum="5000000")
    assert desk.refused_rpc("RequestPayout", request_id="p-min", bank_account_id=m1.id,
                            amount=500_000, currency=USD)[:2] == (PRECONDITION, "BELOW_PAYOUT_MINIMUM")
    desk.set_meta("merchant:m1:USD/settled", kyc_status="verified", payout_minimum="0")

    assert desk.refused_rpc("RequestPayout", request_id="p-0", bank_account_id=m1.id, amount=0,
                            currency=USD)[:2] == (INVALID, "AMOUNT_NOT_POSITIVE")
    assert desk.refused_rpc("RequestPayout", request_id="p-cent", bank_account_id=m1.id, amount=9_999,
                            currency=USD)[:2] == (INVALID, "FLOW_POSTS_NOTHING")  # less than a cent
    first = desk.call("RequestPayout", request_id="p1", bank_account_id=m1.id, amount=1_234_567,
                      currency=USD).payout
    assert (first.amount, first.state) == (1_230_000, pb.PAYOUT_STATE_REQUESTED)  # whole cents; the rest stays
    replay = desk.call("RequestPayout", request_id="p1", bank_account_id=m1.id, amount=1_234_567,
                       currency=USD)
    assert replay.replayed is True and replay.payout.id == first.id
    second = desk.call("RequestPayout", request_id="p2", bank_account_id=m1.id, amount=1_000_000,
                       currency=USD).payout
    lost = desk.call("RequestPayout", request_id="p3", bank_account_id=m2.id, amount=500_000,
                     currency=USD).payout
    assert desk.balances("merchant:m1:USD/settled", "merchant:m2:USD/settled", "payouts_pending:USD") == {
        "merchant:m1:USD/settled": 3_900_000 - 2_230_000, "merchant:m2:USD/settled": 3_400_000,
        "payouts_pending:USD": 2_730_000}

    # At the cut-off the prerequisites are checked again: m2's KYC lapsed, so its payout fails, money back.
    desk.set_meta("merchant:m2:USD/settled", kyc_status="expired")
    batched = desk.call("CreatePayoutBatches", request_id="cut-1", currency=USD)
    (batch,) = batched.batches
    (failed,) = batched.failed_payouts
    assert (failed.id, failed.state, failed.reason) == (lost.id, pb.PAYOUT_STATE_FAILED, "KYC_NOT_VERIFIED")
    assert desk.bal("merchant:m2:USD/settled") == 3_900_000
    assert (batch.bank_account_id, batch.payout_count, batch.total, batch.state) == (
        m1.id, 2, 2_230_000, pb.PAYOUT_BATCH_STATE_BATCHED)

    # The bank instruction: pain.001 and CSV, totals equal to what the vouchers post.
    xml = desk.call("ExportPayoutBatch", batch_id=batch.id, format=pb.PAYOUT_EXPORT_FORMAT_PAIN001).content
    root = ElementTree.fromstring(xml)
    assert root.findtext(f"{PAIN}CstmrCdtTrfInitn/{PAIN}GrpHdr/{PAIN}CtrlSum") == "2.23"
    transfer = root.find(f"{PAIN}CstmrCdtTrfInitn/{PAIN}PmtInf/{PAIN}CdtTrfTxInf")
    assert transfer.find(f"{PAIN}Amt/{PAIN}InstdAmt").attrib == {"Ccy": "USD"}
    assert transfer.findtext(f"{PAIN}Amt/{PAIN}InstdAmt") == "2.23"
    assert transfer.findtext(f"{PAIN}CdtrAcct/{PAIN}Id/{PAIN}IBAN") == IBAN
    assert transfer.findtext(f"{PAIN}CdtrAgt/{PAIN}FinInstnId/{PAIN}BICFI") == BIC
    assert root.findtext(f"{PAIN}CstmrCdtTrfInitn/{PAIN}PmtInf/{PAIN}DbtrAcct/{PAIN}Id/{PAIN}IBAN") == \
        "GB29NWBK60161331926819"
    rows = list(csv.DictReader(io.StringIO(desk.call("ExportPayoutBatch", batch_id=batch.id,
                                                     format=pb.PAYOUT_EXPORT_FORMAT_CSV).content.decode())))
    assert [(r["payout_id"], r["amount"]) for r in rows] == sorted(
        [(first.id, "1.23"), (second.id, "1.00")]) + [("TOTAL", "2.23")]

    # Sent: the total leaves the bank account in one voucher; settlement expected in 2 business days.
    sent = desk.call("SendPayoutBatch", request_id="send-1", batch_id=batch.id)
    assert sent.batch.state == pb.PAYOUT_BATCH_STATE_SENT
    today = sent.batch.sent_date
    assert sent.batch.expected_settlement_date == settlement_date(today, 2, HOLIDAYS)
    assert dt.date.fromisoformat(sent.batch.expected_settlement_date) > dt.date.fromisoformat(today) + \
        dt.timedelta(days=2)  # the holidays (and perhaps a weekend) are skipped
    assert desk.bal("bank_deposit:USD") == 10_000_000 - 2_230_000
    assert desk.call("SendPayoutBatch", request_id="send-1", batch_id=batch.id).replayed is True
    assert desk.refused_rpc("SendPayoutBatch", request_id="send-2", batch_id=batch.id)[:2] == (
        PRECONDITION, "PAYOUT_BATCH_STATE_INVALID")
    states = {p.id: p.state for p in desk.call("GetPayoutBatch", batch_id=batch.id).payouts}
    assert states == {first.id: pb.PAYOUT_STATE_SENT, second.id: pb.PAYOUT_STATE_SENT}

    # One payout comes back with the bank's reason; the other settles with the batch.
    returned = desk.call("ReturnPayout", request_id="ret-1", payout_id=first.id, reason="AC04 account closed").payout
    assert (returned.state, returned.reason, len(returned.voucher_ids)) == (
        pb.PAYOUT_STATE_RETURNED, "AC04 account closed", 2)
    assert desk.call("ReturnPayout", request_id="ret-1b", payout_id=first.id,
                     reason="AC04 account closed").payout.voucher_ids == returned.voucher_ids  # once only
    settled = desk.call("SettlePayoutBatch", request_id="settle-1", batch_id=batch.id).batch
    assert settled.state == pb.PAYOUT_BATCH_STATE_SETTLED
    listed = desk.call("ListPayouts", page_size=1)
    assert len(listed.payouts) == 1 and listed.next_page_token
    final = {p.id: p.state for p in desk.call("ListPayouts", page_size=10).payouts}
    assert final == {first.id: pb.PAYOUT_STATE_RETURNED, second.id: pb.PAYOUT_STATE_SETTLED,
                     lost.id: pb.PAYOUT_STATE_FAILED}
    assert desk.refused_rpc("ReturnPayout", request_id="ret-x", payout_id=second.id, reason="")[:2] == (
        INVALID, "REASON_INVALID")
    assert desk.balances("merchant:m1:USD/settled", "payouts_pending:USD", "bank_deposit:USD") == {
        "merchant:m1:USD/settled": 3_900_000 - 1_000_000, "payouts_pending:USD": 0,
        "bank_deposit:USD": 10_000_000 - 1_000_000}
    desk.check_books()


def test_a_batch_the_bank_account_cannot_cover_is_refused_whole(desk: Desk) -> None:
    desk.fund_the_bank("f1", 1_000_000)
    desk.funding("more", "c1", 9_000_000)  # collected by the processor, not yet on the bank account
    desk.post("use", usage=f.UsageFlow(consumer="c1", merchant="m1", amount=8_000_000, currency=USD))
    desk.set_meta("merchant:m1:USD/settled", kyc_status="verified")
    account = desk.call("LinkBankAccount", request_id="link", merchant_account=M1, currency=USD,
                        holder_name="M One", iban=IBAN, bic=BIC, verified=True).bank_account
    desk.call("RequestPayout", request_id="p1", bank_account_id=account.id, amount=5_000_000,
              currency=USD)
    (batch,) = desk.call("CreatePayoutBatches", request_id="cut", currency=USD).batches
    assert desk.refused_rpc("SendPayoutBatch", request_id="send-1", batch_id=batch.id)[:2] == (
        PRECONDITION, "INSUFFICIENT_FUNDS")
    assert desk.bal("bank_deposit:USD") == 1_000_000
    assert desk.call("GetPayoutBatch", batch_id=batch.id).batch.state == pb.PAYOUT_BATCH_STATE_BATCHED
    # The money arrives; a new request sends it (the refused request id keeps its refusal).
    desk.post("proc", settlement=f.SettlementFlow(kind=f.SETTLEMENT_KIND_PROCESSOR, processor="card",
                                                  amount=9_000_000, currency=USD))
    desk.post("bank", settlement=f.SettlementFlow(kind=f.SETTLEMENT_KIND_BANK, channel="card", amount=9_000_000,
                                                  currency=USD))
    assert desk.refused_rpc("SendPayoutBatch", request_id="send-1", batch_id=batch.id)[1] == "INSUFFICIENT_FUNDS"
    assert desk.call("SendPayoutBatch", request_id="send-2", batch_id=batch.id).batch.state == \
        pb.PAYOUT_BATCH_STATE_SENT
    assert desk.bal("bank_deposit:USD") == 5_000_000
    assert desk.refused_rpc("CreatePayoutBatches", request_id="", currency=USD)[:2] == (INVALID, "REQUEST_ID_MISSING")
    desk.check_books()


def test_unknown_ids_are_not_accessible(desk: Desk) -> None:
    for name, fields in (("GetPayoutBatch", {"batch_id": "nope"}),
                         ("SendPayoutBatch", {"request_id": "s", "batch_id": "nope"}),
                         ("ReturnPayout", {"request_id": "r", "payout_id": "nope", "reason": "x"})):
        code, reason, _ = error_info(_raises(lambda n=name, fl=fields: desk.call(n, **fl)))
        assert code == grpc.StatusCode.PERMISSION_DENIED and reason.endswith("_NOT_ACCESSIBLE"), (name, reason)


def _raises(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_the_payouts_cli(desk: Desk, tmp_path, capsys) -> None:
    import json

    from tally import cli
    from tests.e2e.conftest import TenantKeys

    key = TenantKeys.for_target(desk.server.target).key_for(desk.tenant)

    def tally(*argv: str) -> dict | str:
        capsys.readouterr()
        status = cli.main([*argv, "--target", desk.server.target, "--api-key", key])
        out = capsys.readouterr()
        assert status == 0, out.err
        return json.loads(out.out) if "--json" in argv else out.out

    desk.fund_the_bank("f1", 5_000_000)
    desk.post("use", usage=f.UsageFlow(consumer="c1", merchant="m1", amount=4_000_000, currency=USD))
    desk.set_meta("merchant:m1:USD/settled", kyc_status="verified")
    account = tally("payouts", "link", "m1", "--currency", "USD", "--holder", "M One", "--iban", IBAN, "--bic", BIC,
                    "--json")["bank_account"]
    assert account["status"] == "BANK_ACCOUNT_STATUS_UNVERIFIED"
    tally("payouts", "verify", account["id"])
    payout = tally("payouts", "request", account["id"], "1500000", "--currency", "USD", "--json")["payout"]
    assert payout["amount"] == "1500000"
    (batch,) = tally("payouts", "batch", "--currency", "USD", "--json")["batches"]
    target = tmp_path / "batch.xml"
    tally("payouts", "export", batch["id"], "--output", str(target))
    assert ElementTree.fromstring(target.read_bytes()).findtext(
        f"{PAIN}CstmrCdtTrfInitn/{PAIN}GrpHdr/{PAIN}CtrlSum") == "1.50"
    assert "expected_settlement" in tally("payouts", "send", batch["id"])
    tally("payouts", "settle", batch["id"])
    assert "returned" in tally("payouts", "return", payout["id"], "--reason", "AC04 account closed")
    listed = tally("payouts", "list", "--all", "--json")["payouts"]
    assert [(p["id"], p["state"]) for p in listed] == [(payout["id"], "PAYOUT_STATE_RETURNED")]
    assert desk.bal("merchant:m1:USD/settled") == 3_900_000
