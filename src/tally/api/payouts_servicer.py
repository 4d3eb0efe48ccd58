"""The payout RPCs of tally.v1.SettlementService; maps proto <-> the payout handlers."""

from __future__ import annotations

import asyncio
import datetime as dt

from tally.api.errors import rpc
from tally.api.mapping import enum_in, ref_in, timestamp_from_us
from tally.api.tenancy import principal_of, tenant_of
from tally.domain.errors import invalid
from tally.domain.fields import check_request_id
from tally.domain.payouts import BankAccountStatus, BatchState, PayoutState
from tally.service import paging
from tally.service.container import Services
from tally.service.settlement.bank_details import BankDetails
from tally.service.settlement.exports import Debtor, pain001, payouts_csv
from tally.storage.payouts_repo import BankAccount, Batch, Payout
from tally.v1 import settlement_service_pb2 as pb

ACCOUNT_STATUSES = {pb.BANK_ACCOUNT_STATUS_UNVERIFIED: BankAccountStatus.UNVERIFIED,
                    pb.BANK_ACCOUNT_STATUS_VERIFIED: BankAccountStatus.VERIFIED,
                    pb.BANK_ACCOUNT_STATUS_DISABLED: BankAccountStatus.DISABLED}
ACCOUNT_STATUSES_OUT = {v: k for k, v in ACCOUNT_STATUSES.items()}
PAYOUT_STATES = {getattr(pb, f"PAYOUT_STATE_{s.name}"): s for s in PayoutState}
PAYOUT_STATES_OUT = {v: k for k, v in PAYOUT_STATES.items()}
BATCH_STATES_OUT = {s: getattr(pb, f"PAYOUT_BATCH_STATE_{s.name}") for s in BatchState}


class PayoutRpcs:
    s: Services

    @rpc
    async def LinkBankAccount(self, request: pb.LinkBankAccountRequest, context) -> pb.LinkBankAccountResponse:
        tenant = tenant_of(context)
        details = BankDetails(request.holder_name, request.iban, request.bic, request.aba_routing,
                              request.account_number)
        account, replayed = await asyncio.to_thread(
            self.s.payouts.link_bank_account, tenant, request.request_id, ref_in(request.merchant_account,
                                                                                 "merchant_account"),
            request.currency, details, request.verified)
        return pb.LinkBankAccountResponse(bank_account=bank_account_out(account), replayed=replayed)

    @rpc
    async def UpdateBankAccountStatus(self, request: pb.UpdateBankAccountStatusRequest,
                                      context) -> pb.UpdateBankAccountStatusResponse:
        tenant = tenant_of(context)
        check_request_id(request.request_id)
        status = enum_in(ACCOUNT_STATUSES, request.status, "status")
        account = await asyncio.to_thread(self.s.payouts.set_bank_account_status, tenant, request.bank_account_id,
                                          status)
        return pb.UpdateBankAccountStatusResponse(bank_account=bank_account_out(account))

    @rpc
    async def RequestPayout(self, request: pb.RequestPayoutRequest, context) -> pb.RequestPayoutResponse:
        principal = principal_of(context)
        payout, replayed = await self.s.payouts.request(
            principal.tenant_id, request.request_id, request.bank_account_id, request.amount, request.currency,
            principal.actor)
        return pb.RequestPayoutResponse(payout=payout_out(payout), replayed=replayed)

    @rpc
    async def CreatePayoutBatches(self, request: pb.CreatePayoutBatchesRequest,
                                  context) -> pb.CreatePayoutBatchesResponse:
        done = await self.s.payouts.create_batches(tenant_of(context), request.request_id, request.currency)
        return pb.CreatePayoutBatchesResponse(batches=[batch_out(b) for b in done.batches],
                                              failed_payouts=[payout_out(p) for p in done.failed])

    @rpc
    async def ExportPayoutBatch(self, request: pb.ExportPayoutBatchRequest, context) -> pb.ExportPayoutBatchResponse:
        tenant = tenant_of(context)
        if request.format not in (pb.PAYOUT_EXPORT_FORMAT_PAIN001, pb.PAYOUT_EXPORT_FORMAT_CSV):
            raise invalid("FIELD_REQUIRED", "format must be pain001 or csv", field="format")
        batch, payouts, account = await asyncio.to_thread(self.s.payouts.batch_with_payouts, tenant, request.batch_id)
        currency = self.s.settings.currencies[batch.currency]
        name = batch.id.replace("-", "")
        if request.format == pb.PAYOUT_EXPORT_FORMAT_CSV:
            return pb.ExportPayoutBatchResponse(content=payouts_csv(batch, payouts, account, currency),
                                                file_name=f"payouts-{name}.csv")
        settings = self.s.settings
        debtor = Debtor(settings.payout_debtor_name, settings.payout_debtor_iban, settings.payout_debtor_bic)
        created = dt.datetime.fromtimestamp(self.s.clock() // 1_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return pb.ExportPayoutBatchResponse(content=pain001(batch, payouts, account, debtor, currency, created),
                                            file_name=f"pain001-{name}.xml")

    @rpc
    async def SendPayoutBatch(self, request: pb.SendPayoutBatchRequest, context) -> pb.SendPayoutBatchResponse:
        principal = principal_of(context)
        batch, replayed = await self.s.payouts.send_batch(principal.tenant_id, request.request_id, request.batch_id,
                                                          principal.actor)
        return pb.SendPayoutBatchResponse(batch=batch_out(batch), replayed=replayed)

    @rpc
    async def SettlePayoutBatch(self, request: pb.SettlePayoutBatchRequest, context) -> pb.SettlePayoutBatchResponse:
        check_request_id(request.request_id)
        batch = await self.s.payouts.settle_batch(tenant_of(context), request.batch_id)
        return pb.SettlePayoutBatchResponse(batch=batch_out(batch))

    @rpc
    async def ReturnPayout(self, request: pb.ReturnPayoutRequest, context) -> pb.ReturnPayoutResponse:
        check_request_id(request.request_id)
        payout = await self.s.payouts.give_back(tenant_of(context), request.payout_id, request.reason)
        return pb.ReturnPayoutResponse(payout=payout_out(payout))

    @rpc
    async def GetPayoutBatch(self, request: pb.GetPayoutBatchRequest, context) -> pb.GetPayoutBatchResponse:
        batch, payouts, _ = await asyncio.to_thread(self.s.payouts.batch_with_payouts, tenant_of(context),
                                                    request.batch_id)
        return pb.GetPayoutBatchResponse(batch=batch_out(batch), payouts=[payout_out(p) for p in payouts])

    @rpc
    async def ListPayouts(self, request: pb.ListPayoutsRequest, context) -> pb.ListPayoutsResponse:
        tenant = tenant_of(context)
        state = enum_in(PAYOUT_STATES, request.state, "state", required=False)
        size = paging.page_size(request.page_size)
        query = {"list": "payouts", "tenant": tenant, "state": state.value if state else "", "batch": request.batch_id}
        after = paging.decode(request.page_token, query, "")
        found = await asyncio.to_thread(self.s.payouts.list_payouts, tenant, state, request.batch_id, after, size + 1)
        token = paging.encode(found[size - 1].id, query) if len(found) > size else ""
        return pb.ListPayoutsResponse(payouts=[payout_out(p) for p in found[:size]], next_page_token=token)


def bank_account_out(a: BankAccount) -> pb.BankAccount:
    return pb.BankAccount(id=a.id, merchant=a.merchant, currency=a.currency, holder_name=a.holder_name, iban=a.iban,
                          bic=a.bic, aba_routing=a.aba_routing, account_number=a.account_number,
                          status=ACCOUNT_STATUSES_OUT[a.status])


def payout_out(p: Payout) -> pb.Payout:
    return pb.Payout(id=p.id, request_id=p.request_id, merchant=p.merchant, bank_account_id=p.bank_account_id,
                     currency=p.currency, amount=p.amount, state=PAYOUT_STATES_OUT[p.state], batch_id=p.batch_id,
                     reason=p.reason, voucher_ids=list(p.voucher_ids), create_time=timestamp_from_us(p.created_us),
                     update_time=timestamp_from_us(p.updated_us))


def batch_out(b: Batch) -> pb.PayoutBatch:
    return pb.PayoutBatch(id=b.id, bank_account_id=b.bank_account_id, currency=b.currency,
                          state=BATCH_STATES_OUT[b.state], payout_count=b.payout_count, total=b.total,
                          cutoff_time=timestamp_from_us(b.cutoff_us), send_voucher_id=b.send_voucher_id,
                          sent_date=b.sent_date, expected_settlement_date=b.expected_date)
