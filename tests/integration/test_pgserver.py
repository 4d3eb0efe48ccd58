"""The database fixtures give real, isolated databases (a real PostgreSQL server, not a stand-in)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError


@pytest.fixture
def engine_factory():
    engines: list[sa.Engine] = []

    def make(url: str, **kw) -> sa.Engine:
        engine = sa.create_engine(url, **kw)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


def _table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_postgres_url_is_a_real_postgresql_15_or_newer(postgres_url, engine_factory):
    assert postgres_url.startswith("postgresql+psycopg://")
    engine = engine_factory(postgres_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        assert int(version.split(".")[0].split()[0]) >= 15, version
        assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == sa.make_url(postgres_url).database
        assert conn.execute(sa.text("SHOW server_encoding")).scalar_one() == "UTF8"


def test_transaction_can_be_serializable(postgres_url, engine_factory):
    engine = engine_factory(postgres_url)
    # Plain SQL: SET TRANSACTION as the first statement of the transaction.
    with engine.begin() as conn:
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
        level = conn.execute(sa.text("SELECT current_setting('transaction_isolation')")).scalar_one()
        assert level == "serializable"
    # The SQLAlchemy way.
    with engine.connect().execution_options(isolation_level="SERIALIZABLE") as conn, conn.begin():
        level = conn.execute(sa.text("SELECT current_setting('transaction_isolation')")).scalar_one()
        assert level == "serializable"


def test_serializable_detects_write_skew(postgres_url, engine_factory):
    """Real SSI: two transactions that each read what the other writes cannot both commit."""
    engine = engine_factory(postgres_url, isolation_level="SERIALIZABLE")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE oncall (doctor text PRIMARY KEY, on_call boolean NOT NULL)"))
        conn.execute(sa.text("INSERT INTO oncall VALUES ('alice', true), ('bob', true)"))

    a, b = engine.connect(), engine.connect()
    try:
        for conn in (a, b):
            conn.begin()
            n = conn.execute(sa.text("SELECT count(*) FROM oncall WHERE on_call")).scalar_one()
            assert n == 2
        a.execute(sa.text("UPDATE oncall SET on_call = false WHERE doctor = 'alice'"))
        b.execute(sa.text("UPDATE oncall SET on_call = false WHERE doctor = 'bob'"))
        a.commit()
        with pytest.raises(OperationalError) as excinfo:
            b.commit()
        assert isinstance(excinfo.value.orig, psycopg.errors.SerializationFailure)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgres_databases_are_distinct(database_url, postgres_url, engine_factory):
    assert database_url != postgres_url
    first, second = engine_factory(database_url), engine_factory(postgres_url)
    assert _table_names(first) == _table_names(second) == set()

    with first.begin() as conn:
        conn.execute(sa.text("CREATE TABLE only_in_first (id integer PRIMARY KEY)"))
    assert _table_names(first) == {"only_in_first"}
    assert _table_names(second) == set()


def test_database_url_is_fresh_and_usable(database_url, engine_factory, request):
    engine = engine_factory(database_url)
    assert _table_names(engine) == set()
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id integer PRIMARY KEY, note text)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1, 'héllo')"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT note FROM t WHERE id = 1")).scalar_one() == "héllo"

    backend = request.node.callspec.params["database_url"]
    assert engine.dialect.name == backend
    if backend == "sqlite":
        # Only the postgresql parameter may start the server.
        assert "pg_server" not in request.fixturenames
        assert request.node.get_closest_marker("postgres") is None
    else:
        assert request.node.get_closest_marker("postgres") is not None


def test_pg_server_admin_url_and_create_database(pg_server, engine_factory):
    assert pg_server.admin_url.startswith("postgresql+psycopg://postgres@")
    assert pg_server.admin_url.endswith("/postgres")
    name = f"t_explicit_name_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    assert sa.make_url(url).database == name
    assert sa.make_url(url).port == sa.make_url(pg_server.admin_url).port
    with engine_factory(url).connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    if pg_server.external:
        pg_server.drop_database(name)
