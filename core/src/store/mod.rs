//! Storage: the only module that speaks SQL. One `Store` over sqlx's `Any` driver
//! serves SQLite (the default) and PostgreSQL with the same queries.

/// `sqlx::query` over SQL assembled with `format!` from this module's constants
/// (column lists, table names) only; values are always bound, never formatted in.
macro_rules! query_fmt {
    ($($format:tt)*) => {
        sqlx::query(sqlx::AssertSqlSafe(format!($($format)*)))
    };
}

mod access_rules;
mod activity;
mod api_keys;
mod client_logins;
mod configs;
mod fleet;
mod gateways;
mod geo_fence;
mod mesh;
mod migrate;
mod networks;
mod pki;
mod sessions;
mod sso;
mod users;
mod vpn_sessions;

pub use access_rules::{AccessRuleFields, AccessRuleRecord};
pub use activity::{FleetCounts, LoginEventRecord, OpenSessionRecord};
pub use api_keys::{ApiKeyRecord, NewApiKey};
pub use client_logins::ClientLoginRecord;
pub use configs::{ConfigRecord, NewConfig};
pub use fleet::{FleetEventRecord, NodeRecord, OutboxEntry};
pub use gateways::{GatewayChanges, GatewayLink, GatewayRecord, GatewayRole, NewGateway, SnapshotSubject};
pub use geo_fence::{GeoFenceRuleRecord, GeoFenceSettingsRecord};
pub use mesh::SpokeRecord;
pub use networks::{NetworkChanges, NetworkRecord, NewNetwork};
pub use pki::{AuthorityRecord, CertificateRecord, CrlRecord};
pub use sessions::SessionRecord;
pub use sso::{AuthProviderFields, AuthProviderRecord, LoginEvent, LoginFlow, LoginFlowStage};
pub use users::{NewUser, UserChanges, UserRecord, UserUpdate, VpnSessionsEnd};
pub use vpn_sessions::{OpenSession, SessionReport, SessionTotals, SessionsOf};

use crate::error::{CoreError, CoreResult};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::{SystemTime, UNIX_EPOCH};

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: &'static str,
    /// PostgreSQL's URL, for the fleet relay's listening connection.
    postgres_url: Option<std::sync::Arc<DatabaseUrl>>,
}

/// A database URL, which may hold a password: never shown in `Debug`.
struct DatabaseUrl(String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(…)")
    }
}

/// A write transaction: the unit of work of one operation, opened with
/// [`Store::begin_write`] and passed to every store function the operation calls.
pub type WriteTx = sqlx::Transaction<'static, sqlx::Any>;

/// A statement with its arguments, as the store builds them.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Which slice of a list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Page number, from 1.
    pub number: u32,
    /// Items per page, 1 to 100.
    pub size: u32,
}

impl Page {
    fn limit(self) -> i64 {
        i64::from(self.size)
    }

    fn offset(self) -> i64 {
        i64::from(self.number.saturating_sub(1)) * i64::from(self.size)
    }
}

/// One page of a list and the size of the whole list.
#[derive(Debug)]
pub struct Listing<T> {
    /// The items on the page.
    pub items: Vec<T>,
    /// How many items the whole list has.
    pub total: u64,
}

impl Store {
    /// Connects to `database_url` (`sqlite://…` or `postgres://…`) and migrates.
    pub async fn open(database_url: &str) -> CoreResult<Store> {
        sqlx::any::install_default_drivers();
        let is_sqlite = database_url.starts_with("sqlite:");
        if is_sqlite {
            private_sqlite_files(database_url)?;
        }
        let pool = AnyPoolOptions::new().max_connections(if is_sqlite { 4 } else { 16 }).connect(database_url).await?;
        if is_sqlite {
            // WAL lets readers proceed while one writer commits; the setting persists in the file.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let postgres_url = (!is_sqlite).then(|| std::sync::Arc::new(DatabaseUrl(database_url.to_owned())));
        let store = Store { pool, backend: if is_sqlite { "sqlite" } else { "postgres" }, postgres_url };
        store.migrate().await?;
        Ok(store)
    }

    /// Which backend this store talks to: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes a SQLite database file (created empty if missing) and its `-wal` and `-shm`
/// companions readable by this user only (0600). SQLite gives the companions it creates
/// the database file's mode.
fn private_sqlite_files(database_url: &str) -> CoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = database_url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let io = |e: std::io::Error| CoreError::Internal(format!("cannot secure the database file {path}: {e}"));
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(io)?;
    for file in [path.to_owned(), format!("{path}-wal"), format!("{path}-shm")] {
        if std::path::Path::new(&file).exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    Ok(())
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// Maps a unique-constraint violation to `Conflict(message)`, other errors unchanged.
fn conflict_on_duplicate(error: sqlx::Error, message: impl FnOnce() -> String) -> CoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => CoreError::Conflict(message()),
        _ => CoreError::from(error),
    }
}

impl Store {
    /// For each of `links` (a table and the column of its values) and each key in
    /// `keys`, the sorted values of the table's rows whose `key` column equals it: one
    /// query for many parents and several tables (e.g. the networks, users and groups of
    /// a page of gateways).
    async fn related_values<const N: usize>(
        &self,
        key: &'static str,
        links: [(&'static str, &'static str); N],
        keys: &[String],
    ) -> CoreResult<[std::collections::HashMap<String, Vec<String>>; N]> {
        let mut related: [std::collections::HashMap<String, Vec<String>>; N] =
            std::array::from_fn(|_| Default::default());
        for chunk in keys.chunks(500) {
            let placeholders = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let selects = links
                .iter()
                .enumerate()
                .map(|(link, (table, value))| {
                    format!("SELECT '{link}' AS link, {key} AS parent, {value} AS child FROM {table} WHERE {key} IN ({placeholders})")
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let mut query = query_fmt!("{selects} ORDER BY child");
            for parent in chunk {
                query = query.bind(parent);
            }
            for row in query.fetch_all(&self.pool).await? {
                let link: String = row.try_get("link")?;
                let values = link.parse::<usize>().ok().and_then(|link| related.get_mut(link));
                let values = values.ok_or_else(|| CoreError::Internal(format!("a related value of link `{link}`")))?;
                values.entry(row.try_get("parent")?).or_default().push(row.try_get("child")?);
            }
        }
        Ok(related)
    }
}

impl Store {
    /// Opens a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), waiting for another writer if need be: a deferred
    /// transaction that read first cannot wait when it comes to write, and fails with
    /// "database is locked" while another connection holds the lock.
    pub async fn begin_write(&self) -> CoreResult<WriteTx> {
        Ok(match self.backend {
            "sqlite" => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _ => self.pool.begin().await?,
        })
    }

    /// The rows of `{select} IN (…) {suffix}` for every one of `keys`, 500 at a time;
    /// `select` ends with the column compared (SQL from this module's constants only).
    async fn rows_with_keys(&self, select: &str, suffix: &str, keys: &[String]) -> CoreResult<Vec<AnyRow>> {
        let mut rows = Vec::new();
        for chunk in keys.chunks(500) {
            let placeholders = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let mut query = query_fmt!("{select} IN ({placeholders}) {suffix}");
            for key in chunk {
                query = query.bind(key);
            }
            rows.extend(query.fetch_all(&self.pool).await?);
        }
        Ok(rows)
    }
}

/// Reads a `COUNT(*)` result named `total`.
fn total_of(row: &AnyRow) -> CoreResult<u64> {
    let total: i64 = row.try_get("total")?;
    Ok(u64::try_from(total).unwrap_or(0))
}

/// Reads a column holding a domain word (see [`crate::domain`]) with `from_stored`.
fn word<T>(row: &AnyRow, column: &str, from_stored: fn(&str) -> CoreResult<T>) -> CoreResult<T> {
    from_stored(&row.try_get::<String, _>(column)?)
}

/// Reads a BIGINT 0/1 column as a bool.
fn flag(row: &AnyRow, column: &str) -> CoreResult<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// Joins list values for a TEXT column; values never contain commas (validated).
fn join_list(values: &[String]) -> String {
    values.join(",")
}

/// Splits a TEXT column written by [`join_list`].
fn split_list(text: &str) -> Vec<String> {
    text.split(',').filter(|part| !part.is_empty()).map(str::to_owned).collect()
}
