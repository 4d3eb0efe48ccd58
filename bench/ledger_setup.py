"""Set-up of a benchmark tenant over gRPC (not measured): deposit accounts, a merchant, a funding account,
and opening funds posted as adjustments through PostBatch."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import grpc

from bench.credentials import auth_metadata
from bench.loadgen import CURRENCY, account_code, transfer_request
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import flows_pb2, types_pb2

LINES_PER_VOUCHER_MAX = 64
BATCH_REQUESTS_MAX = 1000
# Funding adjustments carry 64 lines each: 1,000 of them answer 4.7 MB, past a client's default 4 MiB limit.
FUNDING_REQUESTS_PER_CALL = 200
DEADLINE_S = 60
MERCHANT = "merchant"
FUNDING = "funding"
PREFIX = "acct-"


def funding_chunks(codes: list[str], per_voucher: int = LINES_PER_VOUCHER_MAX - 1) -> list[list[str]]:
    """Accounts grouped so that each adjustment (one debit of the funding account plus one credit per
    account) stays within the line limit."""
    return [codes[i:i + per_voucher] for i in range(0, len(codes), per_voucher)]


def adjustment(request_id: str, codes: list[str], amount_each: int) -> post_pb.PostRequest:
    lines = [types_pb2.LineInput(account=types_pb2.AccountRef(code=FUNDING), side=types_pb2.SIDE_DEBIT,
                                 amount=amount_each * len(codes), currency=CURRENCY)]
    lines += [types_pb2.LineInput(account=types_pb2.AccountRef(code=c), side=types_pb2.SIDE_CREDIT,
                                  amount=amount_each, currency=CURRENCY) for c in codes]
    return post_pb.PostRequest(request_id=request_id,
                               adjustment=flows_pb2.AdjustmentFlow(lines=lines, reason="bench opening funds"))


async def _create_accounts(channel: grpc.aio.Channel, api_key: str, specs: list[acc_pb.CreateAccountRequest],
                           concurrency: int) -> None:
    stub = acc_grpc.AccountServiceStub(channel)
    metadata = auth_metadata(api_key)
    queue = list(reversed(specs))

    async def worker() -> None:
        while queue:
            request = queue.pop()
            for attempt in range(5):
                try:
                    await stub.CreateAccount(request, metadata=metadata, timeout=DEADLINE_S)
                    break
                except grpc.aio.AioRpcError as exc:
                    # Same request_id: a retry after an unknown outcome is safe (replayed).
                    if exc.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.DEADLINE_EXCEEDED) and attempt < 4:
                        await asyncio.sleep(0.2 * (attempt + 1))
                        continue
                    raise RuntimeError(f"CreateAccount {request.code}: {exc.code().name} {exc.details()}") from exc

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def setup_tenant(target: str, api_key: str, tenant: str, accounts: int, opening_balance: int,
                       concurrency: int = 16) -> dict:
    """Opens and funds the tenant's accounts; returns what the load generator needs to know."""
    t0 = time.monotonic()
    run = uuid.uuid4().hex[:8]
    specs = [acc_pb.CreateAccountRequest(request_id=f"setup-{run}-{FUNDING}", code=FUNDING, name="bench funding",
                                         type=types_pb2.ACCOUNT_TYPE_INTERNAL, normal_side=types_pb2.SIDE_DEBIT,
                                         currency=CURRENCY, floor_policy=types_pb2.FLOOR_POLICY_UNBOUNDED),
             acc_pb.CreateAccountRequest(request_id=f"setup-{run}-{MERCHANT}", code=MERCHANT, name="bench merchant",
                                         type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency=CURRENCY)]
    codes = [account_code(PREFIX, i) for i in range(accounts)]
    specs += [acc_pb.CreateAccountRequest(request_id=f"setup-{run}-{c}", code=c, name=c,
                                          type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency=CURRENCY) for c in codes]
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        await _create_accounts(channel, api_key, specs, concurrency)
        stub = post_grpc.AccountingServiceStub(channel)
        requests = [adjustment(f"fund-{run}-{i}", chunk, opening_balance)
                    for i, chunk in enumerate(funding_chunks([*codes, MERCHANT]))]
        for i in range(0, len(requests), FUNDING_REQUESTS_PER_CALL):
            part = requests[i:i + FUNDING_REQUESTS_PER_CALL]
            reply = await stub.PostBatch(post_pb.PostBatchRequest(requests=part),
                                         metadata=auth_metadata(api_key), timeout=DEADLINE_S)
            refused = [r.error for r in reply.results if r.HasField("error")]
            if refused:
                raise RuntimeError(f"funding refused: {refused[0].reason} {refused[0].message}")
    return {"tenant": tenant, "api_key": api_key, "accounts": accounts, "prefix": PREFIX, "merchant": MERCHANT,
            "setup_s": round(time.monotonic() - t0, 1)}


async def load_transfers(target: str, api_key: str, total: int, accounts: int, amount_max: int, busy_pct: int = 0,
                         in_flight: int = 4, batch: int = BATCH_REQUESTS_MAX) -> int:
    """Posts `total` transfer vouchers as PostBatch calls of `batch`, `in_flight` calls at a time. A transfer
    credits the merchant (the busy account) with probability busy_pct %; the others go between two random
    deposit accounts. Returns how many credited the merchant. Any refusal or failure after retries raises."""
    run = uuid.uuid4().hex[:8]
    rng = random.Random(f"load/{run}")
    uniform = {"accounts": accounts, "prefix": PREFIX, "merchant": MERCHANT, "amount_max": amount_max,
               "workload": "uniform"}
    hot = dict(uniform, workload="hot")
    calls = [list(range(i, min(total, i + batch))) for i in range(0, total, batch)]
    busy_total = 0

    async def worker(stub: post_grpc.AccountingServiceStub) -> None:
        nonlocal busy_total
        while calls:
            items = calls.pop(0)
            busy = [rng.randrange(100) < busy_pct for _ in items]
            request = post_pb.PostBatchRequest(requests=[transfer_request(rng, hot if b else uniform, f"load-{run}-{i}")
                                                         for i, b in zip(items, busy, strict=True)])
            for attempt in range(5):
                try:  # the same request ids: a retry after an unknown outcome posts nothing twice
                    reply = await stub.PostBatch(request, metadata=auth_metadata(api_key), timeout=DEADLINE_S)
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE,
                                          grpc.StatusCode.DEADLINE_EXCEEDED) or attempt == 4:
                        raise RuntimeError(f"PostBatch: {exc.code().name} {exc.details()}") from exc
                    await asyncio.sleep(0.5 * (attempt + 1))
            refused = [r.error for r in reply.results if r.HasField("error")]
            if refused:
                raise RuntimeError(f"transfer refused: {refused[0].reason} {refused[0].message}")
            busy_total += sum(busy)

    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        stub = post_grpc.AccountingServiceStub(channel)
        await asyncio.gather(*(worker(stub) for _ in range(in_flight)))
    return busy_total
