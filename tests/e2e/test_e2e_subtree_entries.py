"""ListEntries with include_descendants over the real gRPC wire, on SQLite and PostgreSQL: an account's
statement with every entry of its subtree, one timeline in posting order (voucher sequence, then line number),
paged with no gap or duplicate (pages cut by size and by bytes), each entry naming its account, bounded to
100 accounts, date filters served, another tenant's account refused."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.service import paging
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import types_pb2
from tests.e2e.conftest import BACKENDS, Server, error_info, md, module_server, ref, walk
from tests.e2e.test_e2e_hierarchy import child

T = "acme"
OTHER = "globex"
# Small enough that a page of 50 entries is cut by bytes (an entry is about 150 bytes on the wire).
PAGE_BYTES_MAX = 1_500


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with module_server(request, tmp_path_factory, page_bytes_max=PAGE_BYTES_MAX) as server:
        yield server


def subtree_entries(server: Server, root: str, page_size: int = 50, tenant: str = T, **filters
                    ) -> list[types_pb2.Entry]:
    return list(walk(lambda token: server.accounts().ListEntries(acc_pb.ListEntriesRequest(
        account=ref(root), page_size=page_size, page_token=token, include_descendants=True, **filters),
        metadata=md(tenant)), "entries"))


def expected(server: Server, codes: list[str], tenant: str = T) -> list[tuple]:
    """The union of each account's own statement, in voucher sequence then line number order."""
    sequence = {v.id: v.sequence for v in server.all_vouchers(tenant)}
    union = [(sequence[e.voucher_id], e.line_no, e.voucher_id, e.account_id, e.entry_number, e.balance_after, code)
             for code in codes for e in server.all_entries(tenant, code)]
    return sorted(union)


def keys(server: Server, entries: list[types_pb2.Entry], tenant: str = T) -> list[tuple]:
    sequence = {v.id: v.sequence for v in server.all_vouchers(tenant)}
    return [(sequence[e.voucher_id], e.line_no, e.voucher_id, e.account_id, e.entry_number, e.balance_after,
             e.account_code) for e in entries]


def test_a_subtree_statement_is_one_timeline_in_posting_order(srv: Server) -> None:
    child(srv, "m", None)
    child(srv, "m-eu", "m")
    child(srv, "m-us", "m")
    child(srv, "m-us-pos", "m-us")
    child(srv, "outside", None)
    srv.fund(T, "m-eu", 300_000)
    srv.fund(T, "m-us", 200_000)
    srv.fund(T, "outside", 1_000)
    for i in range(6):  # transfers inside the subtree put two of its lines in one voucher
        srv.transfer(T, "m-us", "m-us-pos", 10 + i)
        srv.transfer(T, "m-eu", "m", 20 + i)
        srv.transfer(T, "outside", "m-eu", 1 + i)
    for i in range(5):  # a run of one account's entries: a page may be all of one account
        srv.fund(T, "m-us-pos", 1 + i)
    codes = ["m", "m-eu", "m-us", "m-us-pos"]
    want = expected(srv, codes)
    assert len(want) == 2 + 4 * 6 + 6 + 5  # fundings, both lines of inner transfers, the outside's credits, a run

    for page_size in (1, 2, 7, 50, 500):  # 50 and 500 are cut by bytes, not by size
        got = subtree_entries(srv, "m", page_size)
        assert keys(srv, got) == want, page_size
    response = srv.accounts().ListEntries(acc_pb.ListEntriesRequest(account=ref("m"), page_size=500,
                                                                    include_descendants=True), metadata=md(T))
    assert 1 < len(response.entries) < len(want) and response.next_page_token  # the byte bound cut the page
    assert response.opening_balance == 0  # entries of several accounts: no one balance opens the page
    # A sub-subtree lists its own part only, and the plain statement names its account too.
    assert keys(srv, subtree_entries(srv, "m-us")) == expected(srv, ["m-us", "m-us-pos"])
    assert {e.account_code for e in srv.all_entries(T, "m-eu")} == {"m-eu"}


def test_pages_have_no_gap_or_duplicate_while_the_ledger_and_the_tree_grow(srv: Server) -> None:
    child(srv, "g", None)
    child(srv, "g-a", "g")
    srv.fund(T, "g", 500)
    srv.fund(T, "g-a", 500)
    request = acc_pb.ListEntriesRequest(account=ref("g"), page_size=1, include_descendants=True)
    first = srv.accounts().ListEntries(request, metadata=md(T))
    # Between pages: more postings, and an account joins the subtree (it has no cursor in the token yet).
    child(srv, "g-b", "g-a")
    srv.fund(T, "g-b", 70)
    srv.transfer(T, "g-a", "g", 5)
    rest = list(walk(lambda token: srv.accounts().ListEntries(acc_pb.ListEntriesRequest(
        account=ref("g"), page_size=1, include_descendants=True, page_token=token or first.next_page_token),
        metadata=md(T)), "entries"))
    assert keys(srv, [*first.entries, *rest]) == expected(srv, ["g", "g-a", "g-b"])


def test_an_account_without_a_cursor_resumes_from_the_position(srv: Server) -> None:
    """A token whose cursors leave an account out (as when it joined the subtree between pages) resumes that
    account right after the position, found by a binary search of its entries."""
    child(srv, "r", None)
    child(srv, "r-a", "r")
    for i in range(5):
        srv.fund(T, "r", 1 + i)
        srv.fund(T, "r-a", 100 + i)
    want = expected(srv, ["r", "r-a"])
    root_id = srv.balance(T, "r").account_id
    query = {"list": "subtree-entries", "tenant": T, "account": root_id, "start": "", "end": ""}
    for cut in range(len(want)):
        sequence, line_no = want[cut][:2]
        root_cursor = max([w[4] for w in want[:cut + 1] if w[6] == "r"], default=0)
        token = paging.encode({"s": sequence, "l": line_no, "c": {root_id: root_cursor}}, query)
        got = list(walk(lambda t, first=token: srv.accounts().ListEntries(acc_pb.ListEntriesRequest(
            account=ref("r"), page_size=3, include_descendants=True, page_token=t or first), metadata=md(T)),
            "entries"))
        assert keys(srv, got) == want[cut + 1:], cut


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(data=st.data())
def test_a_subtree_listing_equals_the_union_of_its_accounts_listings(srv: Server, data: st.DataObject) -> None:
    prefix = srv.request_id("p")
    count = data.draw(st.integers(1, 6), label="accounts")
    parents: list[int | None] = [None]
    for i in range(1, count):
        parents.append(data.draw(st.integers(0, i - 1), label=f"parent of {i}"))
    codes = [f"{prefix}-{i}" for i in range(count)]
    for code, parent in zip(codes, parents, strict=True):
        child(srv, code, None if parent is None else codes[parent])
    for code in codes:
        srv.fund(T, code, 1_000)
    runs = data.draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(1, 6)), max_size=3), label="runs")
    for i, length in runs:  # runs of one account's entries: a page may be all of one account
        for _ in range(length):
            srv.fund(T, codes[i], 1 + i)
    for source, destination, amount in data.draw(st.lists(st.tuples(
            st.integers(0, count - 1), st.integers(0, count - 1), st.integers(1, 100)), max_size=8), label="moves"):
        if source != destination:
            srv.transfer(T, codes[source], codes[destination], amount)
    root = data.draw(st.integers(0, count - 1), label="root")

    def under(i: int) -> list[int]:
        below = [j for j, p in enumerate(parents) if p == i]
        return [i, *[d for j in below for d in under(j)]]

    page_size = data.draw(st.integers(1, 12), label="page size")
    got = subtree_entries(srv, codes[root], page_size)
    assert keys(srv, got) == expected(srv, [codes[i] for i in under(root)])


def test_a_subtree_is_bounded_to_100_accounts(srv: Server) -> None:
    child(srv, "big", None)
    for i in range(99):
        child(srv, f"big-{i}", "big")
    srv.fund(T, "big-98", 9)
    assert [e.account_code for e in subtree_entries(srv, "big")] == ["big-98"]  # 100 accounts: served
    child(srv, "big-99", "big-0")
    with pytest.raises(grpc.RpcError) as caught:
        subtree_entries(srv, "big")
    code, reason, meta = error_info(caught.value)
    assert (code, reason, meta["accounts_max"]) == (grpc.StatusCode.FAILED_PRECONDITION, "SUBTREE_TOO_LARGE", "100")
    assert len(subtree_entries(srv, "big-0")) == 0  # a smaller subtree of it is still served


def test_date_filters_apply_to_the_subtree(srv: Server) -> None:
    child(srv, "d", None)
    child(srv, "d-a", "d")
    srv.fund(T, "d", 3)
    srv.fund(T, "d-a", 4)
    today = srv.all_entries(T, "d")[0].accounting_date
    day = datetime.date.fromisoformat(today)
    before, after = (day - datetime.timedelta(days=1)).isoformat(), (day + datetime.timedelta(days=1)).isoformat()
    assert len(subtree_entries(srv, "d", 1, start_date=today, end_date=today)) == 2
    assert len(subtree_entries(srv, "d", 1, start_date=before)) == 2
    assert subtree_entries(srv, "d", start_date=after) == []
    assert subtree_entries(srv, "d", end_date=before) == []
    with pytest.raises(grpc.RpcError) as caught:
        subtree_entries(srv, "d", start_date="2026-13-01")
    assert error_info(caught.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "DATE_INVALID")
    # A token belongs to its query: the same token with other dates is refused.
    token = srv.accounts().ListEntries(acc_pb.ListEntriesRequest(account=ref("d"), page_size=1,
                                                                 include_descendants=True),
                                       metadata=md(T)).next_page_token
    with pytest.raises(grpc.RpcError) as caught:
        srv.accounts().ListEntries(acc_pb.ListEntriesRequest(account=ref("d"), page_size=1, page_token=token,
                                                             include_descendants=True, start_date=before),
                                   metadata=md(T))
    assert error_info(caught.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")


def test_another_tenants_account_is_refused(srv: Server) -> None:
    theirs = srv.create_account(OTHER, "t-root", "deposit")
    srv.create_account(OTHER, "t-leaf", "deposit")
    srv.fund(OTHER, "t-root", 5)
    with pytest.raises(grpc.RpcError) as caught:
        subtree_entries(srv, types_pb2.AccountRef(id=theirs.id))
    assert error_info(caught.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_NOT_ACCESSIBLE")
    with pytest.raises(grpc.RpcError) as caught:
        subtree_entries(srv, "t-root")
    assert error_info(caught.value)[:2] == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    assert [e.amount for e in subtree_entries(srv, "t-root", tenant=OTHER)] == [5]
