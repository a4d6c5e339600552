//! Schema migrations: `core/migrations/*.sql`, embedded by `sqlx::migrate!` and applied
//! in order at start-up. The SQL is portable between SQLite and PostgreSQL, so one list
//! serves both. sqlx records each applied migration with its checksum in
//! `_sqlx_migrations`, refuses to start on an applied migration that was edited since, and
//! on PostgreSQL holds an advisory lock so nodes starting together do not race.

use super::Store;
use crate::error::{CoreError, CoreResult};
use sqlx::Row;
use sqlx::migrate::Migrator;

/// Every migration, by version. Append only; never edit an applied one.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The table in which releases before `sqlx::migrate!` recorded applied versions.
const LEGACY_TABLE: &str = "schema_migrations";

/// A session-level PostgreSQL advisory lock held while a legacy record is adopted.
const ADOPTION_LOCK: i64 = 7_406_190;

impl Store {
    /// Applies every migration this database has not seen, each in its own transaction.
    /// A database migrated by an earlier release (its versions in `schema_migrations`) is
    /// adopted first: those versions are recorded as applied, without running them again.
    pub async fn migrate(&self) -> CoreResult<()> {
        let mut connection = self.pool.acquire().await?;
        let postgres = self.backend == "postgres";
        if postgres {
            sqlx::query("SELECT pg_advisory_lock($1)").bind(ADOPTION_LOCK).execute(&mut *connection).await?;
        }
        let adopted = adopt_legacy_record(&mut connection, postgres).await;
        if postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(ADOPTION_LOCK).execute(&mut *connection).await?;
        }
        adopted?;
        // `run_direct` is `run` on a connection we hold; `run`'s `Acquire` bound would keep
        // the futures of callers (the server's) from being provably `Send`.
        MIGRATOR.run_direct(None, &mut *connection, false).await.map_err(migration_failed)
    }
}

/// Records the versions of the legacy table as applied in sqlx's table. The legacy
/// table is kept, so that a node of the earlier release (in a rolling upgrade or after a
/// rollback) still finds its migrations applied; adopting again changes nothing.
async fn adopt_legacy_record(connection: &mut sqlx::AnyConnection, postgres: bool) -> CoreResult<()> {
    let exists = if postgres {
        sqlx::query("SELECT to_regclass($1) IS NOT NULL AS present")
            .bind(LEGACY_TABLE)
            .fetch_one(&mut *connection)
            .await?
            .try_get::<bool, _>("present")?
    } else {
        sqlx::query("SELECT COUNT(*) AS total FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(LEGACY_TABLE)
            .fetch_one(&mut *connection)
            .await?
            .try_get::<i64, _>("total")?
            > 0
    };
    if !exists {
        return Ok(());
    }
    let newest: Option<i64> = sqlx::query("SELECT MAX(version) AS newest FROM schema_migrations")
        .fetch_one(&mut *connection)
        .await?
        .try_get("newest")?;
    if let Some(newest) = newest {
        // Marks versions up to `newest` as applied without running them (`skip`).
        MIGRATOR.run_direct(Some(newest), &mut *connection, true).await.map_err(migration_failed)?;
        tracing::info!(newest, "adopted the migration record of an earlier release");
    }
    Ok(())
}

/// A migration that could not be applied, e.g. an applied one whose file was edited.
fn migration_failed(error: sqlx::migrate::MigrateError) -> CoreError {
    CoreError::Internal(format!("database migration failed: {error}"))
}
