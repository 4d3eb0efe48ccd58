"""`tally watch`: follow the events or balance changes of the API key's tenant as they happen.

    tally watch [--events | --balances] [--account CODE_OR_ID ...] [--type T ...] [--from SEQ] [--limit N]

One line per event or balance change (JSON lines with --json), flushed as it arrives. The stream has no
deadline (--timeout bounds connecting and account look-ups). It ends on Ctrl-C, after --limit lines, or
when the server ends it. On stderr it says where the stream starts, and at the end the last sequence seen
with the --from that resumes (even when nothing arrived, so a watch "from now" can resume exactly).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import dataclass

import grpc
from google.protobuf import json_format

from tally.cli import common
from tally.cli import format as fmt
from tally.streaming import AFTER_SEQUENCE_HEADER
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc


def _sequence(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a sequence is an integer of 0 or more, got {text!r}")
    return value


def _count(text: str) -> int:
    return fmt.parse_amount(text, what="limit")


def add_watch_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `tally watch` on the `tally` command's subparsers."""
    watch = subparsers.add_parser(
        "watch", parents=[common.client_options()], help="follow events or balance changes as they happen",
        description="Prints the events (or balance changes) of the API key's tenant as they are committed: first "
                    "those after "
                    "--from, then live. Ctrl-C stops; the last sequence seen is printed to resume from.")
    what = watch.add_mutually_exclusive_group()
    what.add_argument("--events", dest="balances", action="store_false", help="ledger events (the default)")
    what.add_argument("--balances", dest="balances", action="store_true", help="balance changes")
    watch.add_argument("--account", dest="accounts", action="append", metavar="CODE_OR_ID",
                       help="with --balances: only this account (repeatable)")
    watch.add_argument("--type", dest="types", action="append", metavar="T",
                       help="with --events: only this event type, e.g. ledger.entry.posted (repeatable)")
    watch.add_argument("--from", dest="from_sequence", type=_sequence, metavar="SEQ",
                       help="replay from after this sequence first (0: everything); default: from now")
    watch.add_argument("--limit", type=common.arg(_count), metavar="N", help="stop after N lines")
    watch.set_defaults(func=cmd_watch, balances=False)
    return watch


@dataclass
class _Progress:
    after: int | None = None  # where the stream started, as the server said
    last: int | None = None  # the last sequence printed
    lines: int = 0
    printing: bool = False  # between writing a line and recording its sequence
    interrupted: bool = False  # Ctrl-C came while printing: it takes effect once the line is recorded


def _on_interrupt(progress: _Progress):
    """Ctrl-C between printing a line and recording its sequence would report the sequence before it, and a
    resume with that --from would print the line again: a SIGINT in between waits until both are done."""
    def handler(_signum, _frame) -> None:
        if progress.printing:
            progress.interrupted = True
        else:
            raise KeyboardInterrupt
    return handler


def cmd_watch(args: argparse.Namespace) -> int:
    if args.accounts and not args.balances:
        print("error: --account needs --balances (events are filtered by --type)", file=sys.stderr)
        return common.EXIT_UNREACHABLE
    if args.types and args.balances:
        print("error: --type goes with --events (balance changes are filtered by --account)", file=sys.stderr)
        return common.EXIT_UNREACHABLE
    progress = _Progress()
    main = threading.current_thread() is threading.main_thread()  # only the main thread may set a handler
    previous = signal.signal(signal.SIGINT, _on_interrupt(progress)) if main else None
    try:
        return _watch(args, progress)
    except KeyboardInterrupt:
        _resume_hint(args, progress, "stopped", complete=not args.balances)
        return 0
    except grpc.RpcError as exc:
        status = common.report_rpc_error(exc, args)
        # The server ends a stream only between two events; a broken connection may cut one short.
        cut = args.balances and not common.as_tally_error(exc).reason
        _resume_hint(args, progress, "the stream ended", complete=not cut)
        return status
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _watch(args: argparse.Namespace, progress: _Progress) -> int:
    request = _request(args)
    metadata = common.call_metadata(args)
    channel = common.connect(args)
    call = None
    try:
        stub = post_grpc.AccountingServiceStub(channel)
        method = stub.StreamBalanceChanges if args.balances else stub.StreamEvents
        call = method(request, metadata=metadata)
        progress.after = _after_sequence(call)
        if progress.after is not None:
            print(f"watching after sequence {progress.after}", file=sys.stderr, flush=True)
        for response in call:
            _print(args, response.change if args.balances else response.event, progress)
            if args.limit and progress.lines >= args.limit:
                _resume_hint(args, progress, f"stopped after {progress.lines} lines", complete=not args.balances)
                return 0
        return 0
    finally:
        if call is not None:
            call.cancel()
        channel.close()


def _after_sequence(call) -> int | None:
    """The sequence the stream starts after, from its initial metadata (None when the call failed first)."""
    value = dict(call.initial_metadata() or ()).get(AFTER_SEQUENCE_HEADER)
    return int(value) if value is not None and value.isdigit() else None


def _request(args: argparse.Namespace):
    if args.balances:
        ids = [common.account_id(args, text) for text in args.accounts or ()]
        request = post_pb.StreamBalanceChangesRequest(account_ids=ids)
    else:
        request = post_pb.StreamEventsRequest(types=args.types or ())
    if args.from_sequence is not None:
        request.from_sequence = args.from_sequence
    return request


def _print(args: argparse.Namespace, message, progress: _Progress) -> None:
    if args.json:
        text = json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True,
                                                    always_print_fields_with_no_presence=True),
                          separators=(",", ":"), ensure_ascii=False)
    else:
        text = change_line(message, args.scale) if args.balances else event_line(message)
    progress.printing = True
    print(text, flush=True)
    progress.last = message.sequence
    progress.lines += 1
    progress.printing = False
    if progress.interrupted:
        raise KeyboardInterrupt


def event_line(event) -> str:
    ids = [f"{name}={value}" for name, value in (("account", event.account_id), ("voucher", event.voucher_id),
                                                 ("hold", event.hold_id)) if value]
    return "  ".join([f"#{event.sequence}", fmt.timestamp_text(event.time), event.type, *ids, event.payload_json])


def change_line(change, scale: int | None) -> str:
    ids = [f"{name}={value}" for name, value in (("voucher", change.voucher_id), ("hold", change.hold_id)) if value]
    return "  ".join([
        f"#{change.sequence}", fmt.timestamp_text(change.time), change.account_id, change.currency,
        f"current={fmt.amount_text(change.current, scale, change.currency)} ({change.current_delta:+d})",
        f"locked={fmt.amount_text(change.locked, scale, change.currency)} ({change.locked_delta:+d})",
        f"available={fmt.amount_text(change.available, scale, change.currency)}", change.cause, *ids])


def _resume_hint(args: argparse.Namespace, progress: _Progress, why: str, *, complete: bool) -> None:
    """On stderr: where the watch stopped and the --from that continues it. A balance stream stopped by
    the user may have shown only part of the last sequence's changes, so it resumes one earlier."""
    last = progress.last
    if last is None:
        start = progress.after if progress.after is not None else args.from_sequence
        hint = f"; resume with --from {start}" if start is not None else ""
        print(f"{why}: nothing received{hint}", file=sys.stderr)
        return
    resume = last if complete else last - 1
    print(f"{why}: last sequence {last}; resume with --from {resume}", file=sys.stderr)
