//! Protected networks.

use super::{Listing, Page, Store, WriteTx, conflict_on_duplicate, join_list, split_list, total_of, unix_now};
use crate::error::{CoreError, CoreResult};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRecord {
    /// `net-…`
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Normalised CIDRs.
    pub cidrs: Vec<String>,
    /// Gateways it is attached to, sorted.
    pub gateway_ids: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A network to create.
pub struct NewNetwork {
    /// `net-…`, made by the caller.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Normalised CIDRs.
    pub cidrs: Vec<String>,
}

/// Changes to a network; `None` leaves a field as it is.
#[derive(Default)]
pub struct NetworkChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New CIDRs.
    pub cidrs: Option<Vec<String>>,
}

const NETWORK_COLUMNS: &str = "id, name, description, cidrs, created_at, updated_at";

impl Store {
    /// Creates a network; a duplicate name is a conflict.
    pub async fn create_network(&self, tx: &mut WriteTx, network: NewNetwork) -> CoreResult<()> {
        let id = network.id.clone();
        sqlx::query(
            "INSERT INTO networks (id, name, description, cidrs, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(&network.name)
        .bind(&network.description)
        .bind(join_list(&network.cidrs))
        .bind(unix_now())
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_on_duplicate(e, || format!("a network named `{}` already exists", network.name)))?;
        Ok(())
    }

    /// A network by id, or `NotFound`.
    pub async fn require_network(&self, id: &str) -> CoreResult<NetworkRecord> {
        let row = query_fmt!("SELECT {NETWORK_COLUMNS} FROM networks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("network `{id}` not found")))?;
        self.network_from_row(&row).await
    }

    /// A page of networks by name.
    pub async fn list_networks(&self, page: Page) -> CoreResult<Listing<NetworkRecord>> {
        let total = total_of(&sqlx::query("SELECT COUNT(*) AS total FROM networks").fetch_one(&self.pool).await?)?;
        let rows = query_fmt!("SELECT {NETWORK_COLUMNS} FROM networks ORDER BY name LIMIT $1 OFFSET $2")
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        Ok(Listing { items: self.network_records(&rows).await?, total })
    }

    /// Inside `tx`: applies changes to a network; a duplicate name is a conflict.
    pub async fn update_network(&self, tx: &mut WriteTx, id: &str, changes: NetworkChanges) -> CoreResult<()> {
        let name_for_message = changes.name.clone().unwrap_or_default();
        let done = sqlx::query(
            "UPDATE networks SET name = COALESCE($1, name), description = COALESCE($2, description),
                 cidrs = COALESCE($3, cidrs), updated_at = $4 WHERE id = $5",
        )
        .bind(changes.name)
        .bind(changes.description)
        .bind(changes.cidrs.as_deref().map(join_list))
        .bind(unix_now())
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_on_duplicate(e, || format!("a network named `{name_for_message}` already exists")))?;
        match done.rows_affected() {
            0 => Err(CoreError::NotFound(format!("network `{id}` not found"))),
            _ => Ok(()),
        }
    }

    /// Inside `tx`: deletes a network and detaches it from every gateway.
    pub async fn delete_network(&self, tx: &mut WriteTx, id: &str) -> CoreResult<()> {
        sqlx::query("DELETE FROM gateway_networks WHERE network_id = $1").bind(id).execute(&mut **tx).await?;
        let done = sqlx::query("DELETE FROM networks WHERE id = $1").bind(id).execute(&mut **tx).await?;
        match done.rows_affected() {
            0 => Err(CoreError::NotFound(format!("network `{id}` not found"))),
            _ => Ok(()),
        }
    }

    /// The networks with these ids (those that exist) as policies hold them: without the
    /// list of gateways each is attached to, which a policy never reads (read for the
    /// policies of thousands of gateways, it cost time in the square of the fleet's
    /// size). One query.
    pub async fn networks_for_policies(&self, ids: &[String]) -> CoreResult<Vec<NetworkRecord>> {
        let rows = self.rows_with_keys(&format!("SELECT {NETWORK_COLUMNS} FROM networks WHERE id"), "", ids).await?;
        rows.iter().map(|row| network_fields(row, row.try_get("id")?, Vec::new())).collect()
    }

    /// Records from rows of [`NETWORK_COLUMNS`], with the gateways of all of them read
    /// in one query.
    async fn network_records(&self, rows: &[AnyRow]) -> CoreResult<Vec<NetworkRecord>> {
        let ids = rows.iter().map(|row| row.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?;
        let [mut gateways] = self.related_values("network_id", [("gateway_networks", "gateway_id")], &ids).await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| {
                let gateway_ids = gateways.remove(&id).unwrap_or_default();
                network_fields(row, id, gateway_ids)
            })
            .collect()
    }

    async fn network_from_row(&self, row: &AnyRow) -> CoreResult<NetworkRecord> {
        self.network_records(std::slice::from_ref(row))
            .await?
            .pop()
            .ok_or_else(|| CoreError::Internal("a network row made no record".into()))
    }
}

/// A network from a row of [`NETWORK_COLUMNS`], with its id and its gateways.
fn network_fields(row: &AnyRow, id: String, gateway_ids: Vec<String>) -> CoreResult<NetworkRecord> {
    let cidrs: String = row.try_get("cidrs")?;
    Ok(NetworkRecord {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        cidrs: split_list(&cidrs),
        gateway_ids,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    })
}
