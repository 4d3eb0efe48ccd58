"""The `tally` command's parser and entry point, and the server verbs (`serve`, `migrate`).

Each verb group lives in a module of its own that builds its subparsers; this module only calls them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from tally.cli import common
from tally.cli import tls as cli_tls
from tally.cli.admin import add_admin_parsers
from tally.cli.books import add_books_parsers
from tally.cli.controls import add_controls_parser
from tally.cli.days import add_days_parser
from tally.cli.demo import add_demo_parser
from tally.cli.flows import add_post_parser
from tally.cli.holds import add_holds_parser
from tally.cli.ledger import add_ledger_parsers
from tally.cli.payouts import add_payouts_parser
from tally.cli.recon import add_recon_parser
from tally.cli.watch import add_watch_parser
from tally.cli.webhooks import add_webhooks_parser

# ---------------------------------------------------------------------------------------------- server


def cmd_serve(args: argparse.Namespace) -> int:
    from tally import config

    try:
        settings = config.Settings.from_env()
        overrides = {"listen_address": args.listen, "database_url": args.database_url}
        settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        config.check_processes(settings)
        if settings.processes > 1:
            from tally import logs, supervisor

            logs.configure(settings.log_level, settings.log_format)
            return supervisor.serve_processes(settings)
        from tally import bootstrap  # after the settings: a bad one is reported without loading the server

        return bootstrap.serve_forever(settings)
    except config.ConfigError as exc:  # a set-up the server refuses to start with: the reason, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return common.EXIT_UNREACHABLE


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
        return common.EXIT_UNREACHABLE
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
        return common.EXIT_REFUSED
    if before == after:
        print(f"{shown}: already at the newest schema ({', '.join(after) or 'empty'})")
    else:
        print(f"{shown}: migrated from {', '.join(before) or 'an empty database'} to {', '.join(after)}")
    if role and parsed.get_backend_name() == "postgresql":
        print(f"{shown}: granted the service role {role!r} what the service needs")
    elif role:
        print(f"note: {shown} has no roles; the service role {role!r} is ignored")
    return 0


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



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tally", description="Tally core accounting: run the server, or talk to one.",
        epilog="Client verbs send an API key: --api-key, TALLY_API_KEY, or a key file (--key-file, "
               "TALLY_KEY_FILE, default ./tally-admin.key); the key names the tenant. Amounts are integer counts "
               "of atomic units. Exit status: 0 ok, 1 refused by the server, 2 bad arguments or server "
               "unreachable.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve_commands(commands, "Settings come from TALLY_* environment variables.")
    add_admin_parsers(commands)  # tenants and keys: in the database, like migrate
    client = common.client_options()
    add_ledger_parsers(commands, client)
    add_post_parser(commands, client)
    add_holds_parser(commands, client)
    add_recon_parser(commands, client)
    add_payouts_parser(commands, client)
    add_books_parsers(commands, client)
    add_days_parser(commands, client)
    add_demo_parser(commands)
    add_watch_parser(commands)
    add_webhooks_parser(commands, client)
    add_controls_parser(commands, client)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argparse error (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with common.use_amounts(args):
            return args.func(args)
    except common.CALL_ERRORS as exc:
        return common.report_rpc_error(exc, args)
    except common.Unreachable as exc:
        print(f"error: cannot reach the tally server: {exc}", file=sys.stderr)
        return common.EXIT_UNREACHABLE
    except (common.CredentialError, common.SettingError, cli_tls.TlsSettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return common.EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`tally ... | head`): stop quietly, as SIGPIPE would
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail a second time
        return 141

