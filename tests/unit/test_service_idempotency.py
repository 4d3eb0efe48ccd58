"""Unit tests for tally.service.posting.idempotency: canonical bodies, fingerprints and what differs on reuse."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tally.domain.accounts import AccountType, NewAccount, Side
from tally.domain.errors import ErrorKind
from tally.domain.flows import AdjustmentFlow, TransferFlow
from tally.domain.vouchers import AccountRef, LineDraft
from tally.service.posting.idempotency import (
    canonical,
    canonical_json,
    differing_fields,
    fingerprint,
    fingerprint_json,
    reused_request_id,
)
from tests.json_strategies import JSON_VALUES

A, B, X = AccountRef(id="a"), AccountRef(code="wallet.b"), AccountRef(id="x")


def transfer_body(**changes) -> dict:
    flow = dataclasses.replace(TransferFlow(A, B, 100, "USD", memo="m"), **changes)
    return {"flow": canonical(flow), "memo": "", "metadata": {"k": "v"}}


def adjustment_body(amounts=(40, 60, 100), reason="fix") -> dict:
    lines = (LineDraft(A, Side.DEBIT, amounts[0], "EUR"), LineDraft(X, Side.DEBIT, amounts[1], "EUR"),
             LineDraft(B, Side.CREDIT, amounts[2], "EUR"))
    return {"flow": canonical(AdjustmentFlow(lines, reason))}


# --- canonical ------------------------------------------------------------------------------------


def test_canonical_turns_dataclasses_enums_and_tuples_into_json_values():
    body = canonical(AdjustmentFlow((LineDraft(A, Side.DEBIT, 5, "EUR", "x"),), "why"))
    assert body == {
        "lines": [{"account": {"id": "a", "code": ""}, "side": "debit", "amount": 5, "currency": "EUR",
                   "memo": "x"}],
        "reason": "why",
    }
    assert json.loads(json.dumps(body)) == body


def test_canonical_of_a_new_account():
    body = canonical(NewAccount("cash", AccountType.INTERNAL, "USD", normal_side=Side.DEBIT, metadata={"a": "1"}))
    assert body == {"code": "cash", "type": "internal", "currency": "USD", "normal_side": "debit", "name": "",
                    "parent_id": None, "credit_limit": 0, "floor_policy": None, "metadata": {"a": "1"}}


def test_canonical_leaves_scalars_and_stringifies_keys():
    assert canonical({1: (2, [Side.CREDIT]), "n": None, "b": True}) == {"1": [2, ["credit"]], "n": None, "b": True}
    assert canonical(TransferFlow) is TransferFlow  # a class is not an instance


# --- fingerprint ----------------------------------------------------------------------------------


def test_a_stored_fingerprint_stays_valid():
    """Records written by earlier releases hold this text and hash: a resend after an upgrade must match."""
    flow = AdjustmentFlow((LineDraft(A, Side.DEBIT, 2**63 - 1, "EUR", "x"),
                           LineDraft(AccountRef(code="b"), Side.CREDIT, 2**63 - 1, "EUR")), "why")
    body = {"flow_type": "adjustment", "flow": canonical(flow), "memo": "\u00e9", "metadata": {"k": "v"},
            "effective_us": None}
    assert canonical_json(body) == (
        '{"effective_us":null,"flow":{"lines":[{"account":{"code":"","id":"a"},"amount":9223372036854775807,'
        '"currency":"EUR","memo":"x","side":"debit"},{"account":{"code":"b","id":""},"amount":9223372036854775807,'
        '"currency":"EUR","memo":"","side":"credit"}],"reason":"why"},"flow_type":"adjustment","memo":"\\u00e9",'
        '"metadata":{"k":"v"}}')
    assert fingerprint("post", body) == "cf99232eba282e9bd94bbd92dbdffa6c961d279f33f7cda3a49214570c753bcc"



def test_fingerprint_is_stable():
    assert fingerprint("Transfer", transfer_body()) == fingerprint("Transfer", transfer_body())
    assert len(fingerprint("Transfer", transfer_body())) == 64


def test_fingerprint_ignores_key_order():
    assert fingerprint("Op", {"a": 1, "b": {"c": 2, "d": 3}}) == fingerprint("Op", {"b": {"d": 3, "c": 2}, "a": 1})


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("Adjust", transfer_body()),
        ("Transfer", transfer_body(amount=101)),
        ("Transfer", transfer_body(currency="EUR")),
        ("Transfer", transfer_body(memo="other")),
        ("Transfer", transfer_body(source=X)),
        ("Transfer", transfer_body(destination=AccountRef(id="wallet.b"))),
        ("Transfer", {**transfer_body(), "memo": "x"}),
        ("Transfer", {**transfer_body(), "metadata": {"k": "w"}}),
        ("Transfer", {**transfer_body(), "metadata": {}}),
        ("Transfer", {**transfer_body(), "extra": None}),
    ],
    ids=["operation", "amount", "currency", "line-memo", "source", "code-vs-id", "memo", "metadata-value",
         "metadata-empty", "extra-null-field"],
)
def test_fingerprint_is_sensitive(operation, body):
    assert fingerprint(operation, body) != fingerprint("Transfer", transfer_body())


def test_fingerprint_distinguishes_int_from_string():
    assert fingerprint("Op", {"amount": 1}) != fingerprint("Op", {"amount": "1"})


@pytest.mark.parametrize("body", [transfer_body(), adjustment_body(), {}, {"memo": "caf\u00e9 \U0001f600 \"q\" \\"},
                                  {"n": None, "big": 2**63 - 1, "neg": -1, "list": [{"b": 1, "a": [2, None]}]}],
                         ids=["transfer", "adjustment", "empty", "unicode-and-escapes", "nested"])
@pytest.mark.parametrize("operation", ["post", "create_account", "op\u00e9"])
def test_fingerprint_is_the_digest_stored_records_carry(operation, body):
    """Records already stored were fingerprinted as the canonical JSON of {"operation", "body"}: building
    the text around the body's own canonical JSON must give exactly the same digest, or a resend of an old
    request would look like a reused request_id."""
    text = json.dumps({"operation": operation, "body": body}, sort_keys=True, separators=(",", ":"))
    assert fingerprint(operation, body) == hashlib.sha256(text.encode()).hexdigest()
    assert fingerprint_json(operation, canonical_json(body)) == fingerprint(operation, body)
    assert json.loads(canonical_json(body)) == body


# --- differing_fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "paths"),
    [
        (transfer_body(), transfer_body(), []),
        (transfer_body(), transfer_body(amount=5), ["flow.amount"]),
        (transfer_body(), transfer_body(amount=5, currency="EUR"), ["flow.amount", "flow.currency"]),
        (transfer_body(), transfer_body(source=X), ["flow.source.id"]),
        (transfer_body(), transfer_body(destination=AccountRef(id="b")), ["flow.destination.code",
                                                                          "flow.destination.id"]),
        (transfer_body(), {**transfer_body(), "metadata": {"k": "w"}}, ["metadata.k"]),
        (transfer_body(), {**transfer_body(), "metadata": {}}, ["metadata.k"]),
        (transfer_body(), {**transfer_body(), "metadata": {"k": "v", "z": "1"}}, ["metadata.z"]),
        (transfer_body(), {**transfer_body(), "memo": "x"}, ["memo"]),
        (adjustment_body(), adjustment_body((40, 61, 101)), ["flow.lines[1].amount", "flow.lines[2].amount"]),
        (adjustment_body(), adjustment_body(reason="other"), ["flow.reason"]),
        ({"flow": {"lines": [1, 2]}}, {"flow": {"lines": [1, 2, 3]}}, ["flow.lines"]),
        ({"lines": [{"a": 1}]}, {"lines": [{"a": 2}]}, ["lines[0].a"]),
        ({"m": [[1, 2], [3]]}, {"m": [[1, 2], [4]]}, ["m[1][0]"]),
        ({"a": 1}, {"a": {"b": 1}}, ["a"]),
        ([1, 2], [1, 3], ["[1]"]),
        (1, 2, ["body"]),
        ({"a": 1}, [1], ["body"]),
    ],
    ids=["same", "amount", "two-fields", "nested-ref", "ref-id-vs-code", "metadata-value", "metadata-removed",
         "metadata-added", "top-level", "line-amounts", "reason", "list-length", "list-of-dicts", "nested-lists",
         "scalar-vs-dict", "top-level-list", "scalars", "dict-vs-list"],
)
def test_differing_fields(first, second, paths):
    assert differing_fields(first, second) == paths
    assert differing_fields(second, first) == paths


def test_differing_fields_are_sorted_by_key():
    assert differing_fields({"b": 1, "a": 1, "c": 1}, {"c": 2, "a": 2, "b": 2}) == ["a", "b", "c"]


def test_reused_request_id_names_the_fields():
    error = reused_request_id("r-1", "Transfer", "Transfer", transfer_body(), transfer_body(amount=7))
    assert (error.kind, error.reason) == (ErrorKind.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert error.metadata == {"request_id": "r-1", "fields": "flow.amount"}
    assert "flow.amount" in error.message and "'r-1'" in error.message


def test_reused_request_id_for_another_operation_names_the_operation():
    error = reused_request_id("r-1", "Adjust", "Transfer", transfer_body(), adjustment_body())
    assert error.metadata == {"request_id": "r-1", "fields": "operation"}


def test_reused_request_id_with_several_fields():
    error = reused_request_id("r", "Adjust", "Adjust", adjustment_body(), adjustment_body((41, 60, 101), "x"))
    assert error.metadata["fields"] == "flow.lines[0].amount,flow.lines[2].amount,flow.reason"


@settings(max_examples=1000)
@given(st.dictionaries(st.text(), JSON_VALUES, max_size=6))
@example({"\x7f": None, "a": "b\x7fc"})  # DEL: ASCII, escaped by the standard library only
@example({"é": "ü", "ctl": "\x00\x1f\n", "big": 2**64})
def test_canonical_json_is_the_standard_librarys_text_byte_for_byte(body):
    """Stored fingerprints hash this text: the fast path must never change a byte of it (control
    characters, non-ASCII text, integers past 64 bits, key order)."""
    expected = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert canonical_json(body) == expected
