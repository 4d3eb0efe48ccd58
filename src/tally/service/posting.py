"""Handlers for Post and ReverseVoucher: build the vouchers in pure code, then hand them to the pipeline."""

from __future__ import annotations

import asyncio

from tally.domain.errors import not_found, precondition
from tally.domain.fields import check_request_id, check_tenant
from tally.domain.vouchers import VoucherDraft, reversal_lines
from tally.service.batch import Posted, Submission
from tally.service.commands import PostFlow, ReverseVoucher
from tally.service.pipeline import PostingPipeline
from tally.storage import journal_repo
from tally.storage.uow import UnitOfWork


async def post_flow(cmd: PostFlow, pipeline: PostingPipeline) -> Posted:
    check_tenant(cmd.tenant_id)
    check_request_id(cmd.request_id)
    drafts = cmd.flow.vouchers(cmd.memo, cmd.metadata, cmd.effective_us)
    return await _submit(pipeline, Submission(cmd.tenant_id, cmd.request_id, cmd.operation, cmd.body(), drafts))


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
