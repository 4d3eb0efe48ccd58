"""The bounds of account hierarchies: children per parent, and descendants one roll-up reads."""

from __future__ import annotations

import pytest

from tally.domain import limits
from tally.domain.errors import LedgerError
from tally.domain.vouchers import AccountRef
from tally.service.hierarchy import Hierarchy
from tests.integration.conftest import TENANT


def test_a_parent_has_a_bounded_number_of_children(database_url, make_ledger, monkeypatch):
    ledger = make_ledger(database_url, start=False)
    monkeypatch.setattr(limits, "ACCOUNT_CHILDREN_MAX", 2)
    ledger.open("parent")
    ledger.open("a", parent="parent")
    ledger.open("b", parent="parent")
    with pytest.raises(LedgerError) as caught:
        ledger.open("c", parent="parent")
    assert caught.value.reason == "ACCOUNT_CHILDREN_TOO_MANY"
    ledger.open("c", parent="a")  # a grandchild is another parent's child


def test_a_roll_up_reads_a_bounded_number_of_descendants(database_url, make_ledger, monkeypatch):
    ledger = make_ledger(database_url, start=False)
    ledger.open("root")
    for code in ("x", "y", "z"):
        ledger.open(code, parent="root")
    hierarchy = Hierarchy(ledger.uow, ledger.calendar, ledger.clock)
    monkeypatch.setattr(limits, "SUBTREE_ACCOUNTS_MAX", 3)
    [found] = hierarchy.get_rollups(TENANT, [AccountRef(code="root")]).accounts
    assert found.rollups[0].descendant_accounts == 3
    monkeypatch.setattr(limits, "SUBTREE_ACCOUNTS_MAX", 2)
    for read in (lambda: hierarchy.get_rollups(TENANT, [AccountRef(code="root")]),
                 lambda: hierarchy.trial_balance(TENANT, AccountRef(code="root"))):
        with pytest.raises(LedgerError) as caught:
            read()
        assert caught.value.reason == "SUBTREE_TOO_LARGE"
    # The budget is per request: the root's four descendants and x's one pass a limit of four together.
    monkeypatch.setattr(limits, "SUBTREE_ACCOUNTS_MAX", 4)
    ledger.open("x1", parent="x")
    with pytest.raises(LedgerError) as caught:
        hierarchy.get_rollups(TENANT, [AccountRef(code="root"), AccountRef(code="x")])
    assert caught.value.reason == "SUBTREE_TOO_LARGE"
