"""The `tally` command: runs the server (`serve`, `migrate`), administers tenants and API keys in its
database (`tenants`, `keys`), and talks to one over gRPC (accounts, postings, reads).

Verbs with modules of their own: `post` (business flows, cli_flows), `holds` (cli_holds), `rules`,
`trial-balance` and `verify` (cli_books), `days` (cli_days), `demo` (cli_demo), `watch` (cli_watch),
`webhooks` (cli_webhooks), `recon` (cli_recon), `payouts` (cli_payouts) and `tenants` / `keys` (cli_admin).
They use the helpers here, so they are imported
when the parser is built, not at the top of this module.

Client verbs authenticate with an API key (or a JWT) sent as `authorization: Bearer <key>`: --api-key,
else TALLY_API_KEY, else the key file (--key-file, else TALLY_KEY_FILE, else ./tally-admin.key when it
exists, which `tally serve` writes on the first start of an empty ledger). The key names the tenant; the
key itself is never printed.

Exit status: 0 success, 1 the server refused or failed the request, 2 bad arguments or the server cannot be reached.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import sys
import uuid
from collections.abc import Callable, Iterator

import grpc
from google.protobuf import field_mask_pb2, json_format

from tally import cli_format as fmt
from tally import cli_tls
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import flows_pb2, types_pb2

AUTH_HEADER = "authorization"
API_KEY_ENV = "TALLY_API_KEY"
KEY_FILE_ENV = "TALLY_KEY_FILE"
DEFAULT_KEY_FILE = "tally-admin.key"  # what `tally serve` writes on first start (TALLY_ADMIN_KEY_FILE)
KEY_FILE_SIZE_MAX = 16 * 1024
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2
CREDENTIAL_HINT = (f"pass --api-key KEY, set {API_KEY_ENV}, or name a file holding the key with --key-file "
                   f"(or {KEY_FILE_ENV}; default ./{DEFAULT_KEY_FILE}, which `tally serve` writes on the first "
                   "start of an empty ledger). An administrator issues keys with "
                   "`tally keys create --tenant ID --role reader|poster|operator|admin`.")


class Unreachable(Exception):
    """The server did not answer at the transport level."""


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


def _arg(parse: Callable[..., object], **kwargs: object) -> Callable[[str], object]:
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
    """A stub whose calls all carry the credential and the deadline."""

    def __init__(self, stub: object, args: argparse.Namespace) -> None:
        self._stub = stub
        self._metadata = call_metadata(args)
        self._timeout = args.timeout

    def __getattr__(self, name: str) -> Callable:
        return functools.partial(getattr(self._stub, name), metadata=self._metadata, timeout=self._timeout)


def connect(args: argparse.Namespace) -> grpc.Channel:
    """A channel to --target (plaintext or TLS, see cli_tls) that has connected within --timeout. A bad key
    file or TLS file stops here, before any connection."""
    credential(args)
    channel = cli_tls.open_channel(args)
    try:
        grpc.channel_ready_future(channel).result(timeout=args.timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise Unreachable(f"no connection to {args.target} within {args.timeout:g}s "
                          f"({cli_tls.unreachable_hint(args)})") from None
    return channel


@contextlib.contextmanager
def _stub(args: argparse.Namespace, stub_class: type) -> Iterator[_Bound]:
    """A bound stub on a connected channel (`connect`), closed afterwards."""
    channel = connect(args)
    try:
        yield _Bound(stub_class(channel), args)
    finally:
        channel.close()


def _request_id(args: argparse.Namespace) -> str:
    if args.request_id:
        return args.request_id
    request_id = args.request_id = str(uuid.uuid4())
    print(f"request-id: {request_id} (to retry safely, pass --request-id {request_id})", file=sys.stderr)
    return request_id


def _emit(args: argparse.Namespace, message, render: Callable[[object], str]) -> int:
    """Prints a response: proto JSON with --json (int64 as strings), else the human rendering."""
    if args.json:
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


def _pages(call: Callable, request, field: str, all_pages: bool):
    """One page, or with --all every page merged into the first response (next_page_token left empty)."""
    response = call(request)
    merged = type(response)()
    merged.CopyFrom(response)
    while all_pages and response.next_page_token:
        if response.next_page_token == request.page_token:
            print("warning: the server returned the same page token twice; stopping", file=sys.stderr)
            break
        request.page_token = response.next_page_token
        response = call(request)
        getattr(merged, field).extend(getattr(response, field))
    merged.next_page_token = response.next_page_token
    return merged


# ---------------------------------------------------------------------------------------------- server


def cmd_serve(args: argparse.Namespace) -> int:
    from tally import config

    try:
        settings = config.Settings.from_env()
        overrides = {"listen_address": args.listen, "database_url": args.database_url}
        settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        from tally import bootstrap  # after the settings: a bad one is reported without loading the server

        return bootstrap.serve_forever(settings)
    except config.ConfigError as exc:  # a set-up the server refuses to start with: the reason, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


def _schema_heads(url: str) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    finally:
        engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from tally import config
    from tally.storage.migrate import migrate
    from tally.storage.roles import ServiceRoleError

    try:
        settings = config.Settings.from_env()
        role = (settings.service_role if args.service_role is None
                else config.role_name(args.service_role, "--service-role"))
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    # The schema owner migrates: TALLY_MIGRATE_DATABASE_URL when the service itself runs as another role.
    url = args.database_url or settings.migrate_database_url or settings.database_url
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    try:
        before = _schema_heads(url)
        migrate(url, service_role=role)
        after = _schema_heads(url)
    except (SQLAlchemyError, ServiceRoleError) as exc:
        print(f"error: migrating {shown} failed: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if before == after:
        print(f"{shown}: already at the newest schema ({', '.join(after) or 'empty'})")
    else:
        print(f"{shown}: migrated from {', '.join(before) or 'an empty database'} to {', '.join(after)}")
    if role and parsed.get_backend_name() == "postgresql":
        print(f"{shown}: granted the service role {role!r} what the service needs")
    elif role:
        print(f"note: {shown} has no roles; the service role {role!r} is ignored")
    return 0


# ---------------------------------------------------------------------------------------------- accounts


def _account_text(response) -> str:
    return fmt.format_fields(fmt.account_fields(response.account))


def cmd_accounts_create(args: argparse.Namespace) -> int:
    request = acc_pb.CreateAccountRequest(
        request_id=_request_id(args), code=args.code, name=args.name or "", currency=args.currency.upper(),
        type=fmt.enum_value(types_pb2.AccountType, args.type), credit_limit=args.credit_limit,
        metadata=dict(args.meta or ()))
    if args.normal_side:
        request.normal_side = fmt.enum_value(types_pb2.Side, args.normal_side)
    if args.floor:
        request.floor_policy = fmt.enum_value(types_pb2.FloorPolicy, args.floor)
    if args.parent:
        request.parent.CopyFrom(args.parent)
    with _stub(args, acc_grpc.AccountServiceStub) as stub:
        return _emit(args, stub.CreateAccount(request), _account_text)


def cmd_accounts_get(args: argparse.Namespace) -> int:
    with _stub(args, acc_grpc.AccountServiceStub) as stub:
        response = stub.GetAccount(acc_pb.GetAccountRequest(account=args.account))
    return _emit(args, response, lambda r: _account_text(r) + "\n\n"
                 + fmt.format_fields(fmt.balance_fields(r.balance, args.scale)))


def cmd_accounts_list(args: argparse.Namespace) -> int:
    request = acc_pb.ListAccountsRequest(page_size=args.page_size or 0, page_token=args.page_token or "",
                                         currency=(args.currency or "").upper())
    if args.type:
        request.type = fmt.enum_value(types_pb2.AccountType, args.type)
    if args.status:
        request.status = fmt.enum_value(types_pb2.AccountStatus, args.status)
    with _stub(args, acc_grpc.AccountServiceStub) as stub:
        response = _pages(stub.ListAccounts, request, "accounts", args.all)
    return _emit(args, response, lambda r: fmt.accounts_table(r.accounts))


def _update_account(args: argparse.Namespace, update: types_pb2.Account, paths: list[str]) -> int:
    request = acc_pb.UpdateAccountRequest(request_id=_request_id(args), account=args.account,
                                          account_update=update, update_mask=field_mask_pb2.FieldMask(paths=paths))
    with _stub(args, acc_grpc.AccountServiceStub) as stub:
        return _emit(args, stub.UpdateAccount(request), _account_text)


def cmd_accounts_status(args: argparse.Namespace) -> int:
    """freeze, unfreeze and close: set the account status."""
    status = {"freeze": types_pb2.ACCOUNT_STATUS_FROZEN, "unfreeze": types_pb2.ACCOUNT_STATUS_ACTIVE,
              "close": types_pb2.ACCOUNT_STATUS_CLOSED}[args.verb]
    return _update_account(args, types_pb2.Account(status=status), ["status"])


def cmd_accounts_set_limit(args: argparse.Namespace) -> int:
    return _update_account(args, types_pb2.Account(credit_limit=args.limit), ["credit_limit"])


def cmd_balance(args: argparse.Namespace) -> int:
    request = acc_pb.GetBalanceRequest(account=args.account, as_of_date=args.as_of_date or "",
                                       include_descendants=args.descendants)
    with _stub(args, acc_grpc.AccountServiceStub) as stub:
        response = stub.GetBalance(request)
    return _emit(args, response, lambda r: "\n\n".join([fmt.format_fields(fmt.balance_fields(r.balance, args.scale)),
                                                         *(fmt.rollup_text(u, args.scale) for u in r.rollups)]))


def cmd_statement(args: argparse.Namespace) -> int:
    request = acc_pb.ListEntriesRequest(account=args.account, page_size=args.page_size or 0,
                                        page_token=args.page_token or "", start_date=args.start_date or "",
                                        end_date=args.end_date or "")
    with _stub(args, acc_grpc.AccountServiceStub) as stub:
        response = _pages(stub.ListEntries, request, "entries", args.all)
    return _emit(args, response, lambda r: f"opening balance: {fmt.amount_text(r.opening_balance, args.scale)}\n\n"
                 + fmt.entries_table(r.entries, args.scale))


# ---------------------------------------------------------------------------------------------- postings


def _post(args: argparse.Namespace, request: post_pb.PostRequest) -> int:
    with _stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.Post(request)
    return _emit(args, response, lambda r: "\n\n".join(fmt.voucher_text(v, args.scale) for v in r.vouchers))


def cmd_transfer(args: argparse.Namespace) -> int:
    flow = flows_pb2.TransferFlow(amount=args.amount, currency=args.currency.upper(), memo=args.memo or "")
    getattr(flow, "from").CopyFrom(args.source)  # `from` is a Python keyword
    flow.to.CopyFrom(args.destination)
    return _post(args, post_pb.PostRequest(request_id=_request_id(args), memo=args.memo or "", transfer=flow))


def cmd_adjust(args: argparse.Namespace) -> int:
    flow = flows_pb2.AdjustmentFlow(lines=args.lines, reason=args.reason)
    return _post(args, post_pb.PostRequest(request_id=_request_id(args), adjustment=flow))


def cmd_reverse(args: argparse.Namespace) -> int:
    request = post_pb.ReverseVoucherRequest(request_id=_request_id(args), voucher_id=args.voucher_id,
                                            reason=args.reason)
    with _stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.ReverseVoucher(request)
    return _emit(args, response, lambda r: fmt.voucher_text(r.voucher, args.scale))


def cmd_vouchers_get(args: argparse.Namespace) -> int:
    with _stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.GetVoucher(post_pb.GetVoucherRequest(voucher_id=args.voucher_id))
    return _emit(args, response, lambda r: fmt.voucher_text(r.voucher, args.scale))


def _account_id(args: argparse.Namespace, text: str) -> str:
    """An account id as given, or looked up by code (ListVouchers filters by id only)."""
    if fmt.looks_like_uuid(text):
        return text
    with _stub(args, acc_grpc.AccountServiceStub) as stub:
        return stub.GetAccount(acc_pb.GetAccountRequest(account=fmt.account_ref(text))).account.id


def cmd_vouchers_list(args: argparse.Namespace) -> int:
    request = post_pb.ListVouchersRequest(page_size=args.page_size or 0, page_token=args.page_token or "",
                                          flow_type=args.flow or "")
    if args.account:
        request.account_id = _account_id(args, args.account)
    with _stub(args, post_grpc.AccountingServiceStub) as stub:
        response = _pages(stub.ListVouchers, request, "vouchers", args.all)
    return _emit(args, response, lambda r: fmt.vouchers_table(r.vouchers, args.scale))


# ---------------------------------------------------------------------------------------------- errors


def _error_info(exc: grpc.RpcError):
    """The google.rpc.ErrorInfo detail of a failed call, if the server sent one."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(exc)
    except ValueError:  # the status details disagree with the call's code or message
        return None
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def report_rpc_error(exc: grpc.RpcError, args: argparse.Namespace) -> int:
    """`error: CODE REASON: message` and the ErrorInfo metadata on stderr; exit 1 (2 when unreachable)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = exc.details() if hasattr(exc, "details") else str(exc)
    info = _error_info(exc)
    unreachable = info is None and code == grpc.StatusCode.UNAVAILABLE
    if unreachable:
        print(f"error: cannot reach the tally server at {args.target}: {message}", file=sys.stderr)
    else:
        reason = f" {info.reason}" if info and info.reason else ""
        print(f"error: {code.name}{reason}: {message}", file=sys.stderr)
        for key in sorted(info.metadata) if info else ():
            print(f"  {key}: {info.metadata[key]}", file=sys.stderr)
        _credential_hint(code, args)
    request_id = getattr(args, "request_id", None)
    if request_id and code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
        print(f"  the request may or may not have been applied: retry with --request-id {request_id}", file=sys.stderr)
    return EXIT_UNREACHABLE if unreachable else EXIT_REFUSED


def _credential_hint(code: grpc.StatusCode, args: argparse.Namespace) -> None:
    """After UNAUTHENTICATED or PERMISSION_DENIED: which key was sent (by its source) and how to send another."""
    found = getattr(args, "credential", None)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if found is None or not found.key:
            print(f"  no API key was sent: {CREDENTIAL_HINT}", file=sys.stderr)
        else:
            print(f"  the key sent came from {found.source} and was refused (revoked, mistyped, or issued for another "
                  "server's database?): ask an administrator for a new one (`tally keys create`)", file=sys.stderr)
    elif code == grpc.StatusCode.PERMISSION_DENIED and found is not None and found.key:
        print(f"  the key sent came from {found.source}; its role does not allow this (roles: reader < poster < "
              "operator < admin): use a key with a higher role", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- parser


class _TenantGone(argparse.Action):
    """`--tenant` on a client verb: the tenant now comes from the API key."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error("--tenant is gone: the tenant comes from the API key (--api-key, TALLY_API_KEY or "
                     "--key-file); `tally keys create --tenant ID` issues a key for a tenant")


def _client_options() -> argparse.ArgumentParser:
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
    group.add_argument("--timeout", type=_arg(_parse_timeout), default=10.0, metavar="SECONDS",
                       help="deadline for connecting and for each call (default %(default)s)")
    group.add_argument("--json", action="store_true", help="print the response as proto JSON (int64 as strings)")
    group.add_argument("--scale", type=_arg(fmt.parse_scale), metavar="N",
                       help="also show amounts as decimals with N places (1234567 at 6 -> 1.234567)")
    cli_tls.add_tls_options(parent)
    return parent


def _request_id_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request-id", metavar="ID",
                        help="idempotency key; a fresh one is generated (and printed to stderr) when omitted")


def _account_arg(parser: argparse.ArgumentParser, name: str = "account", metavar: str = "CODE_OR_ID",
                 help: str = "account") -> None:
    parser.add_argument(name, type=_arg(fmt.account_ref), metavar=metavar,
                        help=help + ": a UUID is sent as the account id, anything else as the code")


def _paging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page-size", type=_arg(_parse_positive_int), metavar="N", help="rows per page")
    parser.add_argument("--page-token", metavar="TOKEN", help="continue from a previous page")
    parser.add_argument("--all", action="store_true", help="fetch every page")


def _add_serve_commands(commands, env_note: str) -> None:
    serve = commands.add_parser("serve", help="run the gRPC server", description="Runs the gRPC server. " + env_note)
    serve.add_argument("--listen", metavar="ADDRESS", help="host:port to listen on (overrides TALLY_LISTEN_ADDRESS)")
    serve.add_argument("--database-url", metavar="URL", help="SQLAlchemy URL (overrides TALLY_DATABASE_URL)")
    serve.set_defaults(func=cmd_serve)
    migrate = commands.add_parser("migrate", help="bring the database schema up to date",
                                  description="Applies the database migrations; safe to run again. " + env_note)
    migrate.add_argument("--database-url", metavar="URL",
                         help="SQLAlchemy URL of the schema owner (overrides TALLY_MIGRATE_DATABASE_URL, which "
                              "overrides TALLY_DATABASE_URL)")
    migrate.add_argument("--service-role", metavar="ROLE",
                         help="PostgreSQL role the service runs as, to grant what it needs (overrides "
                              "TALLY_SERVICE_ROLE; '' grants nothing)")
    migrate.set_defaults(func=cmd_migrate)


def _add_account_commands(commands, client: argparse.ArgumentParser) -> None:
    accounts = commands.add_parser("accounts", help="create, inspect and maintain accounts")
    verbs = accounts.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser("create", parents=[client], help="open an account")
    create.add_argument("code", metavar="CODE", help="account code, unique within the tenant")
    create.add_argument("--type", required=True, choices=fmt.enum_labels(types_pb2.AccountType))
    create.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")
    create.add_argument("--normal-side", choices=fmt.enum_labels(types_pb2.Side), help="internal accounts only")
    create.add_argument("--credit-limit", type=_arg(fmt.parse_amount, minimum=0, what="credit limit"), default=0,
                        metavar="N", help="atomic units (credit accounts only)")
    create.add_argument("--floor", choices=fmt.enum_labels(types_pb2.FloorPolicy), help="internal accounts only")
    create.add_argument("--name", help="display name")
    create.add_argument("--parent", type=_arg(fmt.account_ref), metavar="CODE_OR_ID", help="parent account")
    create.add_argument("--meta", type=_arg(fmt.parse_meta), nargs="+", action="extend", metavar="KEY=VALUE",
                        help="metadata entries (repeatable)")
    _request_id_option(create)
    create.set_defaults(func=cmd_accounts_create)

    get = verbs.add_parser("get", parents=[client], help="show an account and its balance")
    _account_arg(get)
    get.set_defaults(func=cmd_accounts_get)

    listing = verbs.add_parser("list", parents=[client], help="list accounts")
    listing.add_argument("--type", choices=fmt.enum_labels(types_pb2.AccountType))
    listing.add_argument("--status", choices=fmt.enum_labels(types_pb2.AccountStatus))
    listing.add_argument("--currency")
    _paging_options(listing)
    listing.set_defaults(func=cmd_accounts_list)

    for verb, text in (("freeze", "stop postings"), ("unfreeze", "accept postings again"),
                       ("close", "close for good (balance must be zero)")):
        status = verbs.add_parser(verb, parents=[client], help=text)
        _account_arg(status)
        _request_id_option(status)
        status.set_defaults(func=cmd_accounts_status)

    limit = verbs.add_parser("set-limit", parents=[client], help="set a credit account's credit limit")
    _account_arg(limit)
    limit.add_argument("limit", type=_arg(fmt.parse_amount, minimum=0, what="credit limit"), metavar="N",
                       help="atomic units")
    _request_id_option(limit)
    limit.set_defaults(func=cmd_accounts_set_limit)


def _add_ledger_commands(commands, client: argparse.ArgumentParser) -> None:
    transfer = commands.add_parser("transfer", parents=[client], help="move an amount from one account to another")
    _account_arg(transfer, "source", "FROM", "account debited")
    _account_arg(transfer, "destination", "TO", "account credited")
    transfer.add_argument("amount", type=_arg(fmt.parse_amount), metavar="AMOUNT", help="integer atomic units")
    transfer.add_argument("--currency", required=True)
    transfer.add_argument("--memo")
    _request_id_option(transfer)
    transfer.set_defaults(func=cmd_transfer)

    adjust = commands.add_parser("adjust", parents=[client], help="post a balanced set of lines")
    adjust.add_argument("--line", dest="lines", type=_arg(fmt.parse_line), action="append", required=True,
                        metavar="SIDE:ACCOUNT:AMOUNT:CUR", help="e.g. debit:cash:1000:USD (repeat for each line)")
    adjust.add_argument("--reason", required=True)
    _request_id_option(adjust)
    adjust.set_defaults(func=cmd_adjust)

    balance = commands.add_parser("balance", parents=[client], help="show an account's balance")
    _account_arg(balance)
    balance.add_argument("--as-of-date", type=_arg(fmt.parse_iso_date), metavar="YYYY-MM-DD",
                         help="balance at the end of this accounting day")
    balance.add_argument("--descendants", action="store_true",
                         help="also roll up the accounts under it (own, descendants, total per currency)")
    balance.set_defaults(func=cmd_balance)

    statement = commands.add_parser("statement", parents=[client], help="list an account's entries")
    _account_arg(statement)
    statement.add_argument("--from", dest="start_date", type=_arg(fmt.parse_iso_date), metavar="YYYY-MM-DD")
    statement.add_argument("--to", dest="end_date", type=_arg(fmt.parse_iso_date), metavar="YYYY-MM-DD")
    _paging_options(statement)
    statement.set_defaults(func=cmd_statement)


def _add_voucher_commands(commands, client: argparse.ArgumentParser) -> None:
    vouchers = commands.add_parser("vouchers", help="read posted vouchers")
    verbs = vouchers.add_subparsers(dest="verb", required=True, metavar="VERB")
    get = verbs.add_parser("get", parents=[client], help="show a voucher and its lines")
    get.add_argument("voucher_id", metavar="ID")
    get.set_defaults(func=cmd_vouchers_get)
    listing = verbs.add_parser("list", parents=[client], help="list vouchers")
    listing.add_argument("--account", metavar="CODE_OR_ID", help="only vouchers with a line on this account")
    listing.add_argument("--flow", metavar="TYPE", help="only vouchers of this flow type (transfer, adjustment, ...)")
    _paging_options(listing)
    listing.set_defaults(func=cmd_vouchers_list)

    reverse = commands.add_parser("reverse", parents=[client], help="reverse a posted voucher")
    reverse.add_argument("voucher_id", metavar="VOUCHER_ID")
    reverse.add_argument("--reason", required=True)
    _request_id_option(reverse)
    reverse.set_defaults(func=cmd_reverse)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tally", description="Tally core accounting: run the server, or talk to one.",
        epilog="Client verbs send an API key: --api-key, TALLY_API_KEY, or a key file (--key-file, "
               "TALLY_KEY_FILE, default ./tally-admin.key); the key names the tenant. Amounts are integer counts "
               "of atomic units. Exit status: 0 ok, 1 refused by the server, 2 bad arguments or server "
               "unreachable.")
    from tally.cli_admin import add_admin_parsers
    from tally.cli_books import add_books_parsers
    from tally.cli_days import add_days_parser
    from tally.cli_demo import add_demo_parser
    from tally.cli_flows import add_post_parser
    from tally.cli_holds import add_holds_parser
    from tally.cli_payouts import add_payouts_parser
    from tally.cli_recon import add_recon_parser
    from tally.cli_watch import add_watch_parser
    from tally.cli_webhooks import add_webhooks_parser

    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve_commands(commands, "Settings come from TALLY_* environment variables.")
    add_admin_parsers(commands)  # tenants and keys: in the database, like migrate
    client = _client_options()
    _add_account_commands(commands, client)
    _add_ledger_commands(commands, client)
    _add_voucher_commands(commands, client)
    add_post_parser(commands, client)
    add_holds_parser(commands, client)
    add_recon_parser(commands, client)
    add_payouts_parser(commands, client)
    add_books_parsers(commands, client)
    add_days_parser(commands, client)
    add_demo_parser(commands)
    add_watch_parser(commands)
    add_webhooks_parser(commands, client)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argparse error (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except grpc.RpcError as exc:
        return report_rpc_error(exc, args)
    except Unreachable as exc:
        print(f"error: cannot reach the tally server: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (CredentialError, cli_tls.TlsSettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`tally ... | head`): stop quietly, as SIGPIPE would
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail a second time
        return 141


if __name__ == "__main__":
    # Run the importable tally.cli, not this __main__ copy of it: the verb modules import tally.cli, and
    # its exception classes (Unreachable) must be the ones main() catches.
    from tally.cli import main as _main

    sys.exit(_main())
