"""The reliability suite's history checker (reliability/checker.py) on small synthetic histories: a consistent
history breaks no promise, and each minimal corruption of it breaks the promise it corrupts, no other where
that can be avoided. No server, no database: the histories and ledgers are built here by hand."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from reliability.bank import Bank
from reliability.checker import Final, check
from reliability.history import Op, Transfer
from tally.v1 import types_pb2

ACCOUNTS = 3
INITIAL = 1_000
IDS = ["acct-0", "acct-1", "acct-2"]
SOURCE = "bank-source"  # the internal account the setup funds from; not one of the bank's ids
CURRENCY = "USD"
DEBIT, CREDIT = types_pb2.SIDE_DEBIT, types_pb2.SIDE_CREDIT
STREAMS = 2


@dataclass
class Case:
    bank: Bank
    ops: list[Op]
    final: Final
    streams: list[list[int]]
    balances_at: dict[int, tuple[int, ...]]  # bank balances after each voucher sequence, by the builder

    def op(self, request_id: str, kind: str = "transfer") -> Op:
        (found,) = [op for op in self.ops if op.request_id == request_id and op.kind == kind]
        return found

    def snapshots(self) -> list[Op]:
        return [op for op in self.ops if op.kind == "snapshot"]

    def voucher(self, sequence: int) -> types_pb2.Voucher:
        (found,) = [v for v in self.final.vouchers if v.sequence == sequence]
        return found

    def check(self) -> dict[str, int]:
        return check(self.bank, self.ops, self.final, self.streams)

    def post_late(self, request_id: str, body: Transfer) -> None:
        """The ledger holds one more transfer voucher, after all the others, and the final read shows it."""
        sequence = self.final.voucher_sequence + 1
        self.final.vouchers.append(_transfer_voucher(sequence, request_id, body))
        balances = list(self.final.balances)
        balances[body.source] -= body.amount
        balances[body.destination] += body.amount
        self.final = replace(self.final, balances=tuple(balances), voucher_sequence=sequence,
                             event_sequence=self.final.event_sequence + 1)
        self.streams = [seen + [self.final.event_sequence] for seen in self.streams]

    def acknowledge_late(self, client: int, request_id: str, body: Transfer) -> None:
        """A transfer acknowledged after all the others, its voucher posted late and in the final read."""
        self.post_late(request_id, body)
        self.ops.append(Op(len(self.ops) + 1, client, "transfer", request_id=request_id, body=body, outcome="ok",
                           code="OK", voucher_ids=(f"v{self.final.voucher_sequence}",)))


def _voucher(sequence: int, request_id: str, lines: list[tuple[str, int, int]]) -> types_pb2.Voucher:
    return types_pb2.Voucher(
        id=f"v{sequence}", sequence=sequence, request_id=request_id,
        lines=[types_pb2.VoucherLine(line_no=n, account_id=account, side=side, amount=amount, currency=CURRENCY)
               for n, (account, side, amount) in enumerate(lines, start=1)])


def _transfer_voucher(sequence: int, request_id: str, body: Transfer) -> types_pb2.Voucher:
    return _voucher(sequence, request_id, [(IDS[body.source], DEBIT, body.amount),
                                           (IDS[body.destination], CREDIT, body.amount)])


class _Builder:
    """Writes a ledger and a history side by side: each acknowledged transfer gets its voucher."""

    def __init__(self) -> None:
        self.bank = Bank(ACCOUNTS, INITIAL, list(IDS))
        self.vouchers: list[types_pb2.Voucher] = []
        self.ops: list[Op] = []
        self.balances = [0] * ACCOUNTS
        self.balances_at: dict[int, tuple[int, ...]] = {}

    def _commit(self, voucher: types_pb2.Voucher) -> None:
        self.vouchers.append(voucher)
        for line in voucher.lines:
            if line.account_id in IDS:
                sign = 1 if line.side == CREDIT else -1
                self.balances[IDS.index(line.account_id)] += sign * line.amount
        self.balances_at[voucher.sequence] = tuple(self.balances)

    def _op(self, client: int, kind: str, **fields) -> Op:
        op = Op(len(self.ops) + 1, client, kind, **fields)
        self.ops.append(op)
        return op

    def fund(self) -> None:
        for i, account in enumerate(IDS):
            self._commit(_voucher(len(self.vouchers) + 1, f"setup-fund-{i}",
                                  [(SOURCE, DEBIT, INITIAL), (account, CREDIT, INITIAL)]))

    def transfer(self, client: int, request_id: str, body: Transfer, *, resolved: bool = False) -> Op:
        voucher = _transfer_voucher(len(self.vouchers) + 1, request_id, body)
        self._commit(voucher)
        return self._op(client, "transfer", request_id=request_id, body=body, outcome="ok", code="OK",
                        voucher_ids=(voucher.id,), replayed=resolved, resolved=resolved)

    def refused(self, client: int, request_id: str, body: Transfer) -> Op:
        return self._op(client, "transfer", request_id=request_id, body=body, outcome="failed",
                        code="FAILED_PRECONDITION", reason="INSUFFICIENT_FUNDS")

    def resend(self, original: Op, **answer) -> Op:
        fields = {"outcome": original.outcome, "code": original.code, "reason": original.reason,
                  "voucher_ids": original.voucher_ids, "replayed": original.outcome == "ok", **answer}
        return self._op(original.client, "resend", request_id=original.request_id, body=original.body,
                        original=original.id, **fields)

    def changed(self, original: Op) -> Op:
        body = Transfer(original.body.source, original.body.destination, original.body.amount + 1)
        return self._op(original.client, "changed", request_id=original.request_id, body=body,
                        original=original.id, outcome="failed", code="ALREADY_EXISTS", reason="REQUEST_ID_REUSED")

    def snapshot(self, client: int) -> Op:
        return self._op(client, "snapshot", outcome="ok", code="OK",
                        snapshot=(len(self.vouchers), tuple(self.balances)))

    def case(self) -> Case:
        # In this synthetic ledger each voucher is one event, so the events run 1..voucher_sequence.
        last = len(self.vouchers)
        final = Final(tuple(self.balances), last, last, self.vouchers)
        return Case(self.bank, self.ops, final, [list(range(1, last + 1)) for _ in range(STREAMS)],
                    self.balances_at)


def consistent(last_amount: int = 100) -> Case:
    """Vouchers 1-3 fund the accounts with 1,000 each; 4-7 are transfers; c1-2 is refused; every kind of
    resend; snapshots at 4 and 5; c3-1's outcome was unknown until a resend told; a resend that never got an
    answer (not a promise, so not counted). The last transfer moves last_amount from acct-1 to acct-2."""
    b = _Builder()
    b.fund()
    t1 = b.transfer(1, "c1-1", Transfer(0, 1, 300))  # v4: (700, 1300, 1000)
    b.snapshot(2)
    t2 = b.transfer(2, "c2-1", Transfer(1, 2, 500))  # v5: (700, 800, 1500)
    t3 = b.refused(1, "c1-2", Transfer(0, 2, 800))  # acct-0 has 700
    b.resend(t1)
    b.resend(t3)
    b.changed(t1)
    b.changed(t3)
    b.snapshot(3)
    b.transfer(3, "c3-1", Transfer(2, 0, 200), resolved=True)  # v6: (900, 800, 1300)
    b.resend(t2, outcome="unknown", code="UNAVAILABLE", voucher_ids=(), replayed=False)
    b.transfer(2, "c2-2", Transfer(1, 2, last_amount))  # v7: (900, 800 - last_amount, 1300 + last_amount)
    return b.case()


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if n}


# -- the consistent history -------------------------------------------------------------------------------

def test_the_synthetic_ledger_is_what_the_comments_say():
    case = consistent()
    assert case.final.balances == (900, 700, 1400)
    assert sum(case.final.balances) == ACCOUNTS * INITIAL
    assert [op.snapshot for op in case.snapshots()] == [(4, (700, 1300, 1000)), (5, (700, 800, 1500))]
    assert [v.sequence for v in case.final.vouchers] == [1, 2, 3, 4, 5, 6, 7]
    assert SOURCE not in case.bank.ids


def test_a_consistent_history_breaks_no_promise():
    counts = consistent().check()
    assert counts == dict.fromkeys(counts, 0)


# -- one corruption per promise ---------------------------------------------------------------------------

def snapshot_total_wrong() -> Case:
    case = consistent()
    first = case.snapshots()[0]
    sequence, balances = first.snapshot
    first.snapshot = (sequence, (balances[0] + 1, *balances[1:]))  # one unit from nowhere
    return case


def negative_balance() -> Case:
    return consistent(last_amount=900)  # acct-1 holds 800: the ledger let it go to -100, and says so


def snapshot_unlike_replay() -> Case:
    case = consistent()
    case.snapshots()[0].snapshot = (4, case.balances_at[5])  # balances after voucher 5, labelled sequence 4
    return case


def acknowledged_voucher_lost() -> Case:
    case = consistent()
    case.final.vouchers.pop()  # voucher 7 (c2-2, acknowledged) is gone, with its event; all else agrees
    case.final = replace(case.final, balances=case.balances_at[6], voucher_sequence=6, event_sequence=6)
    case.streams = [seen[:-1] for seen in case.streams]
    return case


def request_posted_twice() -> Case:
    case = consistent()
    case.post_late("c1-1", Transfer(0, 1, 300))  # a retry of c1-1 posted again, as voucher 8
    return case


def refused_but_posted() -> Case:
    case = consistent()
    case.post_late("c1-2", Transfer(0, 2, 800))  # acct-0 holds 900 by then, so no balance goes negative
    return case


def posted_without_request() -> Case:
    case = consistent()
    case.post_late("c9-1", Transfer(2, 1, 50))  # no client 9
    return case


def unknown_left_unresolved() -> Case:
    case = consistent()
    op = case.op("c3-1")  # its voucher 6 exists; the client was never told
    op.outcome, op.code, op.voucher_ids, op.replayed, op.resolved = "unknown", "UNAVAILABLE", (), False, False
    return case


def resend_answered_with_other_vouchers() -> Case:
    case = consistent()
    case.op("c1-1", "resend").voucher_ids = ("v5",)  # v5 exists (c2-1's), so nothing is missing
    return case


def resend_answered_with_other_reason() -> Case:
    case = consistent()
    case.op("c1-2", "resend").reason = "ACCOUNT_FROZEN"
    return case


def changed_body_accepted() -> Case:
    case = consistent()
    op = case.op("c1-1", "changed")  # the server ignored the body and replayed c1-1's answer
    op.outcome, op.code, op.reason, op.voucher_ids, op.replayed = "ok", "OK", "", ("v4",), True
    return case


def changed_body_refused_otherwise() -> Case:
    case = consistent()
    op = case.op("c1-2", "changed")  # the server judged the new body instead of comparing it
    op.code, op.reason = "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"
    return case


def final_unlike_replay() -> Case:
    case = consistent()
    case.final = replace(case.final, balances=(901, 699, 1400))  # one unit moved: two accounts differ
    return case


def voucher_unbalanced_in_amount() -> Case:
    case = consistent()
    # An extra debit on the internal account: the bank accounts' balances are unchanged, debits exceed credits.
    case.voucher(4).lines.add(line_no=3, account_id=SOURCE, side=DEBIT, amount=5, currency=CURRENCY)
    return case


def voucher_unbalanced_in_currency() -> Case:
    case = consistent()
    case.voucher(4).lines[1].currency = "EUR"  # 300 USD debited, 300 EUR credited: equal totals, two currencies
    return case


def voucher_sequence_gap() -> Case:
    case = consistent()
    case.voucher(7).sequence = 8  # no voucher 7
    case.final = replace(case.final, voucher_sequence=8)
    return case


def voucher_sequence_duplicated() -> Case:
    case = consistent()
    case.voucher(7).sequence = 6  # two vouchers 6, and the final read ends at 6
    case.final = replace(case.final, voucher_sequence=6)
    return case


def stream_missed_one() -> Case:
    case = consistent()
    case.streams[0].remove(3)
    return case


def stream_saw_one_twice() -> Case:
    case = consistent()
    case.streams[0].insert(3, 3)  # 1, 2, 3, 3, 4, ...
    return case


def stream_out_of_order() -> Case:
    case = consistent()
    case.streams[1][1], case.streams[1][2] = 3, 2  # 1, 3, 2, 4, ...
    return case


def overdraft_recovered_unseen() -> Case:
    case = consistent(last_amount=900)  # v7 takes acct-1 to -100 ...
    case.acknowledge_late(3, "c3-2", Transfer(2, 1, 100))  # ... v8 brings it back to 0; no snapshot after v5
    assert min(case.final.balances) == 0
    return case


def voucher_amount_unlike_request() -> Case:
    case = consistent()
    for line in case.voucher(7).lines:  # c2-2 asked for 100 and was acknowledged; the ledger moved 99
        line.amount = 99
    case.final = replace(case.final, balances=(900, 701, 1399))  # the final read agrees with the ledger
    return case


def voucher_direction_unlike_request() -> Case:
    case = consistent()
    debit, credit = case.voucher(7).lines  # c2-2 moves acct-1 -> acct-2; the ledger moved acct-2 -> acct-1
    debit.account_id, credit.account_id = credit.account_id, debit.account_id
    case.final = replace(case.final, balances=(900, 900, 1200))
    return case


def money_created_after_last_snapshot() -> Case:
    case = consistent()
    # c2-2's voucher debits the internal account instead of acct-1: 100 units appear in the bank after the last
    # snapshot (at 5), the ledger is balanced and the final read agrees with it.
    case.voucher(7).lines[0].account_id = SOURCE
    case.final = replace(case.final, balances=(900, 800, 1400))
    return case


def final_read_shows_money_from_nowhere() -> Case:
    case = consistent()
    case.final = replace(case.final, balances=(950, 700, 1400))  # no voucher, 50 more in the final read
    return case


def extra_setup_funding() -> Case:
    case = consistent()
    # A fourth funding for a bank of three accounts: no setup request with that id was ever sent.
    case.final.vouchers.append(_voucher(8, f"setup-fund-{ACCOUNTS}",
                                        [(SOURCE, DEBIT, INITIAL), (IDS[0], CREDIT, INITIAL)]))
    case.final = replace(case.final, balances=(900 + INITIAL, 700, 1400), voucher_sequence=8, event_sequence=8)
    case.streams = [seen + [8] for seen in case.streams]
    return case


def acknowledged_without_vouchers() -> Case:
    case = consistent()
    case.op("c2-2").voucher_ids = ()  # OK, but naming no voucher; the ledger holds v7 for c2-2
    return case


def acknowledged_with_other_voucher() -> Case:
    case = consistent()
    case.op("c2-2").voucher_ids = ("v5",)  # v5 exists, but it is c2-1's
    return case


def voucher_past_final_sequence() -> Case:
    case = consistent()
    # The final read says the ledger ends at 6 (and shows the balances after 6), yet it holds voucher 7.
    case.final = replace(case.final, balances=case.balances_at[6], voucher_sequence=6)
    return case


def stream_past_final_sequence() -> Case:
    case = consistent()
    case.streams[0].append(case.final.event_sequence + 1)  # an event the ledger never wrote
    return case


def final_balances_too_long() -> Case:
    case = consistent()
    case.final = replace(case.final, balances=(*case.final.balances, 0))  # a fourth account, total unchanged
    return case


def final_balances_too_short() -> Case:
    case = consistent()
    case.final = replace(case.final, balances=case.final.balances[:-1])  # acct-2 is missing
    return case


def voucher_negated() -> Case:
    case = consistent()
    # setup-fund-0 as "debit acct-0 -1000, credit the source -1000": sums equal, acct-0 still gets +1000.
    v = case.voucher(1)
    v.lines[0].account_id, v.lines[0].side, v.lines[0].amount = IDS[0], DEBIT, -INITIAL
    v.lines[1].account_id, v.lines[1].side, v.lines[1].amount = SOURCE, CREDIT, -INITIAL
    return case


def voucher_line_without_side() -> Case:
    case = consistent()
    case.voucher(1).lines.add(line_no=3, account_id=SOURCE, side=types_pb2.SIDE_UNSPECIFIED, amount=5,
                              currency=CURRENCY)  # neither debit nor credit, so it unbalances no sum
    return case


def op_left_invoked() -> Case:
    case = consistent()
    op = case.op("c2-2")  # its voucher 7 exists; the call never completed, not even as unknown
    op.outcome, op.code, op.voucher_ids = "invoked", "", ()
    return case


# (count name, corruption, every count the corruption makes non-zero)
CORRUPTIONS = [
    # A wrong total is also unlike the replay: the replay of a balanced, fully known ledger always sums to it.
    ("snapshots_total_wrong", snapshot_total_wrong, {"snapshots_total_wrong": 1, "snapshots_unlike_replay": 1}),
    # Counted once for the final read and once for the replay after voucher 7.
    ("balances_below_floor", negative_balance, {"balances_below_floor": 2}),
    ("balances_below_floor", overdraft_recovered_unseen, {"balances_below_floor": 1}),
    ("snapshots_unlike_replay", snapshot_unlike_replay, {"snapshots_unlike_replay": 1}),
    ("acknowledged_missing", acknowledged_voucher_lost, {"acknowledged_missing": 1}),
    # c1-1's acknowledgement and its exact resend each name v4 alone, while the ledger holds v4 and v8 for it.
    ("acknowledged_duplicated", request_posted_twice, {"acknowledged_duplicated": 1, "acknowledged_missing": 2}),
    ("acknowledged_missing", acknowledged_without_vouchers, {"acknowledged_missing": 1}),
    ("acknowledged_missing", acknowledged_with_other_voucher, {"acknowledged_missing": 1}),
    ("vouchers_unlike_request", voucher_amount_unlike_request, {"vouchers_unlike_request": 1}),
    ("vouchers_unlike_request", voucher_direction_unlike_request, {"vouchers_unlike_request": 1}),
    # Money created by a voucher is created by some request's voucher: here c2-2's, which is then unlike c2-2.
    ("snapshots_total_wrong", money_created_after_last_snapshot,
     {"snapshots_total_wrong": 1, "vouchers_unlike_request": 1}),
    # Money in the final read but in no voucher: the replay has not got it either.
    ("snapshots_total_wrong", final_read_shows_money_from_nowhere,
     {"snapshots_total_wrong": 1, "balances_unlike_replay": 1}),
    ("refused_but_posted", refused_but_posted, {"refused_but_posted": 1}),
    ("posted_without_request", posted_without_request, {"posted_without_request": 1}),
    # The extra funding creates the money it funds, so the final total is wrong as well.
    ("posted_without_request", extra_setup_funding, {"posted_without_request": 1, "snapshots_total_wrong": 1}),
    ("unknown_unresolved", unknown_left_unresolved, {"unknown_unresolved": 1}),
    ("unknown_unresolved", op_left_invoked, {"unknown_unresolved": 1}),
    # The resend's OK answer names c2-1's voucher, not the one the ledger holds for c1-1.
    ("resends_answered_differently", resend_answered_with_other_vouchers,
     {"resends_answered_differently": 1, "acknowledged_missing": 1}),
    ("resends_answered_differently", resend_answered_with_other_reason, {"resends_answered_differently": 1}),
    ("changed_body_resends_accepted", changed_body_accepted, {"changed_body_resends_accepted": 1}),
    ("changed_body_resends_misrefused", changed_body_refused_otherwise, {"changed_body_resends_misrefused": 1}),
    # Counted per account: the moved unit makes two accounts unlike the replay.
    ("balances_unlike_replay", final_unlike_replay, {"balances_unlike_replay": 2}),
    ("balances_unlike_replay", final_balances_too_long, {"balances_unlike_replay": 1}),
    # A missing account takes its balance out of the total too.
    ("balances_unlike_replay", final_balances_too_short, {"balances_unlike_replay": 1, "snapshots_total_wrong": 1}),
    # The extra line is on c1-1's voucher, which then is no longer a plain two-line transfer.
    ("vouchers_unbalanced", voucher_unbalanced_in_amount, {"vouchers_unbalanced": 1, "vouchers_unlike_request": 1}),
    ("vouchers_unbalanced", voucher_unbalanced_in_currency, {"vouchers_unbalanced": 1}),
    ("vouchers_unbalanced", voucher_negated, {"vouchers_unbalanced": 1}),
    ("vouchers_unbalanced", voucher_line_without_side, {"vouchers_unbalanced": 1}),
    ("voucher_sequence_gaps", voucher_sequence_gap, {"voucher_sequence_gaps": 1}),
    ("voucher_sequence_gaps", voucher_past_final_sequence, {"voucher_sequence_gaps": 1}),
    ("voucher_sequences_duplicated", voucher_sequence_duplicated, {"voucher_sequences_duplicated": 1}),
    ("stream_gaps", stream_missed_one, {"stream_gaps": 1}),
    ("stream_gaps", stream_past_final_sequence, {"stream_gaps": 1}),
    ("stream_duplicates", stream_saw_one_twice, {"stream_duplicates": 1}),
    ("stream_duplicates", stream_out_of_order, {"stream_duplicates": 1}),
]


@pytest.mark.parametrize(("name", "corrupt", "expected"), CORRUPTIONS,
                         ids=[f"{name}-{corrupt.__name__}" for name, corrupt, _ in CORRUPTIONS])
def test_each_corruption_breaks_its_promise(name, corrupt, expected):
    counts = corrupt().check()
    assert counts[name] > 0
    assert _nonzero(counts) == expected


def test_every_count_has_a_corruption():
    assert {name for name, _, _ in CORRUPTIONS} == set(consistent().check())


def test_cases_are_built_afresh():
    """The corruptions mutate their case in place: none may leak into the next one."""
    snapshot_total_wrong()
    stream_missed_one()
    counts = consistent().check()
    assert counts == dict.fromkeys(counts, 0)


# -- variants the counts must tell apart ------------------------------------------------------------------

def test_a_changed_body_resend_left_unknown_is_unresolved():
    case = consistent()
    op = case.op("c1-1", "changed")
    op.outcome, op.code, op.reason = "unknown", "DEADLINE_EXCEEDED", ""
    assert _nonzero(case.check()) == {"unknown_unresolved": 1}


def test_an_unanswered_exact_resend_is_no_promise():
    case = consistent()
    assert case.op("c2-1", "resend").outcome == "unknown"
    op = case.op("c1-1", "resend")
    op.outcome, op.code, op.voucher_ids = "unknown", "UNAVAILABLE", ()
    assert _nonzero(case.check()) == {}


def test_a_resend_of_an_acknowledged_transfer_refused_is_answered_differently():
    case = consistent()
    op = case.op("c1-1", "resend")
    op.outcome, op.code, op.reason, op.voucher_ids = "failed", "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS", ()
    assert _nonzero(case.check()) == {"resends_answered_differently": 1}


def test_an_acknowledgement_naming_a_voucher_the_ledger_lacks_is_missing():
    case = consistent()
    case.op("c1-1").voucher_ids = ("v-ghost",)
    # The exact resend of c1-1 still names v4, so it is also answered differently than the original.
    assert _nonzero(case.check()) == {"acknowledged_missing": 1, "resends_answered_differently": 1}


def test_setup_vouchers_are_not_requests_no_client_sent():
    case = consistent()
    assert all(v.request_id.startswith("setup-fund-") for v in case.final.vouchers[:ACCOUNTS])
    assert case.check()["posted_without_request"] == 0
