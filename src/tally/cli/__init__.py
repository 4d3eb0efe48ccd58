"""The `tally` command: runs the server (`serve`, `migrate`), administers tenants and API keys in its
database (`tenants`, `keys`), and talks to one over gRPC through tally-client (accounts, postings, reads).

Modules: `main` (the parser, the entry point, `serve` and `migrate`), `common` (what every verb shares:
credentials, connection, calls, output, errors, client options), `format` (text rendering and argument
parsers), `tls`, and one module per verb group: `ledger` (accounts, transfer, adjust, balance, statement,
vouchers, reverse), `flows` (`post`), `holds`, `books` (`rules`, `trial-balance`, `verify`), `days`, `demo`
(with `demo_month`), `watch`, `webhooks`, `recon`, `payouts`, `admin` (`tenants`, `keys`).

How a verb module registers (and how an old-style `src/tally/cli_<x>.py` moves in): put it here as
`tally/cli/<x>.py`; import the shared helpers with `from tally.cli import common` at the top (never
`tally.cli.main` or this package: that would make a cycle), so `cli._stub`, `cli._emit`, `cli._pages`,
`cli._arg`, `cli._request_id` ... become `common.stub`, `common.emit`, `common.pages`, `common.arg`,
`common.request_id`; expose `add_<x>_parser(commands, client)` building its subparsers with
`parents=[client]`; and call it from `main.build_parser`. Show amounts with `fmt.amount_text(value, scale,
currency)` or `fmt.amount_cells(...)` so that people get `1.234567 USD` and `--atomic` / `--scale` the counts.

This package re-exports what callers and tests use: `main`, `build_parser` and the credential helpers.
"""

from tally.cli.common import (
    API_KEY_ENV,
    DEFAULT_KEY_FILE,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    KEY_FILE_ENV,
    KEY_FILE_SIZE_MAX,
    Credential,
    CredentialError,
    Unreachable,
    call_metadata,
    credential,
    report_rpc_error,
    resolve_credential,
)
from tally.cli.main import build_parser, main

__all__ = ["API_KEY_ENV", "DEFAULT_KEY_FILE", "EXIT_REFUSED", "EXIT_UNREACHABLE", "KEY_FILE_ENV",
           "KEY_FILE_SIZE_MAX", "Credential", "CredentialError", "Unreachable", "build_parser", "call_metadata",
           "credential", "main", "report_rpc_error", "resolve_credential"]
