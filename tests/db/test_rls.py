"""Every table has row level security and no policy: a role without privileges reads nothing."""

import psycopg

PROBE_ROLE = "tgops_rls_probe"


def _tables(connection) -> list[str]:
    rows = connection.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
    ).fetchall()
    return [row[0] for row in rows]


def test_rls_enabled_on_every_table(database_url):
    with psycopg.connect(database_url) as connection:
        tables = _tables(connection)
        assert {"provider_orders", "telegram_tasks", "webhook_dedupe", "tgops_schema_migrations"} <= set(
            tables
        )
        without_rls = connection.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace"
            " AND NOT relrowsecurity"
        ).fetchall()
        assert without_rls == []
        policies = connection.execute("SELECT tablename, policyname FROM pg_policies").fetchall()
        assert policies == []


def test_role_without_privileges_reads_nothing(database_url):
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO webhook_dedupe (bot_id, update_id) VALUES (1, 1);"
            "INSERT INTO bot_users (user_id, points) VALUES (42, 10)"
        )
        connection.execute(f"DROP ROLE IF EXISTS {PROBE_ROLE}")
        connection.execute(f"CREATE ROLE {PROBE_ROLE} NOLOGIN")
        try:
            connection.execute(f"GRANT USAGE ON SCHEMA public TO {PROBE_ROLE}")
            # Even granted SELECT, RLS without a policy hides every row.
            connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PROBE_ROLE}")
            connection.execute(f"SET ROLE {PROBE_ROLE}")
            for table in ("webhook_dedupe", "bot_users"):
                assert connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
            connection.execute("RESET ROLE")
            connection.execute(f"REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM {PROBE_ROLE}")
            connection.execute(f"SET ROLE {PROBE_ROLE}")
            try:
                connection.execute("SELECT count(*) FROM bot_users")
                raise AssertionError("a role without SELECT read bot_users")
            except psycopg.errors.InsufficientPrivilege:
                pass
        finally:
            connection.execute("RESET ROLE")
            connection.execute(f"REVOKE ALL ON SCHEMA public FROM {PROBE_ROLE}")
            connection.execute(f"DROP ROLE {PROBE_ROLE}")
