"""FaultProxy against a real PostgreSQL: it relays faithfully, delays, resets, and loses COMMIT answers.

The drop-after-commit tests check both halves of the fault: the client sees a broken connection, and the
commit has nevertheless happened (read straight from the server, not through the proxy).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from reliability.pgwire import COMMIT_PARSE, COMMIT_QUERY, OPAQUE, READY, SSL_REQUEST_CODE, SYNC, WireTracker
from reliability.proxy import FaultProxy

BIG_NOTE_BYTES = 300_000  # several 64 KiB chunks: the parser must follow a message across chunk borders
WAIT_S = 10


def _conninfo(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def proxy(postgres_url) -> Iterator[FaultProxy]:
    server = make_url(postgres_url)
    with FaultProxy(server.host or "127.0.0.1", server.port or 5432) as running:
        yield running


@pytest.fixture
def proxied_url(postgres_url, proxy) -> URL:
    """SQLAlchemy URL of the test database, through the proxy, with no TLS / GSS negotiation."""
    url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    return url.update_query_dict({"sslmode": "disable", "gssencmode": "disable"})


@pytest.fixture
def direct(postgres_url) -> Iterator[psycopg.Connection]:
    """Autocommit connection straight to the server, with the test table created."""
    with psycopg.connect(_conninfo(make_url(postgres_url)), autocommit=True) as conn:
        conn.execute("CREATE TABLE entries (id bigint PRIMARY KEY, amount_minor bigint NOT NULL, note text)")
        yield conn


@pytest.fixture
def engine_factory() -> Iterator[Callable[..., sa.Engine]]:
    engines: list[sa.Engine] = []

    def make(url: URL) -> sa.Engine:
        engines.append(sa.create_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def _ids(direct: psycopg.Connection) -> list[int]:
    return [row[0] for row in direct.execute("SELECT id FROM entries ORDER BY id")]


def _wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        time.sleep(0.02)


INSERT = "INSERT INTO entries (id, amount_minor, note) VALUES (%s, %s, %s)"
INSERT_SA = sa.text("INSERT INTO entries (id, amount_minor, note) VALUES (:id, :amount_minor, :note)")


# -- pass-through ----------------------------------------------------------------------------


def test_relays_queries_and_write_transactions(proxy, proxied_url, direct, engine_factory):
    engine = engine_factory(proxied_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 40 + 2")).scalar_one() == 42
        assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == proxied_url.database
    with engine.begin() as conn:
        conn.execute(INSERT_SA, [{"id": 1, "amount_minor": 1250, "note": "x" * BIG_NOTE_BYTES}])
        conn.execute(INSERT_SA, [{"id": 2, "amount_minor": -1250, "note": "small"}])
    with engine.connect() as conn:  # a big answer also comes back whole
        assert conn.execute(sa.text("SELECT note FROM entries WHERE id = 1")).scalar_one() == "x" * BIG_NOTE_BYTES

    assert direct.execute("SELECT id, amount_minor FROM entries ORDER BY id").fetchall() == [(1, 1250), (2, -1250)]
    stats = proxy.stats()
    assert stats["commits_seen"] == 1
    assert stats["commits_dropped"] == 0
    assert stats["connections_accepted"] >= 1


# -- latency ---------------------------------------------------------------------------------


def test_latency_delays_each_round_trip_and_keeps_order(proxy, proxied_url):
    with psycopg.connect(_conninfo(proxied_url), autocommit=True) as conn:
        proxy.set_latency_ms(50)
        started = time.monotonic()
        assert conn.execute("SELECT 1").fetchone() == (1,)
        elapsed_ms = (time.monotonic() - started) * 1000
        assert elapsed_ms >= 40, f"round trip took {elapsed_ms:.1f} ms with 50 ms latency each way"

        with conn.pipeline():  # many requests in flight at once: answers must come back in order
            cursors = [conn.execute("SELECT %s::int", [i]) for i in range(50)]
        assert [cur.fetchone()[0] for cur in cursors] == list(range(50))

        proxy.set_latency_ms(0)
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_latency_is_bounded(proxy):
    with pytest.raises(ValueError):
        proxy.set_latency_ms(-1)
    with pytest.raises(ValueError):
        proxy.set_latency_ms(60_001)


# -- reset_all -------------------------------------------------------------------------------


def test_reset_all_breaks_open_connections_on_both_sides(proxy, proxied_url, direct):
    with psycopg.connect(_conninfo(proxied_url), autocommit=True) as victim:
        victim_pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert proxy.reset_all() == 1
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")

    def backend_gone() -> bool:
        return direct.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [victim_pid]).fetchone() == (0,)

    _wait_until(backend_gone, "the server side of the reset connection ends")
    with psycopg.connect(_conninfo(proxied_url), autocommit=True) as fresh:
        assert fresh.execute("SELECT 7").fetchone() == (7,)
    stats = proxy.stats()
    assert stats["connections_reset"] == 1
    assert stats["connections_accepted"] == 2


def test_reset_all_is_a_tcp_reset_not_an_orderly_close(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT_S) as raw:
        _wait_until(lambda: proxy.stats()["connections_open"] == 1, "the proxy holds the connection")
        assert proxy.reset_all() == 1
        with pytest.raises(ConnectionResetError):  # an orderly close would read b"" instead
            raw.recv(1)


# -- drop after commit -----------------------------------------------------------------------


def test_dropped_commit_fails_for_psycopg_but_is_committed(proxy, proxied_url, direct):
    proxy.arm_drop_after_commit(2)
    with psycopg.connect(_conninfo(proxied_url)) as conn:  # simple protocol: Query "COMMIT"
        conn.execute(INSERT, [1, 500, "x" * BIG_NOTE_BYTES])
        with pytest.raises(psycopg.OperationalError):
            conn.commit()
    # Pipeline mode uses the extended protocol (Parse "COMMIT"); commit() or the pipeline's exit raises.
    with psycopg.connect(_conninfo(proxied_url)) as conn, pytest.raises(psycopg.OperationalError), conn.pipeline():
        conn.execute(INSERT, [2, 700, "pipelined"])
        conn.commit()
    assert _ids(direct) == [1, 2]
    assert proxy.stats()["commits_dropped"] == 2

    with psycopg.connect(_conninfo(proxied_url)) as conn:  # the armed count is used up
        conn.execute(INSERT, [3, 900, "normal"])
        conn.commit()
    assert _ids(direct) == [1, 2, 3]
    stats = proxy.stats()
    assert (stats["commits_seen"], stats["commits_dropped"], stats["commits_armed"]) == (3, 2, 0)


def test_dropped_commit_invalidates_the_sqlalchemy_connection(proxy, proxied_url, direct, engine_factory):
    engine = engine_factory(proxied_url)
    proxy.arm_drop_after_commit()
    with pytest.raises(sa.exc.DBAPIError) as failure, engine.begin() as conn:
        conn.execute(INSERT_SA, [{"id": 10, "amount_minor": 100, "note": "lost answer"}])
    assert failure.value.connection_invalidated
    assert _ids(direct) == [10]

    with engine.begin() as conn:
        conn.execute(INSERT_SA, [{"id": 11, "amount_minor": 200, "note": "normal"}])
    assert _ids(direct) == [10, 11]
    assert proxy.stats()["commits_dropped"] == 1


SLOW_COMMIT = """
CREATE FUNCTION speak_then_wait() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'commit under way';  -- flushed to the client at once, long before the commit's answer
    PERFORM pg_sleep(0.3);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION speak_then_wait();
"""


def test_drop_waits_for_the_commit_answer_not_just_any_server_message(proxy, proxied_url, direct):
    """A proxy that dropped at the first server bytes (the NOTICE) would kill the commit half-way: the
    server notices the lost client (client_connection_check_interval) during the deferred trigger."""
    direct.execute(SLOW_COMMIT)
    proxy.arm_drop_after_commit()
    with psycopg.connect(_conninfo(proxied_url)) as conn:
        conn.execute("SET client_connection_check_interval = '10ms'")
        conn.execute(INSERT, [30, 400, "slow"])
        with pytest.raises(psycopg.OperationalError):
            conn.commit()
    assert _ids(direct) == [30]
    assert proxy.stats()["commits_dropped"] == 1


def test_drop_after_commit_survives_ssl_negotiation(proxy, proxied_url, direct):
    """With sslmode=prefer libpq first sends an SSLRequest; a server without TLS answers 'N'."""
    ssl_on = direct.execute("SHOW ssl").fetchone() == ("on",)
    proxy.arm_drop_after_commit()
    with psycopg.connect(_conninfo(proxied_url.update_query_dict({"sslmode": "prefer"}))) as conn:
        conn.execute(INSERT, [20, 300, "negotiated"])
        if ssl_on:  # encrypted: relayed untouched, so the COMMIT cannot be seen, let alone dropped
            conn.commit()
        else:
            with pytest.raises(psycopg.OperationalError):
                conn.commit()
    assert _ids(direct) == [20]
    assert proxy.stats()["commits_dropped"] == (0 if ssl_on else 1)


# -- the wire parser on its own ----------------------------------------------------------------


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + (len(body) + 4).to_bytes(4, "big") + body


def _startup() -> bytes:
    body = (196608).to_bytes(4, "big") + b"user\0postgres\0\0"
    return (len(body) + 4).to_bytes(4, "big") + body


SSL_REQUEST = (8).to_bytes(4, "big") + SSL_REQUEST_CODE.to_bytes(4, "big")


def _feed_bytewise(tracker: WireTracker, data: bytes) -> list[tuple[str, int]]:
    """Feed one byte at a time: every message spans chunks. Returns (kind, ordinal) per event."""
    events = []
    for i in range(len(data)):
        events += [(e.kind, e.ordinal) for e in tracker.from_client(data[i : i + 1])]
    return events


def test_tracker_finds_commits_across_chunk_borders():
    tracker = WireTracker()
    stream = (
        _startup()
        + _message(b"Q", b"BEGIN\0")
        + _message(b"Q", b"  commit ;\n\0")
        + _message(b"P", b"\0COMMIT\0\0\0")
        + _message(b"B", b"\0\0\0\0\0\0\0")
        + _message(b"S", b"")
        + _message(b"Q", b"COMMIT PREPARED 'x'\0")
    )
    assert _feed_bytewise(tracker, stream) == [
        (SYNC, 1),
        (COMMIT_QUERY, 2),
        (COMMIT_PARSE, 2),
        (SYNC, 3),
        (SYNC, 4),
    ]


def test_tracker_reports_event_offsets_and_answers():
    tracker = WireTracker()
    tracker.from_client(_startup())
    assert [(e.kind, e.ordinal) for e in tracker.from_server(_message(b"Z", b"I"))] == [(READY, 0)]
    commit = _message(b"Q", b"COMMIT\0")
    events = tracker.from_client(commit + _message(b"X", b""))
    assert [(e.kind, e.end) for e in events] == [(COMMIT_QUERY, len(commit))]
    answer = _message(b"C", b"COMMIT\0") + _message(b"Z", b"I")
    assert [(e.kind, e.end, e.ordinal) for e in tracker.from_server(answer)] == [(READY, len(answer), 1)]


def test_tracker_follows_a_refused_ssl_request_and_gives_up_on_an_accepted_one():
    refused = WireTracker()
    assert refused.from_client(SSL_REQUEST) == []
    assert refused.from_server(b"N") == []
    assert [e.kind for e in refused.from_client(_startup() + _message(b"Q", b"COMMIT\0"))] == [COMMIT_QUERY]

    accepted = WireTracker()
    accepted.from_client(SSL_REQUEST)
    accepted.from_server(b"S")
    assert accepted.phase == OPAQUE
    assert accepted.from_client(b"\x16\x03\x01\x02\x00" + b"\0" * 100) == []
