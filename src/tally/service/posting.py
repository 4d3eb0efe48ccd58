"""Handlers for Post and ReverseVoucher: build the vouchers in pure code, then hand them to the pipeline."""

from __future__ import annotations

import asyncio
import itertools

from tally.domain.errors import LedgerError, invalid, not_found, precondition
from tally.domain.fields import check_request_id, check_tenant
from tally.domain.vouchers import VoucherDraft, reversal_lines
from tally.service.batch import Outcome, Posted, Submission, refused_with
from tally.service.commands import PostFlow, ReverseVoucher
from tally.service.pipeline import PostingPipeline
from tally.storage import journal_repo
from tally.storage.uow import UnitOfWork

POST_BATCH_SIZE_MAX = 1000
_groups = itertools.count(1)


def submission(cmd: PostFlow) -> Submission:
    """Checks a flow and builds what the writer needs for it, before anything is queued."""
    check_tenant(cmd.tenant_id)
    check_request_id(cmd.request_id)
    drafts = cmd.flow.vouchers(cmd.memo, cmd.metadata, cmd.effective_us)
    return Submission(cmd.tenant_id, cmd.request_id, cmd.operation, cmd.body(), drafts)


async def post_flow(cmd: PostFlow, pipeline: PostingPipeline) -> Posted:
    return await _submit(pipeline, submission(cmd))


async def post_batch(items: list[PostFlow | LedgerError], atomic: bool,
                     pipeline: PostingPipeline) -> list[Outcome]:
    """Posts many flows in one queue entry; `items` may hold the refusals of requests that could not
    even be read. Atomic: every flow posts, or none does."""
    if not items:
        raise invalid("BATCH_EMPTY", "a batch needs at least one request")
    if len(items) > POST_BATCH_SIZE_MAX:
        raise invalid("BATCH_TOO_LARGE", f"a batch holds at most {POST_BATCH_SIZE_MAX} requests")
    outcomes: list[Outcome | None] = [_checked(item) for item in items]
    subs = [o for o in outcomes if isinstance(o, Submission)]
    if atomic:
        _check_unique(subs)
        refused = next(((i, o) for i, o in enumerate(outcomes) if isinstance(o, LedgerError)), None)
        if refused is not None:
            return [o if i == refused[0] else refused_with(*refused) for i, o in enumerate(outcomes)]
        group = next(_groups)
        for sub in subs:
            sub.group = group
    answers = iter(await pipeline.submit_many(subs) if subs else [])
    return [next(answers) if isinstance(o, Submission) else o for o in outcomes]


def _checked(item: PostFlow | LedgerError) -> Submission | LedgerError:
    if isinstance(item, LedgerError):
        return item
    try:
        return submission(item)
    except LedgerError as error:
        return error


def _check_unique(subs: list[Submission]) -> None:
    seen: set[str] = set()
    for sub in subs:
        if sub.request_id in seen:
            raise invalid("DUPLICATE_REQUEST_ID", f"request_id {sub.request_id!r} appears twice in the batch",
                          request_id=sub.request_id)
        seen.add(sub.request_id)


async def reverse_voucher(cmd: ReverseVoucher, pipeline: PostingPipeline, uow: UnitOfWork) -> Posted:
    check_tenant(cmd.tenant_id)
    check_request_id(cmd.request_id)
    # A voucher never changes once written, so reading it outside the write transaction is safe; the
    # writer still checks, inside its transaction, that nobody reversed it meanwhile.
    found = await asyncio.to_thread(
        uow.read, lambda conn: journal_repo.get_vouchers(conn, cmd.tenant_id, [cmd.voucher_id]))
    if not found:
        raise not_found("VOUCHER_NOT_FOUND", f"voucher {cmd.voucher_id} not found", voucher_id=cmd.voucher_id)
    original = found[0]
    if original.reverses_id:
        raise precondition("VOUCHER_IS_REVERSAL", "a reversal cannot itself be reversed; post a new voucher",
                           voucher_id=original.id)
    draft = VoucherDraft("reversal", reversal_lines(original), memo=cmd.reason or f"reversal of {original.id}",
                         reverses_id=original.id)
    return await _submit(pipeline, Submission(cmd.tenant_id, cmd.request_id, cmd.operation, cmd.body(), (draft,)))


async def _submit(pipeline: PostingPipeline, sub: Submission) -> Posted:
    outcome = await pipeline.submit(sub)
    if isinstance(outcome, Posted):
        return outcome
    raise outcome
