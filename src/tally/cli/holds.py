"""`tally holds`: reserve part of an account's available balance, capture it, release it, read holds.

    tally holds create ACCOUNT AMOUNT --currency USD [--expires-in SECONDS | --expires-at TIME] [--memo TEXT]
    tally holds capture HOLD_ID AMOUNT --to ACCOUNT [--final] [--memo TEXT]
    tally holds release HOLD_ID [--reason TEXT]
    tally holds get HOLD_ID
    tally holds list [--account CODE_OR_ID] [--status active|captured|released|expired] [--all]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable

from google.protobuf import timestamp_pb2

from tally.cli import common
from tally.cli import format as fmt
from tally.cli.flows import parse_timestamp
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import types_pb2

NANOS_PER_SECOND = 10**9



def parse_seconds(text: str) -> int:
    """A positive whole number of seconds."""
    return fmt.parse_amount(text, what="seconds")


def expiry_after(seconds: int, now_ns: int | None = None) -> timestamp_pb2.Timestamp:
    """Now plus `seconds`, to the whole second (integer arithmetic on the clock's nanoseconds)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    return timestamp_pb2.Timestamp(seconds=now_ns // NANOS_PER_SECOND + seconds)


# ---------------------------------------------------------------------------------------------- text


def hold_fields(hold: types_pb2.Hold, scale: int | None, codes: dict[str, str] | None = None,
                ) -> list[tuple[str, object]]:
    """The hold's fields; the account by code when `codes` (common.account_codes) names it."""
    code = (codes or {}).get(hold.account_id)
    return [
        ("id", hold.id), ("tenant", hold.tenant_id), ("account", code) if code else ("account_id", hold.account_id),
        ("currency", hold.currency),
        ("status", fmt.enum_label(types_pb2.HoldStatus, hold.status)),
        *((name, fmt.amount_text(getattr(hold, name), scale, hold.currency))
          for name in ("amount", "captured", "remaining")),
        ("expire_time", fmt.timestamp_text(hold.expire_time)), ("create_time", fmt.timestamp_text(hold.create_time)),
        ("update_time", fmt.timestamp_text(hold.update_time)), ("request_id", hold.request_id),
        ("memo", hold.memo), ("metadata", fmt.metadata_text(hold.metadata)),
        ("capture_vouchers", ", ".join(hold.capture_voucher_ids)),
    ]


def holds_table(holds: Iterable[types_pb2.Hold], scale: int | None, codes: dict[str, str] | None = None) -> str:
    """One row per hold; the account column by code when `codes` (common.account_codes) is given."""
    codes = codes or {}
    amounts = ["amount", "captured", "remaining"]
    columns = ["id", "account" if codes else "account_id", "status", *amounts, "currency", "expire_time", "memo"]
    numeric = list(amounts)
    if scale is not None:
        for name in amounts:
            columns.insert(columns.index(name) + 1, f"{name}_dec")
        numeric += [f"{name}_dec" for name in amounts]
    rows = []
    for h in holds:
        cells = []
        for value in (h.amount, h.captured, h.remaining):
            cells += fmt.amount_cells(value, scale, h.currency)
        rows.append([h.id, codes.get(h.account_id, h.account_id), fmt.enum_label(types_pb2.HoldStatus, h.status),
                     *cells, h.currency,
                     fmt.timestamp_text(h.expire_time), h.memo])
    return fmt.format_table(columns, rows, numeric=numeric)


def _hold_emit(args: argparse.Namespace, response) -> int:
    codes = common.account_codes(args, [response.hold.account_id])
    return common.emit(args, response, lambda r: fmt.format_fields(hold_fields(r.hold, args.scale, codes)))


# ---------------------------------------------------------------------------------------------- commands


def cmd_holds_create(args: argparse.Namespace) -> int:
    request = post_pb.CreateHoldRequest(request_id=common.request_id(args), account=args.account, amount=args.amount,
                                        currency=args.currency.upper(), memo=args.memo or "",
                                        metadata=dict(args.meta or ()))
    if args.expires_in is not None:
        request.expire_time.CopyFrom(expiry_after(args.expires_in))
        stamp = request.expire_time.ToJsonString()
        print(f"expires-at: {stamp} (a retry with the same request id must pass --expires-at {stamp})",
              file=sys.stderr)
    elif args.expires_at is not None:
        request.expire_time.CopyFrom(args.expires_at)
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.CreateHold(request)
    return _hold_emit(args, response)


def cmd_holds_capture(args: argparse.Namespace) -> int:
    request = post_pb.CaptureHoldRequest(request_id=common.request_id(args), hold_id=args.hold_id, amount=args.amount,
                                         destination=args.to, final=args.final, memo=args.memo or "")
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.CaptureHold(request)
    codes = common.account_codes(args, [response.hold.account_id])
    return common.emit(args, response, lambda r: fmt.format_fields(hold_fields(r.hold, args.scale, codes)) + "\n\n"
                     + fmt.voucher_text(r.voucher, args.scale))


def cmd_holds_release(args: argparse.Namespace) -> int:
    request = post_pb.ReleaseHoldRequest(request_id=common.request_id(args), hold_id=args.hold_id,
                                         reason=args.reason or "")
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.ReleaseHold(request)
    return _hold_emit(args, response)


def cmd_holds_get(args: argparse.Namespace) -> int:
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.GetHold(post_pb.GetHoldRequest(hold_id=args.hold_id))
    return _hold_emit(args, response)


def cmd_holds_list(args: argparse.Namespace) -> int:
    request = post_pb.ListHoldsRequest(page_size=args.page_size or 0, page_token=args.page_token or "")
    if args.status:
        request.status = fmt.enum_value(types_pb2.HoldStatus, args.status)
    if args.account:
        request.account_id = common.account_id(args, args.account)
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = common.pages(stub.ListHolds, request, "holds", args.all)
    codes = common.account_codes(args, [h.account_id for h in response.holds])
    return common.emit(args, response, lambda r: holds_table(r.holds, args.scale, codes))


def add_holds_parser(commands, client: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Registers `tally holds VERB` on the `tally` command's subparsers."""
    holds = commands.add_parser("holds", help="reserve, capture and release parts of an account's balance")
    verbs = holds.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser("create", parents=[client], help="reserve part of an account's available balance")
    common.account_arg(create, help="the account whose funds are held")
    create.add_argument("amount", type=common.arg(fmt.parse_amount), metavar="AMOUNT", help="integer atomic units")
    create.add_argument("--currency", required=True)
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", type=common.arg(parse_seconds), metavar="SECONDS",
                        help="released by the server after this many seconds (the time sent is printed to stderr)")
    expiry.add_argument("--expires-at", type=common.arg(parse_timestamp), metavar="RFC3339",
                        help="released by the server after this time, e.g. 2026-05-01T12:00:00Z")
    create.add_argument("--memo")
    create.add_argument("--meta", type=common.arg(fmt.parse_meta), nargs="+", action="extend", metavar="KEY=VALUE",
                        help="metadata entries (repeatable)")
    common.request_id_option(create)
    create.set_defaults(func=cmd_holds_create)

    capture = verbs.add_parser("capture", parents=[client], help="post a voucher for part or all of a hold")
    capture.add_argument("hold_id", metavar="HOLD_ID")
    capture.add_argument("amount", type=common.arg(fmt.parse_amount), metavar="AMOUNT",
                         help="integer atomic units, up to what the hold still reserves")
    capture.add_argument("--to", required=True, type=common.arg(fmt.account_ref), metavar="CODE_OR_ID",
                         help="the account credited")
    capture.add_argument("--final", action="store_true", help="release whatever remains after this capture")
    capture.add_argument("--memo")
    common.request_id_option(capture)
    capture.set_defaults(func=cmd_holds_capture)

    release = verbs.add_parser("release", parents=[client], help="free what a hold still reserves")
    release.add_argument("hold_id", metavar="HOLD_ID")
    release.add_argument("--reason")
    common.request_id_option(release)
    release.set_defaults(func=cmd_holds_release)

    get = verbs.add_parser("get", parents=[client], help="show a hold")
    get.add_argument("hold_id", metavar="HOLD_ID")
    get.set_defaults(func=cmd_holds_get)

    listing = verbs.add_parser("list", parents=[client], help="list holds")
    listing.add_argument("--account", metavar="CODE_OR_ID", help="only holds on this account")
    listing.add_argument("--status", choices=fmt.enum_labels(types_pb2.HoldStatus))
    common.paging_options(listing)
    listing.set_defaults(func=cmd_holds_list)
    return holds
