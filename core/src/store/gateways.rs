//! Gateways, their grants to users and groups, and their attached networks.

use super::{Listing, Page, Store, WriteTx, conflict_on_duplicate, flag, total_of, unix_now};
use crate::domain::Transport;
use crate::error::{CoreError, CoreResult};
use crate::secrets::MintedToken;
use crate::store::UserRecord;
use crate::store::users::USER_COLUMNS;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::{BTreeSet, HashMap};

/// What a row of `gateways` is: a gateway for users, or a mesh hub that spokes and
/// users connect to. Both run the same agent over the same stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayRole {
    /// A VPN gateway (`gw-…`).
    Gateway,
    /// A mesh hub (`hub-…`).
    Hub,
}

impl GatewayRole {
    /// The stored word, also the resource's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayRole::Gateway => "gateway",
            GatewayRole::Hub => "hub",
        }
    }

    fn parse(text: &str) -> CoreResult<Self> {
        match text {
            "gateway" => Ok(GatewayRole::Gateway),
            "hub" => Ok(GatewayRole::Hub),
            other => Err(CoreError::Internal(format!("stored gateway role `{other}` is unknown"))),
        }
    }
}

/// A stored gateway or hub with its grants and networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRecord {
    /// `gw-…` or `hub-…`
    pub id: String,
    /// Gateway or hub.
    pub role: GatewayRole,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Public host name.
    pub hostname: String,
    /// Public port.
    pub port: u16,
    /// UDP or TCP.
    pub protocol: Transport,
    /// Client address pool.
    pub vpn_subnet: String,
    /// Whether users may use it.
    pub is_active: bool,
    /// Unix seconds of the last heartbeat.
    pub last_heartbeat: Option<i64>,
    /// The core node that last took its agent's stream (and has not let go).
    pub stream_node: Option<String>,
    /// Attached networks, sorted.
    pub network_ids: Vec<String>,
    /// Directly granted users, sorted.
    pub user_ids: Vec<String>,
    /// Granted groups, sorted.
    pub groups: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A gateway or hub to create.
pub struct NewGateway {
    /// `gw-…` or `hub-…`, made by the caller.
    pub id: String,
    /// Gateway or hub.
    pub role: GatewayRole,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Public host name.
    pub hostname: String,
    /// Public port.
    pub port: u16,
    /// UDP or TCP.
    pub protocol: Transport,
    /// Client address pool.
    pub vpn_subnet: String,
}

/// Changes to a gateway; `None` leaves a field as it is.
#[derive(Default)]
pub struct GatewayChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New host name.
    pub hostname: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// New protocol.
    pub protocol: Option<Transport>,
    /// New address pool.
    pub vpn_subnet: Option<String>,
    /// New active flag.
    pub is_active: Option<bool>,
}

/// Active gateways granted to user `$1`, directly or through one of its groups.
const GRANTED: &str = "FROM gateways g WHERE g.is_active = 1 AND (
         EXISTS (SELECT 1 FROM gateway_users gu WHERE gu.gateway_id = g.id AND gu.user_id = $1)
      OR EXISTS (SELECT 1 FROM gateway_groups gg JOIN user_groups ug ON ug.group_name = gg.group_name
                 WHERE gg.gateway_id = g.id AND ug.user_id = $1))";

const GATEWAY_COLUMNS: &str = "id, role, name, description, hostname, port, protocol, vpn_subnet, is_active, last_heartbeat, stream_node, created_at, updated_at";

/// What a gateway's rule snapshot is made from.
#[derive(Debug, Clone)]
pub struct SnapshotSubject {
    /// The gateway's id.
    pub id: String,
    /// Gateway or hub.
    pub role: GatewayRole,
    /// Whether it may be used.
    pub is_active: bool,
    /// Its networks, sorted.
    pub network_ids: Vec<String>,
    /// Its rule version.
    pub rules_version: u64,
}

/// The tables that link a gateway to something else.
#[derive(Debug, Clone, Copy)]
pub enum GatewayLink {
    /// A direct grant to a user.
    User,
    /// A grant to a group.
    Group,
    /// An attached network.
    Network,
}

impl GatewayLink {
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            GatewayLink::User => ("gateway_users", "user_id"),
            GatewayLink::Group => ("gateway_groups", "group_name"),
            GatewayLink::Network => ("gateway_networks", "network_id"),
        }
    }
}

impl Store {
    /// Inside `tx`: creates a gateway or hub whose agent token is `token`, with its first
    /// links (checked by the caller); a duplicate name (among gateways and hubs) is a
    /// conflict.
    pub async fn create_gateway(
        &self,
        tx: &mut WriteTx,
        gateway: &NewGateway,
        token: &MintedToken,
        links: &[(GatewayLink, Vec<String>)],
    ) -> CoreResult<()> {
        let id = &gateway.id;
        sqlx::query(
            "INSERT INTO gateways (id, name, description, hostname, port, protocol, vpn_subnet, is_active,
                                   token_selector, token_verifier, created_at, updated_at, role)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $10, $11)",
        )
        .bind(id)
        .bind(&gateway.name)
        .bind(&gateway.description)
        .bind(&gateway.hostname)
        .bind(i64::from(gateway.port))
        .bind(gateway.protocol.as_str())
        .bind(&gateway.vpn_subnet)
        .bind(&token.selector)
        .bind(&token.verifier)
        .bind(unix_now())
        .bind(gateway.role.as_str())
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            conflict_on_duplicate(e, || format!("a gateway or hub named `{}` already exists", gateway.name))
        })?;
        for (link, targets) in links {
            insert_links(tx, id, *link, targets).await?;
        }
        Ok(())
    }

    /// A gateway by id.
    pub async fn find_gateway(&self, id: &str) -> CoreResult<Option<GatewayRecord>> {
        let row = query_fmt!("SELECT {GATEWAY_COLUMNS} FROM gateways WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.gateway_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    /// A gateway by id, or `NotFound`.
    pub async fn require_gateway(&self, id: &str) -> CoreResult<GatewayRecord> {
        self.find_gateway(id).await?.ok_or_else(|| CoreError::NotFound(format!("gateway `{id}` not found")))
    }

    /// A gateway or hub by id in the given role, or `NotFound`.
    pub async fn require_gateway_in_role(&self, id: &str, role: GatewayRole) -> CoreResult<GatewayRecord> {
        match self.find_gateway(id).await? {
            Some(record) if record.role == role => Ok(record),
            _ => Err(CoreError::NotFound(format!("{} `{id}` not found", role.as_str()))),
        }
    }

    /// A page of every gateway and hub (or of one role) by name.
    pub async fn list_gateways(&self, role: Option<GatewayRole>, page: Page) -> CoreResult<Listing<GatewayRecord>> {
        let role = role.map(GatewayRole::as_str);
        let total = total_of(
            &sqlx::query("SELECT COUNT(*) AS total FROM gateways WHERE ($1 IS NULL OR role = $1)")
                .bind(role)
                .fetch_one(&self.pool)
                .await?,
        )?;
        let rows = query_fmt!(
            "SELECT {GATEWAY_COLUMNS} FROM gateways WHERE ($3 IS NULL OR role = $3) ORDER BY name LIMIT $1 OFFSET $2"
        )
        .bind(page.limit())
        .bind(page.offset())
        .bind(role)
        .fetch_all(&self.pool)
        .await?;
        self.gateways_from_rows(&rows, total).await
    }

    /// A page of the active gateways and hubs (or of one role) granted to a user,
    /// directly or through its groups.
    pub async fn list_gateways_for_user(
        &self,
        role: Option<GatewayRole>,
        user_id: &str,
        page: Page,
    ) -> CoreResult<Listing<GatewayRecord>> {
        let role = role.map(GatewayRole::as_str);
        let total = total_of(
            &query_fmt!("SELECT COUNT(*) AS total {GRANTED} AND ($2 IS NULL OR g.role = $2)")
                .bind(user_id)
                .bind(role)
                .fetch_one(&self.pool)
                .await?,
        )?;
        let columns = GATEWAY_COLUMNS.split(", ").map(|c| format!("g.{c}")).collect::<Vec<_>>().join(", ");
        let rows =
            query_fmt!("SELECT {columns} {GRANTED} AND ($2 IS NULL OR g.role = $2) ORDER BY g.name LIMIT $3 OFFSET $4")
                .bind(user_id)
                .bind(role)
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(&self.pool)
                .await?;
        self.gateways_from_rows(&rows, total).await
    }

    /// Whether a user may use a gateway: it is active and granted to the user.
    pub async fn gateway_granted_to(&self, user_id: &str, gateway_id: &str) -> CoreResult<bool> {
        let row = query_fmt!("SELECT g.id {GRANTED} AND g.id = $2")
            .bind(user_id)
            .bind(gateway_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Ids of every gateway.
    pub async fn all_gateway_ids(&self) -> CoreResult<Vec<String>> {
        sqlx::query("SELECT id FROM gateways ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get("id").map_err(CoreError::from))
            .collect()
    }

    /// The gateway whose agent token has this selector, with the token's verifier.
    pub async fn find_gateway_by_token_selector(&self, selector: &str) -> CoreResult<Option<(GatewayRecord, String)>> {
        let row = query_fmt!("SELECT {GATEWAY_COLUMNS}, token_verifier FROM gateways WHERE token_selector = $1")
            .bind(selector)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some((self.gateway_from_row(&row).await?, row.try_get("token_verifier")?))),
            None => Ok(None),
        }
    }

    /// Inside `tx`: applies changes to a gateway or hub; a duplicate name is a conflict.
    pub async fn update_gateway(&self, tx: &mut WriteTx, id: &str, changes: GatewayChanges) -> CoreResult<()> {
        let name_for_message = changes.name.clone().unwrap_or_default();
        let done = sqlx::query(
            "UPDATE gateways SET name = COALESCE($1, name), description = COALESCE($2, description),
                 hostname = COALESCE($3, hostname), port = COALESCE($4, port), protocol = COALESCE($5, protocol),
                 vpn_subnet = COALESCE($6, vpn_subnet), is_active = COALESCE($7, is_active), updated_at = $8
             WHERE id = $9",
        )
        .bind(changes.name)
        .bind(changes.description)
        .bind(changes.hostname)
        .bind(changes.port.map(i64::from))
        .bind(changes.protocol.map(Transport::as_str))
        .bind(changes.vpn_subnet)
        .bind(changes.is_active.map(i64::from))
        .bind(unix_now())
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_on_duplicate(e, || format!("a gateway named `{name_for_message}` already exists")))?;
        match done.rows_affected() {
            0 => Err(CoreError::NotFound(format!("gateway `{id}` not found"))),
            _ => Ok(()),
        }
    }

    /// Inside `tx`: replaces a gateway's links of one kind (e.g. all its attached
    /// networks; the caller checks that the targets exist).
    pub async fn replace_gateway_links(
        &self,
        tx: &mut WriteTx,
        id: &str,
        link: GatewayLink,
        targets: &[String],
    ) -> CoreResult<()> {
        let (table, _) = link.table_and_column();
        query_fmt!("DELETE FROM {table} WHERE gateway_id = $1").bind(id).execute(&mut **tx).await?;
        insert_links(tx, id, link, targets).await
    }

    /// Inside `tx`: replaces a gateway's agent token.
    pub async fn set_gateway_token(&self, tx: &mut WriteTx, id: &str, token: &MintedToken) -> CoreResult<()> {
        let done =
            sqlx::query("UPDATE gateways SET token_selector = $1, token_verifier = $2, updated_at = $3 WHERE id = $4")
                .bind(&token.selector)
                .bind(&token.verifier)
                .bind(unix_now())
                .bind(id)
                .execute(&mut **tx)
                .await?;
        match done.rows_affected() {
            0 => Err(CoreError::NotFound(format!("gateway `{id}` not found"))),
            _ => Ok(()),
        }
    }

    /// Inside `tx`: deletes a gateway (or hub) with its grants, attachments and spokes;
    /// a hub's spokes lose their certificates. Answers how many certificates that revoked.
    pub async fn delete_gateway(&self, tx: &mut WriteTx, id: &str) -> CoreResult<u64> {
        // The spokes first (their rows locked, as a spoke's renewal locks its row first),
        // then their certificates, a renewal committed meanwhile included.
        let spoke_ids: Vec<String> = sqlx::query("DELETE FROM mesh_spokes WHERE hub_id = $1 RETURNING id")
            .bind(id)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut spoke_certificates_revoked = 0;
        for spoke_id in &spoke_ids {
            spoke_certificates_revoked +=
                self.revoke_spoke_certificates(tx, spoke_id, "cessation_of_operation", "").await?;
        }
        for link in [GatewayLink::User, GatewayLink::Group, GatewayLink::Network] {
            let (table, _) = link.table_and_column();
            query_fmt!("DELETE FROM {table} WHERE gateway_id = $1").bind(id).execute(&mut **tx).await?;
        }
        let done = sqlx::query("DELETE FROM gateways WHERE id = $1").bind(id).execute(&mut **tx).await?;
        match done.rows_affected() {
            0 => Err(CoreError::NotFound(format!("gateway `{id}` not found"))),
            _ => Ok(spoke_certificates_revoked),
        }
    }

    /// Inside `tx`: links a gateway to a user, group or network; linking twice changes
    /// nothing. The caller checks that both ends exist.
    pub async fn link_gateway(
        &self,
        tx: &mut WriteTx,
        gateway_id: &str,
        link: GatewayLink,
        target: &str,
    ) -> CoreResult<()> {
        insert_links(tx, gateway_id, link, &[target.to_owned()]).await
    }

    /// Inside `tx`: removes a link; removing one that does not exist is `NotFound`.
    pub async fn unlink_gateway(
        &self,
        tx: &mut WriteTx,
        gateway_id: &str,
        link: GatewayLink,
        target: &str,
    ) -> CoreResult<()> {
        let (table, column) = link.table_and_column();
        let done = query_fmt!("DELETE FROM {table} WHERE gateway_id = $1 AND {column} = $2")
            .bind(gateway_id)
            .bind(target)
            .execute(&mut **tx)
            .await?;
        match done.rows_affected() {
            0 => Err(CoreError::NotFound(format!("gateway `{gateway_id}` has no such grant or network `{target}`"))),
            _ => Ok(()),
        }
    }

    async fn gateways_from_rows(&self, rows: &[AnyRow], total: u64) -> CoreResult<Listing<GatewayRecord>> {
        Ok(Listing { items: self.gateway_records(rows).await?, total })
    }

    async fn gateway_from_row(&self, row: &AnyRow) -> CoreResult<GatewayRecord> {
        self.gateway_records(std::slice::from_ref(row))
            .await?
            .pop()
            .ok_or_else(|| CoreError::Internal("a gateway row made no record".into()))
    }

    /// Records from rows of [`GATEWAY_COLUMNS`], with their grants and networks read
    /// in one query for all of them.
    async fn gateway_records(&self, rows: &[AnyRow]) -> CoreResult<Vec<GatewayRecord>> {
        let ids = rows.iter().map(|row| row.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?;
        let links = [GatewayLink::Network, GatewayLink::User, GatewayLink::Group].map(GatewayLink::table_and_column);
        let [mut networks, mut users, mut groups] = self.related_values("gateway_id", links, &ids).await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| {
                Ok(GatewayRecord {
                    network_ids: networks.remove(&id).unwrap_or_default(),
                    user_ids: users.remove(&id).unwrap_or_default(),
                    groups: groups.remove(&id).unwrap_or_default(),
                    ..gateway_fields(row, id)?
                })
            })
            .collect()
    }

    /// What the rule snapshots of these gateways (those that exist) are made from: two
    /// queries for all of them, reading no more than that.
    pub async fn snapshot_subjects(&self, ids: &[String]) -> CoreResult<Vec<SnapshotSubject>> {
        let rows =
            self.rows_with_keys("SELECT id, role, is_active, rules_version FROM gateways WHERE id", "", ids).await?;
        let ids = rows.iter().map(|row| row.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?;
        let [mut networks] = self.related_values("gateway_id", [GatewayLink::Network.table_and_column()], &ids).await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| {
                let role: String = row.try_get("role")?;
                Ok(SnapshotSubject {
                    role: GatewayRole::parse(&role)?,
                    is_active: flag(row, "is_active")?,
                    network_ids: networks.remove(&id).unwrap_or_default(),
                    rules_version: u64::try_from(row.try_get::<i64, _>("rules_version")?).unwrap_or(0),
                    id,
                })
            })
            .collect()
    }

    /// For each of these gateways, the ids of the enabled users granted it directly or
    /// through a group, sorted; and those users.
    pub async fn users_granted_gateways(
        &self,
        gateway_ids: &[String],
    ) -> CoreResult<(HashMap<String, Vec<String>>, HashMap<String, UserRecord>)> {
        let mut granted: HashMap<String, BTreeSet<String>> = HashMap::new();
        let direct = "SELECT gateway_id, user_id FROM gateway_users WHERE gateway_id";
        let through_groups = "SELECT gg.gateway_id AS gateway_id, ug.user_id AS user_id FROM gateway_groups gg
             JOIN user_groups ug ON ug.group_name = gg.group_name WHERE gg.gateway_id";
        for select in [direct, through_groups] {
            for row in self.rows_with_keys(select, "", gateway_ids).await? {
                granted.entry(row.try_get("gateway_id")?).or_default().insert(row.try_get("user_id")?);
            }
        }
        let user_ids: Vec<String> = granted.values().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let rows = self
            .rows_with_keys(&format!("SELECT {USER_COLUMNS} FROM users WHERE disabled = 0 AND id"), "", &user_ids)
            .await?;
        let users: HashMap<String, UserRecord> =
            self.users_from_rows(&rows).await?.into_iter().map(|user| (user.id.clone(), user)).collect();
        let granted = granted
            .into_iter()
            .map(|(gateway, ids)| (gateway, ids.into_iter().filter(|id| users.contains_key(id)).collect()))
            .collect();
        Ok((granted, users))
    }
}

/// A gateway's own columns (its links empty).
fn gateway_fields(row: &AnyRow, id: String) -> CoreResult<GatewayRecord> {
    let port: i64 = row.try_get("port")?;
    let role: String = row.try_get("role")?;
    Ok(GatewayRecord {
        role: GatewayRole::parse(&role)?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        hostname: row.try_get("hostname")?,
        port: u16::try_from(port).map_err(|_| CoreError::Internal(format!("stored port {port} out of range")))?,
        protocol: super::word(row, "protocol", Transport::from_stored)?,
        vpn_subnet: row.try_get("vpn_subnet")?,
        is_active: flag(row, "is_active")?,
        last_heartbeat: row.try_get("last_heartbeat")?,
        stream_node: row.try_get("stream_node")?,
        network_ids: Vec::new(),
        user_ids: Vec::new(),
        groups: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    })
}

/// Links a gateway to each of `targets` inside a transaction; existing links stay.
async fn insert_links(tx: &mut WriteTx, gateway_id: &str, link: GatewayLink, targets: &[String]) -> CoreResult<()> {
    let (table, column) = link.table_and_column();
    for target in targets {
        query_fmt!("INSERT INTO {table} (gateway_id, {column}) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(gateway_id)
            .bind(target)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The gateways granted to a user, directly or through a group, read through `executor`
/// (the pool, or a change's own transaction).
pub(super) async fn gateways_granted_to_user<'e, E>(executor: E, user_id: &str) -> CoreResult<Vec<String>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "SELECT gateway_id FROM gateway_users WHERE user_id = $1
         UNION SELECT gg.gateway_id FROM gateway_groups gg JOIN user_groups ug ON ug.group_name = gg.group_name
         WHERE ug.user_id = $1",
    )
    .bind(user_id)
    .fetch_all(executor)
    .await?
    .iter()
    .map(|row| row.try_get("gateway_id").map_err(CoreError::from))
    .collect()
}
