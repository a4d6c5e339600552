//! Sign-in sessions: stored as selector + verifier, never the token itself.

use super::users::USER_COLUMNS;
use super::{Store, UserRecord, WriteTx, unix_now};
use crate::error::CoreResult;
use crate::secrets::MintedToken;
use sqlx::Row;

/// A stored session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// `ses-…`
    pub id: String,
    /// The signed-in user.
    pub user_id: String,
    /// SHA-256 of the token, hex.
    pub verifier: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Store {
    /// Inside `tx`: stores session `id` for `token` that ends at `expires_at`.
    pub async fn create_session(
        &self,
        tx: &mut WriteTx,
        id: &str,
        user_id: &str,
        token: &MintedToken,
        expires_at: i64,
    ) -> CoreResult<SessionRecord> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, selector, verifier, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(user_id)
        .bind(&token.selector)
        .bind(&token.verifier)
        .bind(unix_now())
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
        Ok(SessionRecord {
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            verifier: token.verifier.clone(),
            expires_at,
        })
    }

    /// The session with this selector and its user with the user's groups, read in one
    /// statement (every authenticated request asks).
    pub async fn find_session(&self, selector: &str) -> CoreResult<Option<(SessionRecord, UserRecord)>> {
        let user_columns = USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ");
        // With the user's groups: a row per group (or one row without a group).
        let rows = query_fmt!(
            "SELECT s.id AS session_id, s.verifier, s.expires_at, {user_columns}, g.group_name \
             FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN user_groups g ON g.user_id = u.id \
             WHERE s.selector = $1 ORDER BY g.group_name"
        )
        .bind(selector)
        .fetch_all(&self.pool)
        .await?;
        let (Some(row), Some(user)) = (rows.first(), super::users::user_with_groups(&rows)?) else { return Ok(None) };
        let session = SessionRecord {
            id: row.try_get("session_id")?,
            user_id: user.id.clone(),
            verifier: row.try_get("verifier")?,
            expires_at: row.try_get("expires_at")?,
        };
        Ok(Some((session, user)))
    }

    /// Ends a session.
    pub async fn delete_session(&self, id: &str) -> CoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Removes every expired session; returns how many.
    pub async fn purge_expired_sessions(&self) -> CoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(unix_now()).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
