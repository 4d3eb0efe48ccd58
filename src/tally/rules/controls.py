"""An account template's `controls`: the spending controls of every account the template opens.

    [accounts."consumer:{consumer}:{currency}"]
    type = "deposit"
    [accounts."consumer:{consumer}:{currency}".controls]
    per_voucher_max = 5000000
    flows = ["usage", "transfer"]
    counterparties = ["merchant:*", "platform_fee_income:*"]
    velocity = [{ window = "day", limit = 20000000 }, { window = "hour", limit = 8000000, sliding = true }]
    top_up = { threshold = 100000, target = 500000, from = "consumer_reserve:{consumer}:{currency}" }
    excess = { ceiling = 90000000, target = 50000000, to = "consumer_savings:{consumer}:{currency}" }

Controls set through the API (ControlService) on an account replace its template's. A sweep's other account
is a code pattern whose placeholders are the template's own, filled from the code of each account it opens.
"""

from __future__ import annotations

from collections.abc import Callable

from tally.domain.controls import Controls, Sweep, SweepKind, Velocity, Window, check_controls
from tally.domain.errors import LedgerError
from tally.domain.limits import AMOUNT_MAX
from tally.rules.patterns import Pattern, PatternError, parse_pattern

CONTROL_KEYS = ("per_voucher_max", "velocity", "team_velocity", "flows", "counterparties", "top_up", "excess")
VELOCITY_KEYS = ("window", "limit", "sliding")
# Each sweep's keys: its line (the threshold below which it tops up, the ceiling above which it sweeps), its
# target, and the other account.
SWEEP_KEYS = {"top_up": ("threshold", "target", "from"), "excess": ("ceiling", "target", "to")}
_WINDOWS = {w.value: w for w in Window}


def parse_controls(raw: object, location: str, add: Callable[[str, str], None],
                   pattern: Pattern | None = None) -> Controls | None:
    """The controls a template (of `pattern`) carries, or None (with the problems given to `add`)."""
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
    sweeps = [_sweep(raw[kind], kind, f"{location}.{kind}", pattern, add) for kind in SWEEP_KEYS if kind in raw]
    if unknown or None in (velocity, team, flows, counterparties, *sweeps):
        return None
    controls = Controls(per_voucher_max=limit, velocity=velocity, flows=flows, counterparties=counterparties,
                        team_velocity=team, sweeps=tuple(sweeps))
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


def _sweep(raw: object, kind: str, location: str, pattern: Pattern | None, add) -> Sweep | None:
    """`top_up = { threshold, target, from }` or `excess = { ceiling, target, to }`: the other account's code
    is a pattern filled from the placeholders of the template's own code."""
    line, _, other = SWEEP_KEYS[kind]
    if not isinstance(raw, dict) or set(raw) != set(SWEEP_KEYS[kind]):
        add(location, f"must be a table of exactly {', '.join(SWEEP_KEYS[kind])}")
        return None
    bad = [key for key in (line, "target") if not _amount(raw[key], allow_zero=True)]
    for key in bad:
        add(f"{location}.{key}", "must be an amount in atomic units")
    text = raw[other]
    try:
        counter = parse_pattern(text, code=True) if isinstance(text, str) and text else None
    except PatternError as exc:
        add(f"{location}.{other}", f"{exc.message} at column {exc.offset + 1} of '{text}'")
        return None
    if counter is None:
        add(f"{location}.{other}", "must be an account code pattern")
        return None
    names = set(pattern.names) if pattern is not None else set()
    strange = [name for name in counter.names if name not in names]
    if strange:
        add(f"{location}.{other}", f"placeholder {{{strange[0]}}} of '{text}' is not one of the template's "
                                   f"own ({', '.join(sorted(names)) or 'it has none'})")
        return None
    if pattern is not None and counter.shape == pattern.shape and counter.names == pattern.names:
        add(f"{location}.{other}", "a sweep moves money to or from another account")
        return None
    if bad:
        return None
    return Sweep(SweepKind(kind), raw[line], raw["target"], "", counter.text)
