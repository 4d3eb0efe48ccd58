"""tally.v1.SettlementService: statement reconciliation (here) and payouts (payouts_servicer); maps proto <->
the settlement handlers."""

from __future__ import annotations

import asyncio

from tally.api.errors import rpc
from tally.api.mapping import enum_in, ref_in, timestamp_from_us
from tally.api.payouts_servicer import PayoutRpcs
from tally.api.tenancy import principal_of, tenant_of
from tally.domain.reconciliation import DATE_WINDOW_DAYS_DEFAULT, ItemState, Resolution, open_amount
from tally.service.container import Services
from tally.service.settlement.reconciliation import ImportStatement, ResolveItem, StateCount
from tally.service.settlement.statements import CsvColumns, StatementFormat
from tally.storage.recon_repo import ItemRow, StatementRow
from tally.v1 import settlement_service_pb2 as pb
from tally.v1 import settlement_service_pb2_grpc as pb_grpc

FORMATS = {pb.STATEMENT_FORMAT_CSV: StatementFormat.CSV, pb.STATEMENT_FORMAT_CAMT053: StatementFormat.CAMT053}
FORMATS_OUT = {v: k for k, v in FORMATS.items()}
STATES = {pb.RECONCILIATION_ITEM_STATE_MATCHED: ItemState.MATCHED,
          pb.RECONCILIATION_ITEM_STATE_DIFFERENCE: ItemState.DIFFERENCE,
          pb.RECONCILIATION_ITEM_STATE_UNMATCHED_OURS: ItemState.UNMATCHED_OURS,
          pb.RECONCILIATION_ITEM_STATE_UNMATCHED_THEIRS: ItemState.UNMATCHED_THEIRS}
STATES_OUT = {v: k for k, v in STATES.items()}
RESOLUTIONS = {pb.RESOLUTION_SHORT_FALL: Resolution.SHORT_FALL, pb.RESOLUTION_LONG_FALL: Resolution.LONG_FALL,
               pb.RESOLUTION_SUPPLEMENTARY: Resolution.SUPPLEMENTARY}
RESOLUTIONS_OUT = {**{v: k for k, v in RESOLUTIONS.items()}, Resolution.NONE: pb.RESOLUTION_UNSPECIFIED}


class SettlementServicer(PayoutRpcs, pb_grpc.SettlementServiceServicer):
    def __init__(self, services: Services) -> None:
        self.s = services

    @rpc
    async def ImportStatement(self, request: pb.ImportStatementRequest, context) -> pb.ImportStatementResponse:
        principal = principal_of(context)
        columns = request.csv_columns
        cmd = ImportStatement(
            principal.tenant_id, request.request_id, ref_in(request.account),
            enum_in(FORMATS, request.format, "format"), request.statement_file, request.statement_id,
            {f: getattr(columns, f"{f}_column") for f in CsvColumns.__dataclass_fields__
             if getattr(columns, f"{f}_column")},
            request.closing_balance if request.HasField("closing_balance") else None,
            request.date_window_days if request.HasField("date_window_days") else DATE_WINDOW_DAYS_DEFAULT,
            principal.actor, request.csv_layout)
        done = await asyncio.to_thread(self.s.reconciliation.import_statement, cmd)
        return pb.ImportStatementResponse(statement=statement_out(done.statement, done.account_code),
                                          counts=[count_out(c) for c in done.counts], replayed=done.replayed)

    @rpc
    async def GetReconciliation(self, request: pb.GetReconciliationRequest, context) -> pb.GetReconciliationResponse:
        report = await asyncio.to_thread(self.s.reconciliation.report, tenant_of(context),
                                         ref_in(request.account), request.statement_id)
        response = pb.GetReconciliationResponse(
            statement=statement_out(report.statement, report.account_code),
            counts=[count_out(c) for c in report.counts], open_items=[item_out(i) for i in report.open_items],
            open_items_truncated=report.open_items_truncated)
        if report.proof is not None:
            p = report.proof
            response.fund_proof.CopyFrom(pb.FundProof(
                ledger_balance=p.ledger_balance, resolutions=p.resolutions, closing_balance=p.closing_balance,
                open_items=p.open_items, proven=p.proven))
        return response

    @rpc
    async def ListReconciliationItems(self, request: pb.ListReconciliationItemsRequest,
                                      context) -> pb.ListReconciliationItemsResponse:
        state = enum_in(STATES, request.state, "state", required=False)
        items, token = await asyncio.to_thread(
            self.s.reconciliation.list_items, tenant_of(context), ref_in(request.account), request.statement_id, state,
            request.page_size, request.page_token)
        return pb.ListReconciliationItemsResponse(items=[item_out(i) for i in items], next_page_token=token)

    @rpc
    async def ResolveItem(self, request: pb.ResolveItemRequest, context) -> pb.ResolveItemResponse:
        principal = principal_of(context)
        cmd = ResolveItem(principal.tenant_id, request.request_id, request.item_id,
                          enum_in(RESOLUTIONS, request.resolution, "resolution"), request.party, request.memo,
                          principal.actor)
        done = await self.s.reconciliation.resolve(cmd)
        return pb.ResolveItemResponse(item=item_out(done.item), voucher_ids=list(done.voucher_ids),
                                      replayed=done.replayed)


def statement_out(row: StatementRow, account_code: str) -> pb.ImportedStatement:
    out = pb.ImportedStatement(statement_id=row.statement_id, account=account_code,
                       format=FORMATS_OUT[StatementFormat(row.format)], currency=row.currency,
                       start_date=row.start_date, end_date=row.end_date, line_count=row.line_count,
                       ledger_balance=row.ledger_balance, import_time=timestamp_from_us(row.created_us),
                       digest=row.digest)
    if row.closing_balance is not None:
        out.closing_balance = row.closing_balance
    return out


def count_out(count: StateCount) -> pb.ReconciliationStateCount:
    return pb.ReconciliationStateCount(state=STATES_OUT[count.state], items=count.items, ours=count.ours,
                                       theirs=count.theirs, open_items=count.open_items)


def item_out(item: ItemRow) -> pb.ReconciliationItem:
    out = pb.ReconciliationItem(
        id=item.id, state=STATES_OUT[item.state], rule=item.rule, entries=list(item.entry_keys),
        lines=[pb.StatementLine(line_no=ln.line_no, reference=ln.reference, amount=ln.amount,
                                value_date=ln.value_date, line_id=ln.line_id, description=ln.description)
               for ln in item.lines],
        ours=item.ours, theirs=item.theirs, difference=item.difference,
        open_amount=open_amount(item.state, item.ours, item.theirs, item.resolution),
        resolution=RESOLUTIONS_OUT[item.resolution], resolution_voucher_id=",".join(item.voucher_ids),
        resolved_by=item.resolved_by)
    if item.resolved_us:
        out.resolve_time.CopyFrom(timestamp_from_us(item.resolved_us))
    return out
