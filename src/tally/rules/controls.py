"""An account template's `controls`: the spending controls of every account the template opens.

    [accounts."consumer:{consumer}:{currency}"]
    type = "deposit"
    [accounts."consumer:{consumer}:{currency}".controls]
    per_voucher_max = 5000000
    flows = ["usage", "transfer"]
    counterparties = ["merchant:*", "platform_fee_income:*"]
    velocity = [{ window = "day", limit = 20000000 }, { window = "hour", limit = 8000000, sliding = true }]

Controls set through the API (ControlService) on an account replace its template's. Sweeps name a second
account and are set through the API only.
"""

from __future__ import annotations

from collections.abc import Callable

from tally.domain.controls import Controls, Velocity, Window, check_controls
from tally.domain.errors import LedgerError
from tally.domain.limits import AMOUNT_MAX

CONTROL_KEYS = ("per_voucher_max", "velocity", "team_velocity", "flows", "counterparties")
VELOCITY_KEYS = ("window", "limit", "sliding")
_WINDOWS = {w.value: w for w in Window}


def parse_controls(raw: object, location: str, add: Callable[[str, str], None]) -> Controls | None:
    """The controls a template carries, or None (with the problems given to `add`)."""
    if not isinstance(raw, dict):
        add(location, "must be a table")
        return None
    unknown = [key for key in raw if key not in CONTROL_KEYS]
    for key in unknown:
        add(f"{location}.{key}", f"unknown key (expected one of: {', '.join(CONTROL_KEYS)})")
    limit = raw.get("per_voucher_max", 0)
    if not _amount(limit, allow_zero=True):
        add(f"{location}.per_voucher_max", "must be an amount in atomic units")
        return None
    velocity = _velocities(raw.get("velocity", []), f"{location}.velocity", add)
    team = _velocities(raw.get("team_velocity", []), f"{location}.team_velocity", add)
    flows = _names(raw.get("flows", []), f"{location}.flows", add)
    counterparties = _names(raw.get("counterparties", []), f"{location}.counterparties", add)
    if unknown or None in (velocity, team, flows, counterparties):
        return None
    controls = Controls(per_voucher_max=limit, velocity=velocity, flows=flows, counterparties=counterparties,
                        team_velocity=team)
    try:
        return check_controls(controls, "")
    except LedgerError as error:
        add(location, error.message)
        return None


def _amount(value: object, allow_zero: bool = False) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (0 if allow_zero else 1) <= value <= AMOUNT_MAX


def _velocities(raw: object, location: str, add) -> tuple[Velocity, ...] | None:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        add(location, "must be an array of { window, limit, sliding } tables")
        return None
    found = []
    for i, item in enumerate(raw):
        where = f"{location}[{i}]"
        unknown = [key for key in item if key not in VELOCITY_KEYS]
        window, limit, sliding = item.get("window"), item.get("limit"), item.get("sliding", False)
        if unknown or window not in _WINDOWS or not _amount(limit) or not isinstance(sliding, bool):
            add(where, "needs window (hour, day or month), limit (a positive amount) and optionally sliding "
                       "(true or false), nothing else")
            return None
        found.append(Velocity(_WINDOWS[window], limit, sliding))
    return tuple(found)


def _names(raw: object, location: str, add) -> tuple[str, ...] | None:
    if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
        add(location, "must be an array of non-empty strings")
        return None
    return tuple(raw)
