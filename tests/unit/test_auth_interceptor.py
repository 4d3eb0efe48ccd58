"""The interceptor fails closed: a handler kind it cannot admit is refused, not passed through."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tally.api import auth_interceptor
from tally.api.auth_interceptor import AuthInterceptor


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method, self.invocation_metadata = method, ()


async def _behaviour(request_iterator, context):  # a handler that must never run
    raise AssertionError("reached a client-streaming handler without admission")


class _Aborted(Exception):
    pass


class _Context:
    def __init__(self) -> None:
        self.status = None

    async def abort_with_status(self, status) -> None:
        self.status = status
        raise _Aborted


def test_a_client_streaming_rpc_is_refused_not_passed_through():
    interceptor = AuthInterceptor(authenticator=None, audit=None, clock=lambda: 0)
    for make in (grpc.stream_unary_rpc_method_handler, grpc.stream_stream_rpc_method_handler):
        handler = make(_behaviour)

        async def continuation(_details, handler=handler):
            return handler

        wrapped = asyncio.run(interceptor.intercept_service(continuation, _Details("/tally.v1.Future/Upload")))
        behaviour = wrapped.stream_unary or wrapped.stream_stream
        assert behaviour is auth_interceptor._refuse_unadmitted
        context = _Context()
        with pytest.raises(_Aborted):
            asyncio.run(behaviour(iter(()), context))
        assert context.status.code is grpc.StatusCode.PERMISSION_DENIED
