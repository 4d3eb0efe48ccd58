"""tally.v1.AccountingService: Post, ReverseVoucher, GetVoucher, ListVouchers."""

from __future__ import annotations

import asyncio
import time

from tally import metrics
from tally.api import mapping, streams
from tally.api.errors import code_of, grpc_code, rpc
from tally.api.pages import page_out
from tally.api.tenancy import principal_of, tenant_of
from tally.domain.auth import Permission, Principal
from tally.domain.errors import LedgerError
from tally.service.commands import CaptureHold, CreateHold, PostFlow, ReleaseHold, ReverseVoucher
from tally.service.container import Services
from tally.service.posting.batch import Posted
from tally.v1 import accounting_service_pb2 as pb
from tally.v1 import accounting_service_pb2_grpc as pb_grpc


class AccountingServicer(pb_grpc.AccountingServiceServicer):
    def __init__(self, services: Services) -> None:
        self.s = services

    @rpc
    async def Post(self, request: pb.PostRequest, context) -> pb.PostResponse:
        _authorize_flows([request])
        started, flow = time.perf_counter(), request.WhichOneof("flow") or metrics.UNKNOWN_FLOW
        try:
            posted = await self.s.posting.post(_post_command(principal_of(context), request))
        except LedgerError as error:
            metrics.refused("Post", [(flow, grpc_code(error).name, error.reason)])
            raise
        finally:
            metrics.post_finished("Post", started)
        metrics.posted_one("Post", flow)
        return _posted_out(posted)

    @rpc
    async def PostBatch(self, request: pb.PostBatchRequest, context) -> pb.PostBatchResponse:
        _authorize_flows(request.requests)
        started, principal = time.perf_counter(), principal_of(context)
        items = [_read(principal, item) for item in request.requests]
        try:
            outcomes = await self.s.posting.post_batch(items, request.atomic)
        finally:
            metrics.post_finished("PostBatch", started)
        _count_batch(request.requests, outcomes)
        response = pb.PostBatchResponse()
        for outcome in outcomes:
            _add_result(response.results, outcome)
        return response

    @rpc
    async def ReverseVoucher(self, request: pb.ReverseVoucherRequest, context) -> pb.ReverseVoucherResponse:
        principal = principal_of(context)
        cmd = ReverseVoucher(principal.tenant_id, request.request_id, request.voucher_id, request.reason,
                             principal.actor)
        posted = await self.s.posting.reverse(cmd)
        return pb.ReverseVoucherResponse(voucher=mapping.voucher_out(posted.vouchers[0]), replayed=posted.replayed)

    @rpc
    async def CreateHold(self, request: pb.CreateHoldRequest, context) -> pb.CreateHoldResponse:
        expires_us = None
        if request.HasField("expire_time"):
            expires_us = mapping.us_from_timestamp(request.expire_time, "expire_time")
        principal = principal_of(context)
        cmd = CreateHold(principal.tenant_id, request.request_id, mapping.ref_in(request.account), request.amount,
                         request.currency, expires_us, request.memo, dict(request.metadata), principal.actor)
        posted = await self.s.posting.create_hold(cmd)
        return pb.CreateHoldResponse(hold=mapping.hold_out(posted.holds[0]), replayed=posted.replayed)

    @rpc
    async def CaptureHold(self, request: pb.CaptureHoldRequest, context) -> pb.CaptureHoldResponse:
        principal = principal_of(context)
        cmd = CaptureHold(principal.tenant_id, request.request_id, request.hold_id, request.amount,
                          mapping.ref_in(request.destination, "destination"), request.final, request.memo,
                          principal.actor)
        posted = await self.s.posting.capture_hold(cmd)
        return pb.CaptureHoldResponse(hold=mapping.hold_out(posted.holds[0]),
                                      voucher=mapping.voucher_out(posted.vouchers[0]), replayed=posted.replayed)

    @rpc
    async def ReleaseHold(self, request: pb.ReleaseHoldRequest, context) -> pb.ReleaseHoldResponse:
        principal = principal_of(context)
        cmd = ReleaseHold(principal.tenant_id, request.request_id, request.hold_id, request.reason, principal.actor)
        posted = await self.s.posting.release_hold(cmd)
        return pb.ReleaseHoldResponse(hold=mapping.hold_out(posted.holds[0]), replayed=posted.replayed)

    @rpc
    async def GetHold(self, request: pb.GetHoldRequest, context) -> pb.GetHoldResponse:
        hold = await asyncio.to_thread(self.s.queries.get_hold, tenant_of(context), request.hold_id)
        return pb.GetHoldResponse(hold=mapping.hold_out(hold))

    @rpc
    async def ListHolds(self, request: pb.ListHoldsRequest, context) -> pb.ListHoldsResponse:
        page = await asyncio.to_thread(
            self.s.queries.list_holds, tenant_of(context), page_size=request.page_size,
            page_token=request.page_token, account_id=request.account_id,
            status=mapping.enum_in(mapping.HOLD_STATUSES, request.status, "status", required=False))
        holds, token = page_out(page, mapping.hold_out, self.s.settings.page_bytes_max)
        return pb.ListHoldsResponse(holds=holds, next_page_token=token)

    @rpc
    async def GetVoucher(self, request: pb.GetVoucherRequest, context) -> pb.GetVoucherResponse:
        voucher = await asyncio.to_thread(self.s.queries.get_voucher, tenant_of(context), request.voucher_id)
        return pb.GetVoucherResponse(voucher=mapping.voucher_out(voucher))

    @rpc
    async def ListVouchers(self, request: pb.ListVouchersRequest, context) -> pb.ListVouchersResponse:
        page = await asyncio.to_thread(
            self.s.queries.list_vouchers, tenant_of(context), page_size=request.page_size,
            page_token=request.page_token, account_id=request.account_id, flow_type=request.flow_type)
        vouchers, token = page_out(page, mapping.voucher_out, self.s.settings.page_bytes_max)
        return pb.ListVouchersResponse(vouchers=vouchers, next_page_token=token)

    async def StreamEvents(self, request: pb.StreamEventsRequest, context):
        async for response in streams.stream_events(self.s, request, context):
            yield response

    async def StreamBalanceChanges(self, request: pb.StreamBalanceChangesRequest, context):
        async for response in streams.stream_balance_changes(self.s, request, context):
            yield response


def _post_command(principal: Principal, request: pb.PostRequest) -> PostFlow:
    effective_us = None
    if request.HasField("effective_time"):
        effective_us = mapping.us_from_timestamp(request.effective_time, "effective_time")
    return PostFlow(tenant_id=principal.tenant_id, request_id=request.request_id, flow=mapping.flow_in(request),
                    memo=request.memo, metadata=dict(request.metadata), effective_us=effective_us,
                    actor=principal.actor)


def _read(principal: Principal, request: pb.PostRequest) -> PostFlow | LedgerError:
    try:
        return _post_command(principal, request)
    except LedgerError as error:
        return error


def _posted_out(posted: Posted) -> pb.PostResponse:
    response = pb.PostResponse(replayed=posted.replayed)
    for voucher in posted.vouchers:
        mapping.add_voucher(response.vouchers, voucher)
    return response


def _add_result(results, outcome: Posted | LedgerError) -> None:
    """Appends a batch item's result, built in place (see `mapping.add_voucher`)."""
    if isinstance(outcome, Posted):
        posted = results.add().posted
        posted.SetInParent()  # a posting of no voucher is still a posting
        posted.replayed = outcome.replayed
        for voucher in outcome.vouchers:
            mapping.add_voucher(posted.vouchers, voucher)
        return
    results.add(error=pb.PostError(code=code_of(outcome), reason=outcome.reason, message=outcome.message,
                                   metadata=outcome.metadata))


# Flows that move money without a business fact behind them are for operators only.
OPERATOR_FLOWS = frozenset({"adjustment"})


def _authorize_flows(requests) -> None:
    """Checked before anything in the requests is validated."""
    if any(r.WhichOneof("flow") in OPERATOR_FLOWS for r in requests):
        principal_of().require(Permission.OPERATE)


def _count_batch(requests, outcomes: list) -> None:
    """Postings and refusals of a PostBatch, counted by flow (and reason) in one pass."""
    flows = [r.WhichOneof("flow") or metrics.UNKNOWN_FLOW for r in requests]
    metrics.posted("PostBatch", [f for f, o in zip(flows, outcomes, strict=True) if not isinstance(o, LedgerError)])
    metrics.refused("PostBatch", [(f, grpc_code(o).name, o.reason) for f, o in zip(flows, outcomes, strict=True)
                                  if isinstance(o, LedgerError)])
