"""The pure parts of the streams: balance changes read off event payloads (snapshot and line fallback),
the proto mapping, request checks and the stream settings. No database."""

from __future__ import annotations

import json

import pytest

from tally.api import streams
from tally.config import ConfigError, Settings
from tally.domain.errors import LedgerError
from tally.storage.ledger_repo import Event
from tally.streaming.changes import BalanceChange, balance_changes, sides_needed
from tally.streaming.hub import EventHub

A, B, C = "acct-a", "acct-b", "acct-c"


def _line(account_id: str, side: str, amount: int, entry_number: int, balance_after: int) -> dict:
    return {"account_id": account_id, "side": side, "amount": amount, "currency": "USD",
            "entry_number": entry_number, "balance_after": balance_after}


def _posted(lines: list[dict], **extra) -> Event:
    return Event("acme", 7, "ledger.entry.posted", {"voucher_id": "v-1", "lines": lines, **extra},
                 1_700_000_000_123_456, voucher_id="v-1")


def test_snapshot_is_used_when_present():
    snapshot = {A: {"currency": "USD", "current": 900, "locked": 100, "available": 800, "current_delta": -100,
                    "locked_delta": 0},
                B: {"currency": "USD", "current": 100, "locked": 0, "available": 100, "current_delta": 100,
                    "locked_delta": 0}}
    event = _posted([_line(A, "debit", 100, 3, 900), _line(B, "credit", 100, 1, 100)], balances=snapshot)
    assert sides_needed(event) == set()
    assert balance_changes(event, {}) == [
        BalanceChange(7, A, "USD", 900, 100, 800, -100, 0, "ledger.entry.posted", "v-1", "", 1_700_000_000_123_456),
        BalanceChange(7, B, "USD", 100, 0, 100, 100, 0, "ledger.entry.posted", "v-1", "", 1_700_000_000_123_456)]
    assert [c.account_id for c in balance_changes(event, {}, {B})] == [B]


def test_line_fallback_needs_normal_sides_and_sums_several_lines():
    # A (credit-normal) is debited 100 then 30; B (debit-normal) is debited 130; C credit-normal, credited 0+.
    event = _posted([_line(A, "debit", 100, 4, 400), _line(B, "debit", 130, 1, 130), _line(A, "debit", 30, 5, 370)])
    assert sides_needed(event) == {A, B}
    changes = balance_changes(event, {A: "credit", B: "debit"})
    assert [(c.account_id, c.current, c.current_delta, c.locked, c.available) for c in changes] == [
        (A, 370, -130, 0, 0), (B, 130, 130, 0, 0)]
    assert all(isinstance(c.current_delta, int) for c in changes)
    assert balance_changes(event, {A: "credit", B: "debit"}, wanted={C}) == []


def test_hold_events_change_locked_only_through_their_snapshot():
    hold = Event("acme", 9, "balance.hold.created", {
        "hold_id": "h-1", "account_id": A, "amount": 50,
        "balances": {A: {"currency": "USD", "current": 370, "locked": 50, "available": 320, "current_delta": 0,
                         "locked_delta": 50}}}, 1, account_id=A)
    [change] = balance_changes(hold, {})
    assert (change.hold_id, change.voucher_id, change.locked, change.locked_delta, change.current_delta) == (
        "h-1", "", 50, 50, 0)
    assert balance_changes(Event("acme", 10, "balance.released", {"hold_id": "h-1", "account_id": A}, 1), {}) == []
    assert balance_changes(Event("acme", 11, "account.created", {"account_id": A}, 1), {}) == []


def test_event_out_is_compact_json_and_carries_the_ids():
    event = Event("acme", 12, "balance.hold.captured", {"hold_id": "h-2", "account_id": A, "memo": "café"},
                  1_700_000_000_000_001, account_id=None, voucher_id="v-9")
    out = streams.event_out(event)
    assert (out.sequence, out.type, out.account_id, out.voucher_id, out.hold_id) == (
        12, "balance.hold.captured", A, "v-9", "h-2")
    assert out.payload_json == '{"account_id":"acct-a","hold_id":"h-2","memo":"café"}'
    assert json.loads(out.payload_json) == event.payload
    assert (out.time.seconds, out.time.nanos) == (1_700_000_000, 1_000)


@pytest.mark.parametrize(("types", "reason"), [
    (["nope"], "EVENT_TYPE_UNKNOWN"), ([""], "EVENT_TYPE_UNKNOWN"), (["ledger.entry.posted "], "EVENT_TYPE_UNKNOWN"),
    (["account.created"] * 33, "EVENT_TYPES_TOO_MANY"),
])
def test_types_in_refuses(types, reason):
    with pytest.raises(LedgerError) as caught:
        streams.types_in(types)
    assert caught.value.reason == reason


def test_request_helpers_accept():
    assert streams.types_in([]) == frozenset()
    assert streams.types_in(["balance.released", "balance.released"]) == {"balance.released"}
    assert streams.account_ids_in([B, A, B]) == [B, A]
    with pytest.raises(LedgerError) as caught:
        streams.account_ids_in([str(i) for i in range(1001)])
    assert caught.value.reason == "ACCOUNT_IDS_TOO_MANY"


def test_stream_settings_from_the_environment():
    d = Settings()
    assert (d.stream_subscribers_max, d.stream_lag_events_max, d.stream_idle_poll_s, d.stream_page_size) == (
        1000, 10_000, 5, 500)
    s = Settings.from_env({"TALLY_STREAM_SUBSCRIBERS_MAX": "7", "TALLY_STREAM_LAG_EVENTS_MAX": "900",
                           "TALLY_STREAM_IDLE_POLL_S": "2", "TALLY_STREAM_PAGE_SIZE": "90"})
    assert (s.stream_subscribers_max, s.stream_lag_events_max, s.stream_idle_poll_s, s.stream_page_size) == (
        7, 900, 2, 90)
    for name, value in (("TALLY_STREAM_SUBSCRIBERS_MAX", "0"), ("TALLY_STREAM_IDLE_POLL_S", "0"),
                        ("TALLY_STREAM_PAGE_SIZE", "x"), ("TALLY_STREAM_LAG_EVENTS_MAX", "-1")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})


def test_a_lag_limit_below_one_page_is_refused():
    with pytest.raises(ConfigError, match="TALLY_STREAM_LAG_EVENTS_MAX"):
        EventHub(None, Settings(stream_lag_events_max=99, stream_page_size=100))  # type: ignore[arg-type]
