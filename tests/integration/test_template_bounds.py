"""A sub-account a rule's template opens under its main account keeps the bounds CreateAccount keeps (a
parent's children, a hierarchy's depth), on SQLite and PostgreSQL: a flow that would pass them is refused
with CreateAccount's reason and opens nothing; the other flows of its batch post."""

from __future__ import annotations

import pytest

from tally.domain import limits
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.facts import Facts
from tally.domain.flows import RuleFlow
from tally.domain.vouchers import AccountRef
from tally.service.commands import PostFlow
from tests.integration.conftest import TENANT, Ledger, check_ledger


def usage(ledger: Ledger, merchant: str, amount: int = 1_000) -> PostFlow:
    """A consumer pays merchant `merchant`: the rules open the merchant's sub-accounts on first use."""
    facts = Facts("usage", "USD", {"amount": amount}, {"consumer": "c1", "merchant": merchant}, {})
    return PostFlow(TENANT, ledger.request_id("usage"), RuleFlow(facts))


def funding(ledger: Ledger, amount: int) -> PostFlow:
    facts = Facts("funding", "USD", {"amount": amount}, {"consumer": "c1", "processor": "card"}, {})
    return PostFlow(TENANT, ledger.request_id("funding"), RuleFlow(facts))


def guarantee(ledger: Ledger, merchant: str, amount: int) -> PostFlow:
    """A guarantee commitment: the rules open the merchant's guarantee_due and guarantee_commitment."""
    facts = Facts("guarantee", "USD", {"amount": amount}, {"merchant": merchant}, {})
    return PostFlow(TENANT, ledger.request_id("guarantee"), RuleFlow(facts))


def found(ledger: Ledger, code: str):
    try:
        return ledger.queries.get_account(TENANT, AccountRef(code=code))[0]
    except LedgerError as error:
        assert error.reason == "ACCOUNT_NOT_FOUND"
        return None


def sub_accounts(ledger: Ledger, merchant: str) -> list:
    return [a for sub in ("pending", "settled") if (a := found(ledger, f"merchant:{merchant}:USD/{sub}"))]


async def test_a_template_opens_no_child_past_a_parents_children_max(database_url, make_ledger, monkeypatch):
    ledger = make_ledger(database_url)
    await ledger.posting.post(funding(ledger, 100_000))
    main = ledger.open("merchant:m1:USD")  # opened by an operator: its children are counted in the database
    monkeypatch.setattr(limits, "ACCOUNT_CHILDREN_MAX", 0)

    # m2's main account opens in the same batch: its children are counted in the batch.
    stored, in_batch, paid = await ledger.posting.post_batch(
        [usage(ledger, "m1"), usage(ledger, "m2"), funding(ledger, 5_000)], atomic=False)
    for refused in (stored, in_batch):
        assert isinstance(refused, LedgerError)
        assert (refused.kind, refused.reason) == (ErrorKind.FAILED_PRECONDITION, "ACCOUNT_CHILDREN_TOO_MANY")
    assert not isinstance(paid, LedgerError) and len(paid.vouchers) == 1
    assert sub_accounts(ledger, "m1") == [] and found(ledger, "merchant:m2:USD") is None
    assert ledger.balance("consumer:c1:USD") == 105_000

    monkeypatch.setattr(limits, "ACCOUNT_CHILDREN_MAX", 1000)
    await ledger.posting.post(usage(ledger, "m1"))
    assert {a.parent_id for a in sub_accounts(ledger, "m1")} == {main.id}
    check_ledger(ledger.url)


async def test_a_refused_flow_takes_no_room_under_a_parent_from_the_flows_that_post(database_url, make_ledger,
                                                                                    monkeypatch):
    ledger = make_ledger(database_url)
    main = ledger.open("merchant:m1:USD")
    monkeypatch.setattr(limits, "ACCOUNT_CHILDREN_MAX", 2)

    # c1 has nothing to pay with: the usage is refused, and the settled sub-account it opened is never written,
    # so the guarantee's two sub-accounts fit under the main account.
    refused, committed = await ledger.posting.post_batch(
        [usage(ledger, "m1"), guarantee(ledger, "m1", 500)], atomic=False)
    assert isinstance(refused, LedgerError) and refused.reason == "INSUFFICIENT_FUNDS"
    assert not isinstance(committed, LedgerError) and len(committed.vouchers) == 1
    assert found(ledger, "merchant:m1:USD/settled") is None
    children = [found(ledger, f"merchant:m1:USD/{sub}") for sub in ("guarantee_due", "guarantee_commitment")]
    assert {child.parent_id for child in children} == {main.id}

    # Now the main account is full: the next child is refused, and opens nothing.
    await ledger.posting.post(funding(ledger, 10_000))
    with pytest.raises(LedgerError) as caught:
        await ledger.posting.post(usage(ledger, "m1"))
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.FAILED_PRECONDITION, "ACCOUNT_CHILDREN_TOO_MANY")
    assert found(ledger, "merchant:m1:USD/settled") is None
    assert ledger.balance("consumer:c1:USD") == 10_000
    check_ledger(ledger.url)


async def test_a_template_opens_no_child_past_the_depth_max(database_url, make_ledger, monkeypatch):
    ledger = make_ledger(database_url)
    await ledger.posting.post(funding(ledger, 100_000))
    ledger.open("top")
    ledger.open("merchant:deep:USD", parent="top")  # depth 2: a child of it would be the third level
    monkeypatch.setattr(limits, "ACCOUNT_DEPTH_MAX", 2)

    with pytest.raises(LedgerError) as caught:
        await ledger.posting.post(usage(ledger, "deep"))
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.FAILED_PRECONDITION, "ACCOUNT_TOO_DEEP")
    assert sub_accounts(ledger, "deep") == []

    # A main account the template opens has no parent: its sub-accounts are the second level, within bounds.
    await ledger.posting.post(usage(ledger, "shallow"))
    main = found(ledger, "merchant:shallow:USD")
    assert main.parent_id is None
    assert sub_accounts(ledger, "shallow") and {a.parent_id for a in sub_accounts(ledger, "shallow")} == {main.id}
    assert ledger.balance("consumer:c1:USD") == 99_000
    check_ledger(ledger.url)
