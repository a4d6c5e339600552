//! Issued VPN configurations: the rendered file stays sealed until its one download
//! or its purge deadline, whichever comes first.

use super::pki::{CertificateRecord, insert_certificate};
use super::{Listing, Page, Store, WriteTx, total_of, unix_now};
use crate::domain::{CertificateKind, VpnProtocol};
use crate::error::{CoreError, CoreResult};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A config in the ledger, joined with its owner and certificate.
#[derive(Debug, Clone)]
pub struct ConfigRecord {
    /// `cfg-…`
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// The owner's e-mail.
    pub user_email: String,
    /// The gateway.
    pub gateway_id: String,
    /// The gateway's name when issued.
    pub gateway_name: String,
    /// The VPN it is for.
    pub protocol: VpnProtocol,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the certificate's expiry.
    pub expires_at: i64,
    /// The sealed `.ovpn`, until downloaded or purged.
    pub sealed_content: Option<String>,
    /// Unix seconds after which the content is purged.
    pub purge_after: i64,
    /// Unix seconds, if downloaded.
    pub downloaded_at: Option<i64>,
    /// The certificate.
    pub certificate: CertificateRecord,
}

/// A config to store along with its certificate.
pub struct NewConfig<'a> {
    /// `cfg-…`
    pub id: &'a str,
    /// The owner.
    pub user_id: &'a str,
    /// The gateway.
    pub gateway_id: &'a str,
    /// The gateway's name.
    pub gateway_name: &'a str,
    /// The VPN it is for.
    pub protocol: VpnProtocol,
    /// The sealed `.ovpn`.
    pub sealed_content: &'a str,
    /// Unix seconds after which the content is purged.
    pub purge_after: i64,
    /// The certificate it carries.
    pub certificate: &'a CertificateRecord,
}

const CONFIG_SELECT: &str = "SELECT c.id, c.user_id, u.email AS user_email, c.gateway_id, c.gateway_name, c.protocol,
        c.created_at, c.expires_at, c.sealed_content, c.purge_after, c.downloaded_at,
        k.serial, k.kind, k.subject, k.user_id AS cert_user_id, k.gateway_id AS cert_gateway_id, k.issued_at,
        k.expires_at AS cert_expires_at, k.revoked_at, k.revocation_reason
    FROM vpn_configs c JOIN users u ON u.id = c.user_id JOIN certificates k ON k.serial = c.serial";

fn config_from_row(row: &AnyRow) -> CoreResult<ConfigRecord> {
    Ok(ConfigRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        user_email: row.try_get("user_email")?,
        gateway_id: row.try_get("gateway_id")?,
        gateway_name: row.try_get("gateway_name")?,
        protocol: super::word(row, "protocol", VpnProtocol::from_stored)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        sealed_content: row.try_get("sealed_content")?,
        purge_after: row.try_get("purge_after")?,
        downloaded_at: row.try_get("downloaded_at")?,
        certificate: CertificateRecord {
            serial: row.try_get("serial")?,
            kind: super::word(row, "kind", CertificateKind::from_stored)?,
            subject: row.try_get("subject")?,
            user_id: row.try_get("cert_user_id")?,
            gateway_id: row.try_get("cert_gateway_id")?,
            issued_at: row.try_get("issued_at")?,
            expires_at: row.try_get("cert_expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            revocation_reason: row.try_get("revocation_reason")?,
        },
    })
}

impl Store {
    /// Inside `tx`: records a certificate and the config that carries it.
    pub async fn create_config(&self, tx: &mut WriteTx, config: NewConfig<'_>) -> CoreResult<()> {
        let certificate = config.certificate;
        insert_certificate(&mut **tx, certificate).await?;
        sqlx::query(
            "INSERT INTO vpn_configs (id, user_id, gateway_id, gateway_name, serial, protocol, created_at, expires_at,
                                      sealed_content, purge_after)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(config.id)
        .bind(config.user_id)
        .bind(config.gateway_id)
        .bind(config.gateway_name)
        .bind(&certificate.serial)
        .bind(config.protocol.as_str())
        .bind(certificate.issued_at)
        .bind(certificate.expires_at)
        .bind(config.sealed_content)
        .bind(config.purge_after)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A config by id.
    pub async fn find_config(&self, id: &str) -> CoreResult<Option<ConfigRecord>> {
        let row = query_fmt!("{CONFIG_SELECT} WHERE c.id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(config_from_row).transpose()
    }

    /// Takes a config's sealed content out of the store: only one caller ever gets it.
    pub async fn take_config_content(&self, id: &str) -> CoreResult<Option<String>> {
        let Some(config) = self.find_config(id).await? else {
            return Err(CoreError::NotFound(format!("config `{id}` not found")));
        };
        let Some(content) = config.sealed_content else { return Ok(None) };
        let done = sqlx::query(
            "UPDATE vpn_configs SET sealed_content = NULL, downloaded_at = $1 WHERE id = $2 AND sealed_content IS NOT NULL",
        )
        .bind(unix_now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then_some(content))
    }

    /// Purges the sealed content of configs past their deadline; returns how many.
    pub async fn purge_stale_configs(&self) -> CoreResult<u64> {
        let done = sqlx::query(
            "UPDATE vpn_configs SET sealed_content = NULL WHERE sealed_content IS NOT NULL AND purge_after <= $1",
        )
        .bind(unix_now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A page of configs, newest first: all of them, or one user's.
    pub async fn list_configs(&self, user_id: Option<&str>, page: Page) -> CoreResult<Listing<ConfigRecord>> {
        let (total, rows) = match user_id {
            Some(user_id) => (
                sqlx::query("SELECT COUNT(*) AS total FROM vpn_configs WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_one(&self.pool)
                    .await?,
                query_fmt!("{CONFIG_SELECT} WHERE c.user_id = $1 ORDER BY c.created_at DESC, c.id LIMIT $2 OFFSET $3")
                    .bind(user_id)
                    .bind(page.limit())
                    .bind(page.offset())
                    .fetch_all(&self.pool)
                    .await?,
            ),
            None => (
                sqlx::query("SELECT COUNT(*) AS total FROM vpn_configs").fetch_one(&self.pool).await?,
                query_fmt!("{CONFIG_SELECT} ORDER BY c.created_at DESC, c.id LIMIT $1 OFFSET $2")
                    .bind(page.limit())
                    .bind(page.offset())
                    .fetch_all(&self.pool)
                    .await?,
            ),
        };
        Ok(Listing { total: total_of(&total)?, items: rows.iter().map(config_from_row).collect::<CoreResult<_>>()? })
    }
}
