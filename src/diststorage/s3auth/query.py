"""A raw query's parameters, decoded once, for the verifier to look authentication up in."""

from __future__ import annotations

from diststorage.core.errors import AuthError
from diststorage.s3auth.canonical import query_pairs


class QueryParams:
    """Parameter values by name (case kept, ``+`` read as a space), repeated ones in order."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def names(self) -> list[str]:
        return list(self._values)

    def get_all(self, name: str) -> list[str]:
        return list(self._values.get(name, ()))

    def single(self, name: str, failure: type[AuthError]) -> str:
        """The one value of a parameter that must be there exactly once; raises ``failure``."""
        values = self._values.get(name, [])
        if len(values) != 1:
            raise failure(f"the query needs exactly one {name} parameter")
        return values[0]

    def first_named_like(self, lowercase_name: str) -> str | None:
        """The first value of a parameter whose name is this one in any case."""
        for name, values in self._values.items():
            if name.lower() == lowercase_name:
                return values[0]
        return None


def query_params(raw_query: str) -> QueryParams:
    values: dict[str, list[str]] = {}
    for name, value in query_pairs(raw_query):
        decoded = name.decode("utf-8", "surrogateescape")
        values.setdefault(decoded, []).append(value.decode("utf-8", "surrogateescape"))
    return QueryParams(values)
