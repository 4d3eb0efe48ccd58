"""The default rules' sub-accounts and `{currency}` (issue 21), on SQLite and PostgreSQL: the writer opens a
template's sub-account as its main account's child (the main opened with it), and migration 0020 moves a
ledger made with the earlier default rules onto the new codes: the same accounts, balances and history,
parented, the old codes leading to them, the ledger audit intact."""

from __future__ import annotations

import importlib
import re
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from tally.domain.accounts import Side
from tally.domain.facts import Facts
from tally.domain.flows import RuleFlow
from tally.domain.vouchers import AccountRef
from tally.service.books.ledger_audit import LedgerAudit
from tally.service.commands import PostFlow
from tally.service.hierarchy import Hierarchy
from tally.service.posting.pipeline import now_us
from tally.storage.migrate import alembic_config, migrate
from tests.integration.conftest import TENANT, Ledger, check_ledger

DEFAULT = resources.files("tally.rules").joinpath("default.toml").read_text()
MAIN_TEMPLATE = re.compile(r'\[accounts\."merchant:\{merchant\}:\{currency\}"\]\n(?:[a-z]+ = .*\n)+')
OLD_NAMES = {"pending": "merchant_pending", "settled": "merchant_settled", "guarantee": "merchant_guarantee",
             "guarantee_due": "guarantee_due", "guarantee_deduction": "guarantee_deduction",
             "guarantee_commitment": "guarantee_commitment"}
MERCHANT_SUBS = ("pending", "settled", "guarantee", "guarantee_due", "guarantee_commitment")


def old_default_rules() -> str:
    """The default rule set as it was before 2026.12.1: per-party codes without a currency, no main account."""
    text, removed = MAIN_TEMPLATE.subn("", DEFAULT)
    assert removed == 1
    text = re.sub(r"merchant:(\{[a-z]+\}):\{currency\}/([a-z_]+)", lambda m: f"{OLD_NAMES[m[2]]}:{m[1]}", text)
    text = re.sub(r"(consumer|affiliate):(\{[a-z]+\}):\{currency\}", r"\1:\2", text)
    assert ":{currency}/" not in text and "consumer:{consumer}:" not in text
    return text.replace('version = "2026.12.1"', 'version = "2026.11.1"')


def ledger_at_0019(database_url: str, tmp_path: Path) -> tuple[sa.Engine, Ledger]:
    """A database at revision 0019 and a started ledger on it with the earlier default rules."""
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0019")
        _later_schema(conn, "upgrade")
    old_rules = tmp_path / "old.toml"
    old_rules.write_text(old_default_rules())
    old = Ledger(database_url, rules_file=str(old_rules))
    old.start()
    return engine, old


def _later_schema(conn: sa.Connection, step: str) -> None:
    """What this code needs of the migrations after 0020 (the epochs of 0021), added to a database at 0019
    for the earlier rules' ledger, and taken off again before it migrates."""
    migration = importlib.import_module("tally.storage.migrations.versions.0021_ledger_epochs")
    with Operations.context(MigrationContext.configure(conn)):
        getattr(migration, step)()


def migrate_from_0019(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _later_schema(conn, "downgrade")
    migrate(engine)


async def post(ledger: Ledger, flow: str, values: dict[str, int], parties: dict[str, str],
               tags: dict[str, str] | None = None, currency: str = "USD"):
    facts = Facts(flow, currency, values, parties, tags or {})
    return await ledger.posting.post(PostFlow(TENANT, ledger.request_id(flow), RuleFlow(facts)))


async def merchant_life(ledger: Ledger, merchant: str = "m1", currency: str = "USD") -> None:
    """Funding, usage, a guarantee owed, an acquisition and its settlement (which deducts the guarantee)."""
    await post(ledger, "funding", {"amount": 100_000}, {"consumer": "c1", "processor": "card"}, currency=currency)
    await post(ledger, "usage", {"amount": 40_000}, {"consumer": "c1", "merchant": merchant, "affiliate": "a1"},
               currency=currency)
    await post(ledger, "guarantee", {"amount": 3_000}, {"merchant": merchant}, currency=currency)
    await post(ledger, "acquisition", {"amount": 50_000, "coupon_amount": 0, "coupon_merchant_share_bps": 0},
               {"merchant": merchant, "channel": "visa"}, currency=currency)
    await post(ledger, "settlement", {"amount": 20_000, "actual_amount": 20_000}, {"merchant": merchant},
               {"kind": "merchant"}, currency=currency)


def account(ledger: Ledger, code: str):
    return ledger.queries.get_account(TENANT, AccountRef(code=code))[0]


def balances(ledger: Ledger, codes: list[str]) -> dict[str, int]:
    return {code: ledger.balance(code) for code in codes}


def statement(ledger: Ledger, code: str) -> list[tuple]:
    """The account's entries (an entry names its account's code of today, so that is left out)."""
    page = ledger.queries.list_entries(TENANT, AccountRef(code=code), page_size=50, page_token="")
    return [(e.account_id, e.entry_number, e.voucher_id, e.side, e.amount, e.balance_after) for e in page.items]


async def test_a_template_sub_account_is_opened_under_its_main_account(database_url, make_ledger):
    ledger = make_ledger(database_url)
    await merchant_life(ledger)
    await merchant_life(ledger, currency="EUR")  # a party may hold a second currency: accounts of its own
    hierarchy = Hierarchy(ledger.uow, ledger.calendar, ledger.clock)
    for currency in ("USD", "EUR"):
        main = account(ledger, f"merchant:m1:{currency}")
        assert (main.currency, main.parent_id, ledger.balance(main.code)) == (currency, None, 0)
        subs = {sub: account(ledger, f"merchant:m1:{currency}/{sub}") for sub in MERCHANT_SUBS}
        assert {a.parent_id for a in subs.values()} == {main.id}
        assert account(ledger, f"consumer:c1:{currency}").parent_id is None
        owed = {sub: ledger.balance(a.code) for sub, a in subs.items()}
        assert owed["guarantee"] == 3_000 and owed["guarantee_due"] == owed["guarantee_commitment"] == 0
        # The roll-up is what the platform owes the merchant: the memorandum pair cancels out.
        [found] = hierarchy.get_rollups(TENANT, [AccountRef(id=main.id)]).accounts
        [rollup] = found.rollups
        assert (rollup.own, rollup.total) == (0, owed["pending"] + owed["settled"] + owed["guarantee"])
    # A main account opened beforehand (by an operator) takes the sub-accounts the rules open later.
    main = ledger.open("merchant:m2:USD")
    await post(ledger, "usage", {"amount": 1_000}, {"consumer": "c1", "merchant": "m2"})
    assert account(ledger, "merchant:m2:USD/settled").parent_id == main.id
    check_ledger(ledger.url)


async def test_a_ledger_of_the_old_default_rules_keeps_working_after_0020(database_url, tmp_path: Path):
    engine, old = ledger_at_0019(database_url, tmp_path)
    try:
        await merchant_life(old)
        await post(old, "guarantee", {"amount": 500}, {"merchant": "m1"}, {"mode": "account"})
        await post(old, "guarantee", {"amount": 2_000}, {"merchant": "m1"})  # still due after the upgrade
        renamed = {f"{old_name}:m1": f"merchant:m1:USD/{sub}" for sub, old_name in OLD_NAMES.items()}
        renamed |= {"consumer:c1": "consumer:c1:USD", "affiliate:a1": "affiliate:a1:USD"}
        before = {code: (account(old, code).id, old.balance(code)) for code in renamed}
        statement_before = statement(old, "merchant_settled:m1")
        assert LedgerAudit(old.uow, now_us).run(TENANT).intact  # its checkpoint: later audits build on it
    finally:
        await old.close()
    assert before["merchant_settled:m1"][1] > 0 and before["guarantee_due:m1"][1] == 2_000

    migrate_from_0019(engine)
    engine.dispose()
    new = Ledger(database_url)
    new.start()
    try:
        # The same accounts under the new codes: ids, balances and statements as they were; parented.
        main = account(new, "merchant:m1:USD")
        for old_code, code in renamed.items():
            moved = account(new, code)
            assert (moved.id, new.balance(code)) == before[old_code]
            assert moved.parent_id == (main.id if code.startswith("merchant:") else None)
        assert statement(new, "merchant:m1:USD/settled") == statement_before

        # Postings through the new rules land on the same accounts: no balance split.
        await merchant_life(new)
        after = {code: new.balance(code) for code in renamed.values()}
        assert after["merchant:m1:USD/settled"] > before["merchant_settled:m1"][1]
        assert after["consumer:c1:USD"] == before["consumer:c1"][1] + 60_000
        assert statement(new, "merchant:m1:USD/settled")[:len(statement_before)] == statement_before

        # An old code leads to the renamed account: a posting naming it posts there, answered with its id.
        posted = await new.adjust([("merchant_settled:m1", Side.DEBIT, 1_000), ("consumer:c1", Side.CREDIT, 1_000)])
        assert {line.account_id for line in posted.vouchers[0].lines} == {
            before["merchant_settled:m1"][0], before["consumer:c1"][0]}
        # A read naming it answers the renamed account; the placeholder keeping the code is closed and empty.
        assert account(new, "merchant_settled:m1").id == before["merchant_settled:m1"][0]
        assert new.balance("merchant_settled:m1") == new.balance("merchant:m1:USD/settled")
        [by_old_code] = new.queries.get_balances(TENANT, [AccountRef(code="merchant_settled:m1")]).balances
        assert by_old_code.account_id == before["merchant_settled:m1"][0]
        assert statement(new, "merchant_settled:m1") == statement(new, "merchant:m1:USD/settled")
        owner = sa.create_engine(database_url)  # reads outside the service's tenant scope
        with owner.connect() as conn:
            placeholder = conn.execute(sa.text(
                "SELECT status, metadata FROM accounts WHERE code = 'merchant_settled:m1'")).one()
        owner.dispose()
        assert tuple(placeholder) == ("closed", '{"renamed_to": "merchant:m1:USD/settled"}')

        # The ledger audit proves every balance from the journal, hash chain included.
        for full in (False, True):  # from the checkpoint written before the upgrade, then from the start
            report = LedgerAudit(new.uow, now_us).run(TENANT, full=full)
            assert report.intact, report.findings
    finally:
        await new.close()
    check_ledger(database_url)

    # A downgrade renames back what 0020 renamed and drops the placeholders; upgrading again redoes it.
    settled_id = before["merchant_settled:m1"][0]
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0019")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM accounts WHERE code = 'merchant_settled:m1'")).all() == [
                (settled_id,)]
            assert conn.execute(sa.text("SELECT count(*) FROM account_merges")).scalar() == 0
        migrate(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM accounts WHERE code = 'merchant:m1:USD/settled'")).all() == [
                (settled_id,)]
    finally:
        engine.dispose()
    check_ledger(database_url)


async def test_0020_renames_page_by_page_as_it_does_at_once(database_url, tmp_path: Path):
    """Two merchants' accounts renamed two at a time: every one renamed, one main account per merchant,
    whatever page a merchant's sub-accounts fall in."""
    engine, old = ledger_at_0019(database_url, tmp_path)
    try:
        for merchant in ("m1", "m2"):
            await merchant_life(old, merchant)
        with old.uow.engines.write.connect() as conn:
            codes = [c for (c,) in conn.execute(sa.text("SELECT code FROM accounts")) if ":" in c]
        before = {code: (account(old, code).id, old.balance(code)) for code in codes}
    finally:
        await old.close()
    assert len([c for c in before if c.split(":")[0] in OLD_NAMES.values()]) >= 8

    migration = importlib.import_module("tally.storage.migrations.versions.0020_default_rules_sub_accounts")
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT set_config('tally.tenants', '*', true)"))
        migration.rename_all(conn, now_us(), page_rows=2)
        command.stamp(alembic_config(conn), "0020")
    engine.dispose()
    new = Ledger(database_url)
    new.start()
    try:
        for code, (account_id, balance) in before.items():
            renamed = migration.new_code(code, "USD")
            target = renamed[0] if renamed else code
            assert (account(new, target).id, new.balance(target)) == (account_id, balance), code
        for merchant in ("m1", "m2"):
            main = account(new, f"merchant:{merchant}:USD")
            for sub in MERCHANT_SUBS:
                assert account(new, f"merchant:{merchant}:USD/{sub}").parent_id == main.id
        with new.uow.engines.write.connect() as conn:
            mains = conn.execute(sa.text("SELECT count(*) FROM accounts WHERE code LIKE :main"),
                                 {"main": "merchant:%:USD"}).scalar()
        assert mains == 2
    finally:
        await new.close()
