"""tally.v1.BookkeepingService: trial balance and the rule set."""

from __future__ import annotations

import asyncio

from tally.api.errors import rpc
from tally.api.tenancy import tenant_of
from tally.domain.errors import invalid
from tally.rules.loader import RuleSetError, RuleSetTooDeep, parse_rule_set
from tally.service.container import Services
from tally.service.verify import ChainReport, verify_chain
from tally.v1 import bookkeeping_service_pb2 as pb
from tally.v1 import bookkeeping_service_pb2_grpc as pb_grpc

RULE_SET_SIZE_BYTES_MAX = 1024 * 1024


class BookkeepingServicer(pb_grpc.BookkeepingServiceServicer):
    def __init__(self, services: Services) -> None:
        self.s = services

    @rpc
    async def GetTrialBalance(self, request: pb.GetTrialBalanceRequest, context) -> pb.GetTrialBalanceResponse:
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
        report = await asyncio.to_thread(verify_chain, self.s.uow, tenant_of(context))
        return _report_out(report)

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


def _report_out(report: ChainReport) -> pb.VerifyChainResponse:
    return pb.VerifyChainResponse(intact=report.intact, vouchers_checked=report.checked,
                                  first_broken_voucher_id=report.broken_voucher_id,
                                  first_broken_sequence=report.broken_sequence, problem=report.problem,
                                  head_hash=report.head_hash)


def _rule_out(rule) -> pb.Rule:
    return pb.Rule(
        id=rule.id, flow=rule.flow.name, when=dict(rule.when), mode=rule.mode.value,
        vouchers=[pb.RuleVoucher(name=v.name, memo=v.memo.text if v.memo else "", lines=[
            pb.RuleLine(side=ln.side.value, account=ln.account.text, amount=ln.amount_text,
                        when=str(ln.when or ""), split="shares" if ln.split else "") for ln in v.lines])
                  for v in rule.vouchers],
        requires=[g.text for g in rule.requires],
    )
