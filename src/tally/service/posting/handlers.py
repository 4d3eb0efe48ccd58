"""Handlers that post: flows, batches, reversals and holds. Each becomes a Submission built in pure code
(or, for rule-driven flows, a build function the writer runs inside the transaction) and goes through
the posting pipeline; the caller's answer comes after the commit."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from tally.domain.accounts import Side
from tally.domain.errors import LedgerError, invalid, not_accessible, precondition
from tally.domain.fields import check_caller_metadata, check_request_id, check_tenant
from tally.domain.flows import AdjustmentFlow, RefundFlow, RuleFlow, TransferFlow
from tally.domain.fx import FxFlow
from tally.domain.holds import Hold, check_new_hold
from tally.domain.ids import new_id
from tally.domain.money import Currency
from tally.domain.subaccounts import SubAccountTransferFlow
from tally.domain.vouchers import AccountRef, EffectiveWindow, LineDraft, VoucherDraft, check_draft, reversal_lines
from tally.rules.engine import RuleSet
from tally.service.commands import CaptureHold, CreateHold, PostFlow, ReleaseHold, ReverseVoucher
from tally.service.posting.batch import Outcome, Posted, Submission, refused_with
from tally.service.posting.hold_book import HoldAction, HoldOp
from tally.service.posting.pipeline import PostingPipeline
from tally.service.posting.refunds import refund_parts
from tally.storage import holds_repo, journal_repo
from tally.storage.uow import UnitOfWork

POST_BATCH_SIZE_MAX = 1000
_groups = itertools.count(1)


@dataclass(frozen=True)
class Posting:
    pipeline: PostingPipeline
    uow: UnitOfWork
    rules: RuleSet
    currencies: dict[str, Currency]
    clock: Callable[[], int]
    effective_window: EffectiveWindow = EffectiveWindow()

    async def post(self, cmd: PostFlow) -> Posted:
        return await self._submit(await self.submission(cmd))

    async def post_batch(self, items: list[PostFlow | LedgerError], atomic: bool) -> list[Outcome]:
        """Posts many flows in one queue entry; `items` may hold the refusals of requests that could not
        even be read. Atomic: every flow posts, or none does."""
        if not items:
            raise invalid("BATCH_EMPTY", "a batch needs at least one request")
        if len(items) > POST_BATCH_SIZE_MAX:
            raise invalid("BATCH_TOO_LARGE", f"a batch holds at most {POST_BATCH_SIZE_MAX} requests")
        prepared = await self._prepared(items)
        subs = [p for p in prepared if isinstance(p, Submission)]
        if atomic:
            _check_unique(subs)
            refused = next(((i, p) for i, p in enumerate(prepared) if isinstance(p, LedgerError)), None)
            if refused is not None:
                return [p if i == refused[0] else refused_with(*refused) for i, p in enumerate(prepared)]
            group = next(_groups)
            for sub in subs:
                sub.group = group
        answers = iter(await self.pipeline.submit_many(subs) if subs else [])
        return [next(answers) if isinstance(p, Submission) else p for p in prepared]

    async def reverse(self, cmd: ReverseVoucher) -> Posted:
        _check_ids(cmd.tenant_id, cmd.request_id)
        # A voucher never changes once written, so reading it outside the write transaction is safe; the
        # writer still checks, inside its transaction, that nobody reversed it meanwhile.
        found = await asyncio.to_thread(
            self.uow.read, {cmd.tenant_id},
            lambda conn: journal_repo.get_vouchers(conn, cmd.tenant_id, [cmd.voucher_id]))
        if not found:
            raise not_accessible("voucher", cmd.voucher_id)
        original = found[0]
        if original.reverses_id:
            raise precondition("VOUCHER_IS_REVERSAL", "a reversal cannot itself be reversed; post a new voucher",
                               voucher_id=original.id)
        draft = VoucherDraft("reversal", reversal_lines(original),
                             memo=cmd.reason or f"reversal of {original.id}", reverses_id=original.id)
        return await self._submit(_submission(cmd, (draft,)))

    async def create_hold(self, cmd: CreateHold) -> Posted:
        _check_ids(cmd.tenant_id, cmd.request_id)
        now = self.clock()
        check_new_hold(cmd.amount, cmd.currency, cmd.memo, cmd.metadata, cmd.expires_us, now)
        hold = Hold(id=new_id(), tenant_id=cmd.tenant_id, account_id="", currency=cmd.currency, amount=cmd.amount,
                    expires_us=cmd.expires_us, request_id=cmd.request_id, created_by=cmd.actor, memo=cmd.memo,
                    metadata=dict(cmd.metadata), created_us=now, updated_us=now)
        op = HoldOp(HoldAction.CREATE, hold.id, cmd.amount, account=cmd.account, new_hold=hold)
        return await self._submit(_submission(cmd, hold_ops=(op,)))

    async def capture_hold(self, cmd: CaptureHold) -> Posted:
        _check_ids(cmd.tenant_id, cmd.request_id)
        hold = await self._hold(cmd.tenant_id, cmd.hold_id)  # its account and currency never change
        lines = (LineDraft(AccountRef(id=hold.account_id), Side.DEBIT, cmd.amount, hold.currency, cmd.memo),
                 LineDraft(cmd.destination, Side.CREDIT, cmd.amount, hold.currency, cmd.memo))
        draft = check_draft(VoucherDraft("hold_capture", lines, memo=cmd.memo or f"capture of hold {hold.id}",
                                         metadata={"hold_id": hold.id}))
        op = HoldOp(HoldAction.CAPTURE, hold.id, cmd.amount, final=cmd.final)
        return await self._submit(_submission(cmd, (draft,), hold_ops=(op,)))

    async def release_hold(self, cmd: ReleaseHold) -> Posted:
        _check_ids(cmd.tenant_id, cmd.request_id)
        op = HoldOp(HoldAction.RELEASE, cmd.hold_id)
        return await self._submit(_submission(cmd, hold_ops=(op,)))

    async def submission(self, cmd: PostFlow) -> Submission:
        """Checks a flow and builds what the writer needs for it, before anything is queued."""
        if isinstance(cmd.flow, RefundFlow):
            self._check(cmd)
            drafts, caps = await refund_parts(cmd.tenant_id, cmd.flow, self.rules, self.uow)
            return _submission(cmd, _dressed(drafts, cmd), caps=caps)
        return self._built(cmd)

    def _built(self, cmd: PostFlow) -> Submission:
        """The submission of a flow that needs nothing read first: every flow but a refund."""
        self._check(cmd)
        flow = cmd.flow
        if isinstance(flow, TransferFlow | AdjustmentFlow | SubAccountTransferFlow):
            return _submission(cmd, flow.vouchers(cmd.memo, cmd.metadata, cmd.effective_us))
        if isinstance(flow, FxFlow):  # its platform accounts open from the rule set's templates
            return _submission(cmd, flow.vouchers(cmd.memo, cmd.metadata, cmd.effective_us), codes=flow.codes())
        return self._rule_submission(cmd, flow)

    def _rule_submission(self, cmd: PostFlow, flow: RuleFlow) -> Submission:
        facts = flow.facts
        self.rules.rule_for(facts)  # an unknown flow or unmatched tags is refused before queueing
        codes = {code: facts.currency for code in self.rules.accounts_needed(facts)}
        hold_ops = ()
        if flow.hold_id:
            hold_ops = (HoldOp(HoldAction.CONSUME, flow.hold_id, facts.values.get("amount", 0)),)

        def build(view) -> tuple[VoucherDraft, ...]:
            return _dressed(self.rules.build(facts, view, self.currencies), cmd)

        return _submission(cmd, build=build, codes=codes, hold_ops=hold_ops)

    def _check(self, cmd: PostFlow) -> None:
        """What every flow's command must hold before anything is built or queued."""
        _check_ids(cmd.tenant_id, cmd.request_id)
        check_caller_metadata(cmd.metadata)
        if cmd.effective_us is not None:
            self.effective_window.check(cmd.effective_us, self.clock())

    async def _hold(self, tenant_id: str, hold_id: str) -> Hold:
        found = await asyncio.to_thread(
            self.uow.read, {tenant_id}, lambda conn: holds_repo.load_holds(conn, tenant_id, [hold_id]))
        if hold_id not in found:
            raise not_accessible("hold", hold_id)
        return found[hold_id]

    async def _prepared(self, items: list[PostFlow | LedgerError]) -> list[Submission | LedgerError]:
        """Each item's submission or refusal. Refunds read the vouchers they refund, side by side; the rest
        are built in line (a task for each of a thousand flows cost more than building them)."""
        refunds = [i for i, item in enumerate(items) if _is_refund(item)]
        found = {}
        if refunds:  # gather() of nothing still makes a future on the event loop
            found = dict(zip(refunds, await asyncio.gather(*(self._refund_checked(items[i]) for i in refunds)),
                             strict=True))
        return [found[i] if i in found else item if isinstance(item, LedgerError) else self._built_checked(item)
                for i, item in enumerate(items)]

    def _built_checked(self, cmd: PostFlow) -> Submission | LedgerError:
        try:
            return self._built(cmd)
        except LedgerError as error:
            return error

    async def _refund_checked(self, cmd: PostFlow) -> Submission | LedgerError:
        try:
            return await self.submission(cmd)
        except LedgerError as error:
            return error

    async def _submit(self, sub: Submission) -> Posted:
        outcome = await self.pipeline.submit(sub)
        if isinstance(outcome, Posted):
            return outcome
        raise outcome


Command = PostFlow | ReverseVoucher | CreateHold | CaptureHold | ReleaseHold


def _submission(cmd: Command, drafts: tuple[VoucherDraft, ...] = (), **extra) -> Submission:
    """What the writer needs for a command: its request, its body to fingerprint, and who asked."""
    return Submission(cmd.tenant_id, cmd.request_id, cmd.operation, cmd.body(), drafts, actor=cmd.actor, **extra)


def _dressed(drafts: tuple[VoucherDraft, ...], cmd: PostFlow) -> tuple[VoucherDraft, ...]:
    """The caller's memo, metadata and effective time on the vouchers a rule built."""
    return tuple(check_draft(VoucherDraft(
        d.flow_type, d.lines, memo=cmd.memo or d.memo, metadata={**cmd.metadata, **d.metadata},
        effective_us=cmd.effective_us, reverses_id=d.reverses_id, rule_id=d.rule_id,
        rule_set_version=d.rule_set_version)) for d in drafts)


def _is_refund(item: PostFlow | LedgerError) -> bool:
    return isinstance(item, PostFlow) and isinstance(item.flow, RefundFlow)


def _check_ids(tenant_id: str, request_id: str) -> None:
    check_tenant(tenant_id)
    check_request_id(request_id)


def _check_unique(subs: list[Submission]) -> None:
    seen: set[str] = set()
    for sub in subs:
        if sub.request_id in seen:
            raise invalid("DUPLICATE_REQUEST_ID", f"request_id {sub.request_id!r} appears twice in the batch",
                          request_id=sub.request_id)
        seen.add(sub.request_id)
