//! API keys: stored as selector + verifier with a visible prefix, never the key itself.

use super::{Listing, Page, Store, WriteTx, conflict_on_duplicate, join_list, split_list, total_of, unix_now};
use crate::error::{CoreError, CoreResult};
use crate::secrets::{API_KEY_PREFIX, MintedToken};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Seconds between two writes of an API key's last-used time.
const LAST_USED_RESOLUTION: i64 = 60;

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// `key-…`
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// Owner-chosen name.
    pub name: String,
    /// The visible start of the key, e.g. `gk_AbC123xy`.
    pub prefix: String,
    /// SHA-256 of the key, hex.
    pub verifier: String,
    /// `read` and/or `write`.
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if it expires.
    pub expires_at: Option<i64>,
    /// Unix seconds, if ever used.
    pub last_used_at: Option<i64>,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

/// A key to store.
pub struct NewApiKey<'a> {
    /// `key-…`, made by the caller.
    pub id: &'a str,
    /// The owner.
    pub user_id: &'a str,
    /// Owner-chosen name.
    pub name: &'a str,
    /// Scopes.
    pub scopes: &'a [String],
    /// Unix seconds, if it expires.
    pub expires_at: Option<i64>,
    /// The minted secret.
    pub token: &'a MintedToken,
}

/// Length of the visible prefix: `gk_` and eight characters of the selector.
const VISIBLE_SELECTOR_CHARS: usize = 8;
const API_KEY_COLUMNS: &str =
    "id, user_id, name, selector, verifier, scopes, created_at, expires_at, last_used_at, revoked_at";

/// Usable (neither revoked nor expired) API keys one user may hold.
pub const MAX_ACTIVE_API_KEYS: u64 = 50;

impl Store {
    /// Stores a new key; a duplicate name for the same owner, or an owner who already
    /// holds [`MAX_ACTIVE_API_KEYS`] usable keys, is a conflict.
    pub async fn create_api_key(&self, tx: &mut WriteTx, key: NewApiKey<'_>) -> CoreResult<()> {
        let now = unix_now();
        let active = total_of(
            &sqlx::query(
                "SELECT COUNT(*) AS total FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL
                     AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(key.user_id)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?,
        )?;
        if active >= MAX_ACTIVE_API_KEYS {
            return Err(CoreError::Conflict(format!(
                "you already hold {MAX_ACTIVE_API_KEYS} usable API keys, the most allowed; revoke one first"
            )));
        }
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, selector, verifier, scopes, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.id)
        .bind(key.user_id)
        .bind(key.name)
        .bind(&key.token.selector)
        .bind(&key.token.verifier)
        .bind(join_list(key.scopes))
        .bind(now)
        .bind(key.expires_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_on_duplicate(e, || format!("you already have an API key named `{}`", key.name)))?;
        Ok(())
    }

    /// A key by id.
    pub async fn find_api_key(&self, id: &str) -> CoreResult<Option<ApiKeyRecord>> {
        let row = query_fmt!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    /// A key by selector.
    pub async fn find_api_key_by_selector(&self, selector: &str) -> CoreResult<Option<ApiKeyRecord>> {
        let row = query_fmt!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE selector = $1")
            .bind(selector)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    /// A page of one user's keys, newest first.
    pub async fn list_api_keys(&self, user_id: &str, page: Page) -> CoreResult<Listing<ApiKeyRecord>> {
        let total = total_of(
            &sqlx::query("SELECT COUNT(*) AS total FROM api_keys WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?,
        )?;
        let rows = query_fmt!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
        )
        .bind(user_id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(api_key_from_row).collect::<CoreResult<_>>()?;
        Ok(Listing { items, total })
    }

    /// Revokes one of `user_id`'s keys; revoking twice keeps the first time.
    pub async fn revoke_api_key(&self, tx: &mut WriteTx, user_id: &str, id: &str) -> CoreResult<()> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3")
                .bind(unix_now())
                .bind(id)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
        match done.rows_affected() {
            0 => Err(CoreError::NotFound(format!("API key `{id}` not found"))),
            _ => Ok(()),
        }
    }

    /// Records a use of the key, at most once per [`LAST_USED_RESOLUTION`].
    pub async fn touch_api_key(&self, key: &ApiKeyRecord) -> CoreResult<()> {
        let now = unix_now();
        if key.last_used_at.is_some_and(|last| now - last < LAST_USED_RESOLUTION) {
            return Ok(());
        }
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&key.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn api_key_from_row(row: &AnyRow) -> CoreResult<ApiKeyRecord> {
    let selector: String = row.try_get("selector")?;
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        prefix: format!("{API_KEY_PREFIX}{}", selector.get(..VISIBLE_SELECTOR_CHARS).unwrap_or(&selector)),
        verifier: row.try_get("verifier")?,
        scopes: split_list(&scopes),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
