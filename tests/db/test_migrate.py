import psycopg
import pytest

from tgops.db.errors import DatabaseError, DatabaseUnavailable
from tgops.db.migrate import Migration, applied_versions, apply_migrations, bundled_migrations


def test_bundled_migrations_are_ordered_and_unique():
    versions = [migration.version for migration in bundled_migrations()]
    assert versions == sorted(versions)
    assert len(versions) == len(set(versions))
    assert versions[0] == "0001"


def test_applies_every_migration_once(empty_database_url):
    first = apply_migrations(empty_database_url)
    assert first == [migration.version for migration in bundled_migrations()]
    assert apply_migrations(empty_database_url) == []
    assert applied_versions(empty_database_url) == first


def test_new_migration_applies_on_top(empty_database_url):
    base = [Migration("0001", "one", "CREATE TABLE one (id int);")]
    assert apply_migrations(empty_database_url, base) == ["0001"]
    more = [*base, Migration("0002", "two", "ALTER TABLE one ADD COLUMN name text;")]
    assert apply_migrations(empty_database_url, more) == ["0002"]
    with psycopg.connect(empty_database_url) as connection:
        connection.execute("INSERT INTO one (id, name) VALUES (1, 'x')")


def test_changed_applied_migration_is_refused(empty_database_url):
    apply_migrations(empty_database_url, [Migration("0001", "one", "CREATE TABLE one (id int);")])
    with pytest.raises(DatabaseError, match="changed after it was applied"):
        apply_migrations(empty_database_url, [Migration("0001", "one", "CREATE TABLE one (id bigint);")])


def test_failed_migration_leaves_nothing_behind(empty_database_url):
    broken = [Migration("0001", "broken", "CREATE TABLE half (id int); SELECT no_such_function();")]
    with pytest.raises(DatabaseError, match="migration failed"):
        apply_migrations(empty_database_url, broken)
    with psycopg.connect(empty_database_url) as connection:
        assert connection.execute("SELECT to_regclass('half')").fetchone()[0] is None
    assert applied_versions(empty_database_url) == []


def test_unreachable_database_is_reported():
    with pytest.raises(DatabaseUnavailable):
        apply_migrations("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2")
