"""What spending controls cost the writer, on SQLite and PostgreSQL: a tenant without controls costs no read
at all (the book remembers it had none), a tenant with some costs one read of controls and one of counters
per batch, and a change through this process is enforced from the next batch on."""

from __future__ import annotations

import pytest

from tally.domain.controls import Controls, Velocity, Window
from tally.domain.errors import LedgerError
from tally.service import controls as controls_module
from tally.service.controls import ABSENT_RECHECK_S
from tests.integration.conftest import TENANT, outcomes, ref


@pytest.fixture
def reads(monkeypatch) -> dict[str, int]:
    counted = {"controls": 0, "counters": 0}
    repo = controls_module.controls_repo
    real_controls, real_counters = repo.tenant_controls, repo.load_counters

    def tenant_controls(*args):
        counted["controls"] += 1
        return real_controls(*args)

    def load_counters(*args):
        counted["counters"] += 1
        return real_counters(*args)

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
