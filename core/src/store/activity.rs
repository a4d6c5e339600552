//! What the console shows of the fleet's activity: open VPN sessions with their
//! gateway and user, the sign-in record, and the dashboard's counts.

use super::{Listing, Page, Store, total_of, unix_now};
use crate::error::CoreResult;
use sqlx::Row;
use sqlx::any::AnyRow;

/// An open VPN session with what the console shows beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionRecord {
    /// The gateway (or hub).
    pub gateway_id: String,
    /// The agent's key for the connection.
    pub session_key: String,
    /// The gateway's name.
    pub gateway_name: String,
    /// The user with the certificate's e-mail, if any.
    pub user_id: Option<String>,
    /// Certificate CN.
    pub common_name: String,
    /// Canonical serial.
    pub serial: String,
    /// Address inside the tunnel.
    pub vpn_address: String,
    /// The client's real address.
    pub client_address: String,
    /// Unix seconds.
    pub connected_at: i64,
    /// Bytes from the client, as last reported.
    pub bytes_received: u64,
    /// Bytes to the client, as last reported.
    pub bytes_sent: u64,
}

/// A recorded sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEventRecord {
    /// Opaque id.
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    /// `local` or the provider's name.
    pub provider: String,
    /// Who it claimed to be.
    pub subject: String,
    /// From where.
    pub client_address: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Why it failed (`ok` on success).
    pub reason: String,
}

/// The dashboard's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetCounts {
    /// Active gateways with a heartbeat since the cut-off.
    pub gateways_online: u64,
    /// Active gateways without one.
    pub gateways_offline: u64,
    /// Open sessions.
    pub live_sessions: u64,
    /// Configs generated in the last 24 hours.
    pub configs_issued_24h: u64,
    /// Users.
    pub users: u64,
}

const OPEN_SESSION_COLUMNS: &str = "s.gateway_id, s.session_key, g.name AS gateway_name, u.id AS user_id, \
     s.common_name, s.serial, s.vpn_address, s.client_address, s.connected_at, s.bytes_received, s.bytes_sent";
const OPEN_SESSION_SOURCE: &str = "vpn_sessions s JOIN gateways g ON g.id = s.gateway_id \
     LEFT JOIN users u ON u.email = s.common_name";

fn open_session(row: &AnyRow) -> CoreResult<OpenSessionRecord> {
    let count = |column: &str| -> CoreResult<u64> {
        Ok(row.try_get::<Option<i64>, _>(column)?.and_then(|value| u64::try_from(value).ok()).unwrap_or(0))
    };
    Ok(OpenSessionRecord {
        gateway_id: row.try_get("gateway_id")?,
        session_key: row.try_get("session_key")?,
        gateway_name: row.try_get("gateway_name")?,
        user_id: row.try_get("user_id")?,
        common_name: row.try_get("common_name")?,
        serial: row.try_get("serial")?,
        vpn_address: row.try_get("vpn_address")?,
        client_address: row.try_get("client_address")?,
        connected_at: row.try_get("connected_at")?,
        bytes_received: count("bytes_received")?,
        bytes_sent: count("bytes_sent")?,
    })
}

fn login_event(row: &AnyRow) -> CoreResult<LoginEventRecord> {
    Ok(LoginEventRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        provider: row.try_get("provider")?,
        subject: row.try_get("subject")?,
        client_address: row.try_get("client_address")?,
        success: row.try_get::<i64, _>("success")? != 0,
        reason: row.try_get("reason")?,
    })
}

impl Store {
    /// Open sessions, newest first; only those of certificate CN `common_name` if given.
    pub async fn list_open_sessions(
        &self,
        page: Page,
        common_name: Option<&str>,
    ) -> CoreResult<Listing<OpenSessionRecord>> {
        let filter = if common_name.is_some() { "AND s.common_name = $3" } else { "" };
        let count = query_fmt!(
            "SELECT COUNT(*) AS total FROM vpn_sessions s WHERE s.disconnected_at IS NULL {}",
            filter.replace("$3", "$1")
        );
        let count = match common_name {
            Some(name) => count.bind(name),
            None => count,
        };
        let total = total_of(&count.fetch_one(&self.pool).await?)?;
        let rows = query_fmt!(
            "SELECT {OPEN_SESSION_COLUMNS} FROM {OPEN_SESSION_SOURCE} WHERE s.disconnected_at IS NULL {filter}
             ORDER BY s.connected_at DESC, s.gateway_id, s.session_key LIMIT $1 OFFSET $2"
        )
        .bind(page.limit())
        .bind(page.offset());
        let rows = match common_name {
            Some(name) => rows.bind(name),
            None => rows,
        };
        let items = rows.fetch_all(&self.pool).await?.iter().map(open_session).collect::<CoreResult<_>>()?;
        Ok(Listing { items, total })
    }

    /// One open session.
    pub async fn find_open_session(
        &self,
        gateway_id: &str,
        session_key: &str,
    ) -> CoreResult<Option<OpenSessionRecord>> {
        query_fmt!(
            "SELECT {OPEN_SESSION_COLUMNS} FROM {OPEN_SESSION_SOURCE}
             WHERE s.gateway_id = $1 AND s.session_key = $2 AND s.disconnected_at IS NULL"
        )
        .bind(gateway_id)
        .bind(session_key)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(open_session)
        .transpose()
    }

    /// Records the byte counts a gateway reports for its open sessions.
    pub async fn record_session_bytes(&self, gateway_id: &str, counts: &[(String, u64, u64)]) -> CoreResult<()> {
        for (session_key, received, sent) in counts {
            sqlx::query(
                "UPDATE vpn_sessions SET bytes_received = $1, bytes_sent = $2
                 WHERE gateway_id = $3 AND session_key = $4 AND disconnected_at IS NULL",
            )
            .bind(i64::try_from(*received).unwrap_or(i64::MAX))
            .bind(i64::try_from(*sent).unwrap_or(i64::MAX))
            .bind(gateway_id)
            .bind(session_key)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// The sign-in record, newest first; only refusals if `failures_only`.
    pub async fn list_login_events(&self, page: Page, failures_only: bool) -> CoreResult<Listing<LoginEventRecord>> {
        let filter = if failures_only { "WHERE success = 0" } else { "" };
        let total =
            total_of(&query_fmt!("SELECT COUNT(*) AS total FROM login_events {filter}").fetch_one(&self.pool).await?)?;
        let items = query_fmt!(
            "SELECT id, at, provider, subject, client_address, success, reason FROM login_events {filter}
             ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2"
        )
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(login_event)
        .collect::<CoreResult<_>>()?;
        Ok(Listing { items, total })
    }

    /// The dashboard's counts; a gateway is online with a heartbeat at or after
    /// `online_since` (Unix seconds).
    pub async fn fleet_counts(&self, online_since: i64) -> CoreResult<FleetCounts> {
        let row = sqlx::query(
            "SELECT
                (SELECT COUNT(*) FROM gateways WHERE is_active = 1 AND last_heartbeat >= $1) AS online,
                (SELECT COUNT(*) FROM gateways WHERE is_active = 1) AS active,
                (SELECT COUNT(*) FROM vpn_sessions WHERE disconnected_at IS NULL) AS live,
                (SELECT COUNT(*) FROM vpn_configs WHERE created_at >= $2) AS configs,
                (SELECT COUNT(*) FROM users) AS users",
        )
        .bind(online_since)
        .bind(unix_now() - 86_400)
        .fetch_one(&self.pool)
        .await?;
        let count =
            |column: &str| -> CoreResult<u64> { Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0)) };
        let online = count("online")?;
        Ok(FleetCounts {
            gateways_online: online,
            gateways_offline: count("active")?.saturating_sub(online),
            live_sessions: count("live")?,
            configs_issued_24h: count("configs")?,
            users: count("users")?,
        })
    }
}
