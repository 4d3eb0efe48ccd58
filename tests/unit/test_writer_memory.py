"""WriterMemory on its own: what it recalls, when it refuses to, and its bound."""

from __future__ import annotations

from tally.domain.accounts import AccountType, BalanceState, NewAccount, open_account
from tally.domain.vouchers import GENESIS_HASH, AccountRef
from tally.service.posting.memory import COOLING_BATCHES, WriterMemory
from tally.storage.batch_reads import Opening
from tally.storage.ledger_repo import LedgerHead


def _account(tenant: str, code: str):
    spec = NewAccount(code, AccountType.DEPOSIT, "USD")
    return open_account(spec, account_id=f"{tenant}-{code}", tenant_id=tenant, now_us=1, currencies=frozenset({"USD"}))


def _commit(memory: WriterMemory, tenant: str, codes: list[str], epoch: int, current: int = 0,
            wrote: bool = True) -> None:
    accounts = {a.id: a for a in (_account(tenant, c) for c in codes)}
    balances = {i: BalanceState(i, current=current) for i in accounts}
    opening = Opening({}, {}, {}, {}, {tenant: epoch})
    memory.learn(opening, {tenant: LedgerHead(tenant, 3, 4, GENESIS_HASH, "2026-12-07")}, {tenant: accounts}, balances,
                 wrote)
    memory.settle()


def _unknown(memory: WriterMemory, *codes: str) -> dict[str, list[AccountRef]]:
    return memory.recall_accounts(memory.recall(["t"]), {"t": [AccountRef(code=c) for c in codes]})


def test_recalls_what_a_commit_left_with_the_epoch_after_it() -> None:
    memory = WriterMemory(100)
    _commit(memory, "t", ["a", "b"], epoch=6, current=5)
    opening = memory.recall(["t"])
    unknown = memory.recall_accounts(opening, {"t": [AccountRef(code="a"), AccountRef(id="t-b")]})
    assert opening.remembered and memory.relied and unknown == {}
    assert opening.epochs == {"t": 7}
    assert set(opening.accounts["t"].by_code) == {"a"} and set(opening.accounts["t"].by_id) == {"t-b"}
    assert opening.balances["t-a"].current == 5 and opening.records == {}
    opening.heads["t"].voucher_sequence += 1  # the batch changes its heads in place
    assert memory.recall(["t"]).heads["t"].voucher_sequence == 3


def test_an_unknown_tenant_is_read_instead_an_unknown_account_is_left_to_read() -> None:
    memory = WriterMemory(100)
    _commit(memory, "t", ["a"], epoch=0)
    assert memory.recall(["t", "u"]) is None
    assert not memory.relied
    elsewhere = AccountRef(code="elsewhere")
    opening = memory.recall(["t"])
    assert memory.recall_accounts(opening, {"t": [AccountRef(code="a"), elsewhere]}) == {"t": [elsewhere]}
    assert set(opening.accounts["t"].by_code) == {"a"}
    assert "t-elsewhere" not in opening.balances and memory.relied


def test_a_commit_from_the_same_epoch_adds_one_from_another_replaces() -> None:
    memory = WriterMemory(100)
    _commit(memory, "t", ["a"], epoch=0)  # left at 1
    _commit(memory, "t", ["b"], epoch=1)  # started from 1: nobody wrote between
    assert _unknown(memory, "a", "b") == {}
    _commit(memory, "t", ["c"], epoch=5)  # others wrote between: what was known of a and b may be stale
    assert _unknown(memory, "a") == {"t": [AccountRef(code="a")]}
    assert _unknown(memory, "c") == {} and memory.recall(["t"]).epochs == {"t": 6}


def test_a_failed_check_cools_the_tenant_for_a_while() -> None:
    memory = WriterMemory(100)
    _commit(memory, "t", ["a"], epoch=0)
    memory.forget(["t"])
    memory.cool(["t"])
    _commit(memory, "t", ["a"], epoch=3)
    for _ in range(COOLING_BATCHES):
        assert memory.recall(["t"]) is None
    assert memory.recall(["t"]) is not None


def test_at_most_accounts_max_the_least_recently_written_tenant_goes_first() -> None:
    memory = WriterMemory(5)
    _commit(memory, "old", ["a", "b", "c"], epoch=0)
    _commit(memory, "new", ["a", "b", "c"], epoch=0)
    assert memory.accounts() == 3
    assert memory.recall(["old"]) is None and memory.recall(["new"]) is not None


def test_an_uncommitted_transaction_teaches_nothing() -> None:
    memory = WriterMemory(100)
    opening = Opening({}, {}, {}, {}, {"t": 0})
    memory.learn(opening, {"t": LedgerHead("t", 1, 1, GENESIS_HASH, "")}, {"t": {}}, {}, True)
    memory.forget(["t"])
    memory.settle()
    assert memory.recall(["t"]) is None


def test_a_commit_that_wrote_nothing_leaves_the_epoch_where_it_was() -> None:
    memory = WriterMemory(100)
    _commit(memory, "t", ["a"], epoch=4, wrote=False)
    assert memory.recall(["t"]).epochs == {"t": 4}
    _commit(memory, "t", ["b"], epoch=4)  # the same epoch: what was known of a still holds
    assert _unknown(memory, "a", "b") == {} and memory.recall(["t"]).epochs == {"t": 5}
