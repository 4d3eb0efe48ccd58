"""tally.v1.DayService: accounting days and their close."""

from __future__ import annotations

import asyncio

from tally.api.errors import rpc
from tally.api.mapping import SIDES_PB, entry_out, ref_in, timestamp_from_us, voucher_out
from tally.api.tenancy import tenant_of
from tally.domain.accounts import Side
from tally.domain.days import AccountingDay, DayState
from tally.domain.statements import Statement
from tally.service.books.summaries import ExportRow, Summary
from tally.service.container import Services
from tally.v1 import day_service_pb2 as pb
from tally.v1 import day_service_pb2_grpc as pb_grpc

STATES = {state: pb.DayState.Value(f"DAY_STATE_{state.name}") for state in DayState}


class DayServicer(pb_grpc.DayServiceServicer):
    def __init__(self, services: Services) -> None:
        self.days, self.statements, self.summaries = services.days, services.statements, services.summaries

    @rpc
    async def CloseAccountingDay(self, request: pb.CloseAccountingDayRequest,
                                 context) -> pb.CloseAccountingDayResponse:
        day = await self.days.close_day(tenant_of(context), request.accounting_date, early=request.early)
        return pb.CloseAccountingDayResponse(day=day_out(day))

    @rpc
    async def GetAccountingDay(self, request: pb.GetAccountingDayRequest, context) -> pb.GetAccountingDayResponse:
        day = await asyncio.to_thread(self.days.get, tenant_of(context), request.accounting_date)
        return pb.GetAccountingDayResponse(day=day_out(day))

    @rpc
    async def ListAccountingDays(self, request: pb.ListAccountingDaysRequest,
                                 context) -> pb.ListAccountingDaysResponse:
        days, token = await asyncio.to_thread(self.days.list, tenant_of(context), request.page_size,
                                              request.page_token)
        return pb.ListAccountingDaysResponse(days=[day_out(d) for d in days], next_page_token=token)

    @rpc
    async def ListClosingBalances(self, request: pb.ListClosingBalancesRequest,
                                  context) -> pb.ListClosingBalancesResponse:
        rows, token = await asyncio.to_thread(self.days.closing_balances, tenant_of(context),
                                              request.accounting_date, request.page_size, request.page_token)
        return pb.ListClosingBalancesResponse(
            balances=[pb.ClosingBalance(account_id=b.account_id, currency=b.currency, balance=b.balance,
                                        entry_count=b.entry_count) for b in rows], next_page_token=token)

    @rpc
    async def ListStatements(self, request: pb.ListStatementsRequest, context) -> pb.ListStatementsResponse:
        found, token = await asyncio.to_thread(self.statements.list, tenant_of(context), ref_in(request.account),
                                               request.page_size, request.page_token, request.min_voucher_sequence)
        return pb.ListStatementsResponse(statements=[statement_out(s) for s in found], next_page_token=token)

    @rpc
    async def GetStatement(self, request: pb.GetStatementRequest, context) -> pb.GetStatementResponse:
        page = await asyncio.to_thread(self.statements.get, tenant_of(context), ref_in(request.account),
                                       request.date, request.page_size, request.page_token,
                                       request.min_voucher_sequence)
        return pb.GetStatementResponse(statement=statement_out(page.statement),
                                       entries=[entry_out(e) for e in page.entries],
                                       next_page_token=page.next_page_token)

    @rpc
    async def ListSummaries(self, request: pb.ListSummariesRequest, context) -> pb.ListSummariesResponse:
        found, token = await asyncio.to_thread(self.summaries.summaries, tenant_of(context), request.accounting_date,
                                               request.page_size, request.page_token)
        return pb.ListSummariesResponse(summaries=[summary_out(s) for s in found], next_page_token=token)

    @rpc
    async def ListSummaryDetail(self, request: pb.ListSummaryDetailRequest,
                                context) -> pb.ListSummaryDetailResponse:
        found, token = await asyncio.to_thread(self.summaries.detail, tenant_of(context), request.accounting_date,
                                               request.flow_type, request.currency, request.page_size,
                                               request.page_token)
        return pb.ListSummaryDetailResponse(vouchers=[voucher_out(v) for v in found], next_page_token=token)

    @rpc
    async def ExportGeneralLedger(self, request: pb.ExportGeneralLedgerRequest,
                                  context) -> pb.ExportGeneralLedgerResponse:
        rows, token = await asyncio.to_thread(self.summaries.export, tenant_of(context), request.accounting_date,
                                              request.page_size, request.page_token)
        return pb.ExportGeneralLedgerResponse(rows=[export_row_out(r) for r in rows], next_page_token=token)


KINDS = {"summary": pb.LEDGER_ROW_KIND_SUMMARY, "detail": pb.LEDGER_ROW_KIND_DETAIL}


def summary_out(s: Summary) -> pb.SummaryVoucher:
    return pb.SummaryVoucher(
        id=s.id, accounting_date=s.accounting_date, flow_type=s.flow_type, currency=s.currency,
        voucher_count=s.voucher_count, account_prefixes=s.account_prefixes,
        lines=[pb.SummaryLine(line_no=i + 1, account_id=ln.account_id,
                              account_code=s.account_codes.get(ln.account_id, ""), side=SIDES_PB[Side(ln.side)],
                              amount=ln.amount, line_count=ln.line_count) for i, ln in enumerate(s.lines)])


def export_row_out(r: ExportRow) -> pb.LedgerExportRow:
    return pb.LedgerExportRow(
        accounting_date=r.accounting_date, kind=KINDS[r.kind], voucher_id=r.voucher_id, flow_type=r.flow_type,
        line_no=r.line_no, account_id=r.account_id, account_code=r.account_code, side=SIDES_PB[Side(r.side)],
        amount=r.amount, currency=r.currency, line_count=r.line_count, memo=r.memo)


def statement_out(s: Statement) -> pb.Statement:
    return pb.Statement(account_id=s.account_id, currency=s.currency, start_date=s.cycle.start,
                        end_date=s.cycle.end, opening_balance=s.opening_balance, closing_balance=s.closing_balance,
                        debit_total=s.debit_total, credit_total=s.credit_total, entry_count=s.entry_count,
                        issued=s.issued)


def day_out(day: AccountingDay) -> pb.AccountingDay:
    out = pb.AccountingDay(
        accounting_date=day.date, state=STATES[day.state], after_sequence=day.after_sequence,
        last_sequence=day.last_sequence, voucher_count=day.voucher_count, accounts_closed=day.accounts_closed,
        currency_totals=[pb.DayCurrencyTotal(currency=c.currency, debit_total=c.debit_total,
                                             credit_total=c.credit_total, line_count=c.line_count)
                         for c in day.currencies],
        flow_totals=[pb.DayFlowTotal(flow_type=f.flow_type, currency=f.currency, voucher_count=f.voucher_count,
                                     amount_total=f.amount_total) for f in day.flows],
        event_sequence=day.event_sequence)
    if day.started_us:
        out.close_started_time.CopyFrom(timestamp_from_us(day.started_us))
    if day.closed_us:
        out.closed_time.CopyFrom(timestamp_from_us(day.closed_us))
    return out
