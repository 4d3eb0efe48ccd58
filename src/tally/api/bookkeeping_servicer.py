"""tally.v1.BookkeepingService: trial balance and the rule set."""

from __future__ import annotations

import asyncio

from tally.api import mapping
from tally.api.errors import abort, rpc
from tally.api.tenancy import tenant_of
from tally.domain.errors import LedgerError, invalid
from tally.rules.loader import RuleSetError, RuleSetTooDeep, parse_rule_set
from tally.service.books.auditor import list_audit_log
from tally.service.books.ledger_audit import AuditReport, FindingKind, Progress
from tally.service.books.verify import chain_report
from tally.service.container import Services
from tally.service.faults import unexpected
from tally.storage.audit_repo import AuditFilter
from tally.v1 import bookkeeping_service_pb2 as pb
from tally.v1 import bookkeeping_service_pb2_grpc as pb_grpc

RULE_SET_SIZE_BYTES_MAX = 1024 * 1024


class BookkeepingServicer(pb_grpc.BookkeepingServiceServicer):
    def __init__(self, services: Services) -> None:
        self.s = services

    @rpc
    async def GetTrialBalance(self, request: pb.GetTrialBalanceRequest, context) -> pb.GetTrialBalanceResponse:
        if request.HasField("subtree"):
            totals = await asyncio.to_thread(self.s.hierarchy.trial_balance, tenant_of(context),
                                             mapping.ref_in(request.subtree))
        else:
            totals = await asyncio.to_thread(self.s.queries.trial_balance, tenant_of(context))
        return pb.GetTrialBalanceResponse(
            totals=[pb.TrialBalanceTotal(currency=t.currency, debit_total=t.debit_total, credit_total=t.credit_total,
                                         difference=t.difference, account_count=t.account_count) for t in totals],
            balanced=all(t.difference == 0 for t in totals))

    @rpc
    async def GetRuleSet(self, request: pb.GetRuleSetRequest, context) -> pb.GetRuleSetResponse:
        tenant_of(context)
        rules = self.s.posting.rules
        return pb.GetRuleSetResponse(version=rules.version, flow_types=sorted(rules.flow_types),
                                     rules=[_rule_out(r) for r in rules.rules],
                                     source=self.s.settings.rules_file or "default")

    @rpc
    async def VerifyChain(self, request: pb.VerifyChainRequest, context) -> pb.VerifyChainResponse:
        # Cancelled with the call (client gone, deadline passed): Auditor.run stops the work at its next page.
        return report_out(await self.s.auditor.run(tenant_of(context), full=request.full))

    async def AuditLedger(self, request: pb.AuditLedgerRequest, context):
        """Progress after every page of vouchers, then the result. The run is a task of this call: when the
        caller cancels, the stream's generator is closed, the task cancelled, and the work stops."""
        try:
            tenant_id = tenant_of(context)
        except LedgerError as error:
            await abort(context, error)
        pages: asyncio.Queue[Progress] = asyncio.Queue(PROGRESS_QUEUE_MAX)

        def on_page(progress: Progress) -> None:
            if pages.full():
                pages.get_nowait()  # a slow reader sees the latest progress, not every page
            pages.put_nowait(progress)

        run = asyncio.ensure_future(self.s.auditor.run(tenant_id, full=request.full, progress=on_page))
        try:
            while not run.done():
                waiter = asyncio.ensure_future(pages.get())
                await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if waiter.done():
                    yield pb.AuditLedgerResponse(progress=_progress_out(waiter.result()))
                else:
                    waiter.cancel()
            try:
                report = run.result()
            except LedgerError as error:
                await abort(context, error)
            except Exception as exc:  # noqa: BLE001 - nothing may leave as UNKNOWN
                await abort(context, unexpected(exc))
            yield pb.AuditLedgerResponse(result=report_out(report))
        finally:
            run.cancel()

    @rpc
    async def ListAuditLog(self, request: pb.ListAuditLogRequest, context) -> pb.ListAuditLogResponse:
        where = AuditFilter(
            actor=request.actor, action=request.action, outcome_prefix=request.outcome,
            start_us=mapping.us_from_timestamp(request.start_time, "start_time")
            if request.HasField("start_time") else None,
            end_us=mapping.us_from_timestamp(request.end_time, "end_time") if request.HasField("end_time") else None)
        page = await asyncio.to_thread(list_audit_log, self.s.uow, tenant_of(context), where, request.page_size,
                                       request.page_token)
        return pb.ListAuditLogResponse(entries=[_audit_entry_out(r) for r in page.rows],
                                       next_page_token=page.next_page_token)

    @rpc
    async def ValidateRuleSet(self, request: pb.ValidateRuleSetRequest, context) -> pb.ValidateRuleSetResponse:
        tenant_of(context)
        if len(request.content.encode()) > RULE_SET_SIZE_BYTES_MAX:
            return pb.ValidateRuleSetResponse(valid=False, problems=[f"larger than {RULE_SET_SIZE_BYTES_MAX} bytes"])
        try:
            rules = await asyncio.to_thread(parse_rule_set, request.content, source="<request>")
        except RuleSetTooDeep:
            raise invalid("RULE_SET_TOO_DEEP", "the rule set nests arrays or tables too deeply to be read") from None
        except RuleSetError as error:
            return pb.ValidateRuleSetResponse(valid=False, problems=[str(p) for p in error.problems])
        return pb.ValidateRuleSetResponse(valid=True, version=rules.version)


PROGRESS_QUEUE_MAX = 16
FINDING_KINDS = {kind: pb.AuditFindingKind.Value(f"AUDIT_FINDING_KIND_{kind.name}") for kind in FindingKind}


def report_out(report: AuditReport) -> pb.VerifyChainResponse:
    """`intact` is the whole audit's verdict; the first_broken fields still name the hash chain's first break."""
    chain = chain_report(report)
    return pb.VerifyChainResponse(
        intact=report.intact, vouchers_checked=chain.checked, first_broken_voucher_id=chain.broken_voucher_id,
        first_broken_sequence=chain.broken_sequence, problem=chain.problem, head_hash=chain.head_hash,
        findings=[pb.AuditFinding(kind=FINDING_KINDS[f.kind], message=f.message, account_id=f.account_id,
                                  voucher_id=f.voucher_id, sequence=f.sequence, expected=f.expected, found=f.found)
                  for f in report.findings],
        findings_omitted=report.findings_omitted, full=report.full, from_sequence=report.from_sequence,
        through_sequence=report.through_sequence, vouchers_read=report.vouchers_read, lines_read=report.lines_read,
        events_checked=report.events_checked, audit_rows_read=report.audit_rows_read,
        accounts_checked=report.accounts_checked, marked_inconsistent_account_ids=report.marked_inconsistent,
        checkpoint_saved=report.checkpoint_saved, duration_ms=report.duration_ms)


def _progress_out(progress: Progress) -> pb.AuditProgress:
    return pb.AuditProgress(vouchers_read=progress.vouchers_read, through_sequence=progress.through_sequence,
                            last_sequence=progress.last_sequence)


def _audit_entry_out(row) -> pb.AuditLogEntry:
    return pb.AuditLogEntry(id=row.id, actor=row.actor, role=row.role, action=row.action, target=row.target,
                            outcome=row.outcome, request_id=row.request_id, peer=row.peer,
                            time=mapping.timestamp_from_us(row.time_us), previous_hash=row.previous_hash,
                            hash=row.hash)


def _rule_out(rule) -> pb.Rule:
    return pb.Rule(
        id=rule.id, flow=rule.flow.name, when=dict(rule.when), mode=rule.mode.value,
        vouchers=[pb.RuleVoucher(name=v.name, memo=v.memo.text if v.memo else "", lines=[
            pb.RuleLine(side=ln.side.value, account=ln.account.text, amount=ln.amount_text,
                        when=str(ln.when or ""), split="shares" if ln.split else "") for ln in v.lines])
                  for v in rule.vouchers],
        requires=[g.text for g in rule.requires],
    )
