"""The bank: N deposit accounts funded once from an internal account, then K clients moving money among
them over the real gRPC wire, reading snapshots and resending earlier requests, as payment cores do."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import grpc

from reliability.history import History, Op, Transfer, complete
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import flows_pb2, types_pb2

CURRENCY = "USD"
CALL_TIMEOUT_S = 3
SETUP_TRIES_MAX = 50
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000)]
# Shares of the operations each client draws, out of 100.
MIX = (("transfer", 70), ("snapshot", 10), ("resend", 10), ("changed", 10))


@dataclass
class Bank:
    accounts: int
    initial: int  # each account's funding, in atomic units
    ids: list[str] | None = None

    @property
    def total(self) -> int:
        return self.accounts * self.initial


class Stubs:
    """A client's channel to one server, switched to the next one when that one stops answering."""

    def __init__(self, targets: list[str], first: int, metadata) -> None:
        self.targets, self.index, self.metadata = targets, first % len(targets), metadata
        self._open()

    def _open(self) -> None:
        self.channel = grpc.insecure_channel(self.targets[self.index], options=CHANNEL_OPTIONS)
        self.accounts = acc_grpc.AccountServiceStub(self.channel)
        self.accounting = post_grpc.AccountingServiceStub(self.channel)

    def switch(self) -> None:
        self.channel.close()
        self.index = (self.index + 1) % len(self.targets)
        self._open()

    def close(self) -> None:
        self.channel.close()


def transfer_request(bank: Bank, request_id: str, t: Transfer) -> post_pb.PostRequest:
    flow = flows_pb2.TransferFlow(to=types_pb2.AccountRef(id=bank.ids[t.destination]), amount=t.amount,
                                  currency=CURRENCY)
    getattr(flow, "from").CopyFrom(types_pb2.AccountRef(id=bank.ids[t.source]))
    return post_pb.PostRequest(request_id=request_id, transfer=flow)


def post(stubs: Stubs, op: Op, request: post_pb.PostRequest) -> None:
    try:
        response = stubs.accounting.Post(request, metadata=stubs.metadata, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as err:
        complete(op, error=err)
        if op.outcome == "unknown":
            stubs.switch()
        return
    complete(op, response)


def snapshot(stubs: Stubs, bank: Bank) -> acc_pb.BatchGetBalancesResponse:
    refs = [types_pb2.AccountRef(id=i) for i in bank.ids]
    return stubs.accounts.BatchGetBalances(acc_pb.BatchGetBalancesRequest(accounts=refs), metadata=stubs.metadata,
                                           timeout=CALL_TIMEOUT_S)


def open_bank(stubs: Stubs, bank: Bank) -> None:
    """Opens and funds the accounts; retried until each step is known done (its request_id makes the
    retries safe)."""
    source = _retry(lambda: stubs.accounts.CreateAccount(acc_pb.CreateAccountRequest(
        request_id="setup-source", code="bank-source", type=types_pb2.ACCOUNT_TYPE_INTERNAL, currency=CURRENCY,
        normal_side=types_pb2.SIDE_DEBIT, floor_policy=types_pb2.FLOOR_POLICY_UNBOUNDED),
        metadata=stubs.metadata, timeout=CALL_TIMEOUT_S)).account
    bank.ids = []
    for i in range(bank.accounts):
        account = _retry(lambda i=i: stubs.accounts.CreateAccount(acc_pb.CreateAccountRequest(
            request_id=f"setup-open-{i}", code=f"acct-{i:04d}", type=types_pb2.ACCOUNT_TYPE_DEPOSIT,
            currency=CURRENCY), metadata=stubs.metadata, timeout=CALL_TIMEOUT_S)).account
        bank.ids.append(account.id)
    for i, account_id in enumerate(bank.ids):
        lines = [types_pb2.LineInput(account=types_pb2.AccountRef(id=source.id), side=types_pb2.SIDE_DEBIT,
                                     amount=bank.initial, currency=CURRENCY),
                 types_pb2.LineInput(account=types_pb2.AccountRef(id=account_id), side=types_pb2.SIDE_CREDIT,
                                     amount=bank.initial, currency=CURRENCY)]
        request = post_pb.PostRequest(request_id=f"setup-fund-{i}",
                                      adjustment=flows_pb2.AdjustmentFlow(lines=lines, reason="bank funding"))
        _retry(lambda r=request: stubs.accounting.Post(r, metadata=stubs.metadata, timeout=CALL_TIMEOUT_S))


def _retry(call):
    for attempt in range(SETUP_TRIES_MAX):
        try:
            return call()
        except grpc.RpcError as err:
            if err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED) or \
                    attempt == SETUP_TRIES_MAX - 1:
                raise
            threading.Event().wait(0.2)
    raise AssertionError("unreachable")


class Client(threading.Thread):
    """One caller: draws operations from MIX until told to stop, and records each in the history."""

    def __init__(self, number: int, bank: Bank, history: History, targets: list[str], metadata,
                 stop: threading.Event, seed: int) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number, self.bank, self.history, self.stop = number, bank, history, stop
        self.stubs = Stubs(targets, number, metadata)
        self.random = random.Random(seed)
        self.done: list[Op] = []  # this client's transfers with a recorded answer, for resends
        self.sent = 0

    def run(self) -> None:
        kinds, weights = zip(*MIX, strict=True)
        try:
            while not self.stop.is_set():
                kind = self.random.choices(kinds, weights)[0]
                if kind in ("resend", "changed") and not self.done:
                    kind = "transfer"
                getattr(self, f"_{kind}")()
        finally:
            self.stubs.close()

    def _transfer(self) -> None:
        source, destination = self.random.sample(range(self.bank.accounts), 2)
        body = Transfer(source, destination, self.random.randint(1, self.bank.initial // 4))
        self.sent += 1
        op = self.history.invoke(self.number, "transfer", request_id=f"c{self.number}-{self.sent}", body=body)
        post(self.stubs, op, transfer_request(self.bank, op.request_id, body))
        if op.outcome == "ok" or op.code in ("FAILED_PRECONDITION", "NOT_FOUND"):
            self.done.append(op)  # answers the ledger keeps: a resend must get them again

    def _resend(self) -> None:
        original = self.random.choice(self.done)
        op = self.history.invoke(self.number, "resend", request_id=original.request_id, body=original.body,
                                 original=original.id)
        post(self.stubs, op, transfer_request(self.bank, op.request_id, original.body))

    def _changed(self) -> None:
        original = self.random.choice(self.done)
        body = Transfer(original.body.source, original.body.destination, original.body.amount + 1)
        op = self.history.invoke(self.number, "changed", request_id=original.request_id, body=body,
                                 original=original.id)
        post(self.stubs, op, transfer_request(self.bank, op.request_id, body))

    def _snapshot(self) -> None:
        op = self.history.invoke(self.number, "snapshot")
        try:
            got = snapshot(self.stubs, self.bank)
        except grpc.RpcError as err:
            complete(op, error=err)
            if op.outcome == "unknown":
                self.stubs.switch()
            return
        op.outcome, op.code = "ok", "OK"
        op.snapshot = (got.voucher_sequence, tuple(b.current for b in got.balances))
