"""tally.v1.WebhookService: subscriptions, their deliveries, replay. Proto <-> domain only."""

from __future__ import annotations

import asyncio

from tally.api.errors import rpc
from tally.api.mapping import enum_in, timestamp_from_us, us_from_timestamp
from tally.api.tenancy import tenant_of
from tally.domain.errors import invalid
from tally.domain.fields import check_request_id
from tally.domain.webhooks import Delivery, Trigger, Webhook, WebhookSpec, WebhookStatus
from tally.service.webhooks.manage import Change, WebhookAdmin
from tally.streaming.webhooks.dispatcher import WebhookDispatcher
from tally.v1 import webhook_service_pb2 as pb
from tally.v1 import webhook_service_pb2_grpc as pb_grpc

STATUSES = {pb.WEBHOOK_STATUS_ACTIVE: WebhookStatus.ACTIVE, pb.WEBHOOK_STATUS_PAUSED: WebhookStatus.PAUSED,
            pb.WEBHOOK_STATUS_DELETED: WebhookStatus.DELETED}
STATUSES_PB = {v: k for k, v in STATUSES.items()}
TRIGGERS_PB = {Trigger.LIVE: pb.DELIVERY_TRIGGER_LIVE, Trigger.REDELIVER: pb.DELIVERY_TRIGGER_REDELIVER}
UPDATABLE = ("url", "event_types", "account_ids", "description", "status")


def webhook_out(hook: Webhook) -> pb.Webhook:
    message = pb.Webhook(
        id=hook.id, url=hook.url, event_types=hook.event_types, account_ids=hook.account_ids,
        description=hook.description, status=STATUSES_PB[hook.status], status_reason=hook.status_reason,
        acknowledged_sequence=hook.cursor, failures=hook.failures, create_time=timestamp_from_us(hook.created_us),
        update_time=timestamp_from_us(hook.updated_us))
    if hook.retry_at_us:
        message.next_attempt_time.CopyFrom(timestamp_from_us(hook.retry_at_us))
    if hook.previous_secret_expires_us:
        message.previous_secret_expire_time.CopyFrom(timestamp_from_us(hook.previous_secret_expires_us))
    return message


def delivery_out(d: Delivery) -> pb.Delivery:
    return pb.Delivery(id=d.id, webhook_id=d.webhook_id, sequence=d.sequence, event_type=d.event_type,
                       attempt=d.attempt, trigger=TRIGGERS_PB[d.trigger], delivered=d.delivered,
                       response_code=d.response_code, latency_us=d.latency_us, error=d.error,
                       create_time=timestamp_from_us(d.created_us))


def change_in(request: pb.UpdateWebhookRequest) -> Change:
    paths = list(request.update_mask.paths)
    if not paths:
        raise invalid("UPDATE_MASK_EMPTY", f"update_mask must name at least one of {', '.join(UPDATABLE)}")
    unknown = [p for p in paths if p not in UPDATABLE]
    if unknown:
        raise invalid("UPDATE_MASK_INVALID", f"cannot update {', '.join(unknown)}", fields=",".join(unknown))
    new = request.webhook
    return Change(
        url=new.url if "url" in paths else None,
        event_types=tuple(new.event_types) if "event_types" in paths else None,
        account_ids=tuple(new.account_ids) if "account_ids" in paths else None,
        description=new.description if "description" in paths else None,
        status=enum_in(STATUSES, new.status, "webhook.status") if "status" in paths else None)


class WebhookServicer(pb_grpc.WebhookServiceServicer):
    def __init__(self, admin: WebhookAdmin, dispatcher: WebhookDispatcher) -> None:
        self.admin, self.dispatcher = admin, dispatcher

    @rpc
    async def CreateWebhook(self, request: pb.CreateWebhookRequest, context) -> pb.CreateWebhookResponse:
        spec = WebhookSpec(request.url, tuple(request.event_types), tuple(request.account_ids), request.description)
        after = request.after_sequence if request.HasField("after_sequence") else None
        issued = await asyncio.to_thread(self.admin.create, tenant_of(context), request.request_id, spec, after)
        return pb.CreateWebhookResponse(webhook=webhook_out(issued.webhook), secret=issued.secret,
                                        replayed=issued.replayed)

    @rpc
    async def GetWebhook(self, request: pb.GetWebhookRequest, context) -> pb.GetWebhookResponse:
        hook = await asyncio.to_thread(self.admin.get, tenant_of(context), request.webhook_id)
        return pb.GetWebhookResponse(webhook=webhook_out(hook))

    @rpc
    async def ListWebhooks(self, request: pb.ListWebhooksRequest, context) -> pb.ListWebhooksResponse:
        page = await asyncio.to_thread(self.admin.list, tenant_of(context), request.page_size, request.page_token)
        return pb.ListWebhooksResponse(webhooks=[webhook_out(h) for h in page.items],
                                       next_page_token=page.next_page_token)

    @rpc
    async def UpdateWebhook(self, request: pb.UpdateWebhookRequest, context) -> pb.UpdateWebhookResponse:
        change = change_in(request)
        issued = await asyncio.to_thread(self.admin.update, tenant_of(context), request.request_id,
                                         request.webhook_id, change)
        return pb.UpdateWebhookResponse(webhook=webhook_out(issued.webhook), replayed=issued.replayed)

    @rpc
    async def DeleteWebhook(self, request: pb.DeleteWebhookRequest, context) -> pb.DeleteWebhookResponse:
        issued = await asyncio.to_thread(self.admin.delete, tenant_of(context), request.request_id,
                                         request.webhook_id)
        return pb.DeleteWebhookResponse(webhook=webhook_out(issued.webhook), replayed=issued.replayed)

    @rpc
    async def RotateWebhookSecret(self, request: pb.RotateWebhookSecretRequest,
                                  context) -> pb.RotateWebhookSecretResponse:
        issued = await asyncio.to_thread(self.admin.rotate, tenant_of(context), request.request_id,
                                         request.webhook_id, request.overlap_seconds)
        return pb.RotateWebhookSecretResponse(webhook=webhook_out(issued.webhook), secret=issued.secret,
                                              replayed=issued.replayed)

    @rpc
    async def ReplayWebhook(self, request: pb.ReplayWebhookRequest, context) -> pb.ReplayWebhookResponse:
        start = request.WhichOneof("start")
        after = request.after_sequence if start == "after_sequence" else None
        from_us = us_from_timestamp(request.start_time, "start_time") if start == "start_time" else None
        issued = await asyncio.to_thread(self.admin.replay, tenant_of(context), request.request_id,
                                         request.webhook_id, after_sequence=after, from_time_us=from_us)
        return pb.ReplayWebhookResponse(webhook=webhook_out(issued.webhook), replayed=issued.replayed)

    @rpc
    async def ListDeliveries(self, request: pb.ListDeliveriesRequest, context) -> pb.ListDeliveriesResponse:
        page = await asyncio.to_thread(self.admin.deliveries, tenant_of(context), request.webhook_id,
                                       request.page_size, request.page_token, request.sequence)
        return pb.ListDeliveriesResponse(deliveries=[delivery_out(d) for d in page.items],
                                         next_page_token=page.next_page_token)

    @rpc
    async def Redeliver(self, request: pb.RedeliverRequest, context) -> pb.RedeliverResponse:
        check_request_id(request.request_id)
        delivery = await self.dispatcher.redeliver(tenant_of(context), request.webhook_id, request.sequence)
        return pb.RedeliverResponse(delivery=delivery_out(delivery))
