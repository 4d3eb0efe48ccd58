"""Spending controls in pure code: calendar and sliding windows, the order and reasons of the checks, sweep
amounts, and (property) that a sliding limit is never passed over any window of its length."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.domain.controls import (
    WINDOW_S,
    Controls,
    Move,
    Sweep,
    SweepKind,
    Velocity,
    Window,
    bucket_start_us,
    check_controls,
    check_voucher,
    evidence,
    spend_room,
    sweep_amount,
)
from tally.domain.errors import LedgerError

US = 1_000_000
NOW = int(datetime(2026, 12, 7, 13, 45, 10, tzinfo=UTC).timestamp()) * US


def at(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp()) * US


def test_calendar_windows_start_at_the_utc_hour_day_and_month() -> None:
    assert bucket_start_us(Velocity(Window.HOUR, 1), NOW) == at(2026, 12, 7, 13)
    assert bucket_start_us(Velocity(Window.DAY, 1), NOW) == at(2026, 12, 7)
    assert bucket_start_us(Velocity(Window.MONTH, 1), NOW) == at(2026, 12, 1)
    sliding = bucket_start_us(Velocity(Window.DAY, 1, sliding=True), NOW)
    assert sliding == at(2026, 12, 7, 13)  # 24 buckets of an hour


def spend(amount: int, code: str = "a", parent: str | None = None) -> list[Move]:
    return [Move(code, code, parent, -amount), Move("b", "b", None, amount)]


def reason_of(flow: str, moves: list[Move], controls: dict, used: dict | None = None) -> str:
    with pytest.raises(LedgerError) as caught:
        check_voucher(flow, moves, controls, used or {}, NOW)
    return caught.value.reason


def test_each_control_has_its_reason_and_passing_ones_are_listed() -> None:
    c = {"a": Controls(per_voucher_max=10, flows=("transfer",), counterparties=("b",),
                       velocity=(Velocity(Window.DAY, 15),))}
    assert reason_of("usage", spend(5), c) == "FLOW_NOT_ALLOWED"
    assert reason_of("transfer", spend(11), c) == "SPEND_LIMIT_EXCEEDED"
    assert reason_of("transfer", [Move("a", "a", None, -5), Move("c", "c", None, 5)], c) == "COUNTERPARTY_NOT_ALLOWED"
    decision = check_voucher("transfer", spend(10), c, {}, NOW)
    assert decision.checked == ["a:flows", "a:per_voucher_max", "a:counterparties", "a:calendar_day"]
    assert list(decision.spent.values()) == [10]
    used = dict(decision.spent)
    assert reason_of("transfer", spend(6), c, used) == "VELOCITY_LIMIT_EXCEEDED"
    assert check_voucher("transfer", spend(5), c, used, NOW).checked
    # Money in is no spend: nothing is checked.
    assert check_voucher("usage", [Move("a", "a", None, 50), Move("b", "b", None, -50)], c, {}, NOW).checked == []
    assert evidence(["a:flows"]) == {"policy": "limit_check.passed", "controls_checked": "a:flows"}
    assert evidence([]) == {}


def test_a_team_budget_counts_every_child() -> None:
    c = {"team": Controls(team_velocity=(Velocity(Window.MONTH, 100),))}
    first = check_voucher("transfer", spend(60, "kid1", "team"), c, {}, NOW)
    assert reason_of("transfer", spend(41, "kid2", "team"), c, first.spent) == "TEAM_BUDGET_EXCEEDED"
    assert check_voucher("transfer", spend(40, "kid2", "team"), c, first.spent, NOW).checked == [
        "team:kid2:team_calendar_month"]


def test_a_team_budget_binds_every_descendant_and_the_room_a_top_up_may_take() -> None:
    c = {"org": Controls(team_velocity=(Velocity(Window.DAY, 100),)),
         "fund": Controls(per_voucher_max=80, velocity=(Velocity(Window.DAY, 70),))}
    grandchild = [Move("dev", "dev", "eng", -60, ("eng", "org")), Move("b", "b", None, 60)]
    first = check_voucher("transfer", grandchild, c, {}, NOW)
    assert first.checked == ["team2:dev:team_calendar_day"]
    again = [Move("dev", "dev", "eng", -41, ("eng", "org")), Move("b", "b", None, 41)]
    assert reason_of("transfer", again, c, first.spent) == "TEAM_BUDGET_EXCEEDED"
    # What a funding account may still spend: the least of its limits and of the budgets above it.
    funder = Move("fund", "fund", "org", 0, ("org",))
    assert spend_room("sweep", funder, [Move("ops", "ops", None, 1)], c, first.spent, NOW) == 40
    assert spend_room("sweep", funder, [], c, {}, NOW) == 70
    assert spend_room("sweep", Move("x", "x", None, 0), [], c, {}, NOW) is None
    c["fund"] = Controls(flows=("transfer",))
    assert spend_room("sweep", funder, [], c, {}, NOW) == 0


@pytest.mark.parametrize("controls", [
    Controls(per_voucher_max=-1), Controls(velocity=(Velocity(Window.DAY, 0),)),
    Controls(sweeps=(Sweep(SweepKind.EXCESS, 5, 10, "x"),)),
    Controls(sweeps=(Sweep(SweepKind.TOP_UP, 5, 10, "a"),)),
    Controls(sweeps=(Sweep(SweepKind.TOP_UP, 5, 50, "x"), Sweep(SweepKind.EXCESS, 60, 40, "y"))),
])
def test_malformed_controls_are_refused(controls: Controls) -> None:
    with pytest.raises(LedgerError) as caught:
        check_controls(controls, "a")
    assert caught.value.reason == "CONTROL_INVALID"


def test_sweep_amounts() -> None:
    top_up, excess = Sweep(SweepKind.TOP_UP, 100, 500, "f"), Sweep(SweepKind.EXCESS, 2000, 1000, "s")
    assert sweep_amount(top_up, 50, None) == 450
    assert sweep_amount(top_up, 50, 300) == 300  # the funding account gives what it has
    assert sweep_amount(top_up, 100, None) == 0
    assert sweep_amount(excess, 2500, None) == 1500
    assert sweep_amount(excess, 2500, 700) == 700
    assert sweep_amount(excess, 2000, None) == 0


@settings(max_examples=60, deadline=None)
@given(window=st.sampled_from(list(Window)), limit=st.integers(1, 5_000),
       steps=st.lists(st.tuples(st.integers(0, 4 * 3600), st.integers(1, 2_000)), min_size=1, max_size=60))
def test_a_sliding_limit_is_never_passed_over_any_window_of_its_length(window: Window, limit: int,
                                                                       steps: list[tuple[int, int]]) -> None:
    velocity = Velocity(window, limit, sliding=True)
    scale = WINDOW_S[window] // 3600  # spread the steps over a few windows of any length
    controls, used, now = {"a": Controls(velocity=(velocity,))}, {}, NOW
    accepted: list[tuple[int, int]] = []
    for gap_s, amount in steps:
        now += gap_s * scale * US
        try:
            decision = check_voucher("transfer", spend(amount), controls, used, now)
        except LedgerError as error:
            assert error.reason == "VELOCITY_LIMIT_EXCEEDED"
            continue
        for key, value in decision.spent.items():
            used[key] = used.get(key, 0) + value
        accepted.append((now, amount))
    length = WINDOW_S[window] * US
    for end, _ in accepted:
        assert sum(a for t, a in accepted if end - length < t <= end) <= limit
