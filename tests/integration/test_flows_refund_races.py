"""Refunds of one original racing each other, on SQLite and PostgreSQL, within one service instance and
across two on the same database: whatever interleaving, the refunds that succeed never give back more than
the original (in total or on any line), the refused ones are REFUND_EXCEEDS_ORIGINAL and change nothing, and
a last refund of exactly what is left gives every line back to the unit. check_ledger passes."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from tally.api.mapping import flow_in
from tally.domain.accounts import Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.commands import PostFlow
from tally.service.posting.batch import Posted
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import flows_pb2 as f
from tests.integration.conftest import TENANT, Ledger, check_ledger, outcome

USD = "USD"


async def _post(ledger: Ledger, request_id: str, **flow) -> Posted | LedgerError:
    command = PostFlow(TENANT, request_id, flow_in(post_pb.PostRequest(request_id=request_id, **flow)))
    return await outcome(ledger.posting.post(command))


def _given_back(posted: list[Posted]) -> dict[tuple[str, str, Side], int]:
    """Per (original voucher, account, side of the original line): what the refunds gave back."""
    out: dict[tuple[str, str, Side], int] = defaultdict(int)
    for p in posted:
        for v in p.vouchers:
            for ln in v.lines:
                out[(v.metadata["reverses"], ln.account_code, ln.side.opposite())] += ln.amount
    return dict(out)


def _held(original: Posted) -> dict[tuple[str, str, Side], int]:
    return {(v.id, ln.account_code, ln.side): ln.amount for v in original.vouchers for ln in v.lines}


async def _race_refunds(ledger: Ledger, other: Ledger, original_rid: str, original: Posted, whole: int,
                        rng: random.Random, amounts: list[int]) -> None:
    held = _held(original)
    calls = [_post(rng.choice([ledger, other]), f"{original_rid}-ref-{i}",
                   refund=f.RefundFlow(original_request_id=original_rid, amount=amount, currency=USD))
             for i, amount in enumerate(amounts)]
    results = await asyncio.gather(*calls)
    ok = [r for r in results if isinstance(r, Posted)]
    refused = [r for r in results if not isinstance(r, Posted)]
    assert ok, "no refund got through"
    for error in refused:
        # Each refund scales the lines as it read them before queueing; racing ones can round the same
        # line up and together pass it. The writer refuses such a refund: by the line's cap
        # (REFUND_EXCEEDS_ORIGINAL), or first by the floor of an account that holds nothing but what the
        # original gave it (INSUFFICIENT_FUNDS). Either way it changes nothing.
        assert error.kind is ErrorKind.FAILED_PRECONDITION, error
        assert error.reason in ("REFUND_EXCEEDS_ORIGINAL", "INSUFFICIENT_FUNDS"), error
    refunded = sum(a for a, r in zip(amounts, results, strict=True) if isinstance(r, Posted))
    assert refunded <= whole
    back = _given_back(ok)
    assert all(back[k] <= held[k] for k in back), (back, held)

    # What is left, in one refund: every line comes back exactly.
    rest = whole - refunded
    if rest:
        last = await _post(ledger, f"{original_rid}-ref-rest", refund=f.RefundFlow(
            original_request_id=original_rid, amount=rest, currency=USD))
        assert isinstance(last, Posted), last
        ok.append(last)
    assert _given_back(ok) == held
    over = await _post(other, f"{original_rid}-ref-over", refund=f.RefundFlow(original_request_id=original_rid,
                                                                              amount=1, currency=USD))
    assert isinstance(over, LedgerError) and over.reason == "REFUND_EXCEEDS_ORIGINAL"


async def test_racing_refunds_never_give_back_more_than_the_original(ledger: Ledger, make_ledger) -> None:
    rng = random.Random(11)
    other = make_ledger(ledger.url)
    assert isinstance(await _post(ledger, "fund", funding=f.FundingFlow(consumer="c1", processor="card",
                                                                        amount=100_000_000, currency=USD)), Posted)
    shares = [f.RevenueShare(party="p1", share_bps=3333), f.RevenueShare(party="p2", share_bps=3333),
              f.RevenueShare(party="p3", share_bps=3334)]
    for round_no in range(4):
        rid = f"use-{round_no}"
        use = await _post(ledger, rid, usage=f.UsageFlow(consumer="c1", merchant="m1", affiliate="aff",
                                                         amount=1_000_001, currency=USD, shares=shares))
        assert isinstance(use, Posted), use
        amounts = [250_000] * 8 if round_no == 0 else [rng.randrange(1, 400_000) for _ in range(rng.randrange(3, 10))]
        await _race_refunds(ledger, other, rid, use, 1_000_001, rng, amounts)

    # An acquisition (two vouchers). Another order keeps merchant m2's pending funds above what the
    # refunds take out, voucher by voucher.
    assert isinstance(await _post(ledger, "acq-other", acquisition=f.AcquisitionFlow(
        merchant="m2", channel="mc", amount=10_000_000, currency=USD)), Posted)
    acq = await _post(ledger, "acq", acquisition=f.AcquisitionFlow(
        merchant="m2", channel="visa", amount=5_000_003, currency=USD,
        coupon=f.Coupon(issuer=f.COUPON_ISSUER_SHARED, amount=333_333, merchant_share_bps=2_500)))
    assert isinstance(acq, Posted) and len(acq.vouchers) == 2
    await _race_refunds(ledger, other, "acq", acq, 5_000_003, rng, [rng.randrange(1, 2_000_000) for _ in range(8)])

    for code in ("consumer:c1:USD", "affiliate:aff:USD", "merchant:p1:USD/settled", "merchant:p2:USD/settled",
                 "merchant:p3:USD/settled",
                 "channel_clearing:visa:USD", "platform_marketing_expense:USD"):
        expected = 100_000_000 if code == "consumer:c1:USD" else 0
        assert ledger.balance(code) == expected, code
    assert ledger.balance("merchant:m2:USD/pending") == 10_000_000 - 60_000
    assert ledger.balance("platform_fee_income:USD") == 60_000
    check_ledger(ledger.url)


async def test_refunds_in_a_batch_are_answered_in_their_places(ledger: Ledger) -> None:
    """PostBatch reads the originals of its refunds before queueing and builds its other flows in line: each
    answer still lands in its request's place, and a refused refund refuses only itself."""
    assert isinstance(await _post(ledger, "fund", funding=f.FundingFlow(consumer="c1", processor="card",
                                                                        amount=1_000_000, currency=USD)), Posted)
    use = await _post(ledger, "use", usage=f.UsageFlow(consumer="c1", merchant="m1", amount=400_000, currency=USD))
    assert isinstance(use, Posted), use

    def item(request_id: str, **flow) -> PostFlow:
        return PostFlow(TENANT, request_id, flow_in(post_pb.PostRequest(request_id=request_id, **flow)))

    transfer = {"transfer": f.TransferFlow(**{"from": {"code": "consumer:c1:USD"}},
                                           to={"code": "merchant:m1:USD/settled"},
                                           amount=1_000, currency=USD)}
    answers = await ledger.posting.post_batch([
        item("t-1", **transfer),
        item("ref-1", refund=f.RefundFlow(original_request_id="use", amount=100_000, currency=USD)),
        item("ref-unknown", refund=f.RefundFlow(original_request_id="never-posted", amount=1, currency=USD)),
        item("t-2", **transfer),
        item("ref-over", refund=f.RefundFlow(original_request_id="use", amount=400_001, currency=USD)),
    ], atomic=False)
    posted = [isinstance(a, Posted) for a in answers]
    assert posted == [True, True, False, True, False], answers
    assert {ln.account_code for ln in answers[0].vouchers[0].lines} == {"consumer:c1:USD", "merchant:m1:USD/settled"}
    assert all(v.flow_type == "refund" and v.request_id == "ref-1" for v in answers[1].vouchers)
    assert answers[3].vouchers[0].request_id == "t-2"
    assert answers[2].reason == "ORIGINAL_NOT_FOUND", answers[2]
    assert answers[4].reason == "REFUND_EXCEEDS_ORIGINAL", answers[4]
    assert ledger.balance("consumer:c1:USD") == 1_000_000 - 400_000 + 100_000 - 2_000
    check_ledger(ledger.url)
