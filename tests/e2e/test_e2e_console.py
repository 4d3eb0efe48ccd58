"""The web console over real HTTP, beside a real server on SQLite and PostgreSQL: sign-in, the same role and
tenant checks as the gRPC API, and what each view shows."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from tally.console.server import CONNECTIONS_MAX
from tally.service.books.auditor import list_audit_log
from tally.storage.audit_repo import AuditFilter
from tests.e2e.conftest import BACKENDS, Server, wait_until
from tests.e2e.console_support import (
    CLEARING,
    FUNDED_UNITS,
    HELD_UNITS,
    SENT_UNITS,
    STATEMENT,
    Ledger,
    cells,
    client,
    console_server,
    token,
)


@pytest.fixture(scope="module", params=BACKENDS)
def console(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Ledger]]:
    with console_server(request, tmp_path_factory) as found:
        yield found


def test_without_credentials_every_view_answers_the_sign_in_page(console) -> None:
    _, ledger = console
    with client(ledger) as http:
        page = http.get("/accounts/alice")
        assert page.status_code == 401
        assert 'action="/login"' in page.text and 'name="next" value="/accounts/alice"' in page.text
        assert "alice" not in page.text.replace("/accounts/alice", "")
        feed = http.get("/events.json?after=0")
        assert feed.status_code == 401 and feed.json()["reason"] == "CREDENTIALS_MISSING"
        assert http.get("/", headers={"Cookie": "tally_console=tly_nokey"}).status_code == 401


def test_sign_in_sets_an_http_only_strict_cookie_that_reads_the_pages(console) -> None:
    _, ledger = console
    with client(ledger) as http:
        malformed = http.post("/login", data={"key": "tly_wrong", "next": "/holds"})
        assert malformed.status_code == 401 and "CREDENTIALS_MALFORMED" in malformed.text
        wrong = ledger.reader_key[:-1] + ("A" if ledger.reader_key[-1] != "A" else "B")
        refused = http.post("/login", data={"key": wrong, "next": "/holds"})
        assert refused.status_code == 401 and "CREDENTIALS_INVALID" in refused.text
        assert "set-cookie" not in refused.headers and "set-cookie" not in malformed.headers
        signed_in = http.post("/login", data={"key": ledger.reader_key, "next": "/holds"})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/holds"
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert http.get("/holds").status_code == 200  # the cookie jar sends it back
        assert http.post("/login", data={"key": ledger.reader_key, "next": "//evil.example/"}
                         ).headers["location"] == "/"
        cross_site = http.post("/login", data={"key": ledger.reader_key}, headers={"Origin": "http://evil.example"})
        assert cross_site.status_code == 403 and "set-cookie" not in cross_site.headers
        assert http.post("/login", data={"key": ledger.reader_key}, headers={"Origin": "null"}).status_code == 403
        same_site = http.post("/login", data={"key": ledger.reader_key}, headers={"Origin": ledger.console_url})
        assert same_site.status_code == 303
        out = http.post("/logout")
        assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]


def test_a_key_of_one_tenant_cannot_read_another_tenants_account_or_voucher(console) -> None:
    _, ledger = console
    with client(ledger, ledger.admin_key) as http:
        account = http.get(f"/accounts/{ledger.other_account_id}")
        assert account.status_code == 403 and "ACCOUNT_NOT_ACCESSIBLE" in account.text
        voucher = http.get(f"/vouchers/{ledger.other_voucher_id}")
        assert voucher.status_code == 403 and "VOUCHER_NOT_ACCESSIBLE" in voucher.text
        assert http.get("/accounts/secret").status_code == 404  # a code is a name in the caller's own tenant
        assert "secret" not in http.get("/").text
    with client(ledger, ledger.other_key) as http:  # the owner sees both
        assert http.get(f"/accounts/{ledger.other_account_id}").status_code == 200
        assert "secret" in http.get(f"/vouchers/{ledger.other_voucher_id}").text


def test_tokens_sign_in_like_keys(console) -> None:
    _, ledger = console
    with client(ledger, token("console-a", "reader")) as http:
        assert ">alice<" in http.get("/").text
        assert http.get("/audit").status_code == 403
        assert http.get(f"/vouchers/{ledger.other_voucher_id}").status_code == 403
    with client(ledger, token("console-a", "auditor")) as http:
        assert http.get("/audit").status_code == 200
    with client(ledger, token("console-a", "reader", lifetime_s=-60)) as http:
        assert http.get("/").status_code == 401
    with client(ledger) as http:
        assert http.post("/login", data={"key": token("console-b", "reader")}).status_code == 303
        assert ">secret<" in http.get("/").text


def test_roles_are_checked_as_for_the_rpcs_and_refusals_are_audited(console) -> None:
    srv, ledger = console
    with client(ledger, ledger.reader_key) as http:
        refused = http.get("/audit")
        assert refused.status_code == 403 and "ROLE_NOT_ALLOWED" in refused.text
        assert http.get("/trial-balance").status_code == 200
    with client(ledger, ledger.poster_key) as http:
        assert http.get("/audit").status_code == 403
    uow = srv.app.services.uow

    def audited() -> bool:
        rows = list_audit_log(uow, "console-a", AuditFilter(action="ListAuditLog"), 50, "").rows
        return any(r.outcome == "denied:ROLE_NOT_ALLOWED" and r.peer.startswith("console:") for r in rows)

    wait_until(audited, "the console's refusal in the audit log", timeout_s=10)
    with client(ledger, ledger.admin_key) as http:
        page = http.get("/audit?action=ListAuditLog")
        assert page.status_code == 200 and "denied:ROLE_NOT_ALLOWED" in page.text


def test_accounts_tree_shows_roll_ups_and_escapes_names(console) -> None:
    _, ledger = console
    with client(ledger, ledger.reader_key) as http:
        page = http.get("/")
    assert page.status_code == 200
    assert "Merchant &lt;b&gt;HQ&lt;/b&gt;" in page.text and "<b>HQ" not in page.text
    tree = page.text[page.text.index('<ul class="tree">'):]
    merchant = tree.index(">merchant<")
    assert merchant < tree.index(">merchant-eu<") and merchant < tree.index(">merchant-us<")
    assert re.search(r'class="rollup"><strong[^>]*><span class="amount">1\.000000 USD</span>', tree)
    with client(ledger, ledger.reader_key) as http:
        alone = http.get("/?size=1").text  # the parent alone, its children on later pages
    assert ">merchant-us<" not in alone
    assert re.search(r'class="rollup"><strong[^>]*><span class="amount">1\.000000 USD', alone)
    assert "12.345678 USD" not in tree  # alice holds 10.345678 USD after the transfer
    assert f"{(FUNDED_UNITS - SENT_UNITS) // 1_000_000}.{(FUNDED_UNITS - SENT_UNITS) % 1_000_000:06d} USD" in tree


def test_account_view_shows_balances_and_pages_the_statement(console) -> None:
    _, ledger = console
    with client(ledger, ledger.reader_key) as http:
        first = http.get("/accounts/alice?size=1")
        assert first.status_code == 200
        balances = cells(first.text, "balances")[0]
        assert balances[:3] == ["10.345678 USD", "0.300000 USD", "10.045678 USD"]
        [entry] = cells(first.text, "statement")
        assert entry[0] == "1" and entry[7] == "12.345678 USD" and entry[8] == "12.345678 USD"
        next_page = re.search(r'<a href="([^"]+)" rel="next">', first.text).group(1).replace("&amp;", "&")
        [second] = cells(http.get(next_page).text, "statement")
        assert second[0] == "2" and second[6] == "2.000000 USD" and second[8] == "10.345678 USD"
        assert http.get(f"/accounts/{ledger.alice_id}").status_code == 200  # by id as well as by code


def test_voucher_view_draws_one_path_per_line(console) -> None:
    _, ledger = console
    with client(ledger, ledger.reader_key) as http:
        page = http.get(f"/vouchers/{ledger.transfer_voucher_id}")
    assert page.status_code == 200
    svg = re.search(r"<svg .*?</svg>", page.text, re.S).group(0)
    lines = cells(page.text, "lines")
    assert len(lines) == 2 and len(re.findall(r'<path d="M[^"]*" stroke-width="\d+" class="flow', svg)) == 2
    debit_box, credit_box = svg.index('class="box debit"'), svg.index('class="box credit"')
    assert svg.index(">alice<", debit_box) < credit_box < svg.index(">bob<", credit_box)  # money goes alice -> bob
    assert "2.000000 USD" in svg
    assert {(row[1], row[2], row[3]) for row in lines} == {("alice", "2.000000 USD", ""), ("bob", "", "2.000000 USD")}
    assert ledger.transfer_voucher_id[-8:] in http_get(ledger, "/vouchers?account=alice").text


def test_books_days_holds_and_events(console) -> None:
    _, ledger = console
    with client(ledger, ledger.reader_key) as http:
        trial = cells(http.get("/trial-balance").text, "trial-balance")
        assert [row[0] for row in trial] == ["USD"] and trial[0][5] == "balanced" and trial[0][1] == trial[0][2]
        days = http.get("/days").text
        assert f">{ledger.day}<" in days and "NOT balanced" not in days
        day = http.get(f"/days/{ledger.day}").text
        assert "<td>closed</td>" in day
        closing = {row[0]: row[1] for row in cells(day, "closing")}
        assert closing["alice"] == "10.345678 USD" and closing["bob"] == "2.000000 USD"
        holds = cells(http.get("/holds").text, "holds")
        assert [(h[1], h[2], h[4]) for h in holds] == [("alice", f"0.{HELD_UNITS:06d} USD", "active")]
        assert " min " in holds[0][5]
        assert "No released holds." in http.get("/holds?state=released").text
        assert http.get("/holds?state=bogus").status_code == 400
        events = http.get("/events")
        assert events.status_code == 200 and "/static/events.js" in events.text
        after = int(re.search(r'data-after="(\d+)"', events.text).group(1))
        everything = http.get("/events.json?after=0").json()["events"]
        assert [e["sequence"] for e in everything] == sorted(e["sequence"] for e in everything)
        assert everything[-1]["sequence"] == after and {"ledger.entry.posted", "balance.hold.created"} <= {
            e["type"] for e in everything}
        assert http.get(f"/events.json?after={after}").json() == {"after": after, "events": []}
        assert http.get("/reconciliation").status_code == 200
        missing = http.get("/reconciliation?account=alice&statement=nope")
        assert missing.status_code == 404 and "STATEMENT_NOT_FOUND" in missing.text


def test_reconciliation_report(console) -> None:
    _, ledger = console
    with client(ledger, ledger.reader_key) as http:
        page = http.get(f"/reconciliation?{urlencode({'account': CLEARING, 'statement': STATEMENT})}")
    assert page.status_code == 200
    counts = {row[0]: row[1:] for row in cells(page.text, "recon-counts")}
    assert counts["matched"] == ["1", "5.000000 USD", "5.000000 USD", "0"]
    assert counts["difference"] == ["1", "3.000000 USD", "2.990000 USD", "1"]
    [proof] = cells(page.text, "proof")
    assert proof == ["8.000000 USD", "0.000000 USD", "0.010000 USD", "7.990000 USD", "yes"]
    [open_item] = cells(page.text, "recon-items")
    assert open_item[1:] == ["difference", "reference", "3.000000 USD", "2.990000 USD", "0.010000 USD"]


def test_bounded_and_read_only(console) -> None:
    _, ledger = console
    with client(ledger, ledger.admin_key) as http:
        assert http.post("/accounts/alice").status_code == 405
        assert http.request("PUT", "/").status_code == 501
        assert http.post("/login", content=b"key=" + b"x" * 5000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 413
        assert http.get("/" + "a" * 3000).status_code == 414
        assert http.get("/nothing-here").status_code == 404
        too_many = "&".join(f"p{i}=1" for i in range(20))
        assert http.get(f"/holds?{too_many}").status_code == 400
        page = http.get("/")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store" and page.headers["x-content-type-options"] == "nosniff"
        assert http.get("/static/console.css").status_code == 200


def test_connections_past_the_limit_are_answered_503(console) -> None:
    _, ledger = console
    port = int(ledger.console_url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(CONNECTIONS_MAX)]
    try:
        wait_until(lambda: _answer(port).startswith(b"HTTP/1.0 503"), "a refusal past the connection limit",
                   timeout_s=10, interval_s=0.05)
    finally:
        for conn in idle:
            conn.close()
    wait_until(lambda: _answer(port).startswith(b"HTTP/1.0 401"), "the console serving again", timeout_s=10,
               interval_s=0.05)


def _answer(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return conn.recv(64)


def http_get(ledger: Ledger, path: str):
    with client(ledger, ledger.reader_key) as http:
        return http.get(path)
