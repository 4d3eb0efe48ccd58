"""tally.v1.AccountingService: Post, ReverseVoucher, GetVoucher, ListVouchers."""

from __future__ import annotations

import asyncio

from tally.api import mapping
from tally.api.errors import rpc
from tally.api.tenancy import tenant_of
from tally.service import posting
from tally.service.commands import PostFlow, ReverseVoucher
from tally.service.container import Services
from tally.v1 import accounting_service_pb2 as pb
from tally.v1 import accounting_service_pb2_grpc as pb_grpc


class AccountingServicer(pb_grpc.AccountingServiceServicer):
    def __init__(self, services: Services) -> None:
        self.s = services

    @rpc
    async def Post(self, request: pb.PostRequest, context) -> pb.PostResponse:
        cmd = PostFlow(
            tenant_id=tenant_of(context), request_id=request.request_id, flow=mapping.flow_in(request),
            memo=request.memo, metadata=dict(request.metadata),
            effective_us=(mapping.us_from_timestamp(request.effective_time, "effective_time")
                          if request.HasField("effective_time") else None),
        )
        posted = await posting.post_flow(cmd, self.s.pipeline)
        return pb.PostResponse(vouchers=[mapping.voucher_out(v) for v in posted.vouchers], replayed=posted.replayed)

    @rpc
    async def ReverseVoucher(self, request: pb.ReverseVoucherRequest, context) -> pb.ReverseVoucherResponse:
        cmd = ReverseVoucher(tenant_of(context), request.request_id, request.voucher_id, request.reason)
        posted = await posting.reverse_voucher(cmd, self.s.pipeline, self.s.uow)
        return pb.ReverseVoucherResponse(voucher=mapping.voucher_out(posted.vouchers[0]), replayed=posted.replayed)

    @rpc
    async def GetVoucher(self, request: pb.GetVoucherRequest, context) -> pb.GetVoucherResponse:
        voucher = await asyncio.to_thread(self.s.queries.get_voucher, tenant_of(context), request.voucher_id)
        return pb.GetVoucherResponse(voucher=mapping.voucher_out(voucher))

    @rpc
    async def ListVouchers(self, request: pb.ListVouchersRequest, context) -> pb.ListVouchersResponse:
        page = await asyncio.to_thread(
            self.s.queries.list_vouchers, tenant_of(context), page_size=request.page_size,
            page_token=request.page_token, account_id=request.account_id, flow_type=request.flow_type)
        return pb.ListVouchersResponse(vouchers=[mapping.voucher_out(v) for v in page.items],
                                       next_page_token=page.next_page_token)
