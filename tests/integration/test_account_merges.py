"""MergeAccounts on SQLite and PostgreSQL: balances and holds move, sources close, codes lead on, history stays,
refusals change nothing, and (property) a merge conserves money and every voucher ever posted."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.domain.accounts import AccountStatus, AccountType, NewAccount, Side
from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.merging import HoldPolicy
from tally.domain.vouchers import AccountRef
from tally.service import accounts as account_service
from tally.service.commands import CreateAccount, CreateHold
from tally.service.merging import MergeAccounts, merge_accounts, merged_into
from tests.integration.conftest import FUNDING, TENANT, Ledger, check_ledger, outcomes, ref


def merge(ledger: Ledger, sources: list[str], target: str, *, tenant: str = TENANT, request_id: str | None = None,
          policy: HoldPolicy = HoldPolicy.MOVE):
    cmd = MergeAccounts(tenant, request_id or ledger.request_id("merge"), tuple(ref(s) for s in sources), ref(target),
                        policy, "merge test")
    return merge_accounts(cmd, ledger.uow, ledger.calendar, ledger.clock)


def refused(call) -> LedgerError:
    with pytest.raises(LedgerError) as caught:
        call()
    return caught.value


def open_owned(ledger: Ledger, code: str, owner: str, *, currency: str = "USD", tenant: str = TENANT):
    spec = NewAccount(code, AccountType.DEPOSIT, currency, metadata={"owner": owner} if owner else {})
    cmd = CreateAccount(tenant, ledger.request_id("open"), spec)
    return account_service.create_account(cmd, ledger.uow, ledger.currencies, ledger.clock).account


async def hold(ledger: Ledger, code: str, amount: int):
    posted = await ledger.posting.create_hold(CreateHold(TENANT, ledger.request_id("hold"), ref(code), amount, "USD"))
    return posted.holds[0]


def state(ledger: Ledger, code: str):
    return ledger.queries.get_balance(TENANT, ref(code))


async def test_merge_moves_balances_and_holds_closes_sources_and_leads_their_codes_on(ledger: Ledger):
    a, b, target = ledger.open("m-a"), ledger.open("m-b"), ledger.open("m-target")
    await ledger.fund("m-a", 300_000)
    await ledger.fund("m-b", 200_000)
    await ledger.fund("m-target", 50)
    held = await hold(ledger, "m-a", 1_000)
    before_a = ledger.queries.list_entries(TENANT, ref("m-a"), page_size=50, page_token="").items

    result = merge(ledger, ["m-a", "m-b"], "m-target", request_id="merge-1")

    assert [(m.source_id, m.amount) for m in result.moves] == [(a.id, 300_000), (b.id, 200_000)]
    assert all(m.voucher_id for m in result.moves)
    assert [(h.source_hold_id, h.amount) for h in result.moves[0].holds] == [(held.id, 1_000)]
    moved = result.moves[0].holds[0]
    assert state(ledger, "m-target").current == 500_050
    assert state(ledger, "m-target").locked == 1_000
    for code in ("m-a", "m-b"):
        account, balance = ledger.queries.get_account(TENANT, AccountRef(id=a.id if code == "m-a" else b.id))
        assert account.status is AccountStatus.CLOSED
        assert (balance.current, balance.locked) == (0, 0)
    assert merged_into(ledger.uow, TENANT, a.id) == target.id
    assert merged_into(ledger.uow, TENANT, target.id) == ""
    assert ledger.queries.get_hold(TENANT, moved.target_hold_id).account_id == target.id
    assert ledger.queries.get_hold(TENANT, held.id).status.value == "released"
    # History stays: the source's old entries are all still there, and its statement ends with the merge.
    after_a = ledger.queries.list_entries(TENANT, AccountRef(id=a.id), page_size=50, page_token="").items
    assert after_a[:len(before_a)] == before_a
    assert after_a[-1].balance_after == 0
    merge_voucher = ledger.queries.get_voucher(TENANT, result.moves[0].voucher_id)
    assert (merge_voucher.flow_type, {ln.account_id for ln in merge_voucher.lines}) == ("merge", {a.id, target.id})
    # New postings to a source's code go to the target, and the answer names the target's id.
    posted = await ledger.fund("m-b", 7)
    assert {line.account_id for line in posted.vouchers[0].lines} == {target.id, ledger_id(ledger, FUNDING)}
    assert state(ledger, "m-target").current == 500_057
    assert (await hold(ledger, "m-a", 3)).account_id == target.id  # a hold by the old code too
    # By id, a merged account is itself, and closed.
    with pytest.raises(LedgerError) as caught:
        await ledger.adjust([(FUNDING, Side.DEBIT, 5), (a.id, Side.CREDIT, 5)])
    assert caught.value.reason == "ACCOUNT_CLOSED"
    # Idempotent: the same request answers the same; the same id with another body is refused.
    again = merge(ledger, ["m-a", "m-b"], "m-target", request_id="merge-1")
    assert again.replayed and again.moves == result.moves
    error = refused(lambda: merge(ledger, ["m-a"], "m-target", request_id="merge-1"))
    assert (error.kind, error.reason) == (ErrorKind.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert moved.target_hold_id != moved.source_hold_id
    check_ledger(ledger.url)


def ledger_id(ledger: Ledger, code: str) -> str:
    return ledger.queries.get_account(TENANT, ref(code))[0].id


async def test_merge_refusals_change_nothing(ledger: Ledger):
    ledger.open("r-target")
    ledger.open("r-eur", currency="EUR")
    ledger.open("r-credit", AccountType.CREDIT)
    open_owned(ledger, "r-owned", "alice")
    ledger.open("r-held")
    ledger.open("r-other-tenant", tenant="someone-else")
    await ledger.fund("r-held", 500)
    await hold(ledger, "r-held", 100)
    cases = [
        (["r-eur"], "MERGE_CURRENCY_MISMATCH", ErrorKind.FAILED_PRECONDITION, HoldPolicy.MOVE),
        (["r-credit"], "MERGE_TYPE_MISMATCH", ErrorKind.FAILED_PRECONDITION, HoldPolicy.MOVE),
        (["r-owned"], "MERGE_OWNER_MISMATCH", ErrorKind.FAILED_PRECONDITION, HoldPolicy.MOVE),
        (["r-other-tenant"], "ACCOUNT_NOT_FOUND", ErrorKind.NOT_FOUND, HoldPolicy.MOVE),
        (["r-held"], "MERGE_SOURCE_HAS_HOLDS", ErrorKind.FAILED_PRECONDITION, HoldPolicy.REFUSE),
        (["r-target"], "MERGE_SOURCE_IS_TARGET", ErrorKind.INVALID_ARGUMENT, HoldPolicy.MOVE),
        (["r-held", "r-held"], "MERGE_SOURCE_DUPLICATE", ErrorKind.INVALID_ARGUMENT, HoldPolicy.MOVE),
        ([], "MERGE_SOURCES_REQUIRED", ErrorKind.INVALID_ARGUMENT, HoldPolicy.MOVE),
    ]
    for sources, reason, kind, policy in cases:
        error = refused(lambda s=sources, p=policy: merge(ledger, s, "r-target", policy=p))
        assert (error.kind, error.reason) == (kind, reason), sources
    assert (state(ledger, "r-held").current, state(ledger, "r-held").locked) == (500, 100)
    assert state(ledger, "r-target").current == 0
    for code in ("r-eur", "r-credit", "r-owned", "r-held"):
        assert ledger.queries.get_account(TENANT, ref(code))[0].status is AccountStatus.ACTIVE
    # Merging into a closed (merged) account is refused with the reason it takes no postings.
    ledger.open("r-x")
    merge(ledger, ["r-x"], "r-target")
    ledger.open("r-y")
    error = refused(lambda: merge(ledger, ["r-y"], ledger_id(ledger, "r-x")))
    assert error.reason == "ACCOUNT_CLOSED"
    check_ledger(ledger.url)


async def test_postings_racing_a_merge_all_land_once(ledger: Ledger):
    """Funding by the source's code while it is merged: each posting lands on the source before the merge
    (and moves with it) or on the target after it; nothing is lost, nothing lands twice."""
    ledger.open("race-src")
    target = ledger.open("race-dst")
    await ledger.fund("race-src", 1_000)
    funding = [ledger.fund("race-src", 10) for _ in range(40)]
    results = await outcomes(*funding, asyncio.to_thread(merge, ledger, ["race-src"], "race-dst"))
    assert not [r for r in results if isinstance(r, LedgerError)], results
    assert (state(ledger, "race-src").current, state(ledger, "race-dst").current) == (0, 1_400)
    # Reads by code still show the merged account itself (its history), closed, and where it leads.
    source = ledger.queries.get_account(TENANT, ref("race-src"))[0]
    assert source.status is AccountStatus.CLOSED and merged_into(ledger.uow, TENANT, source.id) == target.id
    check_ledger(ledger.url)


_tenants = itertools.count()


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(amounts=st.lists(st.integers(min_value=0, max_value=10**12), min_size=2, max_size=5),
       groups=st.lists(st.integers(min_value=0, max_value=2), min_size=5, max_size=5))
async def test_property_merging_conserves_money_and_history(ledger: Ledger, amounts: list[int], groups: list[int]):
    """Accounts merged in rounds (group g merges into its first member, then the groups' targets into one):
    the tenant's balances sum to the same, and every voucher posted before is still there, line for line."""
    tenant = f"prop-{next(_tenants)}"
    ledger.open_internal(FUNDING, tenant=tenant)
    codes = [f"p{i}" for i in range(len(amounts))]
    for code, amount in zip(codes, amounts, strict=True):
        ledger.open(code, tenant=tenant)
        if amount:
            await ledger.fund(code, amount, tenant=tenant)
    vouchers_before = _vouchers(ledger, tenant)
    total_before = _total(ledger, tenant, codes)
    by_group: dict[int, list[str]] = {}
    for code, group in zip(codes, groups, strict=False):
        by_group.setdefault(group, []).append(code)
    targets = []
    for members in by_group.values():
        if len(members) > 1:
            merge(ledger, members[1:], members[0], tenant=tenant)
        targets.append(members[0])
    if len(targets) > 1:
        merge(ledger, targets[1:], targets[0], tenant=tenant)
    assert _total(ledger, tenant, codes) == total_before == sum(amounts)
    assert ledger.queries.get_balance(tenant, ref(targets[0])).current == sum(amounts)
    after = _vouchers(ledger, tenant)
    assert {vid: after[vid] for vid in vouchers_before} == vouchers_before
    # Every source code now posts to the one remaining account.
    await ledger.fund(codes[-1], 1, tenant=tenant)
    assert ledger.queries.get_balance(tenant, ref(targets[0])).current == sum(amounts) + 1


def _vouchers(ledger: Ledger, tenant: str) -> dict:
    page = ledger.queries.list_vouchers(tenant, page_size=500, page_token="")
    return {v.id: [(ln.account_id, ln.side, ln.amount) for ln in v.lines] for v in page.items}


def _total(ledger: Ledger, tenant: str, codes: list[str]) -> int:
    """The sum of every deposit account's balance, merged ones included (by id: their codes lead elsewhere now)."""
    page = ledger.queries.list_accounts(tenant, page_size=500, page_token="", type_=AccountType.DEPOSIT, status=None,
                                        currency="", parent_id="")
    assert len(page.items) == len(codes)
    snapshot = ledger.queries.get_balances(tenant, [AccountRef(id=a.id) for a in page.items])
    return sum(b.current for b in snapshot.balances)
