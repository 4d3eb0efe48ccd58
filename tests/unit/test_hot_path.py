"""The cheaper forms the posting hot path takes hold to what they replace: a voucher sealed in place against a
sealed copy, responses built in place against messages built apart and nested, request bodies canonicalized
by a per-class compiled function against the field-by-field walk, and Revertible's written-out update."""

from __future__ import annotations

import dataclasses
import enum

import pytest

from tally.api import mapping
from tally.api.accounting_servicer import _add_result, _posted_out
from tally.domain.accounts import Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.flows import AdjustmentFlow, TransferFlow
from tally.domain.vouchers import AccountRef, LineDraft, PostedLine, Voucher, chained, seal, voucher_hash
from tally.service.commands import PostFlow
from tally.service.posting.batch import Posted
from tally.service.posting.idempotency import canonical, canonical_json
from tally.service.posting.undo import Revertible
from tally.v1 import accounting_service_pb2 as pb
from tally.v1 import types_pb2 as types

PREV = "cd" * 32


def voucher(effective_us: int = 1_781_000_000_123_456, **changes) -> Voucher:
    lines = (PostedLine(1, "a", "acct-a", Side.DEBIT, 250, "USD", "line memo", 4, -250),
             PostedLine(2, "b", "acct-b", Side.CREDIT, 250, "USD", "", 9, 1_250))
    v = Voucher("v1", "acme", 0, "transfer", "req-1", "2026-12-07", effective_us, 1_781_000_000_654_321, lines,
                memo="m", metadata={"k": "v"}, reverses_id="v0", rule_id="rule", rule_set_version="3")
    return dataclasses.replace(v, **changes)


def test_seal_numbers_and_chains_in_place_as_chained_does_on_a_copy():
    built = voucher()
    expected = chained(voucher(), 7, PREV)
    sealed = seal(built, 7, PREV)
    assert sealed is built
    assert sealed == expected
    assert sealed.hash == voucher_hash(sealed, PREV) and sealed.hash != voucher_hash(voucher(sequence=7), "0" * 64)


def _timestamp(us: int):
    return mapping.timestamp_from_us(us)


def _voucher_apart(v: Voucher) -> pb.Voucher:
    """The voucher message built as the servicer built it before: sub-messages apart, then copied in."""
    return types.Voucher(
        id=v.id, tenant_id=v.tenant_id, sequence=v.sequence, flow_type=v.flow_type, request_id=v.request_id,
        rule_id=v.rule_id, rule_set_version=v.rule_set_version, accounting_date=v.accounting_date,
        effective_time=_timestamp(v.effective_us), post_time=_timestamp(v.posted_us),
        lines=[types.VoucherLine(line_no=ln.line_no, account_id=ln.account_id, account_code=ln.account_code,
                                 side=mapping.SIDES_PB[ln.side], amount=ln.amount, currency=ln.currency,
                                 memo=ln.memo) for ln in v.lines],
        memo=v.memo, metadata=v.metadata, reverses_voucher_id=v.reverses_id or "",
        reversed_by_voucher_id=v.reversed_by_id or "", hash=v.hash, previous_hash=v.previous_hash,
    )


# Before 1970 (negative, with and without a fraction of a second), at it, and a whole second.
@pytest.mark.parametrize("effective_us", [-1, -1_000_000, -1_500_001, 0, 1_000_000, 1_781_000_000_123_456])
def test_a_voucher_built_in_place_is_the_message_built_apart(effective_us):
    v = seal(voucher(effective_us), 3, PREV)
    assert mapping.voucher_out(v) == _voucher_apart(v)
    response = _posted_out(Posted((v, v), replayed=True))
    assert response == pb.PostResponse(vouchers=[_voucher_apart(v), _voucher_apart(v)], replayed=True)
    assert response.SerializeToString(deterministic=True) == pb.PostResponse(
        vouchers=[_voucher_apart(v), _voucher_apart(v)], replayed=True).SerializeToString(deterministic=True)


def test_batch_results_built_in_place_match_results_built_apart():
    v = seal(voucher(), 1, PREV)
    refusal = LedgerError(ErrorKind.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS", "no", account_id="a")
    outcomes = [Posted((v,)), refusal, Posted(()), Posted((v,), replayed=True)]
    response = pb.PostBatchResponse()
    for outcome in outcomes:
        _add_result(response.results, outcome)
    assert [r.WhichOneof("result") for r in response.results] == ["posted", "error", "posted", "posted"]
    assert response.results[0].posted == pb.PostResponse(vouchers=[_voucher_apart(v)])
    assert response.results[1].error == pb.PostError(code=9, reason="INSUFFICIENT_FUNDS", message="no",
                                                     metadata={"account_id": "a"})
    assert response.results[2].posted == pb.PostResponse() and not response.results[2].posted.vouchers
    assert response.results[3].posted.replayed and len(response.results[3].posted.vouchers) == 1


class _Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True)
class _Empty:
    pass


@dataclasses.dataclass(frozen=True)
class _One:
    inner: object


@dataclasses.dataclass(frozen=True)
class _Mixed:
    color: _Color
    items: tuple
    table: dict
    nothing: None
    flag: bool


def _walked(value: object) -> object:
    """The canonical form as the field-by-field walk made it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _walked(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_walked(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _walked(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("value", [
    TransferFlow(AccountRef(code="from"), AccountRef(id="to-id"), 5, "USD", "memo"),
    AdjustmentFlow((LineDraft(AccountRef(code="a"), Side.DEBIT, 7, "EUR"),
                    LineDraft(AccountRef(code="b"), Side.CREDIT, 7, "EUR", "m")), "why"),
    _Empty(), _One(_Empty()), _One(3), _One(_Color.RED),
    _Mixed(_Color.RED, (1, _One("x"), [_Empty()]), {1: _One(None), "k": [True]}, None, False),
])
def test_compiled_canonical_form_is_the_walked_one(value):
    assert canonical(value) == _walked(value)
    assert canonical(value) == _walked(value)  # the second call goes through the compiled function


def test_a_post_body_is_the_same_text_as_before():
    cmd = PostFlow("acme", "r1", TransferFlow(AccountRef(code="a"), AccountRef(code="b"), 5, "USD"),
                   memo="m", metadata={"z": "1", "a": "2"}, effective_us=None)
    assert canonical_json(cmd.body()) == (
        '{"effective_us":null,"flow":{"amount":5,"currency":"USD","destination":{"code":"b","id":""},"memo":"",'
        '"source":{"code":"a","id":""}},"flow_type":"transfer","memo":"m","metadata":{"a":"2","z":"1"}}')


def test_revertible_update_takes_back_what_it_changed():
    state = Revertible({"a": 1, "b": 2})
    state.checkpoint()
    state.update({"a": 10, "c": 30})
    state.update([("a", 11)], d=40)
    assert state == {"a": 11, "b": 2, "c": 30, "d": 40}
    state.revert()
    assert state == {"a": 1, "b": 2}
    state.checkpoint()
    state.update({"b": 5})
    state.checkpoint()  # accepted: forgotten, not taken back later
    state.revert()
    assert state == {"a": 1, "b": 5}
