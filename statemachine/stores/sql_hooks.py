"""What the SQL mixins (outbox, reports, receipts, inquiries) ask of ``SQLStore``: its
connections and its dialect's conversions, declared once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar

from ..records import Notice
from .queries import Queries

Connection = Any  # the dialect's connection: sqlite3's or psycopg's


class SQLHooks:
    """The hooks ``SQLStore`` and its dialects provide to the mixins."""

    SQL: ClassVar[type[Queries]]
    name: str  # how messages name the store: a path or a DSN

    def _write(self) -> AbstractContextManager[Connection]:
        """A connection inside a unit of work (the open one, or one of its own)."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        """A connection to read on (the open unit of work's, inside one)."""
        raise NotImplementedError

    def _select_in(
        self, conn: Connection, query: str, ids: list[str], params: Sequence[Any] = ()
    ) -> list[Any]:
        """Run ``query`` with ``params`` and then the list ``ids`` where the dialect puts lists."""
        raise NotImplementedError

    def _lock(self, conn: Connection, debit_ids: Iterable[str]) -> None:
        """Serialise writers of these debits until the unit of work ends."""
        raise NotImplementedError

    def _notices(self, cursor: Any) -> list[Notice]:
        raise NotImplementedError

    def _text_in(self, text: str | None) -> str | None:
        raise NotImplementedError

    def _time_in(self, moment: datetime) -> Any:
        raise NotImplementedError

    def _time_out(self, value: Any) -> datetime:
        raise NotImplementedError
