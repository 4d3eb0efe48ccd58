"""Refunds: proportional reversals of an earlier acquisition or usage, never more than it moved.

Each refund scales what is still unrefunded of every line of the original vouchers by
amount / (original amount - refunded so far), so the last refund gives back exactly the rest and no
line is ever given back more than it held. Running totals (the whole flow, and each line) are caps
checked again inside the write transaction, so two refunds racing for the same original cannot both
take the same units.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict

from sqlalchemy import Connection

from tally.domain.accounts import Side
from tally.domain.errors import invalid, not_found, precondition
from tally.domain.facts import Facts
from tally.domain.flows import RefundFlow
from tally.domain.money import check_amount
from tally.domain.vouchers import AccountRef, LineDraft, Voucher, VoucherDraft
from tally.rules.engine import RuleSet
from tally.rules.model import Mode
from tally.rules.refunds import scale_reversal
from tally.service.posting.batch import Cap
from tally.storage import journal_repo, ledger_repo
from tally.storage.uow import UnitOfWork

REFUNDABLE_FLOWS = frozenset({"acquisition", "usage"})
EXCEEDS = "REFUND_EXCEEDS_ORIGINAL"


async def refund_parts(tenant_id: str, flow: RefundFlow, rules: RuleSet,
                       uow: UnitOfWork) -> tuple[tuple[VoucherDraft, ...], tuple[Cap, ...]]:
    check_amount(flow.amount)
    rule = rules.rule_for(Facts("refund", flow.currency, values={"amount": flow.amount}))
    if rule.mode is not Mode.PROPORTIONAL_REVERSAL:
        raise invalid("RULE_MODE_MISMATCH", f"rule {rule.id} does not reverse in proportion", rule=rule.id)
    original, vouchers, used = await asyncio.to_thread(uow.read, {tenant_id},
                                                       lambda conn: _read(conn, tenant_id, flow))
    whole = _original_amount(original, flow)
    refunded = used.get(_total_key(flow), 0)
    if flow.amount > whole - refunded:
        raise precondition(EXCEEDS, f"{flow.amount} is more than the {whole - refunded} left to refund",
                           refundable=whole - refunded, requested=flow.amount)
    drafts, caps = [], [Cap(_total_key(flow), flow.amount, whole, EXCEEDS)]
    # Last posted, first reversed: the fee an acquisition charged comes back before its principal leaves,
    # so a merchant holding exactly what the flow left it can always be refunded in full.
    for voucher in reversed(vouchers):
        lines, line_caps = _reverse(voucher, flow, used, whole - refunded)
        if lines:
            drafts.append(VoucherDraft("refund", tuple(lines), memo=flow.reason or f"refund of {voucher.id}",
                                       metadata={"refund_of": flow.original_request_id, "reverses": voucher.id},
                                       rule_id=rule.id, rule_set_version=rules.version))
            caps += line_caps
    if not drafts:
        raise invalid("FLOW_POSTS_NOTHING", "the refund rounds to nothing on every line of the original")
    return tuple(drafts), tuple(caps)


def _read(conn: Connection, tenant_id: str, flow: RefundFlow):
    key = (tenant_id, flow.original_request_id)
    original = ledger_repo.load_records(conn, [key]).get(key)
    if original is None or original.operation != "post":
        raise not_found("ORIGINAL_NOT_FOUND", f"no posting with request_id {flow.original_request_id!r}",
                        original_request_id=flow.original_request_id)
    vouchers = journal_repo.get_vouchers(conn, tenant_id, original.result["voucher_ids"])
    keys = [(tenant_id, _total_key(flow))] + [(tenant_id, _line_key(flow, v, ln.account_id, ln.side))
                                              for v in vouchers for ln in v.lines]
    used = {k: u for (_, k), u in ledger_repo.load_caps(conn, keys).items()}
    return original, vouchers, used


def _original_amount(original, flow: RefundFlow) -> int:
    body = original.body
    if body.get("flow_type") not in REFUNDABLE_FLOWS:
        raise precondition("NOT_REFUNDABLE", f"a {body.get('flow_type')} cannot be refunded; reverse it instead",
                           flow_type=body.get("flow_type"))
    facts = body["flow"]["facts"]
    if facts["currency"] != flow.currency:
        raise precondition("CURRENCY_MISMATCH", f"the original was in {facts['currency']}",
                           account_currency=facts["currency"], line_currency=flow.currency)
    return facts["values"]["amount"]


def _reverse(voucher: Voucher, flow: RefundFlow, used: dict[str, int], refundable: int):
    """This refund's lines for one original voucher, and the caps on each line's running total."""
    held: dict[tuple[str, Side, str], int] = defaultdict(int)
    for line in voucher.lines:
        held[(line.account_id, line.side, line.currency)] += line.amount
    remaining = [(acc, side, amount - used.get(_line_key(flow, voucher, acc, side), 0), cur)
                 for (acc, side, cur), amount in held.items()]
    remaining = [line for line in remaining if line[2] > 0]
    if not remaining:
        return [], []
    reversed_lines = scale_reversal(remaining, flow.amount, refundable)
    lines = [LineDraft(AccountRef(id=acc), side, amount, cur) for acc, side, amount, cur in reversed_lines]
    caps = [Cap(_line_key(flow, voucher, acc, side.opposite()), amount, held[(acc, side.opposite(), cur)], EXCEEDS)
            for acc, side, amount, cur in reversed_lines]
    return lines, caps


def _total_key(flow: RefundFlow) -> str:
    # Hashed: a request_id may be 128 characters and a cap key holds at most 200.
    return "refund:" + hashlib.sha256(flow.original_request_id.encode()).hexdigest()[:32]


def _line_key(flow: RefundFlow, voucher: Voucher, account_id: str, side: Side) -> str:
    return f"{_total_key(flow)}:{voucher.id}:{account_id}:{side.value[0]}"
