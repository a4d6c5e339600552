//! Access rules: who (users, groups) may reach what (destination, protocol, ports)
//! inside a network.

use super::{AnyQuery, Listing, Page, Store, WriteTx, conflict_on_duplicate, total_of, unix_now};
use crate::domain::{DestinationType, RuleProtocol};
use crate::error::{CoreError, CoreResult};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRuleRecord {
    /// `rule-…`
    pub id: String,
    /// What the rule says.
    pub fields: AccessRuleFields,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// The writable fields of a rule (create, or replace on update).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRuleFields {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The network.
    pub network_id: String,
    /// Users granted.
    pub user_ids: Vec<String>,
    /// Groups granted.
    pub groups: Vec<String>,
    /// What the destination is.
    pub destination_type: DestinationType,
    /// The destination.
    pub destination: String,
    /// The protocol.
    pub protocol: RuleProtocol,
    /// First port.
    pub port_from: u16,
    /// Last port.
    pub port_to: u16,
}

const RULE_COLUMNS: &str = "id, name, description, network_id, destination_type, destination, protocol, port_from, port_to, created_at, updated_at";

/// Binds a rule's fields as `$1`…`$8`, in the column order of the statements below.
fn bind_rule_fields<'q>(query: AnyQuery<'q>, fields: &AccessRuleFields) -> AnyQuery<'q> {
    query
        .bind(&fields.name)
        .bind(&fields.description)
        .bind(&fields.network_id)
        .bind(fields.destination_type.as_str())
        .bind(&fields.destination)
        .bind(fields.protocol.as_str())
        .bind(i64::from(fields.port_from))
        .bind(i64::from(fields.port_to))
}

impl Store {
    /// Inside `tx`: creates rule `id`; a duplicate name is a conflict.
    pub async fn create_access_rule(&self, tx: &mut WriteTx, id: &str, fields: &AccessRuleFields) -> CoreResult<()> {
        let insert = sqlx::query(
            "INSERT INTO access_rules (name, description, network_id, destination_type, destination, protocol,
                                       port_from, port_to, id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        );
        bind_rule_fields(insert, fields).bind(id).bind(unix_now()).execute(&mut **tx).await.map_err(|e| {
            conflict_on_duplicate(e, || format!("an access rule named `{}` already exists", fields.name))
        })?;
        replace_subjects(tx, id, fields).await
    }

    /// Inside `tx`: replaces every writable field of a rule; answers the network it was in.
    pub async fn replace_access_rule(
        &self,
        tx: &mut WriteTx,
        id: &str,
        fields: &AccessRuleFields,
    ) -> CoreResult<String> {
        let old_network = network_of_rule(tx, id).await?;
        let update = sqlx::query(
            "UPDATE access_rules SET name = $1, description = $2, network_id = $3, destination_type = $4,
                 destination = $5, protocol = $6, port_from = $7, port_to = $8, updated_at = $9 WHERE id = $10",
        );
        bind_rule_fields(update, fields).bind(unix_now()).bind(id).execute(&mut **tx).await.map_err(|e| {
            conflict_on_duplicate(e, || format!("an access rule named `{}` already exists", fields.name))
        })?;
        replace_subjects(tx, id, fields).await?;
        Ok(old_network)
    }

    /// Inside `tx`: deletes a rule; answers the network it was in.
    pub async fn delete_access_rule(&self, tx: &mut WriteTx, id: &str) -> CoreResult<String> {
        let network = network_of_rule(tx, id).await?;
        sqlx::query("DELETE FROM access_rules WHERE id = $1").bind(id).execute(&mut **tx).await?;
        Ok(network)
    }

    /// A rule by id, or `NotFound`.
    pub async fn require_access_rule(&self, id: &str) -> CoreResult<AccessRuleRecord> {
        let row = query_fmt!("SELECT {RULE_COLUMNS} FROM access_rules WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("access rule `{id}` not found")))?;
        self.rules_from_rows(std::slice::from_ref(&row))
            .await?
            .pop()
            .ok_or_else(|| CoreError::Internal("rule row vanished".into()))
    }

    /// A page of rules by name.
    pub async fn list_access_rules(&self, page: Page) -> CoreResult<Listing<AccessRuleRecord>> {
        let total = total_of(&sqlx::query("SELECT COUNT(*) AS total FROM access_rules").fetch_one(&self.pool).await?)?;
        let rows = query_fmt!("SELECT {RULE_COLUMNS} FROM access_rules ORDER BY name LIMIT $1 OFFSET $2")
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        Ok(Listing { items: self.rules_from_rows(&rows).await?, total })
    }

    /// Every rule in a network.
    pub async fn access_rules_of_network(&self, network_id: &str) -> CoreResult<Vec<AccessRuleRecord>> {
        let rows = query_fmt!("SELECT {RULE_COLUMNS} FROM access_rules WHERE network_id = $1 ORDER BY name")
            .bind(network_id)
            .fetch_all(&self.pool)
            .await?;
        self.rules_from_rows(&rows).await
    }

    /// Every rule in the networks attached to a gateway.
    pub async fn access_rules_of_gateway(&self, gateway_id: &str) -> CoreResult<Vec<AccessRuleRecord>> {
        let columns = RULE_COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ");
        let rows = query_fmt!(
            "SELECT {columns} FROM access_rules r JOIN gateway_networks gn ON gn.network_id = r.network_id
             WHERE gn.gateway_id = $1 ORDER BY r.name"
        )
        .bind(gateway_id)
        .fetch_all(&self.pool)
        .await?;
        self.rules_from_rows(&rows).await
    }

    /// The rules of these networks, by name, with their users and groups: three queries
    /// for all of them.
    pub async fn access_rules_of_networks(&self, network_ids: &[String]) -> CoreResult<Vec<AccessRuleRecord>> {
        let select = format!("SELECT {RULE_COLUMNS} FROM access_rules WHERE network_id");
        let mut rules = self.rules_from_rows(&self.rows_with_keys(&select, "", network_ids).await?).await?;
        rules.sort_by(|a, b| a.fields.name.cmp(&b.fields.name));
        Ok(rules)
    }

    /// Rules from rows of [`RULE_COLUMNS`], with their users and groups read in one query.
    async fn rules_from_rows(&self, rows: &[AnyRow]) -> CoreResult<Vec<AccessRuleRecord>> {
        let ids = rows.iter().map(|row| row.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?;
        let [mut users, mut groups] = self
            .related_values("rule_id", [("access_rule_users", "user_id"), ("access_rule_groups", "group_name")], &ids)
            .await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| {
                let port = |column: &str| -> CoreResult<u16> {
                    let value: i64 = row.try_get(column)?;
                    u16::try_from(value).map_err(|_| CoreError::Internal(format!("stored port {value} out of range")))
                };
                Ok(AccessRuleRecord {
                    fields: AccessRuleFields {
                        user_ids: users.remove(&id).unwrap_or_default(),
                        groups: groups.remove(&id).unwrap_or_default(),
                        name: row.try_get("name")?,
                        description: row.try_get("description")?,
                        network_id: row.try_get("network_id")?,
                        destination_type: super::word(row, "destination_type", DestinationType::from_stored)?,
                        destination: row.try_get("destination")?,
                        protocol: super::word(row, "protocol", RuleProtocol::from_stored)?,
                        port_from: port("port_from")?,
                        port_to: port("port_to")?,
                    },
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    id,
                })
            })
            .collect()
    }
}

async fn replace_subjects(tx: &mut WriteTx, rule_id: &str, fields: &AccessRuleFields) -> CoreResult<()> {
    sqlx::query("DELETE FROM access_rule_users WHERE rule_id = $1").bind(rule_id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM access_rule_groups WHERE rule_id = $1").bind(rule_id).execute(&mut **tx).await?;
    for user_id in &fields.user_ids {
        sqlx::query("INSERT INTO access_rule_users (rule_id, user_id) VALUES ($1, $2)")
            .bind(rule_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
    }
    for group in &fields.groups {
        sqlx::query("INSERT INTO access_rule_groups (rule_id, group_name) VALUES ($1, $2)")
            .bind(rule_id)
            .bind(group)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The network of rule `id` as `tx` sees it, or `NotFound`.
async fn network_of_rule(tx: &mut WriteTx, id: &str) -> CoreResult<String> {
    Ok(sqlx::query("SELECT network_id FROM access_rules WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("access rule `{id}` not found")))?
        .try_get("network_id")?)
}
