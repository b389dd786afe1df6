"""The package's own database errors: callers never see driver exceptions."""


class DatabaseError(Exception):
    """A query failed."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached (connection refused, pool timeout, server gone)."""


class ConflictError(DatabaseError):
    """A unique or exclusion constraint refused the write."""


class QueryNotFound(DatabaseError, KeyError):
    """No `-- name: <query>` block with that name exists under db/queries/."""
