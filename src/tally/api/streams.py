"""Server-streaming RPCs: StreamEvents and StreamBalanceChanges, on top of the event hub.

Both replay from `from_sequence` and then follow live, with no gap and no duplicate across the switch (the
hub reads by cursor). They end only between two events, with a status whose ErrorInfo carries
`last_sequence`, the sequence to resume from: RESOURCE_EXHAUSTED STREAM_CONSUMER_TOO_SLOW when the client
reads slower than events arrive, UNAVAILABLE SERVER_SHUTTING_DOWN when the server stops. Their initial
metadata `tally-after-sequence` says where the stream starts: it delivers every event after that sequence.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable

import grpc

from tally.api.errors import abort
from tally.api.mapping import timestamp_from_us
from tally.api.tenancy import principal_of, tenant_of
from tally.domain.errors import LedgerError, invalid
from tally.service.container import Services
from tally.service.faults import unexpected
from tally.storage.ledger_repo import Event
from tally.streaming import AFTER_SEQUENCE_HEADER, accounts, changes
from tally.streaming.changes import BalanceChange
from tally.streaming.hub import Subscription
from tally.v1 import accounting_service_pb2 as pb
from tally.v1 import types_pb2

EVENT_TYPES = frozenset({
    "account.created", "account.updated", "ledger.entry.posted", "voucher.reversed", "balance.hold.created",
    "balance.hold.captured", "balance.released", "day.closed",
})
EVENT_TYPES_MAX = 32
ACCOUNT_IDS_MAX = 1000
SIDES_CACHED_MAX = 10_000  # normal sides a whole-tenant balance stream remembers (fallback for old events)


# --- the RPCs ----------------------------------------------------------------------------------------

RESUME = "resume from your last sequence"


async def stream_events(services: Services, request: pb.StreamEventsRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamEventsResponse]:
    async for response in _guarded(context, _events(services, request, context)):
        yield response


async def stream_balance_changes(services: Services, request: pb.StreamBalanceChangesRequest,
                                 context: grpc.aio.ServicerContext
                                 ) -> AsyncIterator[pb.StreamBalanceChangesResponse]:
    async for response in _guarded(context, _balance_changes(services, request, context)):
        yield response


async def _guarded(context: grpc.aio.ServicerContext, responses: AsyncIterator) -> AsyncIterator:
    """Yields the responses; a failure ends the stream with a status that says how to resume."""
    failure = None
    try:
        async for response in responses:
            yield response
    except LedgerError as error:
        failure = error
    except Exception as exc:  # noqa: BLE001 - nothing may leave as UNKNOWN
        failure = unexpected(exc, RESUME)
    finally:
        await responses.aclose()  # closes the subscription too
    if failure is not None:
        await abort(context, failure)


async def _events(services: Services, request: pb.StreamEventsRequest,
                  context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamEventsResponse]:
    tenant_id = tenant_of(context)
    types = types_in(request.types)
    sub = await _subscribe(services, tenant_id, from_sequence_in(request), context)
    try:
        async for event in sub:
            if not types or event.type in types:
                yield pb.StreamEventsResponse(event=event_out(event))
    finally:
        sub.close()


async def _balance_changes(services: Services, request: pb.StreamBalanceChangesRequest,
                           context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamBalanceChangesResponse]:
    tenant_id = tenant_of(context)
    from_sequence = from_sequence_in(request)
    account_ids = account_ids_in(request.account_ids)
    sides = await asyncio.to_thread(accounts.require_sides, services.uow, tenant_id, account_ids)
    wanted = set(account_ids) or None
    sub = await _subscribe(services, tenant_id, from_sequence, context)
    try:
        async for event in sub:
            for change in await _changes(services, tenant_id, event, sides, wanted):
                yield pb.StreamBalanceChangesResponse(change=change_out(change))
    finally:
        sub.close()


async def _subscribe(services: Services, tenant_id: str, from_sequence: int | None,
                     context: grpc.aio.ServicerContext) -> Subscription:
    sub = await services.hub.subscribe(tenant_id, from_sequence, principal_of(context).actor)
    context.add_done_callback(lambda _context: sub.close())  # also when the call is cancelled
    # A stream "from now" only knows where now is once positioned: the client hears it before any event,
    # so it can resume exactly even if it stops before the first one arrives.
    await context.send_initial_metadata(((AFTER_SEQUENCE_HEADER, str(sub.cursor)),))
    return sub


async def _changes(services: Services, tenant_id: str, event: Event, sides: dict[str, str],
                   wanted: set[str] | None) -> list[BalanceChange]:
    """The balance changes of one event. An event without a balance snapshot needs normal sides, looked
    up once per account (a filtered stream knows its accounts' sides from the start)."""
    missing = changes.sides_needed(event) - sides.keys()
    if wanted is None and missing:
        if len(sides) + len(missing) > SIDES_CACHED_MAX:
            sides.clear()
            missing = changes.sides_needed(event)
        sides.update(await asyncio.to_thread(accounts.normal_sides, services.uow, tenant_id, sorted(missing)))
    return changes.balance_changes(event, sides, wanted)


# --- requests ----------------------------------------------------------------------------------------

def from_sequence_in(request: pb.StreamEventsRequest | pb.StreamBalanceChangesRequest) -> int | None:
    if not request.HasField("from_sequence"):
        return None
    if request.from_sequence < 0:
        raise invalid("SEQUENCE_INVALID", "from_sequence must be 0 or more", from_sequence=request.from_sequence)
    return request.from_sequence


def types_in(types: Iterable[str]) -> frozenset[str]:
    types = list(types)
    if len(types) > EVENT_TYPES_MAX:
        raise invalid("EVENT_TYPES_TOO_MANY", f"at most {EVENT_TYPES_MAX} event types", types_max=EVENT_TYPES_MAX)
    for type_ in types:
        if type_ not in EVENT_TYPES:
            raise invalid("EVENT_TYPE_UNKNOWN", f"unknown event type {type_[:64]!r}; known: "
                          f"{', '.join(sorted(EVENT_TYPES))}", type=type_[:64])
    return frozenset(types)


def account_ids_in(account_ids: Iterable[str]) -> list[str]:
    ids = list(account_ids)
    if len(ids) > ACCOUNT_IDS_MAX:
        raise invalid("ACCOUNT_IDS_TOO_MANY", f"at most {ACCOUNT_IDS_MAX} account ids per stream",
                      account_ids_max=ACCOUNT_IDS_MAX)
    return list(dict.fromkeys(ids))


# --- responses ---------------------------------------------------------------------------------------

def event_out(event: Event) -> types_pb2.Event:
    payload = event.payload
    return types_pb2.Event(
        sequence=event.sequence, type=event.type,
        account_id=event.account_id or str(payload.get("account_id") or ""),
        voucher_id=event.voucher_id or "", hold_id=str(payload.get("hold_id") or ""),
        payload_json=json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False),
        time=timestamp_from_us(event.created_us))


def change_out(change: BalanceChange) -> types_pb2.BalanceChange:
    return types_pb2.BalanceChange(
        sequence=change.sequence, account_id=change.account_id, currency=change.currency, current=change.current,
        locked=change.locked, available=change.available, current_delta=change.current_delta,
        locked_delta=change.locked_delta, cause=change.cause, voucher_id=change.voucher_id,
        hold_id=change.hold_id, time=timestamp_from_us(change.time_us))
