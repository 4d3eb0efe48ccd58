"""Migration 0019 (storage/compact.py): what the writer stores is 32-byte digests and packed JSON, on SQLite
and PostgreSQL; a ledger written before the migration reads back the same after it, and after a downgrade."""

from __future__ import annotations

import hashlib
import importlib.util

import pytest
import sqlalchemy as sa
from alembic import command

from tally.domain.errors import ErrorKind, LedgerError
from tally.domain.vouchers import voucher_hash
from tally.service.posting.idempotency import canonical_json, fingerprint
from tally.storage import journal_repo, journal_write, ledger_repo
from tally.storage import tables as t
from tally.storage.migrate import MIGRATIONS, alembic_config, migrate
from tests.integration.conftest import TENANT, Ledger

OLD_HASH, OLD_PREVIOUS = hashlib.sha256(b"one").hexdigest(), hashlib.sha256(b"zero").hexdigest()
OLD_BODY = canonical_json({"flow_type": "transfer", "memo": "before 0019", "metadata": {"k": "v"}})
OLD_RESULT = canonical_json({"holds": [], "voucher_ids": ["v-old"]})
OLD_FINGERPRINT = fingerprint("post", {"memo": "before 0019"})


def _octets(conn: sa.Connection, sql: str) -> list[int]:
    length = "octet_length" if conn.dialect.name == "postgresql" else "length"
    return list(conn.execute(sa.text(sql.format(length=length))).one())


async def test_the_writer_stores_digests_as_bytes_and_bodies_packed(ledger: Ledger) -> None:
    ledger.open("alice")
    posted = await ledger.fund("alice", 500)
    voucher = posted.vouchers[0]
    engine = sa.create_engine(ledger.url)  # the owner: reads outside the service's tenant scope
    with engine.connect() as conn:
        hashes = _octets(conn, "SELECT {length}(hash), {length}(previous_hash) FROM vouchers "
                               f"WHERE id = '{voucher.id}'")
        record = _octets(conn, "SELECT {length}(fingerprint), {length}(body), {length}(result) FROM idempotency "
                               f"WHERE request_id = '{voucher.request_id}'")
        stored = journal_repo.get_vouchers(conn, TENANT, [voucher.id])[0]
        found = ledger_repo.load_records(conn, [(TENANT, voucher.request_id)])[(TENANT, voucher.request_id)]
    engine.dispose()
    assert hashes == [32, 32]
    assert record[0] == 32 and record[1] < 100 and record[2] < 60  # the JSON texts are 190 and 67 characters
    assert (stored.hash, stored.previous_hash) == (voucher.hash, voucher.previous_hash)
    assert voucher_hash(stored, stored.previous_hash) == stored.hash
    assert found.result == {"holds": [], "voucher_ids": [voucher.id]} and found.body["flow_type"] == "adjustment"


async def test_a_reused_request_id_still_names_the_differing_fields(ledger: Ledger) -> None:
    """What REQUEST_ID_REUSED reports comes from the stored (packed) body."""
    ledger.open("alice")
    await ledger.fund("alice", 500)
    await ledger.transfer("alice", "funding", 5, request_id="same", memo="first")
    await ledger.transfer("alice", "funding", 5, request_id="same", memo="first")  # a replay answers the same
    with pytest.raises(LedgerError) as caught:
        await ledger.transfer("alice", "funding", 6, request_id="same", memo="second")
    assert (caught.value.kind, caught.value.reason) == (ErrorKind.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert caught.value.metadata["fields"] == "flow.amount,memo"


def _old_rows(conn: sa.Connection) -> None:
    conn.execute(sa.text(
        "INSERT INTO vouchers (id, tenant_id, sequence, flow_type, request_id, rule_id, rule_set_version, "
        "accounting_date, effective_us, posted_us, memo, metadata, reverses_id, previous_hash, hash) VALUES "
        "('v-old', :t, 1, 'transfer', 'r-old', '', '', '2026-01-01', 1, 1, '', '{}', NULL, :p, :h), "
        "('v-odd', :t, 2, 'transfer', 'r-odd', '', '', '2026-01-01', 1, 1, '', '{}', NULL, :h, 'not-hex')"),
        {"t": TENANT, "p": OLD_PREVIOUS, "h": OLD_HASH})
    conn.execute(sa.text(
        "INSERT INTO idempotency (tenant_id, request_id, operation, fingerprint, body, result, created_us, actor) "
        "VALUES (:t, 'r-old', 'post', :f, :b, :r, 1, 'key:a')"),
        {"t": TENANT, "f": OLD_FINGERPRINT, "b": OLD_BODY, "r": OLD_RESULT})


def _read_back(conn: sa.Connection) -> tuple:
    found = journal_repo.get_vouchers(conn, TENANT, ["v-old", "v-odd"])
    record = ledger_repo.load_records(conn, [(TENANT, "r-old")])[(TENANT, "r-old")]
    return [(v.previous_hash, v.hash) for v in found], record.fingerprint, record.body, record.result


def test_a_ledger_from_before_0019_reads_the_same_after_it_and_after_a_downgrade(database_url):
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0018")
            _old_rows(conn)
        migrate(engine)
        expected = ([(OLD_PREVIOUS, OLD_HASH), (OLD_HASH, "not-hex")], OLD_FINGERPRINT,
                    {"flow_type": "transfer", "memo": "before 0019", "metadata": {"k": "v"}},
                    {"holds": [], "voucher_ids": ["v-old"]})
        with engine.connect() as conn:
            assert _read_back(conn) == expected
            assert _octets(conn, "SELECT {length}(hash), {length}(previous_hash) FROM vouchers WHERE id = 'v-old'") \
                == [32, 32]
            assert _octets(conn, "SELECT {length}(fingerprint) FROM idempotency") == [32]
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0018")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT hash, previous_hash FROM vouchers ORDER BY sequence")).all() == [
                (OLD_HASH, OLD_PREVIOUS), ("not-hex", OLD_HASH)]
            assert tuple(conn.execute(sa.text("SELECT fingerprint, body, result FROM idempotency")).one()) == (
                OLD_FINGERPRINT, OLD_BODY, OLD_RESULT)
        migrate(engine)
        with engine.connect() as conn:
            assert _read_back(conn) == expected
    finally:
        engine.dispose()


async def test_a_voucher_s_lines_are_read_through_the_index_of_voucher_id(ledger: Ledger) -> None:
    """The primary key (voucher_id, line_no) is gone: the lines of a page of vouchers (journal_repo's read)
    are still an index search, not a scan (on PostgreSQL with sequential scans off: a test table is small
    enough for the planner to prefer one)."""
    ledger.open("alice")
    posted = await ledger.fund("alice", 500)
    query = (sa.select(t.voucher_lines).where(t.voucher_lines.c.voucher_id.in_([posted.vouchers[0].id]))
             .order_by(t.voucher_lines.c.voucher_id, t.voucher_lines.c.line_no))
    engine = sa.create_engine(ledger.url)
    try:
        with engine.connect() as conn:
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SET enable_seqscan = off"))
                plan = "\n".join(conn.execute(sa.text(f"EXPLAIN {sql}")).scalars())
            else:
                plan = "\n".join(row[-1] for row in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
            assert len(conn.execute(query).all()) == 2
    finally:
        engine.dispose()
    assert "ix_voucher_lines_voucher_id" in plan, plan


def test_the_redefined_write_function_casts_each_column_to_its_type():
    """0019's `tally_write_journal` takes the parts the writer sends, in its order (as 0011's did), and casts
    the byte columns to bytea and the rest as 0011 did."""
    path = next((MIGRATIONS / "versions").glob("0019_*.py"))
    spec = importlib.util.spec_from_file_location("migration_0019", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    parts = [(part, tuple(name for name, _ in columns)) for part, (_, columns) in migration.INSERTS.items()]
    parts += [(part, (key, *(name for name, _ in columns))) for part, (_, key, _, columns) in migration.UPDATES.items()]
    assert parts == list(journal_write.PARTS)
    for table, columns in migration.INSERTS.values():
        for name, cast in columns:
            type_ = getattr(t, table).c[name].type
            expected = ("bytea" if isinstance(getattr(type_, "impl", type_), sa.LargeBinary) else
                        "bigint" if isinstance(type_, sa.BigInteger) else
                        "integer" if isinstance(type_, sa.Integer) else "text")
            assert cast == expected, (table, name)
