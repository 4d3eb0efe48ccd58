"""`tally webhooks`: signed webhook subscriptions, their deliveries, replay.

    tally webhooks create URL [--event-type TYPE ...] [--account CODE_OR_ID ...] [--description TEXT]
                              [--after-sequence N]
    tally webhooks list [--all]
    tally webhooks get ID
    tally webhooks update ID [--url URL] [--event-type TYPE ... | --every-event-type]
                             [--account CODE_OR_ID ... | --every-account] [--description TEXT] [--pause | --resume]
    tally webhooks delete ID
    tally webhooks rotate-secret ID [--overlap SECONDS]
    tally webhooks replay ID (--after-sequence N | --since RFC3339)
    tally webhooks deliveries ID [--sequence N] [--all]
    tally webhooks redeliver ID SEQUENCE
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from google.protobuf import field_mask_pb2

from tally.cli import common
from tally.cli import format as fmt
from tally.cli.flows import parse_timestamp
from tally.v1 import webhook_service_pb2 as pb
from tally.v1 import webhook_service_pb2_grpc as pb_grpc


def webhook_fields(hook: pb.Webhook) -> list[tuple[str, object]]:
    return [
        ("id", hook.id), ("url", hook.url), ("status", fmt.enum_label(pb.WebhookStatus, hook.status)),
        ("status_reason", hook.status_reason), ("event_types", ", ".join(hook.event_types) or "(every type)"),
        ("accounts", ", ".join(hook.account_ids) or "(every account)"), ("description", hook.description),
        ("acknowledged_sequence", hook.acknowledged_sequence), ("failures", hook.failures),
        ("next_attempt_time", fmt.timestamp_text(hook.next_attempt_time) if hook.HasField("next_attempt_time")
         else ""),
        ("previous_secret_until", fmt.timestamp_text(hook.previous_secret_expire_time)
         if hook.HasField("previous_secret_expire_time") else ""),
        ("create_time", fmt.timestamp_text(hook.create_time)), ("update_time", fmt.timestamp_text(hook.update_time)),
    ]


def webhooks_table(hooks: Iterable[pb.Webhook]) -> str:
    rows = [[h.id, fmt.enum_label(pb.WebhookStatus, h.status), h.acknowledged_sequence, h.failures, h.url,
             h.status_reason] for h in hooks]
    return fmt.format_table(["id", "status", "acknowledged", "failures", "url", "reason"], rows,
                            numeric=["acknowledged", "failures"])


def deliveries_table(deliveries: Iterable[pb.Delivery]) -> str:
    rows = [[d.sequence, d.event_type, d.attempt, fmt.enum_label(pb.DeliveryTrigger, d.trigger),
             "yes" if d.delivered else "no", d.response_code or "", d.latency_us // 1000, d.error,
             fmt.timestamp_text(d.create_time)] for d in deliveries]
    return fmt.format_table(["sequence", "type", "attempt", "trigger", "delivered", "code", "latency_ms", "error",
                             "time"], rows, numeric=["sequence", "attempt", "latency_ms"])


def _with_secret(response) -> str:
    text = fmt.format_fields(webhook_fields(response.webhook))
    if response.secret:
        text += (f"\nsecret: {response.secret}\n(shown once: keep it where your receiver reads it; "
                 "`tally webhooks rotate-secret` makes a new one)")
    return text


def _hook_text(response) -> str:
    return fmt.format_fields(webhook_fields(response.webhook))


# ---------------------------------------------------------------------------------------------- commands


def _account_ids(args: argparse.Namespace, texts: Iterable[str] | None) -> list[str]:
    return [common.account_id(args, text) for text in texts or ()]


def cmd_create(args: argparse.Namespace) -> int:
    request = pb.CreateWebhookRequest(request_id=common.request_id(args), url=args.url,
                                      event_types=args.event_types or [], description=args.description or "",
                                      account_ids=_account_ids(args, args.accounts))
    if args.after_sequence is not None:
        request.after_sequence = args.after_sequence
    with common.stub(args, pb_grpc.WebhookServiceStub) as stub:
        return common.emit(args, stub.CreateWebhook(request), _with_secret)


def cmd_list(args: argparse.Namespace) -> int:
    request = pb.ListWebhooksRequest(page_size=args.page_size or 0, page_token=args.page_token or "")
    with common.stub(args, pb_grpc.WebhookServiceStub) as stub:
        response = common.pages(stub.ListWebhooks, request, "webhooks", args.all)
    return common.emit(args, response, lambda r: webhooks_table(r.webhooks))


def cmd_get(args: argparse.Namespace) -> int:
    with common.stub(args, pb_grpc.WebhookServiceStub) as stub:
        return common.emit(args, stub.GetWebhook(pb.GetWebhookRequest(webhook_id=args.webhook_id)), _hook_text)


def update_request(args: argparse.Namespace, account_ids: list[str]) -> pb.UpdateWebhookRequest:
    new, paths = pb.Webhook(), []
    if args.url is not None:
        new.url, paths = args.url, [*paths, "url"]
    if args.event_types or args.every_event_type:
        new.event_types.extend(args.event_types or [])
        paths.append("event_types")
    if args.accounts or args.every_account:
        new.account_ids.extend(account_ids)
        paths.append("account_ids")
    if args.description is not None:
        new.description, paths = args.description, [*paths, "description"]
    if args.pause or args.resume:
        new.status = pb.WEBHOOK_STATUS_PAUSED if args.pause else pb.WEBHOOK_STATUS_ACTIVE
        paths.append("status")
    return pb.UpdateWebhookRequest(webhook_id=args.webhook_id, webhook=new,
                                   update_mask=field_mask_pb2.FieldMask(paths=paths))


def cmd_update(args: argparse.Namespace) -> int:
    request = update_request(args, _account_ids(args, args.accounts))
    if not request.update_mask.paths:
        print("error: nothing to change (see tally webhooks update --help)", file=sys.stderr)
        return 2
    request.request_id = common.request_id(args)
    with common.stub(args, pb_grpc.WebhookServiceStub) as stub:
        return common.emit(args, stub.UpdateWebhook(request), _hook_text)


def cmd_delete(args: argparse.Namespace) -> int:
    request = pb.DeleteWebhookRequest(request_id=common.request_id(args), webhook_id=args.webhook_id)
    with common.stub(args, pb_grpc.WebhookServiceStub) as stub:
        return common.emit(args, stub.DeleteWebhook(request), _hook_text)


def cmd_rotate(args: argparse.Namespace) -> int:
    request = pb.RotateWebhookSecretRequest(request_id=common.request_id(args), webhook_id=args.webhook_id,
                                            overlap_seconds=args.overlap)
    with common.stub(args, pb_grpc.WebhookServiceStub) as stub:
        return common.emit(args, stub.RotateWebhookSecret(request), _with_secret)


def cmd_replay(args: argparse.Namespace) -> int:
    request = pb.ReplayWebhookRequest(request_id=common.request_id(args), webhook_id=args.webhook_id)
    if args.since is not None:
        request.start_time.CopyFrom(args.since)
    else:
        request.after_sequence = args.after_sequence
    with common.stub(args, pb_grpc.WebhookServiceStub) as stub:
        return common.emit(args, stub.ReplayWebhook(request), _hook_text)


def cmd_deliveries(args: argparse.Namespace) -> int:
    request = pb.ListDeliveriesRequest(webhook_id=args.webhook_id, sequence=args.sequence or 0,
                                       page_size=args.page_size or 0, page_token=args.page_token or "")
    with common.stub(args, pb_grpc.WebhookServiceStub) as stub:
        response = common.pages(stub.ListDeliveries, request, "deliveries", args.all)
    return common.emit(args, response, lambda r: deliveries_table(r.deliveries))


def cmd_redeliver(args: argparse.Namespace) -> int:
    request = pb.RedeliverRequest(request_id=common.request_id(args), webhook_id=args.webhook_id,
                                  sequence=args.sequence)
    with common.stub(args, pb_grpc.WebhookServiceStub) as stub:
        response = stub.Redeliver(request)
    return common.emit(args, response, lambda r: deliveries_table([r.delivery]))


# ---------------------------------------------------------------------------------------------- parser


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--event-type", dest="event_types", action="append", metavar="TYPE",
                        help="only events of this type (repeatable), e.g. ledger.entry.posted")
    parser.add_argument("--account", dest="accounts", action="append", metavar="CODE_OR_ID",
                        help="only events that name this account (repeatable)")
    parser.add_argument("--description")


def add_webhooks_parser(commands, client: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Registers `tally webhooks VERB` on the `tally` command's subparsers."""
    sequence = common.arg(fmt.parse_amount, minimum=0, what="sequence")
    hooks = commands.add_parser("webhooks", help="signed webhook subscriptions: create, inspect, replay")
    verbs = hooks.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser("create", parents=[client], help="subscribe a URL to the tenant's events")
    create.add_argument("url", metavar="URL", help="https:// (http:// only to hosts in TALLY_WEBHOOK_HTTP_HOSTS)")
    _filters(create)
    create.add_argument("--after-sequence", type=sequence, metavar="N",
                        help="deliver the events after this sequence (0: all); default: from now on")
    common.request_id_option(create)
    create.set_defaults(func=cmd_create)

    listing = verbs.add_parser("list", parents=[client], help="list subscriptions and their delivery state")
    common.paging_options(listing)
    listing.set_defaults(func=cmd_list)

    get = verbs.add_parser("get", parents=[client], help="show one subscription")
    get.add_argument("webhook_id", metavar="ID")
    get.set_defaults(func=cmd_get)

    update = verbs.add_parser("update", parents=[client], help="change a subscription, pause or resume it")
    update.add_argument("webhook_id", metavar="ID")
    update.add_argument("--url")
    _filters(update)
    update.add_argument("--every-event-type", action="store_true", help="drop the event type filter")
    update.add_argument("--every-account", action="store_true", help="drop the account filter")
    state = update.add_mutually_exclusive_group()
    state.add_argument("--pause", action="store_true")
    state.add_argument("--resume", action="store_true", help="deliver again (a fresh retry schedule)")
    common.request_id_option(update)
    update.set_defaults(func=cmd_update)

    delete = verbs.add_parser("delete", parents=[client], help="stop a subscription for good")
    delete.add_argument("webhook_id", metavar="ID")
    common.request_id_option(delete)
    delete.set_defaults(func=cmd_delete)

    rotate = verbs.add_parser("rotate-secret", parents=[client], help="a new signing secret (shown once)")
    rotate.add_argument("webhook_id", metavar="ID")
    rotate.add_argument("--overlap", type=sequence, default=86_400, metavar="SECONDS",
                        help="how long the old secret keeps signing beside the new one (default %(default)s)")
    common.request_id_option(rotate)
    rotate.set_defaults(func=cmd_rotate)

    replay = verbs.add_parser("replay", parents=[client], help="send every event after a point again, in order")
    replay.add_argument("webhook_id", metavar="ID")
    start = replay.add_mutually_exclusive_group(required=True)
    start.add_argument("--after-sequence", type=sequence, metavar="N")
    start.add_argument("--since", type=common.arg(parse_timestamp), metavar="RFC3339",
                       help="the events stamped at or after this time")
    common.request_id_option(replay)
    replay.set_defaults(func=cmd_replay)

    deliveries = verbs.add_parser("deliveries", parents=[client], help="list a subscription's delivery attempts")
    deliveries.add_argument("webhook_id", metavar="ID")
    deliveries.add_argument("--sequence", type=sequence, metavar="N", help="only the attempts at this event")
    common.paging_options(deliveries)
    deliveries.set_defaults(func=cmd_deliveries)

    redeliver = verbs.add_parser("redeliver", parents=[client], help="send one event again now")
    redeliver.add_argument("webhook_id", metavar="ID")
    redeliver.add_argument("sequence", type=sequence, metavar="SEQUENCE")
    common.request_id_option(redeliver)
    redeliver.set_defaults(func=cmd_redeliver)
    return hooks
