"""tally.v1.AccountService: accounts, balances and statements."""

from __future__ import annotations

import asyncio

from tally.api import mapping
from tally.api.errors import rpc
from tally.api.pages import page_out
from tally.api.tenancy import principal_of, tenant_of
from tally.domain.accounts import AccountStatus
from tally.domain.errors import invalid
from tally.domain.merging import HoldPolicy
from tally.service import accounts, merging, securities
from tally.service.commands import CreateAccount, UpdateAccount
from tally.service.container import Services
from tally.v1 import account_service_pb2 as pb
from tally.v1 import account_service_pb2_grpc as pb_grpc


class AccountServicer(pb_grpc.AccountServiceServicer):
    def __init__(self, services: Services) -> None:
        self.s = services

    @rpc
    async def CreateAccount(self, request: pb.CreateAccountRequest, context) -> pb.CreateAccountResponse:
        spec, parent = mapping.new_account_in(request)
        principal = principal_of(context)
        cmd = CreateAccount(principal.tenant_id, request.request_id, spec, parent, principal.actor)
        result = await asyncio.to_thread(accounts.create_account, cmd, self.s.uow,
                                         frozenset(self.s.settings.currencies), self.s.clock)
        return pb.CreateAccountResponse(account=mapping.account_out(result.account), replayed=result.replayed)

    @rpc
    async def GetAccount(self, request: pb.GetAccountRequest, context) -> pb.GetAccountResponse:
        account, balance = await asyncio.to_thread(
            self.s.queries.get_account, tenant_of(context), mapping.ref_in(request.account))
        merged_into = ""
        if account.status is AccountStatus.CLOSED:  # only a closed account can have been merged
            merged_into = await asyncio.to_thread(merging.merged_into, self.s.uow, account.tenant_id, account.id)
        return pb.GetAccountResponse(account=mapping.account_out(account), balance=mapping.balance_out(balance),
                                     merged_into=merged_into)

    @rpc
    async def ListAccounts(self, request: pb.ListAccountsRequest, context) -> pb.ListAccountsResponse:
        page = await asyncio.to_thread(
            self.s.queries.list_accounts, tenant_of(context), page_size=request.page_size,
            page_token=request.page_token,
            type_=mapping.enum_in(mapping.ACCOUNT_TYPES, request.type, "type", required=False),
            status=mapping.enum_in(mapping.STATUSES, request.status, "status", required=False),
            currency=request.currency, parent_id=request.parent_id)
        accounts, token = page_out(page, mapping.account_out, self.s.settings.page_bytes_max)
        return pb.ListAccountsResponse(accounts=accounts, next_page_token=token)

    @rpc
    async def UpdateAccount(self, request: pb.UpdateAccountRequest, context) -> pb.UpdateAccountResponse:
        principal = principal_of(context)
        cmd = UpdateAccount(principal.tenant_id, request.request_id, mapping.ref_in(request.account),
                            mapping.account_change_in(request), principal.actor)
        result = await asyncio.to_thread(accounts.update_account, cmd, self.s.uow, self.s.clock)
        return pb.UpdateAccountResponse(account=mapping.account_out(result.account), replayed=result.replayed)

    @rpc
    async def GetBalance(self, request: pb.GetBalanceRequest, context) -> pb.GetBalanceResponse:
        as_of_us = None
        if request.HasField("as_of_time"):
            as_of_us = mapping.us_from_timestamp(request.as_of_time, "as_of_time")
        ref, tenant_id = mapping.ref_in(request.account), tenant_of(context)
        if request.include_descendants:
            if as_of_us is not None or request.as_of_date:
                raise invalid("ROLLUP_AS_OF_UNSUPPORTED", "include_descendants rolls up live balances: leave "
                              "as_of_time and as_of_date unset", field="include_descendants")
            [found] = (await asyncio.to_thread(self.s.hierarchy.get_rollups, tenant_id, [ref])).accounts
            balance, rollups = found.balance, [mapping.rollup_out(r) for r in found.rollups]
        else:
            balance = await asyncio.to_thread(self.s.queries.get_balance, tenant_id, ref, as_of_us=as_of_us,
                                              as_of_date=request.as_of_date or None,
                                              min_voucher_sequence=request.min_voucher_sequence)
            rollups = []
        out = mapping.balance_out(balance)
        # A read of its own: the last issued statement changes only at a day close.
        out.previous_statement_date, out.previous_statement_balance = await asyncio.to_thread(
            self.s.statements.previous_balance, tenant_id, balance.account_id)
        return pb.GetBalanceResponse(balance=out, rollups=rollups)

    @rpc
    async def BatchGetBalances(self, request: pb.BatchGetBalancesRequest, context) -> pb.BatchGetBalancesResponse:
        refs = [mapping.ref_in(r) for r in request.accounts]
        if request.include_descendants:
            found = await asyncio.to_thread(self.s.hierarchy.get_rollups, tenant_of(context), refs)
            return pb.BatchGetBalancesResponse(
                balances=[mapping.balance_out(a.balance) for a in found.accounts],
                rollups=[pb.AccountRollUps(account_id=a.balance.account_id,
                                           rollups=[mapping.rollup_out(r) for r in a.rollups])
                         for a in found.accounts],
                voucher_sequence=found.voucher_sequence, event_sequence=found.event_sequence)
        snapshot = await asyncio.to_thread(self.s.queries.get_balances, tenant_of(context), refs)
        return pb.BatchGetBalancesResponse(balances=[mapping.balance_out(b) for b in snapshot.balances],
                                           voucher_sequence=snapshot.voucher_sequence,
                                           event_sequence=snapshot.event_sequence)

    @rpc
    async def ListEntries(self, request: pb.ListEntriesRequest, context) -> pb.ListEntriesResponse:
        list_entries = self.s.hierarchy.list_entries if request.include_descendants else self.s.queries.list_entries
        page = await asyncio.to_thread(
            list_entries, tenant_of(context), mapping.ref_in(request.account),
            page_size=request.page_size, page_token=request.page_token, start_date=request.start_date,
            end_date=request.end_date, min_voucher_sequence=request.min_voucher_sequence)
        entries, token = page_out(page, mapping.entry_out, self.s.settings.page_bytes_max)
        return pb.ListEntriesResponse(entries=entries, next_page_token=token, opening_balance=page.opening_balance)

    @rpc
    async def MergeAccounts(self, request: pb.MergeAccountsRequest, context) -> pb.MergeAccountsResponse:
        principal = principal_of(context)
        cmd = merging.MergeAccounts(
            principal.tenant_id, request.request_id, tuple(mapping.ref_in(r, "sources") for r in request.sources),
            mapping.ref_in(request.target, "target"),
            mapping.enum_in(HOLD_POLICIES, request.hold_policy, "hold_policy", required=False) or HoldPolicy.MOVE,
            request.memo, principal.actor)
        result = await asyncio.to_thread(merging.merge_accounts, cmd, self.s.uow, self.s.pipeline.calendar,
                                         self.s.clock)
        return pb.MergeAccountsResponse(target=mapping.account_out(result.target), replayed=result.replayed, merged=[
            pb.MergedAccount(source_account_id=m.source_id, voucher_id=m.voucher_id, amount=m.amount, moved_holds=[
                pb.MovedHold(source_hold_id=h.source_hold_id, target_hold_id=h.target_hold_id, amount=h.amount)
                for h in m.holds]) for m in result.moves])

    @rpc
    async def SetAccountSecurity(self, request: pb.SetAccountSecurityRequest,
                                 context) -> pb.SetAccountSecurityResponse:
        principal = principal_of(context)
        cmd = securities.SetAccountSecurity(
            principal.tenant_id, request.request_id, mapping.ref_in(request.credit_account, "credit_account"),
            mapping.ref_in(request.deposit_account, "deposit_account"), request.ratio_bps,
            request.bind_credit_limit, principal.actor)
        report = await asyncio.to_thread(securities.set_security, cmd, self.s.uow, self.s.clock)
        return pb.SetAccountSecurityResponse(security=_security_out(report.securities[0]), replayed=report.replayed)

    @rpc
    async def GetAccountSecurity(self, request: pb.GetAccountSecurityRequest,
                                 context) -> pb.GetAccountSecurityResponse:
        report = await asyncio.to_thread(securities.get_security, self.s.uow, tenant_of(context),
                                         mapping.ref_in(request.account))
        return pb.GetAccountSecurityResponse(securities=[_security_out(v) for v in report.securities],
                                             required_deposit=report.required_deposit)


HOLD_POLICIES = {pb.MERGE_HOLD_POLICY_MOVE: HoldPolicy.MOVE, pb.MERGE_HOLD_POLICY_REFUSE: HoldPolicy.REFUSE}


def _security_out(view: securities.SecurityView) -> pb.AccountSecurity:
    s = view.security
    return pb.AccountSecurity(credit_account_id=s.credit_id, deposit_account_id=s.deposit_id, ratio_bps=s.ratio_bps,
                              bind_credit_limit=s.bound, outstanding=view.outstanding,
                              required_deposit=view.required_deposit, credit_limit=view.credit_limit)
