"""What every verb module of `tally` shares: credentials, the connection, calls through tally-client,
request ids, output (JSON or human text, paging) and error reporting, and the options client verbs take.

Client verbs authenticate with an API key (or a JWT) sent as `authorization: Bearer <key>`: --api-key,
else TALLY_API_KEY, else the key file (--key-file, else TALLY_KEY_FILE, else ./tally-admin.key when it
exists, which `tally serve` writes on the first start of an empty ledger). The key names the tenant; the
key itself is never printed.

Exit status: 0 success, 1 the server refused or failed the request, 2 bad arguments or the server cannot be reached.

This module imports no verb module (they import it), so the package has no import cycle.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

import grpc
from google.protobuf import json_format
from tally_client import RetryPolicy, TallyError, new_request_id
from tally_client.client import DEADLINE_S
from tally_client.retry import call_with_retry
from tqdm import tqdm

from tally.cli import format as fmt
from tally.cli import tls as cli_tls
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc

AUTH_HEADER = "authorization"
API_KEY_ENV = "TALLY_API_KEY"
KEY_FILE_ENV = "TALLY_KEY_FILE"
CURRENCIES_ENV = "TALLY_CURRENCIES"
DEFAULT_KEY_FILE = "tally-admin.key"  # what `tally serve` writes on first start (TALLY_ADMIN_KEY_FILE)
KEY_FILE_SIZE_MAX = 16 * 1024
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2
# A person waits for the answer: a few quick tries ride out a brief hiccup, not a long outage.
CALL_RETRY = RetryPolicy(attempts_max=3, backoff_initial_s=0.1, backoff_max_s=1.0)
ROLE_REASON = "ROLE_NOT_ALLOWED"
ACCOUNT_LOOKUPS_MAX = 50  # codes looked up for one answer's text, one call each
CREDENTIAL_HINT = (f"pass --api-key KEY, set {API_KEY_ENV}, or name a file holding the key with --key-file "
                   f"(or {KEY_FILE_ENV}; default ./{DEFAULT_KEY_FILE}, which `tally serve` writes on the first "
                   "start of an empty ledger). An administrator issues keys with "
                   "`tally keys create --tenant ID --role reader|poster|operator|admin`.")


class Unreachable(Exception):
    """The server did not answer at the transport level."""


class SettingError(Exception):
    """An environment setting of the CLI cannot be used (exit 2)."""


class CredentialError(Exception):
    """The credential named on the command line or in the environment cannot be used (exit 2)."""


@dataclasses.dataclass(frozen=True)
class Credential:
    """The key a client verb sends and where it came from. repr() and str() never show the key."""

    key: str = dataclasses.field(repr=False)
    source: str  # "--api-key", "TALLY_API_KEY", "key file PATH" or "" when there is none

    def __str__(self) -> str:
        return f"credential from {self.source}" if self.key else "no credential"


# ---------------------------------------------------------------------------------------------- plumbing


def arg(parse: Callable[..., object], **kwargs: object) -> Callable[[str], object]:
    """Wraps a parser raising ValueError as an argparse type, so bad input is an argparse error (exit 2)."""

    def convert(text: str) -> object:
        try:
            return parse(text, **kwargs)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = kwargs.get("what") or parse.__name__.removeprefix("parse_")
    return convert


def _parse_timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {text!r}")
    return seconds


def _parse_positive_int(text: str) -> int:
    return fmt.parse_amount(text, what="page size")


def _read_key_file(path: str, *, named: bool) -> Credential:
    """The key in a file (surrounding whitespace stripped); a file given by name must exist."""
    source = f"key file {path}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(KEY_FILE_SIZE_MAX + 1)
    except FileNotFoundError:
        if not named:
            return Credential("", "")
        raise CredentialError(f"the key file {path} does not exist") from None
    except OSError as exc:
        raise CredentialError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    if len(raw) > KEY_FILE_SIZE_MAX:
        raise CredentialError(f"the key file {path} is larger than {KEY_FILE_SIZE_MAX} bytes: not a key file")
    try:
        key = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CredentialError(f"the key file {path} does not hold an API key (not ASCII text)") from None
    if not key:
        raise CredentialError(f"the key file {path} is empty")
    return _checked(Credential(key, source))


def _checked(credential: Credential) -> Credential:
    """Refuses what cannot be sent as `Bearer <key>`: spaces, line breaks, control characters. The message
    names where the key came from, never the key."""
    key = credential.key
    if not key or not key.isascii() or not key.isprintable() or any(ch.isspace() for ch in key):
        raise CredentialError(f"the API key from {credential.source} is malformed: expected one word of printable "
                              "ASCII, such as tly_<key id>_<secret>")
    return credential


def resolve_credential(args: argparse.Namespace, environ=None) -> Credential:
    """The key to send: --api-key, else TALLY_API_KEY, else --key-file / TALLY_KEY_FILE (which must exist),
    else ./tally-admin.key when it exists; else none (the server will answer UNAUTHENTICATED)."""
    environ = os.environ if environ is None else environ
    api_key = getattr(args, "api_key", None)
    if api_key is not None:
        return _checked(Credential(api_key.strip(), "--api-key"))
    if environ.get(API_KEY_ENV, "").strip():
        return _checked(Credential(environ[API_KEY_ENV].strip(), API_KEY_ENV))
    key_file = getattr(args, "key_file", None)
    if key_file:
        return _read_key_file(key_file, named=True)
    if environ.get(KEY_FILE_ENV):
        return _read_key_file(environ[KEY_FILE_ENV], named=True)
    return _read_key_file(DEFAULT_KEY_FILE, named=False)


def credential(args: argparse.Namespace) -> Credential:
    """The invocation's credential, resolved once and kept on `args` (report_rpc_error names its source)."""
    found = getattr(args, "credential", None)
    if found is None:
        found = args.credential = resolve_credential(args)
    return found


def call_metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """The metadata every call carries: `authorization: Bearer <key>`, or nothing without a credential."""
    found = credential(args)
    return ((AUTH_HEADER, f"Bearer {found.key}"),) if found.key else ()


class _Bound:
    """A stub whose unary calls go through tally-client: the credential and the deadline on every try, retries
    with backoff and jitter on UNAVAILABLE, ABORTED and DEADLINE_EXCEEDED (every call the CLI makes is a read
    or carries a request id, so a repeat changes nothing), and a failure raised as tally_client.TallyError."""

    def __init__(self, stub: object, args: argparse.Namespace) -> None:
        self._stub = stub
        self._metadata = call_metadata(args)
        self._timeout = args.timeout
        self._rng = random.Random()

    def __getattr__(self, name: str) -> Callable:
        method = getattr(self._stub, name)

        def call(request):
            return call_with_retry(lambda: method(request, metadata=self._metadata, timeout=self._timeout),
                                   CALL_RETRY, self._rng)

        return call


def _first_connection(channel: grpc.Channel, timeout_s: float) -> grpc.ChannelConnectivity | None:
    """READY, or TRANSIENT_FAILURE as soon as the first attempt failed (refused, no route, TLS handshake), or
    None when neither came within timeout_s. gRPC itself would keep retrying until the call's deadline."""
    settled = threading.Event()
    seen: list[grpc.ChannelConnectivity] = []

    def watch(state: grpc.ChannelConnectivity) -> None:
        if state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE):
            seen.append(state)
            settled.set()

    channel.subscribe(watch, try_to_connect=True)
    try:
        settled.wait(timeout_s)
    finally:
        channel.unsubscribe(watch)
    return seen[0] if seen else None


def connect(args: argparse.Namespace) -> grpc.Channel:
    """A channel to --target (plaintext or TLS, see cli_tls) that has connected. Fails fast: at the first
    failed attempt (nothing listening, no route, a TLS handshake refused), where gRPC would keep retrying
    until the call's deadline; a connection still under way (a slow network, a loaded machine) gets
    --timeout. A bad key file or TLS file stops here, before any connection."""
    credential(args)
    channel = cli_tls.open_channel(args)
    state = _first_connection(channel, args.timeout)
    if state is not grpc.ChannelConnectivity.READY:
        channel.close()
        what = "the connection failed" if state else f"no connection within {args.timeout:g}s"
        raise Unreachable(f"{what} to {args.target} ({cli_tls.unreachable_hint(args)})")
    return channel


@contextlib.contextmanager
def stub(args: argparse.Namespace, stub_class: type) -> Iterator[_Bound]:
    """A bound stub on a connected channel (`connect`), closed afterwards."""
    channel = connect(args)
    try:
        yield _Bound(stub_class(channel), args)
    finally:
        channel.close()


def use_amounts(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """Amounts for people unless --atomic; each currency at the scale TALLY_CURRENCIES gives it (the same
    setting the server reads; its default otherwise). A bad setting is a usage error, like a bad option."""
    if not hasattr(args, "atomic"):  # serve, migrate, tenants, keys: no amounts to show, no setting to read
        return fmt.use_amounts(atomic=True, scales={})
    try:
        scales = fmt.currency_scales(os.environ.get(CURRENCIES_ENV))
    except ValueError as exc:
        raise SettingError(f"{CURRENCIES_ENV}: {exc}") from None
    return fmt.use_amounts(atomic=args.atomic, scales=scales)


def request_id(args: argparse.Namespace) -> str:
    """--request-id, else a fresh one from tally-client, printed to stderr (not with --quiet) so that a
    person can retry safely; every retry of the call sends the same id."""
    if args.request_id:
        return args.request_id
    made = args.request_id = new_request_id()
    if not getattr(args, "quiet", False):
        print(f"request-id: {made} (to retry safely, pass --request-id {made})", file=sys.stderr)
    return made


def emit(args: argparse.Namespace, message, render: Callable[[object], str]) -> int:
    """Prints a response: only the ids with --quiet (when it carries any), proto JSON with --json (int64 as
    strings), else the human rendering."""
    found = object_ids(message) if getattr(args, "quiet", False) else []
    if found:
        print("\n".join(found))
    elif args.json:
        print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True,
                                                      always_print_fields_with_no_presence=True), indent=2,
                         ensure_ascii=False))
    else:
        print(render(message))
        if getattr(message, "replayed", False):
            print("replayed: an earlier request with this request id already did this; nothing new was done")
        if getattr(message, "next_page_token", ""):
            print(f"more: pass --page-token {message.next_page_token} (or --all)", file=sys.stderr)
    return 0


def object_ids(message) -> list[str]:
    """The ids of what a response is about, one a line: its first message field (or list) whose items have an
    id, e.g. a Post's vouchers, a CreateAccount's account, a CreateHold's hold."""
    for _field, value in message.ListFields():
        items = [value] if hasattr(value, "ListFields") else list(value) if isinstance(value, Sequence) else []
        ids = [item.id for item in items if hasattr(item, "ListFields") and getattr(item, "id", "")]
        if ids:
            return ids
    return []


def progress(*, desc: str, unit: str, total: int | None = None) -> tqdm:
    """A progress bar on stderr for long work (every page of a listing, an export, the audit), drawn only when
    stdout is a terminal: a person is watching. Piped or redirected, it draws nothing."""
    return tqdm(total=total, desc=desc, unit=f" {unit}", disable=not sys.stdout.isatty(), file=sys.stderr,
                leave=False, dynamic_ncols=True)


def pages(call: Callable, request, field: str, all_pages: bool):
    """One page, or with --all every page merged into the first response (next_page_token left empty), with a
    progress bar of the rows read so far."""
    response = call(request)
    merged = type(response)()
    merged.CopyFrom(response)
    with progress(desc=f"reading {field}", unit=field, total=None) as bar:
        bar.update(len(getattr(response, field)))
        while all_pages and response.next_page_token:
            if response.next_page_token == request.page_token:
                print("warning: the server returned the same page token twice; stopping", file=sys.stderr)
                break
            request.page_token = response.next_page_token
            response = call(request)
            getattr(merged, field).extend(getattr(response, field))
            bar.update(len(getattr(response, field)))
    merged.next_page_token = response.next_page_token
    return merged


def account_id(args: argparse.Namespace, text: str) -> str:
    """An account id as given, or looked up by code (ListVouchers filters by id only)."""
    if fmt.looks_like_uuid(text):
        return text
    with stub(args, acc_grpc.AccountServiceStub) as accounts:
        return accounts.GetAccount(acc_pb.GetAccountRequest(account=fmt.account_ref(text))).account.id


def account_codes(args: argparse.Namespace, ids) -> dict[str, str]:
    """For people (not --atomic, --scale, --json or --quiet): account id -> code for the ids a response
    names, so the text shows codes; at most ACCOUNT_LOOKUPS_MAX distinct ids (past that, ids stay)."""
    wanted = sorted(set(filter(None, ids)))
    if not fmt.people(args.scale) or args.json or getattr(args, "quiet", False) or not wanted \
            or len(wanted) > ACCOUNT_LOOKUPS_MAX:
        return {}
    with stub(args, acc_grpc.AccountServiceStub) as accounts:
        return {i: accounts.GetAccount(acc_pb.GetAccountRequest(account=fmt.account_ref(i))).account.code
                for i in wanted}


# ---------------------------------------------------------------------------------------------- errors


CALL_ERRORS = (TallyError, grpc.RpcError)  # a unary call's failure (through tally-client), a stream's


def as_tally_error(exc: Exception) -> TallyError:
    """A failed call as tally-client's exception, whether it came through the client or from a raw stream."""
    if isinstance(exc, TallyError):
        return exc
    return TallyError.from_rpc(exc)


def report_rpc_error(exc: Exception, args: argparse.Namespace) -> int:
    """`error: CODE REASON: message` and the ErrorInfo metadata on stderr; exit 1 (2 when unreachable).
    Takes a tally_client.TallyError or a grpc.RpcError (from a stream)."""
    error = as_tally_error(exc)
    code = error.code
    unreachable = not error.reason and code == grpc.StatusCode.UNAVAILABLE
    if unreachable:
        print(f"error: cannot reach the tally server at {args.target}: {error.message}", file=sys.stderr)
    else:
        reason = f" {error.reason}" if error.reason else ""
        print(f"error: {code.name}{reason}: {error.message}", file=sys.stderr)
        for key in sorted(error.metadata):
            print(f"  {key}: {error.metadata[key]}", file=sys.stderr)
        _credential_hint(code, error.reason, args)
    request_id = getattr(args, "request_id", None)
    if request_id and code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
        print(f"  the request may or may not have been applied: retry with --request-id {request_id}", file=sys.stderr)
    return EXIT_UNREACHABLE if unreachable else EXIT_REFUSED


def _credential_hint(code: grpc.StatusCode, reason: str, args: argparse.Namespace) -> None:
    """After UNAUTHENTICATED or PERMISSION_DENIED: which key was sent (by its source) and how to send another.
    The ErrorInfo reason tells a role that is too low from an id the tenant cannot see (*_NOT_ACCESSIBLE:
    unknown or another tenant's, the same answer) and from a method no key may call."""
    found = getattr(args, "credential", None)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if found is None or not found.key:
            print(f"  no API key was sent: {CREDENTIAL_HINT}", file=sys.stderr)
        else:
            print(f"  the key sent came from {found.source} and was refused (revoked, mistyped, or issued for another "
                  "server's database?): ask an administrator for a new one (`tally keys create`)", file=sys.stderr)
    elif code != grpc.StatusCode.PERMISSION_DENIED:
        return
    elif reason.endswith("_NOT_ACCESSIBLE"):
        thing = reason.removesuffix("_NOT_ACCESSIBLE").lower().replace("_", " ")
        print(f"  no {thing} with that id is visible to the key's tenant: check the id (an unknown id and another "
              "tenant's get the same answer); a key with a higher role would not change this", file=sys.stderr)
    elif reason in ("", ROLE_REASON) and found is not None and found.key:
        print(f"  the key sent came from {found.source}; its role does not allow this (roles: reader < poster < "
              "operator < admin): use a key with a higher role", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- parser


class _TenantGone(argparse.Action):
    """`--tenant` on a client verb: the tenant now comes from the API key."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error("--tenant is gone: the tenant comes from the API key (--api-key, TALLY_API_KEY or "
                     "--key-file); `tally keys create --tenant ID` issues a key for a tenant")


def client_options() -> argparse.ArgumentParser:
    """Options every client verb takes, read from the environment when the parser is built."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("server and output")
    group.add_argument("--target", default=os.environ.get("TALLY_TARGET") or "localhost:50051",
                       help="server host:port (env TALLY_TARGET; default %(default)s)")
    auth = parent.add_argument_group("credentials (the key names the tenant)")
    auth.add_argument("--api-key", metavar="KEY",
                      help=f"API key (or JWT) sent as `authorization: Bearer KEY` (env {API_KEY_ENV}); prefer the "
                           "environment or a key file: a command line is visible to other users")
    auth.add_argument("--key-file", metavar="PATH",
                      help=f"file holding the key, used when no key is given (env {KEY_FILE_ENV}; default "
                           f"./{DEFAULT_KEY_FILE} when it exists)")
    parent.add_argument("--tenant", nargs="?", action=_TenantGone, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    group.add_argument("--timeout", type=arg(_parse_timeout), default=DEADLINE_S, metavar="SECONDS",
                       help="deadline of each try of a call and of connecting (default %(default)s); a connection "
                            "that fails gives up at once")
    group.add_argument("--json", action="store_true", help="print the response as proto JSON (int64 as strings)")
    group.add_argument("--atomic", action="store_true",
                       help="show amounts as integer counts of atomic units, as stored (default: in the currency's "
                            "units with its code, 1.234567 USD)")
    group.add_argument("--scale", type=arg(fmt.parse_scale), metavar="N",
                       help="show amounts as atomic counts and as decimals with N places (1234567 at 6 -> 1.234567)")
    group.add_argument("--quiet", "-q", action="store_true",
                       help="print only the new or named object's id (a voucher's, an account's, a hold's), for "
                            "shell variables: VOUCHER=$(tally transfer ... -q); no request-id line on stderr")
    cli_tls.add_tls_options(parent)
    return parent


def request_id_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request-id", metavar="ID",
                        help="idempotency key; a fresh one is generated (and printed to stderr) when omitted")


def account_arg(parser: argparse.ArgumentParser, name: str = "account", metavar: str = "CODE_OR_ID",
                 help: str = "account") -> None:
    parser.add_argument(name, type=arg(fmt.account_ref), metavar=metavar,
                        help=help + ": a UUID is sent as the account id, anything else as the code")


def paging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page-size", type=arg(_parse_positive_int), metavar="N", help="rows per page")
    parser.add_argument("--page-token", metavar="TOKEN", help="continue from a previous page")
    parser.add_argument("--all", action="store_true", help="fetch every page")


