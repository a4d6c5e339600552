//! Schema migrations, embedded in the binary and applied in order at start-up.
//! The SQL is portable between SQLite and PostgreSQL, so one list serves both.

use super::{Store, unix_now};
use crate::error::CoreResult;
use sqlx::Row;

/// Every migration, by version. Append only; never edit an applied one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_foundation.sql")),
    (2, include_str!("../../migrations/0002_pki.sql")),
    (3, include_str!("../../migrations/0003_agents.sql")),
    (4, include_str!("../../migrations/0004_sso.sql")),
    (5, include_str!("../../migrations/0005_geo_fence.sql")),
    (6, include_str!("../../migrations/0006_mesh.sql")),
    (7, include_str!("../../migrations/0007_sign_in_hardening.sql")),
    (8, include_str!("../../migrations/0008_activity.sql")),
    (9, include_str!("../../migrations/0009_client_logins.sql")),
    (10, include_str!("../../migrations/0010_fleet_outbox.sql")),
];

impl Store {
    /// Applies every migration this database has not seen, each in its own transaction.
    /// On PostgreSQL an advisory lock keeps nodes starting together from racing.
    pub async fn migrate(&self) -> CoreResult<()> {
        let mut connection = self.pool.acquire().await?;
        let postgres = self.backend == "postgres";
        if postgres {
            sqlx::query("SELECT pg_advisory_lock(7406190)").execute(&mut *connection).await?;
        }
        let outcome = apply_migrations(&mut connection).await;
        if postgres {
            sqlx::query("SELECT pg_advisory_unlock(7406190)").execute(&mut *connection).await?;
        }
        outcome
    }
}

async fn apply_migrations(connection: &mut sqlx::AnyConnection) -> CoreResult<()> {
    use sqlx::Connection;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *connection)
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| row.try_get("version"))
        .collect::<Result<_, _>>()?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let mut tx = connection.begin().await?;
        for statement in split_statements(sql) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(*version)
            .bind(unix_now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}

/// Splits a migration into statements, dropping `--` comment lines.
fn split_statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').filter_map(|chunk| {
        let meaningful = chunk.lines().any(|line| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with("--")
        });
        meaningful.then_some(chunk.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_split_and_comments_dropped() {
        let sql = "-- header\nCREATE TABLE a (x TEXT);\n\n-- only a comment\n;CREATE INDEX i ON a (x);\n";
        let statements: Vec<_> = split_statements(sql).collect();
        assert_eq!(statements.len(), 2);
        assert!(statements[0].ends_with("CREATE TABLE a (x TEXT)"));
        assert_eq!(statements[1], "CREATE INDEX i ON a (x)");
    }
}
