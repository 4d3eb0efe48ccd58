"""TallyClient: one channel, three typed service facades.

Every mutating request carries a request_id (the server's idempotency key): when the caller leaves it
empty, the client sets a fresh UUID on the request before the first try, so every retry of that call sends
the same id and the server answers a repeat with the first result (`replayed`). That makes every unary RPC
safe to retry, and all of them are (see RETRIED_METHODS); the one exception is the AuditLedger stream, which
is not repeated behind the caller's back.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc

from tally_client._gen import account_service_pb2 as acc_pb
from tally_client._gen import account_service_pb2_grpc as acc_grpc
from tally_client._gen import accounting_service_pb2 as post_pb
from tally_client._gen import accounting_service_pb2_grpc as post_grpc
from tally_client._gen import bookkeeping_service_pb2 as books_pb
from tally_client._gen import bookkeeping_service_pb2_grpc as books_grpc
from tally_client.errors import TallyError
from tally_client.retry import RetryPolicy, call_with_retry
from tally_client.streams import ResumableStream

R = TypeVar("R")
DEADLINE_S = 10.0  # per try of a unary call
MESSAGE_BYTES_MAX = 64 * 1024 * 1024  # a PostBatch answer of 1000 large vouchers passes gRPC's default 4 MiB
RECONNECT_BACKOFF_MS = (100, 2_000)  # initial, max
STREAM_RETRY = RetryPolicy(attempts_max=20, backoff_initial_s=0.1, backoff_max_s=2.0)  # about 30 s of outage

# Reads repeat harmlessly; mutations are idempotent by request_id.
RETRIED_METHODS = frozenset({
    "CreateAccount", "GetAccount", "ListAccounts", "UpdateAccount", "GetBalance", "BatchGetBalances", "ListEntries",
    "Post", "PostBatch", "ReverseVoucher", "GetVoucher", "ListVouchers", "CreateHold", "CaptureHold", "ReleaseHold",
    "GetHold", "ListHolds", "GetTrialBalance", "GetRuleSet", "ValidateRuleSet", "VerifyChain", "ListAuditLog",
})


def new_request_id() -> str:
    return str(uuid.uuid4())


def _with_request_id(request: Any) -> Any:
    """Sets a request id on the caller's message when it has none, so the caller can log it too."""
    if not request.request_id:
        request.request_id = new_request_id()
    return request


class _Caller:
    """What the facades share: metadata, default deadline, retry policy."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], deadline_s: float, retry: RetryPolicy,
                 stream_retry: RetryPolicy, rng: random.Random) -> None:
        self.metadata = metadata
        self.deadline_s = deadline_s
        self.retry = retry
        self.stream_retry = stream_retry
        self.rng = rng

    def unary(self, method: grpc.UnaryUnaryMultiCallable, request: Any, deadline_s: float | None) -> Any:
        timeout = self.deadline_s if deadline_s is None else deadline_s
        return call_with_retry(lambda: method(request, timeout=timeout, metadata=self.metadata), self.retry, self.rng)

    def resumable(self, method: grpc.UnaryStreamMultiCallable, request: Any, sequence_of: Callable[[Any], int],
                  ) -> ResumableStream:
        def open_call(after: int | None) -> grpc.Call:
            fresh = type(request)()
            fresh.CopyFrom(request)
            if after is not None:
                fresh.from_sequence = after
            return method(fresh, metadata=self.metadata)

        from_sequence = request.from_sequence if request.HasField("from_sequence") else None
        return ResumableStream(open_call, sequence_of, from_sequence, self.stream_retry, self.rng)


class AccountsClient:
    """tally.v1.AccountService."""

    def __init__(self, channel: grpc.Channel, caller: _Caller) -> None:
        self._stub = acc_grpc.AccountServiceStub(channel)
        self._call = caller

    def create_account(self, request: acc_pb.CreateAccountRequest, *, deadline_s: float | None = None,
                       ) -> acc_pb.CreateAccountResponse:
        return self._call.unary(self._stub.CreateAccount, _with_request_id(request), deadline_s)

    def get_account(self, request: acc_pb.GetAccountRequest, *, deadline_s: float | None = None,
                    ) -> acc_pb.GetAccountResponse:
        return self._call.unary(self._stub.GetAccount, request, deadline_s)

    def list_accounts(self, request: acc_pb.ListAccountsRequest, *, deadline_s: float | None = None,
                      ) -> acc_pb.ListAccountsResponse:
        return self._call.unary(self._stub.ListAccounts, request, deadline_s)

    def update_account(self, request: acc_pb.UpdateAccountRequest, *, deadline_s: float | None = None,
                       ) -> acc_pb.UpdateAccountResponse:
        return self._call.unary(self._stub.UpdateAccount, _with_request_id(request), deadline_s)

    def get_balance(self, request: acc_pb.GetBalanceRequest, *, deadline_s: float | None = None,
                    ) -> acc_pb.GetBalanceResponse:
        return self._call.unary(self._stub.GetBalance, request, deadline_s)

    def batch_get_balances(self, request: acc_pb.BatchGetBalancesRequest, *, deadline_s: float | None = None,
                           ) -> acc_pb.BatchGetBalancesResponse:
        return self._call.unary(self._stub.BatchGetBalances, request, deadline_s)

    def list_entries(self, request: acc_pb.ListEntriesRequest, *, deadline_s: float | None = None,
                     ) -> acc_pb.ListEntriesResponse:
        return self._call.unary(self._stub.ListEntries, request, deadline_s)


class AccountingClient:
    """tally.v1.AccountingService."""

    def __init__(self, channel: grpc.Channel, caller: _Caller) -> None:
        self._stub = post_grpc.AccountingServiceStub(channel)
        self._call = caller

    def post(self, request: post_pb.PostRequest, *, deadline_s: float | None = None) -> post_pb.PostResponse:
        return self._call.unary(self._stub.Post, _with_request_id(request), deadline_s)

    def post_batch(self, request: post_pb.PostBatchRequest, *, deadline_s: float | None = None,
                   ) -> post_pb.PostBatchResponse:
        for item in request.requests:
            _with_request_id(item)
        return self._call.unary(self._stub.PostBatch, request, deadline_s)

    def reverse_voucher(self, request: post_pb.ReverseVoucherRequest, *, deadline_s: float | None = None,
                        ) -> post_pb.ReverseVoucherResponse:
        return self._call.unary(self._stub.ReverseVoucher, _with_request_id(request), deadline_s)

    def get_voucher(self, request: post_pb.GetVoucherRequest, *, deadline_s: float | None = None,
                    ) -> post_pb.GetVoucherResponse:
        return self._call.unary(self._stub.GetVoucher, request, deadline_s)

    def list_vouchers(self, request: post_pb.ListVouchersRequest, *, deadline_s: float | None = None,
                      ) -> post_pb.ListVouchersResponse:
        return self._call.unary(self._stub.ListVouchers, request, deadline_s)

    def create_hold(self, request: post_pb.CreateHoldRequest, *, deadline_s: float | None = None,
                    ) -> post_pb.CreateHoldResponse:
        return self._call.unary(self._stub.CreateHold, _with_request_id(request), deadline_s)

    def capture_hold(self, request: post_pb.CaptureHoldRequest, *, deadline_s: float | None = None,
                     ) -> post_pb.CaptureHoldResponse:
        return self._call.unary(self._stub.CaptureHold, _with_request_id(request), deadline_s)

    def release_hold(self, request: post_pb.ReleaseHoldRequest, *, deadline_s: float | None = None,
                     ) -> post_pb.ReleaseHoldResponse:
        return self._call.unary(self._stub.ReleaseHold, _with_request_id(request), deadline_s)

    def get_hold(self, request: post_pb.GetHoldRequest, *, deadline_s: float | None = None,
                 ) -> post_pb.GetHoldResponse:
        return self._call.unary(self._stub.GetHold, request, deadline_s)

    def list_holds(self, request: post_pb.ListHoldsRequest, *, deadline_s: float | None = None,
                   ) -> post_pb.ListHoldsResponse:
        return self._call.unary(self._stub.ListHolds, request, deadline_s)

    def stream_events(self, request: post_pb.StreamEventsRequest | None = None,
                      ) -> ResumableStream[post_pb.StreamEventsResponse]:
        """Every event after `request.from_sequence` (absent: from now), resumed after disconnects."""
        return self._call.resumable(self._stub.StreamEvents, request or post_pb.StreamEventsRequest(),
                                    lambda item: item.event.sequence)

    def stream_balance_changes(self, request: post_pb.StreamBalanceChangesRequest | None = None,
                               ) -> ResumableStream[post_pb.StreamBalanceChangesResponse]:
        return self._call.resumable(self._stub.StreamBalanceChanges,
                                    request or post_pb.StreamBalanceChangesRequest(),
                                    lambda item: item.change.sequence)


class BookkeepingClient:
    """tally.v1.BookkeepingService."""

    def __init__(self, channel: grpc.Channel, caller: _Caller) -> None:
        self._stub = books_grpc.BookkeepingServiceStub(channel)
        self._call = caller

    def get_trial_balance(self, request: books_pb.GetTrialBalanceRequest | None = None, *,
                          deadline_s: float | None = None) -> books_pb.GetTrialBalanceResponse:
        return self._call.unary(self._stub.GetTrialBalance, request or books_pb.GetTrialBalanceRequest(), deadline_s)

    def get_rule_set(self, request: books_pb.GetRuleSetRequest | None = None, *,
                     deadline_s: float | None = None) -> books_pb.GetRuleSetResponse:
        return self._call.unary(self._stub.GetRuleSet, request or books_pb.GetRuleSetRequest(), deadline_s)

    def validate_rule_set(self, request: books_pb.ValidateRuleSetRequest, *, deadline_s: float | None = None,
                          ) -> books_pb.ValidateRuleSetResponse:
        return self._call.unary(self._stub.ValidateRuleSet, request, deadline_s)

    def verify_chain(self, request: books_pb.VerifyChainRequest, *, deadline_s: float | None = None,
                     ) -> books_pb.VerifyChainResponse:
        return self._call.unary(self._stub.VerifyChain, request, deadline_s)

    def list_audit_log(self, request: books_pb.ListAuditLogRequest, *, deadline_s: float | None = None,
                       ) -> books_pb.ListAuditLogResponse:
        return self._call.unary(self._stub.ListAuditLog, request, deadline_s)

    def audit_ledger(self, request: books_pb.AuditLedgerRequest, *, deadline_s: float | None = None,
                     ) -> Iterator[books_pb.AuditLedgerResponse]:
        """The audit's progress and findings as they come; not retried (a long stream), no deadline unless given."""
        try:
            yield from self._stub.AuditLedger(request, timeout=deadline_s, metadata=self._call.metadata)
        except grpc.RpcError as error:
            raise TallyError.from_rpc(error) from None


class TallyClient:
    """A client of one Tally server. `api_key` is sent as `authorization: Bearer KEY` (an API key or a JWT).
    Pass `credentials` (grpc.ssl_channel_credentials(...)) for TLS. Close it, or use it as a context manager."""

    def __init__(self, target: str, api_key: str | None = None, *,
                 credentials: grpc.ChannelCredentials | None = None, deadline_s: float = DEADLINE_S,
                 retry: RetryPolicy | None = None, stream_retry: RetryPolicy = STREAM_RETRY,
                 metadata: Sequence[tuple[str, str]] = (), seed: int | None = None) -> None:
        # gRPC's own reconnect backoff (1 s growing to 120 s) would outlast our retries after a short outage.
        options = [("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
                   ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
                   ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
                   ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1])]
        self.channel = (grpc.secure_channel(target, credentials, options) if credentials is not None
                        else grpc.insecure_channel(target, options))
        headers = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        caller = _Caller((*headers, *metadata), deadline_s, retry or RetryPolicy(), stream_retry,
                         random.Random(seed))
        self.accounts = AccountsClient(self.channel, caller)
        self.accounting = AccountingClient(self.channel, caller)
        self.bookkeeping = BookkeepingClient(self.channel, caller)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> TallyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
