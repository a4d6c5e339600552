//! The CA row, the certificate ledger, signed CRLs and gateways' tls-crypt keys.

use super::{Store, WriteTx, unix_now};
use crate::domain::CertificateKind;
use crate::error::{CoreError, CoreResult};
use sqlx::Row;
use sqlx::any::AnyRow;

/// The stored CA: its certificate and its sealed private key.
#[derive(Debug, Clone)]
pub struct AuthorityRecord {
    /// The CA's common name.
    pub common_name: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The private key, sealed with the at-rest key.
    pub sealed_private_key: String,
}

/// An issued certificate in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Canonical serial.
    pub serial: String,
    /// Whom it was issued to.
    pub kind: CertificateKind,
    /// The CN.
    pub subject: String,
    /// The owner, for client certificates.
    pub user_id: Option<String>,
    /// The gateway, for server certificates and configs.
    pub gateway_id: Option<String>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
    /// RFC 5280 reason name, if revoked.
    pub revocation_reason: Option<String>,
}

/// A stored CRL.
#[derive(Debug, Clone)]
pub struct CrlRecord {
    /// CRL number.
    pub number: i64,
    /// DER in base64.
    pub der_base64: String,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds.
    pub next_update: i64,
}

const CERTIFICATE_COLUMNS: &str =
    "serial, kind, subject, user_id, gateway_id, issued_at, expires_at, revoked_at, revocation_reason";

/// Inserts a ledger row through any executor (the pool or a transaction).
pub(super) async fn insert_certificate<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    certificate: &CertificateRecord,
) -> CoreResult<()> {
    sqlx::query(
        "INSERT INTO certificates (serial, kind, subject, user_id, gateway_id, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&certificate.serial)
    .bind(certificate.kind.as_str())
    .bind(&certificate.subject)
    .bind(&certificate.user_id)
    .bind(&certificate.gateway_id)
    .bind(certificate.issued_at)
    .bind(certificate.expires_at)
    .execute(executor)
    .await?;
    Ok(())
}

fn certificate_from_row(row: &AnyRow) -> CoreResult<CertificateRecord> {
    Ok(CertificateRecord {
        serial: row.try_get("serial")?,
        kind: super::word(row, "kind", CertificateKind::from_stored)?,
        subject: row.try_get("subject")?,
        user_id: row.try_get("user_id")?,
        gateway_id: row.try_get("gateway_id")?,
        issued_at: row.try_get("issued_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revocation_reason: row.try_get("revocation_reason")?,
    })
}

impl Store {
    /// The stored CA, if one was created.
    pub async fn find_authority(&self) -> CoreResult<Option<AuthorityRecord>> {
        let row = sqlx::query(
            "SELECT common_name, certificate_pem, sealed_private_key FROM certificate_authority WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AuthorityRecord {
                common_name: row.try_get("common_name")?,
                certificate_pem: row.try_get("certificate_pem")?,
                sealed_private_key: row.try_get("sealed_private_key")?,
            })
        })
        .transpose()
    }

    /// Stores the CA unless another node stored one first; returns the one that won.
    pub async fn insert_authority_if_absent(&self, authority: &AuthorityRecord) -> CoreResult<AuthorityRecord> {
        sqlx::query(
            "INSERT INTO certificate_authority (id, common_name, certificate_pem, sealed_private_key, created_at)
             VALUES (1, $1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&authority.common_name)
        .bind(&authority.certificate_pem)
        .bind(&authority.sealed_private_key)
        .bind(unix_now())
        .execute(&self.pool)
        .await?;
        self.find_authority().await?.ok_or_else(|| CoreError::Internal("the CA row vanished".into()))
    }

    /// Adds a certificate to the ledger.
    pub async fn record_certificate(&self, certificate: &CertificateRecord) -> CoreResult<()> {
        insert_certificate(&self.pool, certificate).await
    }

    /// A certificate by canonical serial.
    pub async fn find_certificate(&self, serial: &str) -> CoreResult<Option<CertificateRecord>> {
        let row = query_fmt!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1")
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(certificate_from_row).transpose()
    }

    /// Inside `tx`: revokes a certificate (keeping the first revocation if repeated) and
    /// purges any rendered config that carries its key. Answers the record and whether
    /// this call revoked it.
    pub async fn revoke_certificate(
        &self,
        tx: &mut WriteTx,
        serial: &str,
        reason: &str,
    ) -> CoreResult<(CertificateRecord, bool)> {
        let done = sqlx::query(
            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 WHERE serial = $3 AND revoked_at IS NULL",
        )
        .bind(unix_now())
        .bind(reason)
        .bind(serial)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE vpn_configs SET sealed_content = NULL WHERE serial = $1")
            .bind(serial)
            .execute(&mut **tx)
            .await?;
        let record = query_fmt!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1")
            .bind(serial)
            .fetch_optional(&mut **tx)
            .await?
            .as_ref()
            .map(certificate_from_row)
            .transpose()?
            .ok_or_else(|| CoreError::NotFound(format!("no certificate with serial `{serial}` was issued")))?;
        Ok((record, done.rows_affected() > 0))
    }

    /// Inside `tx`, a transaction that changed the revocations: the next CRL's number and
    /// every revoked, unexpired certificate it must list, as `tx` sees them. The outbox
    /// lock, taken before the number is read, keeps concurrent transactions in line:
    /// each CRL lists every revocation committed before it. The ten newest CRLs are kept.
    pub async fn next_crl_contents(&self, tx: &mut WriteTx) -> CoreResult<(i64, Vec<CertificateRecord>)> {
        // The lock before any row: a transaction that already holds it (it wrote an
        // event) must never wait for a row lock held by one waiting for it.
        self.lock_outbox(tx).await?;
        sqlx::query("DELETE FROM crls WHERE number < (SELECT COALESCE(MAX(number), 0) - 9 FROM crls)")
            .execute(&mut **tx)
            .await?;
        let number = latest_crl_in(&mut **tx).await?.map_or(1, |latest| latest.number + 1);
        let revoked = query_fmt!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE revoked_at IS NOT NULL AND expires_at > $1 ORDER BY serial"
        )
        .bind(unix_now())
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(certificate_from_row)
        .collect::<CoreResult<Vec<_>>>()?;
        Ok((number, revoked))
    }

    /// Inside `tx`: stores a CRL signed from [`Store::next_crl_contents`].
    pub async fn insert_crl(&self, tx: &mut WriteTx, crl: &CrlRecord) -> CoreResult<()> {
        sqlx::query("INSERT INTO crls (number, der_base64, this_update, next_update) VALUES ($1, $2, $3, $4)")
            .bind(crl.number)
            .bind(&crl.der_base64)
            .bind(crl.this_update)
            .bind(crl.next_update)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The newest CRL.
    pub async fn latest_crl(&self) -> CoreResult<Option<CrlRecord>> {
        latest_crl_in(&self.pool).await
    }

    /// A gateway's sealed tls-crypt key, if it has one.
    pub async fn sealed_tls_crypt_key(&self, gateway_id: &str) -> CoreResult<Option<String>> {
        let row = sqlx::query("SELECT sealed_tls_crypt_key FROM gateways WHERE id = $1")
            .bind(gateway_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("gateway `{gateway_id}` not found")))?;
        Ok(row.try_get("sealed_tls_crypt_key")?)
    }

    /// Gives a gateway a sealed tls-crypt key unless it has one; returns the one it has.
    pub async fn set_tls_crypt_key_if_absent(&self, gateway_id: &str, sealed: &str) -> CoreResult<String> {
        sqlx::query("UPDATE gateways SET sealed_tls_crypt_key = $1 WHERE id = $2 AND sealed_tls_crypt_key IS NULL")
            .bind(sealed)
            .bind(gateway_id)
            .execute(&self.pool)
            .await?;
        self.sealed_tls_crypt_key(gateway_id)
            .await?
            .ok_or_else(|| CoreError::Internal(format!("gateway `{gateway_id}` has no tls-crypt key")))
    }
}

/// The newest CRL, through any executor.
async fn latest_crl_in<'e>(executor: impl sqlx::Executor<'e, Database = sqlx::Any>) -> CoreResult<Option<CrlRecord>> {
    let row = sqlx::query("SELECT number, der_base64, this_update, next_update FROM crls ORDER BY number DESC LIMIT 1")
        .fetch_optional(executor)
        .await?;
    row.map(|row| {
        Ok(CrlRecord {
            number: row.try_get("number")?,
            der_base64: row.try_get("der_base64")?,
            this_update: row.try_get("this_update")?,
            next_update: row.try_get("next_update")?,
        })
    })
    .transpose()
}
