"""Named SQL: every runtime query lives in db/queries/*.sql under a `-- name: <query>` header."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from tgops.db.errors import QueryNotFound

HEADER = re.compile(r"^--\s*name:\s*(?P<name>[a-z0-9_]+)\s*$", re.MULTILINE)


def parse_queries(text: str, source: str = "<string>") -> dict[str, str]:
    queries: dict[str, str] = {}
    matches = list(HEADER.finditer(text))
    for match, following in zip(matches, [*matches[1:], None]):
        body = text[match.end() : following.start() if following else len(text)].strip()
        name = match.group("name")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice ({source})")
        if not body:
            raise ValueError(f"query {name!r} has no SQL ({source})")
        queries[name] = body
    return queries


@lru_cache(maxsize=1)
def all_queries() -> dict[str, str]:
    merged: dict[str, str] = {}
    folder = resources.files("tgops.db") / "queries"
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, body in parse_queries(entry.read_text(encoding="utf-8"), entry.name).items():
            if name in merged:
                raise ValueError(f"query {name!r} is defined twice (second time in {entry.name})")
            merged[name] = body
    return merged


def query(name: str) -> str:
    try:
        return all_queries()[name]
    except KeyError:
        raise QueryNotFound(name) from None
