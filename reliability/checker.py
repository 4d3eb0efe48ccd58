"""The history checker: from what the clients were told, what the stream consumers saw and what the ledger
holds at the end, counts every broken promise. A correct run has every count at zero."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from reliability.bank import Bank
from reliability.history import Op
from tally.v1 import types_pb2

SETUP_PREFIX = "setup-"


@dataclass(frozen=True)
class Final:
    balances: tuple[int, ...]  # by account index
    voucher_sequence: int
    event_sequence: int
    vouchers: list[types_pb2.Voucher]


def check(bank: Bank, ops: list[Op], final: Final, streams: list[list[int]]) -> dict[str, int]:
    by_id = {op.id: op for op in ops}
    transfers = [op for op in ops if op.kind == "transfer"]
    vouchers = sorted(final.vouchers, key=lambda v: v.sequence)
    by_request: dict[str, list[types_pb2.Voucher]] = defaultdict(list)
    for voucher in vouchers:
        by_request[voucher.request_id].append(voucher)
    snapshots = [op.snapshot for op in ops if op.kind == "snapshot" and op.snapshot is not None]
    replayed = _replay(bank, vouchers, sorted({s[0] for s in snapshots} | {final.voucher_sequence}))
    posted_ids = {v.id for v in vouchers}
    return {
        "snapshots_total_wrong": sum(sum(b) != bank.total for _, b in snapshots),
        "balances_below_floor": sum(any(x < 0 for x in b) for _, b in snapshots) + any(x < 0 for x in final.balances),
        "snapshots_unlike_replay": sum(replayed[seq] != b for seq, b in snapshots),
        "acknowledged_missing": sum(1 for op in ops if op.outcome == "ok" and op.kind in ("transfer", "resend")
                                    and not set(op.voucher_ids) <= posted_ids),
        "acknowledged_duplicated": sum(len(vs) > 1 for vs in by_request.values())
        + len(vouchers) - len(posted_ids),
        "refused_but_posted": sum(1 for op in transfers if op.outcome == "failed" and op.request_id in by_request),
        "posted_without_request": sum(1 for rid in by_request if not _known(rid, transfers)),
        "unknown_unresolved": sum(1 for op in ops if op.kind in ("transfer", "changed") and op.outcome == "unknown"),
        "resends_answered_differently": sum(1 for op in ops if op.kind == "resend" and op.outcome != "unknown"
                                            and op.answer() != by_id[op.original].answer()),
        "changed_body_resends_accepted": sum(1 for op in ops if op.kind == "changed" and op.outcome == "ok"),
        "changed_body_resends_misrefused": sum(1 for op in ops if op.kind == "changed" and op.outcome == "failed"
                                               and op.reason != "REQUEST_ID_REUSED"),
        "balances_unlike_replay": sum(a != b for a, b in zip(final.balances, replayed[final.voucher_sequence],
                                                             strict=True)),
        "vouchers_unbalanced": sum(not _balanced(v) for v in vouchers),
        "voucher_sequence_gaps": _gaps([v.sequence for v in vouchers], final.voucher_sequence),
        "voucher_sequences_duplicated": len(vouchers) - len({v.sequence for v in vouchers}),
        "stream_gaps": sum(_gaps(sorted(set(seen)), final.event_sequence) for seen in streams),
        "stream_duplicates": sum(len(seen) - len(set(seen)) + _out_of_order(seen) for seen in streams),
    }


def _known(request_id: str, transfers: list[Op]) -> bool:
    return request_id.startswith(SETUP_PREFIX) or request_id in {op.request_id for op in transfers}


def _replay(bank: Bank, vouchers: list[types_pb2.Voucher], sequences: list[int]) -> dict[int, tuple[int, ...]]:
    """Each account's balance after the vouchers up to each of these sequences, from zero."""
    index = {account_id: i for i, account_id in enumerate(bank.ids)}
    balances = [0] * bank.accounts
    out: dict[int, tuple[int, ...]] = {}
    pending = iter(sequences)
    target = next(pending, None)
    for voucher in vouchers:
        while target is not None and voucher.sequence > target:
            out[target] = tuple(balances)
            target = next(pending, None)
        for line in voucher.lines:
            if line.account_id in index:  # deposit accounts are credit-normal
                sign = 1 if line.side == types_pb2.SIDE_CREDIT else -1
                balances[index[line.account_id]] += sign * line.amount
    while target is not None:
        out[target] = tuple(balances)
        target = next(pending, None)
    return out


def _balanced(voucher: types_pb2.Voucher) -> bool:
    sums: Counter[tuple[str, int]] = Counter()
    for line in voucher.lines:
        sums[(line.currency, line.side)] += line.amount
    currencies = {currency for currency, _ in sums}
    return all(sums[(c, types_pb2.SIDE_DEBIT)] == sums[(c, types_pb2.SIDE_CREDIT)] for c in currencies)


def _gaps(sequences: list[int], last: int) -> int:
    """Numbers of 1..last missing from the sequences."""
    return len(set(range(1, last + 1)) - set(sequences))


def _out_of_order(seen: list[int]) -> int:
    return sum(1 for a, b in zip(seen, seen[1:], strict=False) if b < a)
