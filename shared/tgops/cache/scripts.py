"""Lua scripts from cache/lua/<name>.lua, run by SHA so each call sends only the digest."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from tgops.cache.client import RedisClient
from tgops.cache.errors import NoScriptError


class LuaScript:
    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def run(self, client: RedisClient, keys: list[str], args: list) -> Any:
        try:
            return await client.evalsha(self.sha, keys, args)
        except NoScriptError:
            # The server lost its script cache (restart, failover, SCRIPT FLUSH): load once, then retry.
            await client.script_load(self.source)
            return await client.evalsha(self.sha, keys, args)


@cache
def script(name: str) -> LuaScript:
    source = resources.files("tgops.cache").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
    return LuaScript(name, source)
