"""Many clients at once over the real wire, on PostgreSQL: money is conserved, nothing is lost or doubled.

32 client threads, each with its own channel, post random transfers among 10 funded deposit accounts
(some refused for insufficient funds, some sent twice at once like an impatient retry, some retried
later). Afterwards the ledger is read back through the API and checked against what the clients were
told.
"""

from __future__ import annotations

import collections
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from tally.v1 import types_pb2
from tests.e2e.conftest import Server, error_info, md, signed, transfer_request

T = "acme"
ACCOUNTS = 10
CLIENTS = 32
POSTS_PER_CLIENT = 30
FUND_EACH = 3_000
AMOUNT_MAX = 1_500
FUNDED_TOTAL = ACCOUNTS * FUND_EACH
DUPLICATE_SHARE = 0.1  # the same request sent twice at the same time
LATE_RETRY_SHARE = 0.1  # an acknowledged request sent again afterwards
FORBIDDEN = {grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.UNKNOWN}


@dataclass
class ClientLog:
    acked: dict[str, tuple[str, str, str, int]] = field(default_factory=dict)  # voucher id -> (rid, from, to, amt)
    refused: collections.Counter = field(default_factory=collections.Counter)  # (code, reason) -> n
    unexpected: list[str] = field(default_factory=list)


def _outcome(call) -> tuple[object | None, tuple | None]:
    try:
        return call(), None
    except grpc.RpcError as err:
        code, reason, _ = error_info(err)
        return None, (code, reason, err.details())


def run_client(srv: Server, n: int, codes: list[str], start: threading.Barrier) -> ClientLog:
    rng = random.Random(1_000 + n)
    log = ClientLog()
    channel = srv.channel()
    stub = srv.accounting(channel)
    start.wait(timeout=60)

    def record(rid: str, request, responses: list, errors: list) -> None:
        for code, reason, details in errors:
            if (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS"):
                log.refused[code, reason] += 1
            else:
                log.unexpected.append(f"{rid}: {code.name} {reason} {details}")
        ids = {r.vouchers[0].id for r in responses}
        fresh = [r for r in responses if not r.replayed]
        if len(ids) > 1 or (responses and len(fresh) != 1) or any(len(r.vouchers) != 1 for r in responses):
            answers = [(r.replayed, [v.id for v in r.vouchers]) for r in responses]
            log.unexpected.append(f"{rid}: answers disagree: {answers}")
            return
        if responses:
            flow = request.transfer
            log.acked[ids.pop()] = (rid, getattr(flow, "from").code, flow.to.code, flow.amount)

    for i in range(POSTS_PER_CLIENT + 1):
        rid = f"client{n}-{i}"
        source, destination = rng.sample(codes, 2)
        # The last post of each client asks for more than exists: always refused.
        amount = FUNDED_TOTAL + 1 if i == POSTS_PER_CLIENT else rng.randint(1, AMOUNT_MAX)
        request = transfer_request(rid, source, destination, amount)
        if rng.random() < DUPLICATE_SHARE:
            futures = [stub.Post.future(request, metadata=md(T)) for _ in range(2)]
            outcomes = [_outcome(f.result) for f in futures]
        else:
            outcomes = [_outcome(lambda request=request: stub.Post(request, metadata=md(T)))]
        responses = [r for r, e in outcomes if r is not None]
        errors = [e for r, e in outcomes if e is not None]
        record(rid, request, responses, errors)
        if responses and rng.random() < LATE_RETRY_SHARE:
            again, error = _outcome(lambda request=request: stub.Post(request, metadata=md(T)))
            if error is not None or not again.replayed or again.vouchers[0].id != responses[0].vouchers[0].id:
                log.unexpected.append(f"{rid}: late retry answered {error or again}")
    return log


def test_concurrent_transfers_conserve_money(postgres_server: Server) -> None:
    srv = postgres_server
    codes = [f"acct-{i}" for i in range(ACCOUNTS)]
    for code in codes:
        srv.create_account(T, code, "deposit")
        srv.fund(T, code, FUND_EACH)
    funding_code = srv.funding_account(T).code

    start = threading.Barrier(CLIENTS)
    with ThreadPoolExecutor(max_workers=CLIENTS, thread_name_prefix="e2e-client") as pool:
        logs = list(pool.map(lambda n: run_client(srv, n, codes, start), range(CLIENTS)))

    unexpected = [line for log in logs for line in log.unexpected]
    assert not unexpected, "\n".join(unexpected[:20])
    acked: dict[str, tuple[str, str, str, int]] = {}
    for log in logs:
        assert not set(acked) & set(log.acked), "two clients were told about the same voucher"
        acked.update(log.acked)
    refused = sum(sum(lg.refused.values()) for lg in logs)
    assert refused >= CLIENTS  # at least the deliberate over-limit posts
    assert len(acked) > CLIENTS * POSTS_PER_CLIENT // 3  # most posts went through

    # Every acknowledged voucher is stored exactly once, as it was asked for; nothing else was stored.
    vouchers = srv.all_vouchers(T, page_size=100)
    ids = [v.id for v in vouchers]
    assert len(ids) == len(set(ids))
    assert set(acked) <= set(ids)
    assert len(vouchers) == len(acked) + ACCOUNTS  # + the funding adjustments
    assert [v.sequence for v in vouchers] == list(range(1, len(vouchers) + 1))
    for previous, voucher in zip(vouchers, vouchers[1:], strict=False):
        assert voucher.previous_hash == previous.hash
    for voucher in vouchers:
        if voucher.id not in acked:
            assert voucher.flow_type == "adjustment"
            continue
        rid, source, destination, amount = acked[voucher.id]
        assert voucher.request_id == rid and voucher.flow_type == "transfer"
        assert [(ln.account_code, ln.side, ln.amount) for ln in voucher.lines] == [
            (source, types_pb2.SIDE_DEBIT, amount), (destination, types_pb2.SIDE_CREDIT, amount)]

    # Balances: what the acknowledgements add up to, what the statements add up to, never below zero.
    expected = dict.fromkeys(codes, FUND_EACH)
    for _, source, destination, amount in acked.values():
        expected[source] -= amount
        expected[destination] += amount
    accounts = {a.code: a for a in srv.all_accounts(T)}
    assert set(accounts) == {*codes, funding_code}
    debit_positive_total = 0
    for code, account in accounts.items():
        balance = srv.balance(T, code)
        entries = srv.all_entries(T, code, page_size=100)
        assert [e.entry_number for e in entries] == list(range(1, len(entries) + 1))
        running = 0
        for entry in entries:
            running += signed(entry, account.normal_side)
            assert entry.balance_after == running, (code, entry.entry_number)
        assert balance.current == running == (entries[-1].balance_after if entries else 0)
        assert balance.entry_count == len(entries)
        debit_positive_total += running if account.normal_side == types_pb2.SIDE_DEBIT else -running
        if code != funding_code:
            assert balance.current >= 0, code
            assert balance.current == expected[code], code
    assert debit_positive_total == 0
    assert sum(srv.current(T, code) for code in codes) == FUNDED_TOTAL
    assert srv.current(T, funding_code) == FUNDED_TOTAL
