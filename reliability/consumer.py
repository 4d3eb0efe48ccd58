"""A stream consumer as an internal service runs one: follows StreamEvents, and after any break resumes
from the last sequence it saw, on whichever server answers. It records every sequence it was given."""

from __future__ import annotations

import threading

import grpc

from reliability.bank import CHANNEL_OPTIONS
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc

STREAM_CALL_S = 5  # each stream call ends after this; the consumer resumes, which exercises resumption too
RETRY_PAUSE_S = 0.2


class Consumer(threading.Thread):
    def __init__(self, number: int, targets: list[str], metadata, stop: threading.Event) -> None:
        super().__init__(name=f"consumer-{number}", daemon=True)
        self.targets, self.metadata, self.stop = targets, metadata, stop
        self.index = number % len(targets)
        self.seen: list[int] = []
        self.resumes = 0
        self.until: int | None = None  # set after stop: keep reading until this sequence has been seen

    @property
    def last(self) -> int:
        return self.seen[-1] if self.seen else 0

    def run(self) -> None:
        while not self._caught_up():
            with grpc.insecure_channel(self.targets[self.index], options=CHANNEL_OPTIONS) as channel:
                self._follow(post_grpc.AccountingServiceStub(channel))
            self.index = (self.index + 1) % len(self.targets)
            self.resumes += 1

    def _caught_up(self) -> bool:
        return self.stop.is_set() and self.until is not None and self.last >= self.until

    def _follow(self, stub: post_grpc.AccountingServiceStub) -> None:
        request = post_pb.StreamEventsRequest(from_sequence=self.last)
        try:
            for item in stub.StreamEvents(request, metadata=self.metadata, timeout=STREAM_CALL_S):
                self.seen.append(item.event.sequence)
                if self._caught_up():
                    return
        except grpc.RpcError:
            self.stop.wait(RETRY_PAUSE_S)
