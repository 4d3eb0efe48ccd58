"""Unit tests for tally.domain.vouchers: refs, draft invariants, the hash chain and reversals."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tally.domain import limits
from tally.domain.accounts import Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.vouchers import (
    GENESIS_HASH,
    AccountRef,
    LineDraft,
    PostedLine,
    Voucher,
    VoucherDraft,
    chained,
    check_balanced,
    check_draft,
    hashed_json,
    reversal_lines,
    voucher_hash,
)
from tests.json_strategies import JSON_VALUES

D, C = Side.DEBIT, Side.CREDIT
MAX = limits.AMOUNT_MAX


def ref(name: str) -> AccountRef:
    return AccountRef(id=name)


def line(name: str, side: Side, amount: int, currency: str = "USD", memo: str = "") -> LineDraft:
    return LineDraft(ref(name), side, amount, currency, memo)


def draft(*lines: LineDraft, **kwargs) -> VoucherDraft:
    return VoucherDraft("transfer", tuple(lines), **kwargs)


def _error(fn, *args) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        fn(*args)
    return info.value


# --- AccountRef -----------------------------------------------------------------------------------


def test_account_ref_by_id_or_code():
    assert str(AccountRef(id="abc")) == "abc"
    assert str(AccountRef(code="cash.usd")) == "code:cash.usd"


def test_account_refs_compare_and_hash_by_value():
    assert AccountRef(id="a") == AccountRef(id="a")
    assert AccountRef(id="a") != AccountRef(code="a")
    assert len({AccountRef(id="a"), AccountRef(id="a"), AccountRef(code="a")}) == 2


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({}, "ACCOUNT_REF_INVALID"),
        ({"id": "", "code": ""}, "ACCOUNT_REF_INVALID"),
        ({"id": "a", "code": "b"}, "ACCOUNT_REF_INVALID"),
        ({"code": "bad code"}, "ACCOUNT_CODE_INVALID"),
        ({"code": "_x"}, "ACCOUNT_CODE_INVALID"),
        ({"code": "x" * (limits.ACCOUNT_CODE_LENGTH_MAX + 1)}, "ACCOUNT_CODE_INVALID"),
    ],
    ids=["neither", "both-empty", "both", "code-with-space", "code-leading-underscore", "code-too-long"],
)
def test_account_ref_rejects(kwargs, reason):
    with pytest.raises(LedgerError) as info:
        AccountRef(**kwargs)
    assert info.value.reason == reason
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT


def test_account_ref_code_error_names_the_field():
    with pytest.raises(LedgerError) as info:
        AccountRef(code="bad code")
    assert info.value.metadata == {"field": "account.code"}


# --- check_draft ----------------------------------------------------------------------------------


def test_check_draft_returns_the_draft_unchanged():
    d = draft(line("a", D, 100), line("b", C, 100), memo="m", metadata={"k": "v"})
    assert check_draft(d) is d


def test_check_draft_accepts_max_lines_and_max_amounts():
    lines = [line(f"d{i}", D, 1) for i in range(limits.LINES_PER_VOUCHER_MAX - 1)]
    lines.append(line("c", C, limits.LINES_PER_VOUCHER_MAX - 1))
    check_draft(draft(*lines))
    check_draft(draft(line("a", D, MAX), line("b", C, MAX)))


def test_check_draft_accepts_totals_exactly_at_int64_max():
    check_draft(draft(line("a", D, MAX - 1), line("b", D, 1), line("c", C, MAX)))


def test_check_draft_accepts_several_balanced_currencies():
    check_draft(draft(line("a", D, 100, "USD"), line("b", C, 100, "USD"),
                      line("c", D, 7, "EUR"), line("d", C, 3, "EUR"), line("e", C, 4, "EUR")))


def test_check_draft_allows_the_same_account_twice_on_one_side():
    check_draft(draft(line("a", D, 10), line("a", D, 20), line("b", C, 30)))


@pytest.mark.parametrize(
    ("d", "reason"),
    [
        (draft(), "VOUCHER_TOO_FEW_LINES"),
        (draft(line("a", D, 1)), "VOUCHER_TOO_FEW_LINES"),
        (draft(*([line("a", D, 1)] * limits.LINES_PER_VOUCHER_MAX
                 + [line("b", C, limits.LINES_PER_VOUCHER_MAX)])), "VOUCHER_TOO_MANY_LINES"),
        (draft(line("a", D, 0), line("b", C, 0)), "AMOUNT_NOT_POSITIVE"),
        (draft(line("a", D, -5), line("b", C, -5)), "AMOUNT_NOT_POSITIVE"),
        (draft(line("a", D, MAX + 1), line("b", C, MAX + 1)), "AMOUNT_TOO_LARGE"),
        (draft(line("a", D, True), line("b", C, True)), "AMOUNT_NOT_INTEGER"),
        (draft(line("a", D, 1.0), line("b", C, 1.0)), "AMOUNT_NOT_INTEGER"),
        (draft(line("a", D, 100), line("b", C, 99)), "VOUCHER_UNBALANCED"),
        (draft(line("a", D, 100), line("b", D, 100)), "VOUCHER_UNBALANCED"),
        (draft(line("a", D, 100, "USD"), line("b", C, 100, "EUR")), "VOUCHER_UNBALANCED"),
        (draft(line("a", D, 2**62), line("b", D, 2**62), line("c", C, MAX), line("d", C, 1)), "AMOUNT_TOO_LARGE"),
        (draft(line("a", D, MAX), line("b", D, 1), line("c", C, MAX), line("d", C, 1)), "AMOUNT_TOO_LARGE"),
        (draft(line("a", D, MAX), line("b", D, 1), line("c", C, 5)), "AMOUNT_TOO_LARGE"),
        (draft(line("a", D, 100), line("a", C, 100)), "SAME_ACCOUNT_BOTH_SIDES"),
        (draft(line("a", D, 100), line("b", C, 50), line("a", C, 50)), "SAME_ACCOUNT_BOTH_SIDES"),
        (draft(line("a", D, 1), line("b", C, 1), memo="m" * (limits.MEMO_LENGTH_MAX + 1)), "TEXT_TOO_LONG"),
        (draft(line("a", D, 1, memo="m" * (limits.MEMO_LENGTH_MAX + 1)), line("b", C, 1)), "TEXT_TOO_LONG"),
        (draft(line("a", D, 1), line("b", C, 1), metadata={"bad key": "v"}), "METADATA_INVALID"),
        (draft(line("a", D, 1, ""), line("b", C, 1, "")), "CURRENCY_MISSING"),
    ],
    ids=[
        "no-lines", "one-line", "too-many-lines", "zero-amount", "negative-amount", "amount-over-int64",
        "bool-amount", "float-amount", "unbalanced", "all-debits", "balanced-across-currencies-only",
        "debit-total-over-int64", "both-totals-over-int64", "too-large-before-unbalanced", "same-account-both-sides",
        "same-account-both-sides-later", "memo-too-long", "line-memo-too-long", "bad-metadata",
        "missing-currency",
    ],
)
def test_check_draft_rejects(d, reason):
    error = _error(check_draft, d)
    assert error.reason == reason
    assert error.kind is ErrorKind.INVALID_ARGUMENT


def test_too_many_lines_at_limit_plus_one_only():
    n = limits.LINES_PER_VOUCHER_MAX
    lines = [line(f"d{i}", D, 1) for i in range(n)] + [line("c", C, n)]
    assert len(lines) == n + 1
    assert _error(check_draft, draft(*lines)).reason == "VOUCHER_TOO_MANY_LINES"


def test_unbalanced_in_each_of_two_currencies_with_equal_grand_totals():
    # 150 debits and 150 credits overall, but neither currency balances on its own.
    d = draft(line("a", D, 100, "USD"), line("b", C, 50, "USD"), line("c", D, 50, "EUR"), line("e", C, 100, "EUR"))
    error = _error(check_draft, d)
    assert error.reason == "VOUCHER_UNBALANCED"
    assert error.metadata == {"currency": "EUR", "debits": "50", "credits": "100"}  # currencies in sorted order


def test_unbalanced_second_currency_is_found_when_first_balances():
    d = draft(line("a", D, 100, "EUR"), line("b", C, 100, "EUR"), line("c", D, 10, "USD"), line("e", C, 9, "USD"))
    error = _error(check_draft, d)
    assert error.metadata == {"currency": "USD", "debits": "10", "credits": "9"}


def test_per_currency_total_over_int64_names_the_currency():
    d = draft(line("a", D, 100, "EUR"), line("b", C, 100, "EUR"),
              line("c", D, MAX), line("e", D, 1), line("f", C, MAX), line("g", C, 1))
    error = _error(check_draft, d)
    assert (error.reason, error.metadata) == ("AMOUNT_TOO_LARGE", {"currency": "USD"})


def test_totals_over_int64_in_two_currencies_separately_are_fine():
    check_draft(draft(line("a", D, MAX, "USD"), line("b", C, MAX, "USD"),
                      line("c", D, MAX, "EUR"), line("e", C, MAX, "EUR")))


def test_bad_amount_names_its_line():
    error = _error(check_draft, draft(line("a", D, 5), line("b", C, 0)))
    assert error.metadata == {"field": "lines[1].amount"}


def test_same_account_both_sides_names_the_account():
    error = _error(check_draft, draft(line("x", D, 1), line("y", C, 1), line("y", D, 1), line("x", C, 1)))
    assert error.metadata == {"account": "y"}


def test_check_balanced_accepts_a_list():
    check_balanced([line("a", D, 1), line("b", C, 1)])
    check_balanced([])


# --- voucher_hash ---------------------------------------------------------------------------------


def _posted(line_no: int, account_id: str, side: Side, amount: int, **kw) -> PostedLine:
    args = {"account_code": f"code-{account_id}", "currency": "USD", "memo": "", "entry_number": 1,
            "balance_after": amount}
    args.update(kw)
    return PostedLine(line_no, account_id, args.pop("account_code"), side, amount, **args)


VOUCHER = Voucher(
    id="v1", tenant_id="acme", sequence=1, flow_type="transfer", request_id="r1", accounting_date="2024-03-01",
    effective_us=10, posted_us=11,
    lines=(_posted(1, "a", D, 100), _posted(2, "b", C, 100)),
    memo="memo", metadata={"k": "v"}, reverses_id=None, rule_id="rule", rule_set_version="1",
)
PREV = "ab" * 32


def test_voucher_hash_is_sha256_hex_and_deterministic():
    h = voucher_hash(VOUCHER, PREV)
    assert len(h) == 64 and int(h, 16) >= 0
    assert h == voucher_hash(dataclasses.replace(VOUCHER, metadata={"k": "v"}), PREV)


def test_voucher_hash_matches_the_documented_payload():
    content = {
        "id": "v1", "tenant_id": "acme", "sequence": 1, "flow_type": "transfer", "request_id": "r1",
        "accounting_date": "2024-03-01", "effective_us": 10, "posted_us": 11, "memo": "memo",
        "metadata": {"k": "v"}, "reverses_id": None, "rule_id": "rule", "rule_set_version": "1",
        "lines": [[1, "a", "debit", 100, "USD", "", 1, 100], [2, "b", "credit", 100, "USD", "", 1, 100]],
    }
    payload = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert voucher_hash(VOUCHER, PREV) == hashlib.sha256((PREV + payload).encode()).hexdigest()


@settings(max_examples=1000)
@given(st.dictionaries(st.text(), JSON_VALUES, max_size=6))
@example({"memo": "\x00\x1f\n\x7f\u2028 é 😀", "z": 1, "a": [2**64, -(2**63)]})  # control, DEL, non-ASCII, > 64 bits
def test_the_hashed_text_is_the_standard_librarys_byte_for_byte(content):
    """Every stored voucher's hash covers this text: the fast encoder must never change a byte of it."""
    expected = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashed_json(content) == expected


def test_voucher_hash_does_not_depend_on_metadata_order():
    a = dataclasses.replace(VOUCHER, metadata={"a": "1", "b": "2"})
    b = dataclasses.replace(VOUCHER, metadata={"b": "2", "a": "1"})
    assert voucher_hash(a, PREV) == voucher_hash(b, PREV)


def test_genesis_hash():
    assert GENESIS_HASH == "0" * 64


def test_chained_numbers_links_and_hashes_in_one_copy():
    # As the batch writer builds it, before it is numbered; every field set, each to a value of its own, so
    # that a field dropped or swapped on the way to the copy shows.
    draft = dataclasses.replace(VOUCHER, sequence=0, reverses_id="v0", reversed_by_id="v9")
    assert all(getattr(draft, f.name) not in (None, "") for f in dataclasses.fields(Voucher)
               if f.name not in ("sequence", "previous_hash", "hash"))
    sealed = chained(draft, 7, PREV)
    assert sealed == dataclasses.replace(draft, sequence=7, previous_hash=PREV,
                                         hash=voucher_hash(dataclasses.replace(draft, sequence=7), PREV))
    assert voucher_hash(sealed, sealed.previous_hash) == sealed.hash  # what verification recomputes
    assert draft.sequence == 0 and draft.hash == ""


@pytest.mark.parametrize(
    "change",
    [
        {"id": "v2"}, {"tenant_id": "other"}, {"sequence": 2}, {"flow_type": "adjustment"},
        {"request_id": "r2"}, {"accounting_date": "2024-03-02"}, {"effective_us": 12}, {"posted_us": 12},
        {"memo": "other"}, {"memo": ""}, {"metadata": {"k": "w"}}, {"metadata": {}},
        {"metadata": {"k": "v", "x": "y"}}, {"reverses_id": "v0"}, {"reverses_id": ""}, {"rule_id": "other"},
        {"rule_set_version": "2"},
        {"lines": (_posted(1, "a", D, 101), _posted(2, "b", C, 101))},
        {"lines": (_posted(1, "z", D, 100), _posted(2, "b", C, 100))},
        {"lines": (_posted(1, "a", C, 100), _posted(2, "b", D, 100))},
        {"lines": (_posted(1, "a", D, 100, currency="EUR"), _posted(2, "b", C, 100, currency="EUR"))},
        {"lines": (_posted(1, "a", D, 100, memo="x"), _posted(2, "b", C, 100))},
        {"lines": (_posted(2, "a", D, 100), _posted(1, "b", C, 100))},
        {"lines": (_posted(2, "b", C, 100), _posted(1, "a", D, 100))},
        {"lines": (_posted(1, "a", D, 100),)},
        {"lines": (_posted(1, "a", D, 100, entry_number=2), _posted(2, "b", C, 100))},
        {"lines": (_posted(1, "a", D, 100, balance_after=-100), _posted(2, "b", C, 100))},
    ],
    ids=[
        "id", "tenant", "sequence", "flow-type", "request-id", "accounting-date", "effective-us", "posted-us",
        "memo", "memo-empty", "metadata-value", "metadata-empty", "metadata-extra-key", "reverses-id",
        "reverses-id-empty-vs-none", "rule-id", "rule-set-version", "line-amount", "line-account", "line-side",
        "line-currency", "line-memo", "line-numbers", "line-order", "line-dropped", "line-entry-number",
        "line-balance-after",
    ],
)
def test_voucher_hash_changes_with_any_content_field(change):
    assert voucher_hash(dataclasses.replace(VOUCHER, **change), PREV) != voucher_hash(VOUCHER, PREV)


@pytest.mark.parametrize("previous", [GENESIS_HASH, "cd" * 32, "", PREV[:-1] + "c"],
                         ids=["genesis", "other", "empty", "last-char"])
def test_voucher_hash_changes_with_the_previous_hash(previous):
    assert voucher_hash(VOUCHER, previous) != voucher_hash(VOUCHER, PREV)


@pytest.mark.parametrize(
    "change",
    [{"hash": "ff" * 32}, {"previous_hash": "ee" * 32}, {"reversed_by_id": "v9"}],
    ids=["own-hash", "stored-previous-hash-field", "reversed-by-set-later"],
)
def test_voucher_hash_ignores_fields_set_after_sealing(change):
    # The stored hash must stay valid when these are filled in afterwards; the chain link comes from
    # the explicit `previous_hash` argument.
    assert voucher_hash(dataclasses.replace(VOUCHER, **change), PREV) == voucher_hash(VOUCHER, PREV)


def test_chain_edit_breaks_every_later_link():
    v2 = dataclasses.replace(VOUCHER, id="v2", sequence=2)
    h1 = voucher_hash(VOUCHER, GENESIS_HASH)
    h2 = voucher_hash(v2, h1)
    h1_edited = voucher_hash(dataclasses.replace(VOUCHER, memo="edited"), GENESIS_HASH)
    assert voucher_hash(v2, h1_edited) != h2


# --- reversal_lines -------------------------------------------------------------------------------


def test_reversal_lines_swap_sides_and_keep_the_rest():
    original = dataclasses.replace(VOUCHER, lines=(
        _posted(1, "a", D, 100, memo="m1"), _posted(2, "b", C, 60, memo="m2"),
        _posted(3, "c", C, 40, currency="USD", account_code="cc"),
    ))
    assert reversal_lines(original) == (
        LineDraft(AccountRef(id="a"), C, 100, "USD", "m1"),
        LineDraft(AccountRef(id="b"), D, 60, "USD", "m2"),
        LineDraft(AccountRef(id="c"), D, 40, "USD", ""),
    )


def test_reversal_of_a_valid_voucher_is_a_valid_draft():
    original = dataclasses.replace(VOUCHER, lines=(
        _posted(1, "a", D, 70, currency="EUR"), _posted(2, "b", C, 70, currency="EUR"),
        _posted(3, "c", D, 5), _posted(4, "e", C, 5),
    ))
    reversal = reversal_lines(original)
    check_draft(VoucherDraft("reversal", reversal, reverses_id="v1"))
    assert reversal_lines(dataclasses.replace(original, lines=tuple(
        _posted(i, ln.account.id, ln.side, ln.amount, currency=ln.currency) for i, ln in enumerate(reversal, 1)
    ))) == tuple(LineDraft(AccountRef(id=p.account_id), p.side, p.amount, p.currency, p.memo)
                 for p in original.lines)
