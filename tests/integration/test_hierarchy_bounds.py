"""The bounds of account hierarchies: children per parent, and descendants one roll-up reads."""

from __future__ import annotations

import pytest

from tally.domain import limits
from tally.domain.accounts import AccountType, NewAccount
from tally.domain.errors import LedgerError
from tally.domain.vouchers import AccountRef
from tally.service import accounts as account_service
from tally.service.commands import CreateAccount
from tally.service.hierarchy import Hierarchy
from tests.integration.conftest import TENANT


def _open_under(ledger, code: str, parent: str | None):
    cmd = CreateAccount(TENANT, ledger.request_id("open"), NewAccount(code, AccountType.DEPOSIT, "USD"),
                        AccountRef(code=parent) if parent else None)
    return account_service.create_account(cmd, ledger.uow, ledger.currencies, ledger.clock).account


def test_a_parent_has_a_bounded_number_of_children(database_url, make_ledger, monkeypatch):
    ledger = make_ledger(database_url, start=False)
    monkeypatch.setattr(limits, "ACCOUNT_CHILDREN_MAX", 2)
    _open_under(ledger, "parent", None)
    _open_under(ledger, "a", "parent")
    _open_under(ledger, "b", "parent")
    with pytest.raises(LedgerError) as caught:
        _open_under(ledger, "c", "parent")
    assert caught.value.reason == "ACCOUNT_CHILDREN_TOO_MANY"
    _open_under(ledger, "c", "a")  # a grandchild is another parent's child


def test_a_roll_up_reads_a_bounded_number_of_descendants(database_url, make_ledger, monkeypatch):
    ledger = make_ledger(database_url, start=False)
    _open_under(ledger, "root", None)
    for code in ("x", "y", "z"):
        _open_under(ledger, code, "root")
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
    _open_under(ledger, "x1", "x")
    with pytest.raises(LedgerError) as caught:
        hierarchy.get_rollups(TENANT, [AccountRef(code="root"), AccountRef(code="x")])
    assert caught.value.reason == "SUBTREE_TOO_LARGE"
