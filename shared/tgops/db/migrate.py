"""Forward-only migrations: plain SQL files `NNNN_name.sql` under db/migrations/, applied in order.

Each file runs in its own transaction and is recorded in `tgops_schema_migrations` with its
checksum; an applied file that has since changed stops the run (write a new migration instead).
A transaction-scoped advisory lock keeps two runners from applying the same file. The files stay
plain SQL with a numeric version prefix, so `supabase db push` can apply them too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from tgops.db.errors import DatabaseError, DatabaseUnavailable

FILE_NAME = re.compile(r"^(?P<version>\d{4,})_(?P<name>[a-z0-9_]+)\.sql$")
ADVISORY_LOCK_ID = 0x7467_6F70  # "tgop"

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS tgops_schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tgops_schema_migrations ENABLE ROW LEVEL SECURITY;
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def bundled_migrations() -> list[Migration]:
    folder = resources.files("tgops.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(match["version"], match["name"], entry.read_text(encoding="utf-8")))
        elif entry.name.endswith(".sql"):
            raise DatabaseError(f"migration file {entry.name!r} is not named NNNN_name.sql")
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise DatabaseError(f"two migrations share a version: {versions}")
    return found


def apply_migrations(url: str, migrations: list[Migration] | None = None) -> list[str]:
    """Apply every pending migration; return the versions applied by this call."""
    migrations = bundled_migrations() if migrations is None else migrations
    applied_now: list[str] = []
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            for migration in migrations:
                with connection.transaction():
                    connection.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
                    connection.execute(CREATE_LEDGER)
                    row = connection.execute(
                        "SELECT checksum FROM tgops_schema_migrations WHERE version = %s",
                        (migration.version,),
                    ).fetchone()
                    if row:
                        if row[0] != migration.checksum:
                            raise DatabaseError(
                                f"migration {migration.version}_{migration.name} changed after it was applied"
                            )
                        continue
                    connection.execute(migration.sql)
                    connection.execute(
                        "INSERT INTO tgops_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                    applied_now.append(migration.version)
    except psycopg.OperationalError as error:
        raise DatabaseUnavailable(str(error).strip().splitlines()[0]) from error
    except psycopg.Error as error:
        raise DatabaseError(f"migration failed: {str(error).strip().splitlines()[0]}") from error
    return applied_now


def applied_versions(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        exists = connection.execute("SELECT to_regclass('tgops_schema_migrations') IS NOT NULL").fetchone()[0]
        if not exists:
            return []
        rows = connection.execute("SELECT version FROM tgops_schema_migrations ORDER BY version").fetchall()
        return [row[0] for row in rows]
