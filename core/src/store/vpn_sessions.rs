//! VPN sessions as gateway agents report them, and each gateway's liveness and
//! rule versions.

use super::{Store, WriteTx, unix_now};
use crate::error::{CoreError, CoreResult};
use sqlx::Row;

/// A connection an agent reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// The agent's key for the connection.
    pub session_key: String,
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
}

/// An open session somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    /// The gateway it is on.
    pub gateway_id: String,
    /// Certificate CN.
    pub common_name: String,
    /// Canonical serial.
    pub serial: String,
}

/// Counters of a finished session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionTotals {
    /// Bytes from the client.
    pub bytes_received: u64,
    /// Bytes to the client.
    pub bytes_sent: u64,
    /// Unix seconds.
    pub disconnected_at: i64,
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Inside `tx`: records a connection; reporting it again changes nothing.
    pub async fn record_session_connected(
        &self,
        tx: &mut WriteTx,
        gateway_id: &str,
        report: &SessionReport,
    ) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO vpn_sessions (gateway_id, session_key, common_name, serial, vpn_address, client_address, connected_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(gateway_id)
        .bind(&report.session_key)
        .bind(&report.common_name)
        .bind(&report.serial)
        .bind(&report.vpn_address)
        .bind(&report.client_address)
        .bind(report.connected_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Inside `tx`: records the end of a connection; the first report wins.
    pub async fn record_session_disconnected(
        &self,
        tx: &mut WriteTx,
        gateway_id: &str,
        session_key: &str,
        totals: SessionTotals,
    ) -> CoreResult<()> {
        sqlx::query(
            "UPDATE vpn_sessions SET disconnected_at = $1, bytes_received = $2, bytes_sent = $3
             WHERE gateway_id = $4 AND session_key = $5 AND disconnected_at IS NULL",
        )
        .bind(totals.disconnected_at)
        .bind(as_i64(totals.bytes_received))
        .bind(as_i64(totals.bytes_sent))
        .bind(gateway_id)
        .bind(session_key)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Inside `tx`, after an agent (re)connects: records its live sessions and closes
    /// every other session the store still had open on that gateway.
    pub async fn reconcile_sessions(
        &self,
        tx: &mut WriteTx,
        gateway_id: &str,
        live: &[SessionReport],
    ) -> CoreResult<()> {
        for report in live {
            self.record_session_connected(tx, gateway_id, report).await?;
        }
        let open =
            sqlx::query("SELECT session_key FROM vpn_sessions WHERE gateway_id = $1 AND disconnected_at IS NULL")
                .bind(gateway_id)
                .fetch_all(&mut **tx)
                .await?;
        let now = unix_now();
        for row in open {
            let key: String = row.try_get("session_key")?;
            if !live.iter().any(|report| report.session_key == key) {
                let totals = SessionTotals { disconnected_at: now, ..Default::default() };
                self.record_session_disconnected(tx, gateway_id, &key, totals).await?;
            }
        }
        Ok(())
    }

    /// The sessions open now of a certificate, an identity or a gateway.
    pub async fn open_sessions(&self, of: SessionsOf<'_>) -> CoreResult<Vec<OpenSession>> {
        open_sessions_where(&self.pool, of).await
    }

    /// Inside `tx`: the sessions open of a certificate, an identity or a gateway, as the
    /// change `tx` makes sees them.
    pub async fn open_sessions_in(&self, tx: &mut WriteTx, of: SessionsOf<'_>) -> CoreResult<Vec<OpenSession>> {
        open_sessions_where(&mut **tx, of).await
    }

    /// Sessions open anywhere.
    pub async fn count_all_open_sessions(&self) -> CoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS total FROM vpn_sessions WHERE disconnected_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        super::total_of(&row)
    }

    /// Sessions open on a gateway.
    pub async fn count_open_sessions(&self, gateway_id: &str) -> CoreResult<u64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS total FROM vpn_sessions WHERE gateway_id = $1 AND disconnected_at IS NULL")
                .bind(gateway_id)
                .fetch_one(&self.pool)
                .await?;
        super::total_of(&row)
    }

    /// Inside `tx`: records heartbeats (gateway, Unix seconds), never moving a gateway's
    /// last heartbeat backwards. Rows are updated in gateway id order, the order in which
    /// every batch of gateway updates locks them.
    pub async fn record_heartbeats(&self, tx: &mut WriteTx, heartbeats: &[(String, i64)]) -> CoreResult<()> {
        let mut heartbeats = heartbeats.to_vec();
        heartbeats.sort();
        for (gateway_id, at) in &heartbeats {
            sqlx::query(
                "UPDATE gateways SET last_heartbeat = $1 WHERE id = $2 AND (last_heartbeat IS NULL OR last_heartbeat < $1)",
            )
            .bind(*at)
            .bind(gateway_id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// A gateway's current rule version.
    pub async fn rules_version(&self, gateway_id: &str) -> CoreResult<u64> {
        let row = sqlx::query("SELECT rules_version FROM gateways WHERE id = $1")
            .bind(gateway_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("gateway `{gateway_id}` not found")))?;
        Ok(u64::try_from(row.try_get::<i64, _>("rules_version")?).unwrap_or(0))
    }

    /// Inside `tx`: records the rule versions agents applied (gateway, version), never
    /// moving one backwards; in gateway id order, as heartbeats.
    pub async fn record_rules_applied(&self, tx: &mut WriteTx, applied: &[(String, u64)]) -> CoreResult<()> {
        let mut applied = applied.to_vec();
        applied.sort();
        for (gateway_id, version) in &applied {
            sqlx::query("UPDATE gateways SET rules_applied_version = $1 WHERE id = $2 AND rules_applied_version < $1")
                .bind(as_i64(*version))
                .bind(gateway_id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// Whose open sessions to read.
#[derive(Debug, Clone, Copy)]
pub enum SessionsOf<'a> {
    /// The sessions using the certificate with this serial.
    Certificate(&'a str),
    /// The sessions of this identity (certificate CN).
    Identity(&'a str),
    /// The sessions through this gateway.
    Gateway(&'a str),
}

/// Open sessions of `of`, read through `executor` (the pool, or a change's own
/// transaction).
async fn open_sessions_where<'e, E>(executor: E, of: SessionsOf<'_>) -> CoreResult<Vec<OpenSession>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let (column, value) = match of {
        SessionsOf::Certificate(serial) => ("serial", serial),
        SessionsOf::Identity(common_name) => ("common_name", common_name),
        SessionsOf::Gateway(gateway_id) => ("gateway_id", gateway_id),
    };
    query_fmt!(
        "SELECT gateway_id, common_name, serial FROM vpn_sessions WHERE {column} = $1 AND disconnected_at IS NULL"
    )
    .bind(value)
    .fetch_all(executor)
    .await?
    .iter()
    .map(|row| {
        Ok(OpenSession {
            gateway_id: row.try_get("gateway_id")?,
            common_name: row.try_get("common_name")?,
            serial: row.try_get("serial")?,
        })
    })
    .collect()
}
