"""Many rows in one statement, without SQLAlchemy's per-row parameter processing; long lists of keys in
one parameter.

The batch writer inserts thousands of journal rows per transaction; compiling and processing each row's
parameters costs more Python time than the database spends on it. Rows here are plain tuples in the
order of the named columns, sent through the driver as they are (errors are still SQLAlchemy's, and the
unit of work retries them as before):

* PostgreSQL: the rows travel as one JSON array in a single parameter and the server unpacks and casts
  them (`jsonb_array_elements`), one round trip and one orjson encoding whatever the row count.
  `jsonb` is parsed once per statement (`->>` on `json` parses the row's text again for every column) and
  keeps integers exact (numeric), so the casts to bigint are exact. COPY is not an option: it refuses
  tables under (forced) row-level security.
* SQLite: one `executemany`, which pysqlite runs in C.

`one_of` is `column IN (...)` for the batch's thousands of keys, as one parameter instead of one bound
parameter per key that SQLAlchemy renders and psycopg parses again for every statement: a text array on
PostgreSQL (`= ANY(...)`), a JSON array on SQLite (`json_each`). On PostgreSQL the array matters for the
plan: the planner knows how many keys an array holds and probes the index for a few, where a set-returning
function is always guessed at 100 rows and answered with a scan of the whole table (milliseconds per
statement, and under SERIALIZABLE a lock on the whole relation's reads). The bulk update names its keys
the same way, for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    LargeBinary,
    String,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
)

from tally.storage.compact import bytea_json
from tally.storage.engine import driver_execute

Row = Sequence[object]


def insert_rows(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Row]) -> None:
    """Inserts `rows`, each holding the values of `columns` in that order."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        driver_execute(conn, _pg_insert(table, columns), (_json(rows),))
    else:
        conn.exec_driver_sql(_sqlite_insert(table, columns), list(rows))


def update_rows(conn: Connection, table: Table, key: str, columns: tuple[str, ...], rows: Sequence[Row]) -> None:
    """Sets `columns` of the row whose `key` column equals each row's first value, to its other values.
    Keys must be distinct (PostgreSQL would apply just one of two rows for the same key)."""
    if not rows:
        return
    if len({row[0] for row in rows}) != len(rows):
        raise ValueError(f"update_rows: a {table.name}.{key} appears twice")
    if conn.dialect.name == "postgresql":
        driver_execute(conn, _pg_update(table, key, columns), (_json(rows), text_array(row[0] for row in rows)))
    else:
        conn.exec_driver_sql(_sqlite_update(table, key, columns), list(rows))


def one_of(dialect: str, column: ColumnElement, name: str) -> ColumnElement[bool]:
    """`column IN (...)` for text values, from the one parameter `name`: built once per statement, and
    given its value by `keys_value`."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(name, type_=String))))


def keys_value(dialect: str, values: Iterable[str]) -> list[str] | str:
    """The value of a `one_of` parameter: a list (a text array) on PostgreSQL, a JSON array on SQLite."""
    keys = sorted(set(values))
    return keys if dialect == "postgresql" else _json(keys)


def _json(rows: Sequence[Row]) -> str:
    return orjson.dumps(rows, default=bytea_json).decode()


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL text array literal, for a `%s::text[]` parameter: built here in one pass, where psycopg
    adapts a list element by element in Python (a thousand keys cost the writer milliseconds per batch)."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _pg_type(table: Table, column: str) -> str:
    """The type a JSON value is cast to. Strings stay `text`, so that the column's own assignment cast
    refuses a value that is too long, as a plain INSERT would (an explicit varchar(n) cast truncates)."""
    type_ = table.c[column].type
    if isinstance(getattr(type_, "impl", type_), LargeBinary):  # bytes travel as bytea's hex text
        return "bytea"
    if isinstance(type_, BigInteger):
        return "bigint"
    return "integer" if isinstance(type_, Integer) else "text"


def _q(name: str) -> str:
    """A quoted identifier (column names like `current` and `sequence` are keywords somewhere)."""
    return f'"{name}"'


def _names(columns: tuple[str, ...]) -> str:
    return ", ".join(_q(c) for c in columns)


@cache
def _pg_insert(table: Table, columns: tuple[str, ...]) -> str:
    values = ", ".join(f"(r->>{i})::{_pg_type(table, c)}" for i, c in enumerate(columns))
    return f"INSERT INTO {_q(table.name)} ({_names(columns)}) SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r"


@cache
def _pg_update(table: Table, key: str, columns: tuple[str, ...]) -> str:
    sets = ", ".join(f"{_q(c)} = (r->>{i})::{_pg_type(table, c)}" for i, c in enumerate(columns, start=1))
    key_type = _pg_type(table, key)
    return (f"UPDATE {_q(table.name)} AS t SET {sets} FROM jsonb_array_elements(%s::jsonb) AS r "
            f"WHERE t.{_q(key)} = ANY(%s::{key_type}[]) AND t.{_q(key)} = (r->>0)::{key_type}")


@cache
def _sqlite_insert(table: Table, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {_q(table.name)} ({_names(columns)}) VALUES ({', '.join('?' * len(columns))})"


@cache
def _sqlite_update(table: Table, key: str, columns: tuple[str, ...]) -> str:
    sets = ", ".join(f"{_q(c)} = ?{i}" for i, c in enumerate(columns, start=2))
    return f"UPDATE {_q(table.name)} SET {sets} WHERE {_q(key)} = ?1"
