"""ResumableStream against a real gRPC server whose stream ends the ways a server going away ends it."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from tally_client import RetryPolicy, TallyError  # on sys.path through tests/client/conftest.py
from tally_client.streams import AFTER_SEQUENCE_HEADER, ResumableStream

METHOD = "/test.Numbers/Count"
POLICY = RetryPolicy(attempts_max=3, backoff_initial_s=0.0, backoff_max_s=0.01)


class Numbers:
    """Each call streams the sequences after the one asked for, then ends with the next queued status
    (OK when none is queued): the server side of a stream that breaks between items."""

    def __init__(self, per_call: int) -> None:
        self.per_call = per_call
        self.endings: deque[tuple[grpc.StatusCode, str]] = deque()
        self.starts: list[int] = []

    def count(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        after = int(request.decode())
        self.starts.append(after)
        context.send_initial_metadata(((AFTER_SEQUENCE_HEADER, str(after)),))
        for sequence in range(after + 1, after + 1 + self.per_call):
            yield str(sequence).encode()
        if self.endings:
            context.abort(*self.endings.popleft())


@pytest.fixture()
def numbers() -> Iterator[tuple[Numbers, grpc.Channel]]:
    service = Numbers(per_call=2)
    handler = grpc.method_handlers_generic_handler("test.Numbers", {
        "Count": grpc.unary_stream_rpc_method_handler(service.count)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield service, channel
    channel.close()
    server.stop(None)


def resumable(channel: grpc.Channel) -> ResumableStream[bytes]:
    count = channel.unary_stream(METHOD)
    return ResumableStream(lambda after: count(str(after or 0).encode()), lambda item: int(item.decode()),
                           0, POLICY, random.Random(7))


def take(stream: ResumableStream[bytes], n: int) -> list[int]:
    seen: list[int] = []
    for item in stream:
        seen.append(int(item.decode()))
        if len(seen) == n:
            stream.cancel()
    return seen


@pytest.mark.parametrize("ending", [(grpc.StatusCode.CANCELLED, "Cancelled"),
                                    (grpc.StatusCode.UNAVAILABLE, "Socket closed"),
                                    (grpc.StatusCode.UNKNOWN, "Stream removed")])
def test_a_stream_the_server_ends_resumes_after_its_last_item(numbers, ending) -> None:
    service, channel = numbers
    service.endings.extend([ending, ending])
    stream = resumable(channel)
    assert take(stream, 5) == [1, 2, 3, 4, 5]
    assert service.starts == [0, 2, 4]
    assert stream.reconnects == 2 and stream.last_sequence == 5


def test_a_stream_cancelled_by_its_consumer_ends_without_an_error(numbers) -> None:
    service, channel = numbers
    stream = resumable(channel)
    reader_seen: list[int] = []
    ready = threading.Event()
    service.per_call = 10**6  # a stream that would go on for long: only the consumer's cancel ends it

    def read() -> None:
        for item in stream:
            reader_seen.append(int(item.decode()))
            ready.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert ready.wait(10)
    stream.cancel()
    reader.join(10)
    assert not reader.is_alive()
    assert service.starts == [0] and stream.reconnects == 0


def test_cancelled_streams_that_deliver_nothing_give_up_after_the_policys_attempts(numbers) -> None:
    service, channel = numbers
    service.per_call = 0
    service.endings.extend([(grpc.StatusCode.CANCELLED, "Cancelled")] * POLICY.attempts_max)
    with pytest.raises(TallyError) as failed:
        take(resumable(channel), 1)
    assert failed.value.code == grpc.StatusCode.CANCELLED
    assert failed.value.attempts == POLICY.attempts_max and len(service.starts) == POLICY.attempts_max


@pytest.mark.parametrize("ending", [(grpc.StatusCode.PERMISSION_DENIED, "not yours"),
                                    (grpc.StatusCode.UNKNOWN, "Exception iterating responses: boom")])
def test_a_refusal_or_a_server_failure_is_not_resumed(numbers, ending) -> None:
    service, channel = numbers
    service.endings.append(ending)
    with pytest.raises(TallyError) as refused:
        take(resumable(channel), 5)
    assert refused.value.code == ending[0] and service.starts == [0]
