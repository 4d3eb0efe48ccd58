"""What spending controls cost the writer, on SQLite and PostgreSQL: a tenant without controls costs no read
at all (the book remembers it had none), a tenant with some costs one read of controls and one of counters
per batch, and a change through this process is enforced from the next batch on; and two processes spending
at once never pass a limit between them; a team budget binds its whole subtree for one read of the batch's
ancestors."""

from __future__ import annotations

import asyncio
import random

import pytest

from tally.domain.accounts import AccountType, NewAccount
from tally.domain.controls import Controls, Velocity, Window
from tally.domain.errors import LedgerError
from tally.service import accounts as account_service
from tally.service import controls as controls_module
from tally.service.commands import CreateAccount
from tally.service.controls import ABSENT_RECHECK_S
from tally.service.posting import controls as batch_controls
from tests.integration.conftest import FUNDING, TENANT, outcomes, ref


@pytest.fixture
def reads(monkeypatch) -> dict[str, int]:
    counted = {"controls": 0, "counters": 0}
    repo = controls_module.controls_repo
    real_controls, real_counters = repo.tenant_controls, repo.load_counters

    # Counted once answered: a batch whose writer's memory was stale fails at its first read, and is written
    # again from reads (service/posting/memory.py).
    def tenant_controls(*args):
        found = real_controls(*args)
        counted["controls"] += 1
        return found

    def load_counters(*args):
        found = real_counters(*args)
        counted["counters"] += 1
        return found

    monkeypatch.setattr(repo, "tenant_controls", tenant_controls)
    monkeypatch.setattr(repo, "load_counters", load_counters)
    return counted


async def test_a_tenant_without_controls_costs_no_read(ledger, reads) -> None:
    ledger.open("alice")
    ledger.open("bob")
    await ledger.fund("alice", 1_000)  # the first batch asks once, and learns the tenant has none
    assert reads == {"controls": 1, "counters": 0}
    posted = await outcomes(*(ledger.transfer("alice", "bob", 1) for _ in range(20)))
    assert not any(isinstance(p, LedgerError) for p in posted)
    assert reads == {"controls": 1, "counters": 0}
    assert ABSENT_RECHECK_S >= 1.0  # the run above takes far less: no batch asked again

    book = ledger.pipeline.controls
    book.set_controls(TENANT, ref("alice"),
                      Controls(velocity=(Velocity(Window.DAY, 25),)), [], ledger.request_id("ctl"))
    before = dict(reads)
    first, second = await outcomes(ledger.transfer("alice", "bob", 5), ledger.transfer("alice", "bob", 21))
    assert first.vouchers[0].metadata["policy"] == "limit_check.passed"  # enforced from the next batch on
    assert isinstance(second, LedgerError) and second.reason == "VELOCITY_LIMIT_EXCEEDED"
    batches = reads["controls"] - before["controls"]
    assert 1 <= batches <= 2 and reads["counters"] - before["counters"] == batches  # one of each per batch


async def test_two_processes_spending_at_once_never_pass_a_limit_or_a_team_budget(database_url, make_ledger) -> None:
    """Two stacks on one database, as two server processes: counters are read and advanced under the write
    gate, so the sum of what both accepted stays within the limit, for an account and for a team, whose budget
    binds its whole subtree (a sub-team's members too, under their own sub-team budget as well)."""
    first, second = make_ledger(database_url), make_ledger(database_url)
    first.open_internal(FUNDING)
    first.open("payer")
    first.open("payee")
    team = first.open("team")
    for kid, parent in (("kid1", "team"), ("kid2", "team"), ("kid3", "team"), ("squad", "team"), ("g1", "squad"),
                        ("g2", "squad")):
        account_service.create_account(CreateAccount(TENANT, first.request_id("kid"), NewAccount(
            kid, AccountType.DEPOSIT, "USD"), parent=ref(parent)), first.uow, first.currencies, first.clock)
        await first.fund(kid, 10_000)
    await first.fund("payer", 100_000)
    first.pipeline.controls.set_controls(TENANT, ref("payer"), Controls(velocity=(Velocity(Window.DAY, 5_000),)),
                                         [], first.request_id("ctl"))
    first.pipeline.controls.set_controls(TENANT, ref(team.code), Controls(
        team_velocity=(Velocity(Window.MONTH, 4_000, sliding=True),)), [], first.request_id("ctl"))
    first.pipeline.controls.set_controls(TENANT, ref("squad"), Controls(
        team_velocity=(Velocity(Window.DAY, 1_500),)), [], first.request_id("ctl"))
    await asyncio.sleep(ABSENT_RECHECK_S)  # the second process learns of them within this
    rng = random.Random(21)
    sends = [(rng.choice((first, second)), source, rng.randint(1, 400))
             for source in ["payer"] * 40 + ["kid1", "kid2", "kid3", "g1", "g2"] * 10]
    rng.shuffle(sends)
    results = await outcomes(*(stack.transfer(source, "payee", amount) for stack, source, amount in sends))
    spent = {"payer": 0, "team": 0, "squad": 0}
    for (_, source, amount), result in zip(sends, results, strict=True):
        if isinstance(result, LedgerError):
            assert result.reason in {"VELOCITY_LIMIT_EXCEEDED", "TEAM_BUDGET_EXCEEDED"}, result
        else:
            spent["payer" if source == "payer" else "team"] += amount
            spent["squad"] += amount if source.startswith("g") else 0
    assert {r.reason for r in results if isinstance(r, LedgerError)} == {"VELOCITY_LIMIT_EXCEEDED",
                                                                        "TEAM_BUDGET_EXCEEDED"}
    assert 0 < spent["payer"] <= 5_000 and 0 < spent["team"] <= 4_000 and 0 < spent["squad"] <= 1_500
    assert first.balance("payee") == spent["payer"] + spent["team"]
    assert first.pipeline.batches_written > 0 and second.pipeline.batches_written > 0
    usage = first.pipeline.controls.get_controls(TENANT, ref(team.code)).usage
    assert [u.spent for u in usage] == [spent["team"]]
    assert [u.spent for u in first.pipeline.controls.get_controls(TENANT, ref("squad")).usage] == [spent["squad"]]


async def test_a_team_budget_costs_one_read_of_ancestors_per_batch(ledger, reads, monkeypatch) -> None:
    """A grandchild's spend reaches its grandparent's budget through one read of the batch's ancestors."""
    calls = []
    real_ancestors = batch_controls.hierarchy_repo.ancestors
    monkeypatch.setattr(batch_controls.hierarchy_repo, "ancestors",
                        lambda *args: calls.append(args) or real_ancestors(*args))
    ledger.open("org")
    ledger.open("shop")
    for code, parent in (("eng", "org"), ("eng-web", "eng"), ("dev", "eng-web")):
        account_service.create_account(CreateAccount(TENANT, ledger.request_id("team"), NewAccount(
            code, AccountType.DEPOSIT, "USD"), parent=ref(parent)), ledger.uow, ledger.currencies, ledger.clock)
    await ledger.fund("dev", 10_000)
    ledger.pipeline.controls.set_controls(TENANT, ref("org"), Controls(
        team_velocity=(Velocity(Window.DAY, 1_000),)), [], ledger.request_id("ctl"))
    before = dict(reads)
    posted, refused = await outcomes(ledger.transfer("dev", "shop", 700), ledger.transfer("dev", "shop", 301))
    assert posted.vouchers[0].metadata["controls_checked"] == "team3:dev:team_calendar_day"
    assert isinstance(refused, LedgerError) and refused.reason == "TEAM_BUDGET_EXCEEDED"
    batches = reads["controls"] - before["controls"]
    assert 1 <= batches <= 2 and len(calls) == batches
