"""The hot lookups run on the driver's own connection, compiled once.

A lookup through SQLAlchemy's ``Connection.execute`` costs about 60 µs of CPU on top of
SQLite's 15: the compiled-statement cache's key, the execution context, the result's
metadata and its rows, built anew every time. A 4 KiB GET makes one lookup, and that was an
eighth of its CPU. Here a SELECT is compiled once (its SQL, the order of its parameters, the
processors its result columns need, such as SQLite's text timestamps into datetimes) and then
run on the pysqlite connection under SQLAlchemy's, its parameters and columns processed as
SQLAlchemy would, its rows plain named tuples. Only SELECTs take this path (``compile_lookup``
says None otherwise); the rest go through SQLAlchemy as before.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Executable, Select

Processor = Callable[[Any], Any]


class CompiledLookup:
    """One SELECT, ready to run on a pysqlite connection."""

    def __init__(
        self,
        sql: str,
        names: Sequence[str],
        binders: Sequence[Processor | None],
        columns: Sequence[str],
        processors: Sequence[Processor | None],
    ) -> None:
        self._sql = sql
        self._binds = tuple(zip(names, binders, strict=True))
        row_type = collections.namedtuple("LookupRow", columns)  # type: ignore[misc]
        self._make: Callable[[Iterable[Any]], Any] = row_type._make
        self._processed = [(i, p) for i, p in enumerate(processors) if p is not None]

    def rows(self, connection: sqlite3.Connection, params: Mapping[str, Any]) -> list[Any]:
        """The rows, each with the statement's columns as attributes (as a ``Row`` has)."""
        values = [
            params[name] if binder is None else binder(params[name]) for name, binder in self._binds
        ]
        found = connection.execute(self._sql, values).fetchall()
        make = self._make
        if not self._processed:
            return [make(row) for row in found]
        rows = []
        for row in found:
            values = list(row)
            for index, processor in self._processed:
                values[index] = processor(values[index])
            rows.append(make(values))
        return rows


def compile_lookup(statement: Executable, dialect: Dialect) -> CompiledLookup | None:
    """The statement compiled for the driver; None when it is not a plain SELECT with
    distinct, named columns (such statements stay with SQLAlchemy)."""
    if not isinstance(statement, Select):
        return None
    compiled = statement.compile(dialect=dialect)
    # Expanding parameters (IN lists) are spliced into the SQL per execution.
    if compiled.positiontup is None or "POSTCOMPILE" in compiled.string:
        return None
    binders = [
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        for name in compiled.positiontup
    ]
    columns = statement.selected_columns
    keys = [column.key for column in columns]
    names = [key for key in keys if key is not None and key.isidentifier() and key[0] != "_"]
    if len(set(names)) != len(keys):
        return None
    processors = [
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    ]
    return CompiledLookup(compiled.string, compiled.positiontup, binders, names, processors)
