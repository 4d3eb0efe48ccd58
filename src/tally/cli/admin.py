"""Tenants and API keys, administered in the database itself (like `tally migrate`), not through a server.

    tally tenants create ID [--name TEXT]
    tally tenants list
    tally keys create --tenant ID --role reader|poster|operator|admin|auditor [--name TEXT]
    tally keys list --tenant ID
    tally keys revoke --tenant ID KEY_ID

Each takes --database-url (default TALLY_MIGRATE_DATABASE_URL, else TALLY_DATABASE_URL, else
sqlite:///tally.db) and --json: on PostgreSQL the schema owner's URL, like `tally migrate`, since the
service role may neither read nor write API keys nor create tenants (storage/roles.py). A new key is
printed once, when it is created: only a salted hash of its secret is stored, so it cannot be shown again.
`keys list` shows ids, roles and names, never secrets. A revoked key is refused by servers once their cache
of verified keys expires (TALLY_AUTH_CACHE_TTL_S, default 5 s).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tally.cli import common
from tally.cli import format as fmt
from tally.domain.auth import Role

DATABASE_URL_ENV = "TALLY_DATABASE_URL"
OWNER_URL_ENV = "TALLY_MIGRATE_DATABASE_URL"  # the schema owner's, as for `tally migrate`
ROLES = [role.value for role in Role]  # reader < poster < operator < admin; auditor: reader + audit log
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_KEY_ID_LENGTH = 16



class AdminError(Exception):
    """A database-side verb failed; `status` is the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def now_us() -> int:
    return time.time_ns() // 1000


def time_text(micros: int | None) -> str:
    """Microseconds since the epoch as an RFC 3339 UTC time to the second (integer arithmetic, no float)."""
    if micros is None:
        return ""
    moment = _EPOCH + datetime.timedelta(microseconds=micros)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_tenant_id(text: str) -> str:
    from tally.domain.errors import LedgerError
    from tally.domain.fields import check_tenant

    try:
        return check_tenant(text)
    except LedgerError:
        raise ValueError(f"a tenant id is 1 to 64 characters of lower-case letters, digits, _ and -, starting with "
                         f"a letter or digit, got {text!r}") from None


def parse_key_id(text: str) -> str:
    """A key id: the 16 hex digits after `tly_` in a key (the whole key is refused: it is a secret)."""
    if text.startswith("tly_"):
        raise ValueError("give the key id (the 16 hex digits after tly_, as `tally keys list` shows), not the key")
    if len(text) != _KEY_ID_LENGTH or not all(ch in "0123456789abcdef" for ch in text):
        raise ValueError(f"a key id is 16 lower-case hex digits, got {text!r}")
    return text


def database_url(args: argparse.Namespace) -> str:
    from tally.config import Settings

    return (args.database_url or os.environ.get(OWNER_URL_ENV) or os.environ.get(DATABASE_URL_ENV)
            or Settings().database_url)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextlib.contextmanager
def open_ledger(args: argparse.Namespace) -> Iterator:
    """A UnitOfWork on the database; AdminError (exit 2) when it cannot be reached, or is a SQLite file that
    does not exist (which connecting would create, empty)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from tally.storage.engine import make_engines
    from tally.storage.uow import UnitOfWork

    url = database_url(args)
    unreachable = common.EXIT_UNREACHABLE
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise AdminError(f"--database-url is not an SQLAlchemy URL: {url!r}", unreachable) from None
    shown = parsed.render_as_string(hide_password=True)
    path = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and path not in ("", ":memory:") and not path.startswith("file:") \
            and not Path(path).exists():
        raise AdminError(f"no database at {shown}: start `tally serve` there once, or run `tally migrate "
                         f"--database-url {shown}` (or pass --database-url / set {DATABASE_URL_ENV})", unreachable)
    try:
        engines = make_engines(url, pool_size=1)
    except (ValueError, SQLAlchemyError, ImportError) as exc:
        raise AdminError(f"cannot use the database {shown}: {exc}", unreachable) from None
    try:
        _check_administrator(engines, shown)
        yield UnitOfWork(engines, retries_max=3)
    finally:
        engines.dispose()


def _check_administrator(engines, shown: str) -> None:
    """AdminError when the database cannot be reached (exit 2), or its role may not administer tenants and
    keys, as the service role may not (exit 1)."""
    from sqlalchemy.exc import SQLAlchemyError

    from tally.storage.roles import may_administer

    try:
        with engines.read.connect() as conn:
            allowed = may_administer(conn)
    except SQLAlchemyError as exc:
        raise AdminError(f"cannot reach the database {shown}: {_db_message(exc)}", common.EXIT_UNREACHABLE) from None
    if not allowed:
        raise AdminError(f"the role of {shown} may not administer tenants and API keys (the service role may not): "
                         f"use the schema owner's URL, as for `tally migrate` ({OWNER_URL_ENV} or --database-url)",
                         common.EXIT_REFUSED)


def _db_message(exc: Exception) -> str:
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:128]
    except (OSError, KeyError, ImportError):
        return "cli"


def _run(args: argparse.Namespace, work) -> int:
    """Runs `work(uow)` on the database and turns refusals and database errors into messages and exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from tally.domain.errors import LedgerError

    try:
        with open_ledger(args) as uow:
            return work(uow)
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    except LedgerError as exc:
        print(f"error: {exc.kind.name} {exc.reason}: {exc.message}", file=sys.stderr)
        return common.EXIT_REFUSED
    except SQLAlchemyError as exc:
        message = _db_message(exc)
        print(f"error: the database {_shown(database_url(args))} refused: {message}", file=sys.stderr)
        if "no such table" in message or "does not exist" in message:
            print("  its schema is missing or old: run `tally migrate` (or start `tally serve` once)", file=sys.stderr)
        return common.EXIT_REFUSED


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------- tenants


def cmd_tenants_create(args: argparse.Namespace) -> int:
    from tally.service.auth import keys

    def work(uow) -> int:
        keys.create_tenant(uow, args.tenant_id, args.name or "", now_us)
        if args.json:
            _print_json({"tenant": args.tenant_id, "name": args.name or ""})
        else:
            print(f"created tenant {args.tenant_id}")
            print(f"next: issue it a key with `tally keys create --tenant {args.tenant_id} --role admin`")
        return 0

    return _run(args, work)


def cmd_tenants_list(args: argparse.Namespace) -> int:
    from tally.storage import auth_repo
    from tally.storage.uow import Scope

    def work(uow) -> int:
        tenants = uow.read(Scope.SYSTEM, auth_repo.list_tenants)  # every tenant: the one cross-tenant read here
        if args.json:
            _print_json({"tenants": [{"tenant": tenant_id, "name": name, "created": time_text(created)}
                                     for tenant_id, name, created in tenants]})
        elif tenants:
            print(fmt.format_table(["tenant", "name", "created"],
                                   [[tenant_id, name, time_text(created)] for tenant_id, name, created in tenants]))
        else:
            print("no tenants")
        return 0

    return _run(args, work)


# ---------------------------------------------------------------------------------------------- keys


def cmd_keys_create(args: argparse.Namespace) -> int:
    from tally.service.auth import keys

    def work(uow) -> int:
        issued = keys.create_key(uow, args.tenant, keys.parse_role(args.role), args.name or "", _actor(), now_us)
        note = ("note: this is the only time the key is shown; it cannot be shown again (only a hash of it is "
                "stored). Keep it secret: clients read it from TALLY_API_KEY, --api-key or a key file (--key-file).")
        if args.json:
            _print_json({"key_id": issued.key_id, "tenant": issued.tenant_id, "role": issued.role.value,
                         "key": issued.secret_key})
            print(note, file=sys.stderr)
        else:
            print(fmt.format_fields([("key_id", issued.key_id), ("tenant", issued.tenant_id),
                                     ("role", issued.role.value), ("name", args.name or ""),
                                     ("key", issued.secret_key)]))
            print(f"\n{note}")
        return 0

    return _run(args, work)


def _key_row(record) -> dict[str, object]:
    return {"key_id": record.id, "role": record.role, "status": "revoked" if record.revoked_us else "active",
            "name": record.name, "created": time_text(record.created_us), "created_by": record.created_by,
            "revoked": time_text(record.revoked_us) or None}


def cmd_keys_list(args: argparse.Namespace) -> int:
    from tally.domain.errors import not_found
    from tally.storage import auth_repo

    def read(conn):
        if not auth_repo.tenant_exists(conn, args.tenant):
            raise not_found("TENANT_NOT_FOUND", f"tenant {args.tenant} not found", tenant=args.tenant)
        return auth_repo.list_keys(conn, args.tenant)

    def work(uow) -> int:
        rows = [_key_row(record) for record in uow.read({args.tenant}, read)]  # never the salt or the hash
        if args.json:
            _print_json({"tenant": args.tenant, "keys": rows})
        elif rows:
            columns = ["key_id", "role", "status", "name", "created", "revoked", "created_by"]
            print(fmt.format_table(columns, [[row[c] for c in columns] for row in rows]))
        else:
            print(f"tenant {args.tenant} has no keys: issue one with `tally keys create --tenant {args.tenant} "
                  "--role ROLE`")
        return 0

    return _run(args, work)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from tally.service.auth import keys

    def work(uow) -> int:
        keys.revoke_key(uow, args.tenant, args.key_id, now_us)
        if args.json:
            _print_json({"key_id": args.key_id, "tenant": args.tenant, "revoked": True})
        else:
            print(f"revoked key {args.key_id} of tenant {args.tenant}; servers refuse it once their cache of verified "
                  "keys expires (TALLY_AUTH_CACHE_TTL_S, default 5 s)")
        return 0

    return _run(args, work)


# ---------------------------------------------------------------------------------------------- parser


def _admin_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("database and output")
    group.add_argument("--database-url", metavar="URL",
                       help=f"SQLAlchemy URL of the ledger's database, as its schema owner (default: "
                            f"{OWNER_URL_ENV}, else {DATABASE_URL_ENV}, else sqlite:///tally.db)")
    group.add_argument("--json", action="store_true", help="print the result as JSON")
    return parent


def add_admin_parsers(commands) -> None:
    """Registers `tally tenants create|list` and `tally keys create|list|revoke` on the `tally` command's
    subparsers."""
    options = _admin_options()
    note = ("Acts on the database directly, as its schema owner, like `tally migrate` (no server needed); "
            f"--database-url defaults to {OWNER_URL_ENV}, else {DATABASE_URL_ENV}.")
    tenant = common.arg(parse_tenant_id)

    tenants = commands.add_parser("tenants", help="create and list tenants (in the database)",
                                  description="Tenants own accounts, vouchers and keys. " + note)
    verbs = tenants.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", parents=[options], help="create a tenant", description=note)
    create.add_argument("tenant_id", type=tenant, metavar="ID",
                        help="lower-case letters, digits, _ and -; at most 64 characters")
    create.add_argument("--name", metavar="TEXT", help="display name")
    create.set_defaults(func=cmd_tenants_create)
    listing = verbs.add_parser("list", parents=[options], help="list tenants", description=note)
    listing.set_defaults(func=cmd_tenants_list)

    keys = commands.add_parser("keys", help="issue, list and revoke API keys (in the database)",
                               description="API keys authenticate clients; each names its tenant and role "
                                           "(reader < poster < operator < admin). " + note)
    verbs = keys.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", parents=[options], help="issue a key (printed once)",
                              description="Issues an API key and prints it once: it cannot be shown again. "
                                          + note)
    create.add_argument("--tenant", required=True, type=tenant, metavar="ID", help="the tenant the key acts for")
    create.add_argument("--role", required=True, choices=ROLES,
                        help="reader: reads and streams; poster: also posts flows and holds; operator: also "
                             "accounts, adjustments, reversals, verify; admin: everything; auditor: reads and the "
                             "audit log, changes nothing")
    create.add_argument("--name", metavar="TEXT", help="what the key is for, e.g. billing-service")
    create.set_defaults(func=cmd_keys_create)
    listing = verbs.add_parser("list", parents=[options], help="list a tenant's keys (never their secrets)",
                               description=note)
    listing.add_argument("--tenant", required=True, type=tenant, metavar="ID")
    listing.set_defaults(func=cmd_keys_list)
    revoke = verbs.add_parser("revoke", parents=[options], help="revoke a key",
                              description="Revokes a key: servers refuse it once their cache of verified keys "
                                          "expires (TALLY_AUTH_CACHE_TTL_S, default 5 s). " + note)
    revoke.add_argument("--tenant", required=True, type=tenant, metavar="ID")
    revoke.add_argument("key_id", type=common.arg(parse_key_id), metavar="KEY_ID",
                        help="the key's id, as `tally keys list` shows it")
    revoke.set_defaults(func=cmd_keys_revoke)
