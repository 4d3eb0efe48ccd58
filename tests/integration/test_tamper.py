"""Tamper evidence: vouchers posted through the service, then edited directly with SQL as the database
owner (PostgreSQL as the superuser that owns the schema, which row security does not stop; SQLite as
the file's owner). verify_chain, VerifyChain over the wire and `tally verify` recompute the tenant's hash
chain and must name the first voucher that does not check out, and why; an untouched ledger is intact.

What the chain can and cannot show:
* an edited line or voucher field breaks that voucher's own hash: it is named;
* an edit whose stored hash was rewritten to match breaks the next voucher's link: that one is named
  (or, for the newest voucher, the ledger head no longer matches);
* a removed voucher leaves a gap in the sequence: the voucher after it is named;
* a complete rewrite (every later hash and the head recomputed) is internally consistent again: only a
  head hash kept outside the database, compared with the new one, reveals it.
"""

from __future__ import annotations

import dataclasses

import grpc
import pytest
import sqlalchemy as sa

from tally import cli
from tally.domain.accounts import Side
from tally.domain.auth import Role
from tally.domain.vouchers import voucher_hash
from tally.service.auth import keys
from tally.service.books.verify import ChainReport, verify_chain
from tally.service.posting.pipeline import now_us
from tally.v1 import bookkeeping_service_pb2 as bk_pb
from tally.v1 import bookkeeping_service_pb2_grpc as bk_grpc
from tests.e2e.conftest import TenantKeys, e2e_settings, md, running_server
from tests.integration.conftest import FUNDING, TENANT, Ledger, load_facts

CONTENT = "its content does not match its hash"
LINK = "its link to the previous voucher does not match that voucher's hash"
OTHER_TENANT = "globex"


async def post_history(ledger: Ledger) -> list[str]:
    """Six vouchers of TENANT (a funding adjustment, four transfers, a reversal) and two of another
    tenant; returns TENANT's voucher ids in sequence order."""
    ledger.open("alice")
    ledger.open("bob")
    ids = [(await ledger.fund("alice", 10_000)).vouchers[0].id]
    for n in range(1, 5):
        posted = await ledger.transfer("alice", "bob", 100 * n, memo=f"transfer {n}", line_memo=f"line {n}")
        ids.append(posted.vouchers[0].id)
    ids.append((await ledger.reverse(ids[2])).vouchers[0].id)
    ledger.open_internal(FUNDING, tenant=OTHER_TENANT)
    ledger.open("carol", tenant=OTHER_TENANT)
    await ledger.fund("carol", 500, tenant=OTHER_TENANT)
    await ledger.adjust([(FUNDING, Side.DEBIT, 7), ("carol", Side.CREDIT, 7)], tenant=OTHER_TENANT)
    return ids


def as_owner(url: str, sql: str, **params) -> int:
    """Runs one statement as the database owner (outside the service) and returns the rows it changed."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            return conn.execute(sa.text(sql), params).rowcount
    finally:
        engine.dispose()


def rehash(url: str, voucher_id: str, *, and_later: bool = False) -> None:
    """Rewrites the stored hash of an (edited) voucher so it matches its content again; with `and_later`,
    every later voucher's link and hash and the ledger head too: a complete, consistent rewrite."""
    vouchers = load_facts(url).vouchers[TENANT]
    start = next(i for i, v in enumerate(vouchers) if v.id == voucher_id)
    previous = vouchers[start].previous_hash
    for voucher in vouchers[start:] if and_later else vouchers[start:start + 1]:
        voucher = dataclasses.replace(voucher, previous_hash=previous)
        new_hash = voucher_hash(voucher, previous)
        assert as_owner(url, "UPDATE vouchers SET previous_hash = :p, hash = :h WHERE id = :id",
                        p=bytes.fromhex(previous), h=bytes.fromhex(new_hash), id=voucher.id) == 1  # 32 bytes each
        previous = new_hash
    if and_later:
        assert as_owner(url, "UPDATE ledger_heads SET last_hash = :h WHERE tenant_id = :t", h=previous, t=TENANT) == 1


def verify(ledger: Ledger, tenant: str = TENANT) -> ChainReport:
    return verify_chain(ledger.uow, tenant)


def assert_broken_at(report: ChainReport, voucher_id: str, sequence: int, problem: str,
                     checked: int | None = None) -> None:
    assert not report.intact
    assert (report.broken_voucher_id, report.broken_sequence, report.problem) == (voucher_id, sequence, problem)
    assert report.checked == (sequence - 1 if checked is None else checked)  # all before it checked out


async def test_an_untouched_ledger_is_intact(ledger: Ledger) -> None:
    ids = await post_history(ledger)
    report = verify(ledger)
    stored = load_facts(ledger.url).vouchers[TENANT]
    assert report == ChainReport(True, len(ids), stored[-1].hash)
    assert [v.id for v in stored] == ids
    assert verify(ledger, OTHER_TENANT).intact and verify(ledger, OTHER_TENANT).checked == 2
    assert verify(ledger, "nobody") == ChainReport(True, 0, "0" * 64)


async def test_an_edited_line_amount_is_named(ledger: Ledger) -> None:
    ids = await post_history(ledger)
    assert as_owner(ledger.url, "UPDATE voucher_lines SET amount = amount + 1 WHERE voucher_id = :v AND line_no = 1",
                    v=ids[3]) == 1
    assert_broken_at(verify(ledger), ids[3], 4, CONTENT)
    assert verify(ledger, OTHER_TENANT).intact  # another tenant's chain is its own


async def test_a_balanced_edit_of_every_line_is_named(ledger: Ledger) -> None:
    """The smarter edit keeps the voucher balanced (both lines changed alike): still named."""
    ids = await post_history(ledger)
    assert as_owner(ledger.url, "UPDATE voucher_lines SET amount = 999 WHERE voucher_id = :v", v=ids[1]) == 2
    assert_broken_at(verify(ledger), ids[1], 2, CONTENT)


async def test_an_edited_memo_is_named(ledger: Ledger) -> None:
    ids = await post_history(ledger)
    assert as_owner(ledger.url, "UPDATE vouchers SET memo = 'nothing to see' WHERE id = :v", v=ids[2]) == 1
    assert_broken_at(verify(ledger), ids[2], 3, CONTENT)


@pytest.mark.parametrize(("column", "value"), [
    ("side", "CASE side WHEN 'debit' THEN 'credit' ELSE 'debit' END"),
    ("account_id", "(SELECT id FROM accounts WHERE code = 'mallory' AND tenant_id = :t)"),  # another account
    ("currency", "'EUR'"),
    ("memo", "'x'"),
    ("balance_after", "balance_after + 5"),
    ("entry_number", "entry_number + 100"),
])
async def test_every_hashed_line_field_is_covered(ledger: Ledger, column: str, value: str) -> None:
    ids = await post_history(ledger)
    ledger.open("mallory")
    sql = f"UPDATE voucher_lines SET {column} = {value} WHERE voucher_id = :v AND line_no = 2"
    assert as_owner(ledger.url, sql, v=ids[4], t=TENANT) == 1
    assert_broken_at(verify(ledger), ids[4], 5, CONTENT)


async def test_an_edit_with_a_rewritten_hash_breaks_the_next_link(ledger: Ledger) -> None:
    ids = await post_history(ledger)
    assert as_owner(ledger.url, "UPDATE voucher_lines SET amount = 1 WHERE voucher_id = :v", v=ids[1]) == 2
    rehash(ledger.url, ids[1])
    assert_broken_at(verify(ledger), ids[2], 3, LINK)  # voucher 2 checks out now; 3 no longer links to it


async def test_the_newest_voucher_rewritten_is_caught_by_the_head(ledger: Ledger) -> None:
    ids = await post_history(ledger)
    assert as_owner(ledger.url, "UPDATE vouchers SET memo = 'rewritten' WHERE id = :v", v=ids[-1]) == 1
    rehash(ledger.url, ids[-1])
    report = verify(ledger)
    assert not report.intact and report.checked == len(ids)
    assert report.broken_voucher_id == "" and report.problem.startswith(f"the head records voucher {len(ids)}")


async def test_a_removed_voucher_leaves_a_gap_that_is_named(ledger: Ledger) -> None:
    ids = await post_history(ledger)
    as_owner(ledger.url, "DELETE FROM voucher_lines WHERE voucher_id = :v", v=ids[3])
    assert as_owner(ledger.url, "DELETE FROM vouchers WHERE id = :v", v=ids[3]) == 1
    assert_broken_at(verify(ledger), ids[4], 5, "sequence 5 where 4 was expected", checked=3)


async def test_a_complete_rewrite_shows_only_in_the_head_hash(ledger: Ledger) -> None:
    """Whoever can rewrite every later voucher and the head makes the chain consistent again. The head
    hash changes, so comparing it with one recorded earlier (outside the database) reveals the rewrite."""
    ids = await post_history(ledger)
    recorded = verify(ledger).head_hash
    assert as_owner(ledger.url, "UPDATE voucher_lines SET amount = 1 WHERE voucher_id = :v", v=ids[1]) == 2
    rehash(ledger.url, ids[1], and_later=True)
    report = verify(ledger)
    assert report.intact and report.checked == len(ids)
    assert report.head_hash != recorded


@pytest.mark.parametrize("edit", ["accounting_date = '1999-12-31'", "posted_us = posted_us - 1"])
async def test_a_line_moved_to_another_date_or_time_is_named(ledger: Ledger, edit: str) -> None:
    """Lines keep their own copies of the voucher's accounting date and posting time (statements and as-of
    balances read them); a copy that differs from its voucher's breaks that voucher."""
    ids = await post_history(ledger)
    assert as_owner(ledger.url, f"UPDATE voucher_lines SET {edit} WHERE voucher_id = :v", v=ids[2]) == 2
    assert_broken_at(verify(ledger), ids[2], 3, CONTENT)


def tally_verify(capsys, target: str, key: str) -> tuple[int, str]:
    """`tally verify --full --target T --api-key K`: exit status and what it printed."""
    capsys.readouterr()
    status = cli.main(["verify", "--full", "--target", target, "--api-key", key])
    return status, capsys.readouterr().out


async def test_verify_chain_over_the_wire_names_the_edited_voucher(ledger: Ledger, capsys) -> None:
    ids = await post_history(ledger)
    with running_server(e2e_settings(ledger.url)) as server:
        stub = bk_grpc.BookkeepingServiceStub(server.channel())
        intact = stub.VerifyChain(bk_pb.VerifyChainRequest(), metadata=md(TENANT))
        assert (intact.intact, intact.vouchers_checked, intact.first_broken_voucher_id) == (True, len(ids), "")
        operator = keys.create_key(TenantKeys.for_target(server.target).uow, TENANT, Role.OPERATOR, "verify",
                                   "tamper-test", now_us).secret_key
        status, out = tally_verify(capsys, server.target, operator)
        assert status == 0 and out.startswith(f"intact: {len(ids)} vouchers checked"), out

        assert as_owner(ledger.url, "UPDATE voucher_lines SET amount = amount * 10 WHERE voucher_id = :v "
                                    "AND line_no = 2", v=ids[2]) == 1
        # A routine run starts at the checkpoint the first run left (after the last voucher): only a full
        # run recomputes the hashes of vouchers it has verified before.
        routine = stub.VerifyChain(bk_pb.VerifyChainRequest(), metadata=md(TENANT))
        assert routine.vouchers_read == 0 and routine.from_sequence == len(ids)
        broken = stub.VerifyChain(bk_pb.VerifyChainRequest(full=True), metadata=md(TENANT))
        assert not broken.intact
        assert (broken.first_broken_voucher_id, broken.first_broken_sequence, broken.problem) == (ids[2], 3, CONTENT)
        assert broken.vouchers_checked == 2 and broken.head_hash == intact.head_hash
        status, out = tally_verify(capsys, server.target, operator)  # the operator's command names it too
        assert status == cli.EXIT_REFUSED and out.startswith("BROKEN: 2 vouchers checked"), out
        assert ids[2] in out and CONTENT in out, out

        other = stub.VerifyChain(bk_pb.VerifyChainRequest(), metadata=md(OTHER_TENANT))
        assert other.intact and other.vouchers_checked == 2

        with pytest.raises(grpc.RpcError) as caught:  # verification is an operator's: no credential, no answer
            stub.VerifyChain(bk_pb.VerifyChainRequest())
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
