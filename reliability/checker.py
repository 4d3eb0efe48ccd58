"""The history checker: from what the clients were told, what the stream consumers saw and what the ledger
holds at the end, counts every broken promise. A correct run has every count at zero."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from reliability.bank import Bank
from reliability.history import Op, Transfer
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
    replay = _Replay(bank, vouchers, sorted({s[0] for s in snapshots} | {final.voucher_sequence}))
    replayed = replay.at
    posted_ids = {v.id for v in vouchers}
    known = {f"{SETUP_PREFIX}fund-{i}" for i in range(bank.accounts)} | {op.request_id for op in transfers}
    acknowledged = [op for op in ops if op.outcome == "ok" and op.kind in ("transfer", "resend")]
    return {
        "snapshots_total_wrong": sum(sum(b) != bank.total for _, b in snapshots) + (sum(final.balances) != bank.total),
        "balances_below_floor": sum(any(x < 0 for x in b) for _, b in snapshots) + any(x < 0 for x in final.balances)
        + replay.below_floor,
        "snapshots_unlike_replay": sum(replayed[seq] != b for seq, b in snapshots),
        "acknowledged_missing": sum(1 for op in acknowledged
                                    if op.voucher_ids != tuple(v.id for v in by_request[op.request_id])),
        "acknowledged_duplicated": sum(len(vs) > 1 for vs in by_request.values())
        + len(vouchers) - len(posted_ids),
        "vouchers_unlike_request": sum(1 for op in transfers if op.outcome == "ok"
                                       and any(_moved(bank, v) != op.body for v in by_request[op.request_id])),
        "refused_but_posted": sum(1 for op in transfers if op.outcome == "failed" and op.request_id in by_request),
        "posted_without_request": sum(1 for rid in by_request if rid not in known),
        "unknown_unresolved": sum(1 for op in ops if op.kind in ("transfer", "changed")
                                  and op.outcome in ("unknown", "invoked")),
        "resends_answered_differently": sum(1 for op in ops if op.kind == "resend" and op.outcome != "unknown"
                                            and op.answer() != by_id[op.original].answer()),
        "changed_body_resends_accepted": sum(1 for op in ops if op.kind == "changed" and op.outcome == "ok"),
        "changed_body_resends_misrefused": sum(1 for op in ops if op.kind == "changed" and op.outcome == "failed"
                                               and op.reason != "REQUEST_ID_REUSED"),
        "balances_unlike_replay": _differ(final.balances, replayed[final.voucher_sequence]),
        "vouchers_unbalanced": sum(not _balanced(v) for v in vouchers),
        "voucher_sequence_gaps": _gaps([v.sequence for v in vouchers], final.voucher_sequence),
        "voucher_sequences_duplicated": len(vouchers) - len({v.sequence for v in vouchers}),
        "stream_gaps": sum(_gaps(seen, final.event_sequence) for seen in streams),
        "stream_duplicates": sum(len(seen) - len(set(seen)) + _out_of_order(seen) for seen in streams),
    }


class _Replay:
    """The vouchers applied in sequence order from zero: each account's balance after the vouchers up to
    each of the given sequences (`at`), and how many vouchers left a deposit balance below zero."""

    def __init__(self, bank: Bank, vouchers: list[types_pb2.Voucher], sequences: list[int]) -> None:
        index = {account_id: i for i, account_id in enumerate(bank.ids)}
        balances = [0] * bank.accounts
        self.at: dict[int, tuple[int, ...]] = {}
        self.below_floor = 0
        pending = iter(sequences)
        target = next(pending, None)
        for voucher in vouchers:
            while target is not None and voucher.sequence > target:
                self.at[target] = tuple(balances)
                target = next(pending, None)
            for line in voucher.lines:
                if line.account_id in index:  # deposit accounts are credit-normal
                    balances[index[line.account_id]] += _signed(line)
            self.below_floor += any(b < 0 for b in balances)
        while target is not None:
            self.at[target] = tuple(balances)
            target = next(pending, None)


def _signed(line: types_pb2.VoucherLine) -> int:
    return line.amount if line.side == types_pb2.SIDE_CREDIT else -line.amount


def _moved(bank: Bank, voucher: types_pb2.Voucher) -> Transfer | None:
    """The transfer a voucher makes between two bank accounts, or None when it is not one."""
    index = {account_id: i for i, account_id in enumerate(bank.ids)}
    if len(voucher.lines) != 2 or any(line.account_id not in index for line in voucher.lines):
        return None
    debit, credit = sorted(voucher.lines, key=lambda line: line.side != types_pb2.SIDE_DEBIT)
    if (debit.side, credit.side) != (types_pb2.SIDE_DEBIT, types_pb2.SIDE_CREDIT) or debit.amount != credit.amount:
        return None
    return Transfer(index[debit.account_id], index[credit.account_id], debit.amount)


def _differ(final: tuple[int, ...], replayed: tuple[int, ...]) -> int:
    """Accounts whose final balance is not the replayed one (a missing or extra account counts too)."""
    return sum(a != b for a, b in zip(final, replayed, strict=False)) + abs(len(final) - len(replayed))


def _balanced(voucher: types_pb2.Voucher) -> bool:
    sides = (types_pb2.SIDE_DEBIT, types_pb2.SIDE_CREDIT)
    if not voucher.lines or any(line.side not in sides or line.amount <= 0 for line in voucher.lines):
        return False
    sums: Counter[tuple[str, int]] = Counter()
    for line in voucher.lines:
        sums[(line.currency, line.side)] += line.amount
    currencies = {currency for currency, _ in sums}
    return all(sums[(c, types_pb2.SIDE_DEBIT)] == sums[(c, types_pb2.SIDE_CREDIT)] for c in currencies)


def _gaps(sequences: list[int], last: int) -> int:
    """Numbers of 1..last missing from the sequences, and numbers past last (nothing was written after it)."""
    seen = set(sequences)
    return len(set(range(1, last + 1)) - seen) + sum(1 for s in seen if s > last)


def _out_of_order(seen: list[int]) -> int:
    return sum(1 for a, b in zip(seen, seen[1:], strict=False) if b < a)
