"""The rule set's `[[summaries]]` tables: the high-volume flows whose closed days get summary vouchers.

    [[summaries]]
    flow = "usage"                # a flow type (a rule's, or transfer, adjustment, reversal ...)
    description = "metered API calls"
"""

from __future__ import annotations

import re
from collections.abc import Callable

SUMMARY_KEYS = ("flow", "description")
SUMMARIES_MAX = 100
_FLOW = re.compile(r"[a-z][a-z0-9_]{0,31}")


def parse_summaries(raw: object, add: Callable[[str, str], None]) -> frozenset[str]:
    """The summarized flow types; problems go to `add(location, message)`."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        add("summaries", "must be an array of [[summaries]] tables")
        return frozenset()
    if len(raw) > SUMMARIES_MAX:
        add("summaries", f"more than {SUMMARIES_MAX} summaries")
        return frozenset()
    flows = set()
    for i, table in enumerate(raw):
        location = f"summaries[{i}]"
        for key in table:
            if key not in SUMMARY_KEYS:
                add(f"{location}.{key}", f"unknown key (expected one of: {', '.join(SUMMARY_KEYS)})")
        flow = table.get("flow")
        if not isinstance(flow, str) or not _FLOW.fullmatch(flow):
            add(f"{location}.flow", "must be a flow type: a lower-case letter, then letters, digits or _")
        elif flow in flows:
            add(f"{location}.flow", f"{flow!r} is summarized twice")
        else:
            flows.add(flow)
    return frozenset(flows)
