"""Server-streaming RPCs (StreamEvents, StreamBalanceChanges). Placeholder until the event hub lands."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from tally.service.container import Services


async def stream_events(services: Services, request, context: grpc.aio.ServicerContext) -> AsyncIterator:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "streams are not available yet")
    yield  # pragma: no cover


async def stream_balance_changes(services: Services, request, context: grpc.aio.ServicerContext) -> AsyncIterator:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "streams are not available yet")
    yield  # pragma: no cover
