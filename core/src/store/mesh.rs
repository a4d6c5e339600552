//! Mesh spokes: remote sites attached to a hub (a `gateways` row in the `hub` role).

use super::pki::insert_certificate;
use super::{
    CertificateRecord, Listing, Page, Store, WriteTx, conflict_on_duplicate, join_list, split_list, total_of, unix_now,
};
use crate::error::{CoreError, CoreResult};
use crate::secrets::MintedToken;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored spoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokeRecord {
    /// `spoke-…`, also its certificate's common name.
    pub id: String,
    /// The hub it connects to.
    pub hub_id: String,
    /// Unique within the hub.
    pub name: String,
    /// The networks it may advertise (set by an admin).
    pub local_cidrs: Vec<String>,
    /// The networks its agent advertised when it last provisioned.
    pub advertised_cidrs: Vec<String>,
    /// Its current certificate (the last one issued); earlier ones are superseded.
    pub certificate_serial: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

const SPOKE_COLUMNS: &str = "id, hub_id, name, local_cidrs, advertised_cidrs, certificate_serial, created_at";

/// Keeps the spokes `s` with an open VPN session at their hub.
const CONNECTED: &str = "AND EXISTS (SELECT 1 FROM vpn_sessions v
         WHERE v.gateway_id = s.hub_id AND v.common_name = s.id AND v.disconnected_at IS NULL)";

impl Store {
    /// Adds spoke `id` to a hub with agent token `token`; it advertises nothing until its
    /// agent provisions. A duplicate name within the hub is a conflict.
    pub async fn create_spoke(
        &self,
        tx: &mut WriteTx,
        id: &str,
        hub_id: &str,
        name: &str,
        local_cidrs: &[String],
        token: &MintedToken,
    ) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO mesh_spokes (id, hub_id, name, local_cidrs, advertised_cidrs, token_selector, token_verifier,
                                      created_at, updated_at)
             VALUES ($1, $2, $3, $4, '', $5, $6, $7, $7)",
        )
        .bind(id)
        .bind(hub_id)
        .bind(name)
        .bind(join_list(local_cidrs))
        .bind(&token.selector)
        .bind(&token.verifier)
        .bind(unix_now())
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_on_duplicate(e, || format!("the hub already has a spoke named `{name}`")))?;
        Ok(())
    }

    /// A hub's spoke.
    pub async fn find_spoke(&self, hub_id: &str, id: &str) -> CoreResult<Option<SpokeRecord>> {
        query_fmt!("SELECT {SPOKE_COLUMNS} FROM mesh_spokes WHERE hub_id = $1 AND id = $2")
            .bind(hub_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(spoke_from_row)
            .transpose()
    }

    /// A hub's spoke, or `NotFound`.
    pub async fn require_spoke(&self, hub_id: &str, id: &str) -> CoreResult<SpokeRecord> {
        self.find_spoke(hub_id, id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("hub `{hub_id}` has no spoke `{id}`")))
    }

    /// A page of a hub's spokes by name.
    pub async fn list_spokes(&self, hub_id: &str, page: Page) -> CoreResult<Listing<SpokeRecord>> {
        let total = total_of(
            &sqlx::query("SELECT COUNT(*) AS total FROM mesh_spokes WHERE hub_id = $1")
                .bind(hub_id)
                .fetch_one(&self.pool)
                .await?,
        )?;
        let rows =
            query_fmt!("SELECT {SPOKE_COLUMNS} FROM mesh_spokes WHERE hub_id = $1 ORDER BY name LIMIT $2 OFFSET $3")
                .bind(hub_id)
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(&self.pool)
                .await?;
        Ok(Listing { items: rows.iter().map(spoke_from_row).collect::<CoreResult<_>>()?, total })
    }

    /// Every spoke of a hub.
    pub async fn spokes_of_hub(&self, hub_id: &str) -> CoreResult<Vec<SpokeRecord>> {
        self.spokes_where(hub_id, "").await
    }

    /// The spokes of a hub whose tunnel to it is up (an open session reported by the hub).
    pub async fn connected_spokes(&self, hub_id: &str) -> CoreResult<Vec<SpokeRecord>> {
        self.spokes_where(hub_id, CONNECTED).await
    }

    /// A hub's spokes `s` that meet `condition` (SQL from this module), by name.
    async fn spokes_where(&self, hub_id: &str, condition: &'static str) -> CoreResult<Vec<SpokeRecord>> {
        let columns = SPOKE_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ");
        query_fmt!("SELECT {columns} FROM mesh_spokes s WHERE s.hub_id = $1 {condition} ORDER BY s.name")
            .bind(hub_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(spoke_from_row)
            .collect()
    }

    /// How many spokes (of every hub) have their tunnel up.
    pub async fn count_connected_spokes(&self) -> CoreResult<u64> {
        total_of(
            &query_fmt!("SELECT COUNT(*) AS total FROM mesh_spokes s WHERE 1 = 1 {CONNECTED}")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The spoke whose agent token has this selector, with the token's verifier.
    pub async fn find_spoke_by_token_selector(&self, selector: &str) -> CoreResult<Option<(SpokeRecord, String)>> {
        let row = query_fmt!("SELECT {SPOKE_COLUMNS}, token_verifier FROM mesh_spokes WHERE token_selector = $1")
            .bind(selector)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some((spoke_from_row(&row)?, row.try_get("token_verifier")?))),
            None => Ok(None),
        }
    }

    /// Inside `tx`: records what a spoke's agent provisioned (the networks it advertises
    /// and its new certificate, kept as its only valid one). Earlier certificates are
    /// revoked as superseded; answers the spoke and how many were.
    pub async fn record_spoke_provisioning(
        &self,
        tx: &mut WriteTx,
        spoke: &SpokeRecord,
        advertised: &[String],
        certificate: &CertificateRecord,
    ) -> CoreResult<(SpokeRecord, u64)> {
        let done = sqlx::query(
            "UPDATE mesh_spokes SET advertised_cidrs = $1, certificate_serial = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(join_list(advertised))
        .bind(&certificate.serial)
        .bind(unix_now())
        .bind(&spoke.id)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound(format!("spoke `{}` no longer exists", spoke.id)));
        }
        insert_certificate(&mut **tx, certificate).await?;
        let superseded = self.revoke_spoke_certificates(tx, &spoke.id, "superseded", &certificate.serial).await?;
        let spoke = query_fmt!("SELECT {SPOKE_COLUMNS} FROM mesh_spokes WHERE id = $1")
            .bind(&spoke.id)
            .fetch_one(&mut **tx)
            .await
            .map_err(CoreError::from)
            .and_then(|row| spoke_from_row(&row))?;
        Ok((spoke, superseded))
    }

    /// Replaces a spoke's agent token.
    pub async fn set_spoke_token(&self, tx: &mut WriteTx, spoke: &SpokeRecord, token: &MintedToken) -> CoreResult<()> {
        sqlx::query("UPDATE mesh_spokes SET token_selector = $1, token_verifier = $2, updated_at = $3 WHERE id = $4")
            .bind(&token.selector)
            .bind(&token.verifier)
            .bind(unix_now())
            .bind(&spoke.id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Inside `tx`: deletes a hub's spoke and revokes its certificates; answers how many.
    pub async fn delete_spoke(&self, tx: &mut WriteTx, hub_id: &str, id: &str) -> CoreResult<u64> {
        let done = sqlx::query("DELETE FROM mesh_spokes WHERE hub_id = $1 AND id = $2")
            .bind(hub_id)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound(format!("hub `{hub_id}` has no spoke `{id}`")));
        }
        self.revoke_spoke_certificates(tx, id, "cessation_of_operation", "").await
    }

    /// Inside `tx`: revokes every unrevoked certificate of the spoke `spoke_id` but the
    /// one with serial `keep` (empty keeps none); answers how many.
    pub(super) async fn revoke_spoke_certificates(
        &self,
        tx: &mut WriteTx,
        spoke_id: &str,
        reason: &str,
        keep: &str,
    ) -> CoreResult<u64> {
        let done = sqlx::query(
            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2
             WHERE subject = $3 AND revoked_at IS NULL AND serial <> $4",
        )
        .bind(unix_now())
        .bind(reason)
        .bind(spoke_id)
        .bind(keep)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }
}

fn spoke_from_row(row: &AnyRow) -> CoreResult<SpokeRecord> {
    let local_cidrs: String = row.try_get("local_cidrs")?;
    let advertised_cidrs: String = row.try_get("advertised_cidrs")?;
    Ok(SpokeRecord {
        id: row.try_get("id")?,
        hub_id: row.try_get("hub_id")?,
        name: row.try_get("name")?,
        local_cidrs: split_list(&local_cidrs),
        advertised_cidrs: split_list(&advertised_cidrs),
        certificate_serial: row.try_get("certificate_serial")?,
        created_at: row.try_get("created_at")?,
    })
}
