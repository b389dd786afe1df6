"""The package's own Redis errors: callers never see redis-py or upstash-redis exceptions."""


class CacheError(Exception):
    """A Redis command failed."""


class RedisUnavailable(CacheError):
    """Redis cannot serve us: refused connection, timeout, HTTP failure, rejected credentials, spent quota."""


class NoScriptError(CacheError):
    """EVALSHA named a script the server does not hold (after a restart, a failover or SCRIPT FLUSH)."""


class RedisCommandError(CacheError):
    """The server refused the command itself (wrong type, not an integer, an error raised in Lua)."""
