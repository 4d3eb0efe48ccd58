"""The rule set's `[[summaries]]` tables: the high-volume flows (and accounts) whose closed days get summary
vouchers.

    [[summaries]]
    flow = "usage"                        # a flow type (a rule's, or transfer, adjustment, reversal ...)
    accounts = ["merchant:"]              # optional: only the lines of accounts whose code starts so
    description = "metered API calls"
"""

from __future__ import annotations

import re
from collections.abc import Callable

SUMMARY_KEYS = ("flow", "accounts", "description")
SUMMARIES_MAX = 100
ACCOUNT_PREFIXES_MAX = 50
_FLOW = re.compile(r"[a-z][a-z0-9_]{0,31}")
_PREFIX = re.compile(r"[A-Za-z0-9_.:/@-]{1,128}")  # what an account code may hold, commas never


def parse_summaries(raw: object, add: Callable[[str, str], None]) -> dict[str, tuple[str, ...]]:
    """flow type -> the account code prefixes summarized (() = every account); problems go to `add`."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        add("summaries", "must be an array of [[summaries]] tables")
        return {}
    if len(raw) > SUMMARIES_MAX:
        add("summaries", f"more than {SUMMARIES_MAX} summaries")
        return {}
    scope: dict[str, tuple[str, ...]] = {}
    for i, table in enumerate(raw):
        location = f"summaries[{i}]"
        for key in table:
            if key not in SUMMARY_KEYS:
                add(f"{location}.{key}", f"unknown key (expected one of: {', '.join(SUMMARY_KEYS)})")
        prefixes = _prefixes(table.get("accounts", []), f"{location}.accounts", add)
        flow = table.get("flow")
        if not isinstance(flow, str) or not _FLOW.fullmatch(flow):
            add(f"{location}.flow", "must be a flow type: a lower-case letter, then letters, digits or _")
        elif flow in scope:
            add(f"{location}.flow", f"{flow!r} is summarized twice")
        elif prefixes is not None:
            scope[flow] = prefixes
    return scope


def _prefixes(raw: object, location: str, add: Callable[[str, str], None]) -> tuple[str, ...] | None:
    if not isinstance(raw, list) or not all(isinstance(p, str) and _PREFIX.fullmatch(p) for p in raw):
        add(location, "must be a list of account code prefixes (letters, digits and _.:/@-)")
        return None
    if len(raw) > ACCOUNT_PREFIXES_MAX:
        add(location, f"more than {ACCOUNT_PREFIXES_MAX} prefixes")
        return None
    return tuple(sorted(set(raw)))
