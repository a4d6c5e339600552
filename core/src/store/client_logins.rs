//! Native clients' sign-ins in the system browser: a flow, known by the hash of its id,
//! waits for a signed-in user's consent; then it holds the hash of a one-time code,
//! spent by the first exchange.

use super::{Store, unix_now};
use crate::error::CoreResult;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A client sign-in as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLoginRecord {
    /// How the client names itself.
    pub client_name: String,
    /// The client's loopback URL.
    pub redirect_uri: String,
    /// BASE64URL(SHA-256(verifier)).
    pub code_challenge: String,
    /// The client's opaque value.
    pub state: String,
    /// Unix seconds by which the flow must be finished.
    pub expires_at: i64,
    /// Whose sign-in it became, once allowed.
    pub user_id: Option<String>,
    /// Unix seconds by which the code must be exchanged, once issued.
    pub code_expires_at: Option<i64>,
}

const COLUMNS: &str = "client_name, redirect_uri, code_challenge, state, expires_at, user_id, code_expires_at";

fn record(row: &AnyRow) -> CoreResult<ClientLoginRecord> {
    Ok(ClientLoginRecord {
        client_name: row.try_get("client_name")?,
        redirect_uri: row.try_get("redirect_uri")?,
        code_challenge: row.try_get("code_challenge")?,
        state: row.try_get("state")?,
        expires_at: row.try_get("expires_at")?,
        user_id: row.try_get("user_id")?,
        code_expires_at: row.try_get("code_expires_at")?,
    })
}

impl Store {
    /// Stores a new flow, known by `flow_hash`.
    pub async fn create_client_login(&self, flow_hash: &str, flow: &ClientLoginRecord) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO client_logins (flow_hash, client_name, redirect_uri, code_challenge, state, expires_at, spent)
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
        )
        .bind(flow_hash)
        .bind(&flow.client_name)
        .bind(&flow.redirect_uri)
        .bind(&flow.code_challenge)
        .bind(&flow.state)
        .bind(flow.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A flow still waiting for consent (not expired, no code yet, not spent).
    pub async fn pending_client_login(&self, flow_hash: &str) -> CoreResult<Option<ClientLoginRecord>> {
        query_fmt!(
            "SELECT {COLUMNS} FROM client_logins
             WHERE flow_hash = $1 AND code_hash IS NULL AND spent = 0 AND expires_at > $2"
        )
        .bind(flow_hash)
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(record)
        .transpose()
    }

    /// Gives a pending flow its code, for `user_id`; false if it was no longer pending.
    pub async fn authorize_client_login(
        &self,
        flow_hash: &str,
        user_id: &str,
        code_hash: &str,
        code_expires_at: i64,
    ) -> CoreResult<bool> {
        let done = sqlx::query(
            "UPDATE client_logins SET code_hash = $1, user_id = $2, code_expires_at = $3
             WHERE flow_hash = $4 AND code_hash IS NULL AND spent = 0 AND expires_at > $5",
        )
        .bind(code_hash)
        .bind(user_id)
        .bind(code_expires_at)
        .bind(flow_hash)
        .bind(unix_now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a pending flow without a code (the user refused); false if it was not pending.
    pub async fn refuse_client_login(&self, flow_hash: &str) -> CoreResult<bool> {
        let done =
            sqlx::query("UPDATE client_logins SET spent = 1 WHERE flow_hash = $1 AND code_hash IS NULL AND spent = 0")
                .bind(flow_hash)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spends the code whose hash is `code_hash` and answers its flow, if the code was
    /// issued and not yet spent (whether it is still in time is the caller's to check).
    /// Only one caller ever gets a flow back for a code.
    pub async fn take_client_code(&self, code_hash: &str) -> CoreResult<Option<ClientLoginRecord>> {
        query_fmt!("UPDATE client_logins SET spent = 1 WHERE code_hash = $1 AND spent = 0 RETURNING {COLUMNS}")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record)
            .transpose()
    }
}
