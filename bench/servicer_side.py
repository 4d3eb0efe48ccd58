"""CPU time of the servicer's side of a posting, per voucher, in process (no network, no gRPC server).

What `AccountingServicer.PostBatch` and `.Post` do around the writer, with the writer's own call in between
(not counted here, `writer_profile` times it):

* in: the request's bytes parsed, each item read into a command (`_read` / `_post_command`) and the command
  made into a submission (`Posting._prepared` / `Posting.submission`);
* out: the outcomes counted in the metrics, mapped to the response message (`_result_out` / `_posted_out`)
  and serialized, as gRPC does with what a handler returns.

Post is timed request by request, as 1,000 lone callers would be served, its submissions written together
as the pipeline's writer groups concurrent Posts. CPU time of this thread (`time.thread_time_ns`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass

from tally import metrics
from tally.api import accounting_servicer as servicer
from tally.api.accounting_servicer import _count_batch, _post_command, _posted_out, _read
from tally.domain.auth import Principal, Role
from tally.domain.flows import TransferFlow
from tally.service.posting.batch import Posted, Submission
from tally.v1 import accounting_service_pb2 as pb
from tally.v1 import flows_pb2 as flows_pb
from tally.v1 import types_pb2 as types

PRINCIPAL_ROLE = Role.POSTER


@dataclass(frozen=True)
class ServicerFigures:
    backend: str
    workload: str
    vouchers: int
    batch_in_ns: int
    batch_out_ns: int
    post_in_ns: int
    post_out_ns: int

    def row(self) -> str:
        per = max(self.vouchers, 1)
        cells = [self.batch_in_ns, self.batch_out_ns, self.post_in_ns, self.post_out_ns]
        timings = " | ".join(str(ns // 1000 // per) for ns in cells)
        return f"| servicer | {self.backend} | {self.workload} | {self.vouchers} | {timings} |"


HEADER = ("| side | backend | workload | vouchers | PostBatch in CPU us/voucher | PostBatch out CPU us/voucher | "
          "Post in CPU us/voucher | Post out CPU us/voucher |\n|---|---|---|---:|---:|---:|---:|---:|")


def request_of(flow: TransferFlow, request_id: str) -> pb.PostRequest:
    """The wire form of a transfer, as a client sends it."""
    def ref(r) -> types.AccountRef:
        return types.AccountRef(id=r.id) if r.id else types.AccountRef(code=r.code)

    transfer = flows_pb.TransferFlow(to=ref(flow.destination), amount=flow.amount, currency=flow.currency,
                                     memo=flow.memo)
    getattr(transfer, "from").CopyFrom(ref(flow.source))
    return pb.PostRequest(request_id=request_id, transfer=transfer)


class ServicerSide:
    """The servicer's work for one batch of transfers, timed on both sides of `write`."""

    def __init__(self, rig, tenant_id: str) -> None:
        self.rig, self.principal = rig, Principal(tenant_id, "key:profile", PRINCIPAL_ROLE, "api_key")

    def run(self, flows: list[TransferFlow], prefix: str) -> tuple[list[int], int]:
        """[batch in, batch out, post in, post out] CPU ns, and the vouchers posted by each way."""
        requests = [request_of(f, f"{prefix}-b{i}") for i, f in enumerate(flows)]
        batch_bytes = pb.PostBatchRequest(requests=requests).SerializeToString()
        subs, batch_in = _timed(lambda: self._batch_in(batch_bytes))
        outcomes = self.rig.write(subs)
        body, batch_out = _timed(lambda: self._batch_out(requests, outcomes))
        singles = [request_of(f, f"{prefix}-p{i}").SerializeToString() for i, f in enumerate(flows)]
        subs, post_in = _timed(lambda: [self._post_in(b) for b in singles])
        outcomes = self.rig.write(subs)
        _, post_out = _timed(lambda: [self._post_out(o) for o in outcomes])
        if not body or not all(isinstance(o, Posted) for o in outcomes):
            raise RuntimeError("a servicer-side posting was refused")
        return [batch_in, batch_out, post_in, post_out], len(outcomes)

    def _batch_in(self, data: bytes) -> list[Submission]:
        request = pb.PostBatchRequest.FromString(data)
        items = [_read(self.principal, item) for item in request.requests]
        return _done(self.rig.services.posting._prepared(items))

    def _batch_out(self, requests: list[pb.PostRequest], outcomes: list) -> bytes:
        _count_batch(requests, outcomes)
        return _batch_response(outcomes).SerializeToString()

    def _post_in(self, data: bytes) -> Submission:
        request = pb.PostRequest.FromString(data)
        request.WhichOneof("flow")  # the servicer reads it for its metrics label
        return _done(self.rig.services.posting.submission(_post_command(self.principal, request)))

    def _post_out(self, outcome: Posted) -> bytes:
        metrics.posted_one("Post", "transfer")
        return _posted_out(outcome).SerializeToString()


def _batch_response(outcomes: list) -> pb.PostBatchResponse:
    """What PostBatch answers, built as the servicer at hand builds it (before results were built in place,
    it had `_result_out`)."""
    if hasattr(servicer, "_add_result"):
        response = pb.PostBatchResponse()
        for outcome in outcomes:
            servicer._add_result(response.results, outcome)
        return response
    return pb.PostBatchResponse(results=[servicer._result_out(o) for o in outcomes])


def _done(coroutine: Coroutine) -> object:
    """The result of a coroutine that never waits (transfers read nothing first), without an event loop's
    turn per request, which would be counted here and is not the servicer's work."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the coroutine waited: only transfers are timed here")


def _timed(work: Callable[[], object]) -> tuple[object, int]:
    started = time.thread_time_ns()
    result = work()
    return result, time.thread_time_ns() - started
