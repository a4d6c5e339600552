//! Geo-fence settings (one row) and rules.

use super::{Store, WriteTx, join_list, split_list, unix_now};
use crate::domain::{GeoFenceAction, GeoFenceMode, GeoFenceScope};
use crate::error::{CoreError, CoreResult};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Geo-fence settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoFenceSettingsRecord {
    /// Whether geo-fencing applies.
    pub enabled: bool,
    /// Refusing, or only recording.
    pub mode: GeoFenceMode,
    /// Path of the MaxMind-format country database.
    pub database_path: String,
    /// What becomes of addresses with no known location.
    pub unknown_location_policy: GeoFenceAction,
}

impl Default for GeoFenceSettingsRecord {
    fn default() -> Self {
        GeoFenceSettingsRecord {
            enabled: false,
            mode: GeoFenceMode::Enforce,
            database_path: String::new(),
            unknown_location_policy: GeoFenceAction::Deny,
        }
    }
}

/// A geo-fence rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoFenceRuleRecord {
    /// `geo-…`
    pub id: String,
    /// Admit or refuse.
    pub action: GeoFenceAction,
    /// ISO country codes, upper case.
    pub countries: Vec<String>,
    /// CIDRs.
    pub cidrs: Vec<String>,
    /// Whom it applies to.
    pub scope: GeoFenceScope,
    /// The group name or user id for those scopes.
    pub subject: String,
}

fn rule_from_row(row: &AnyRow) -> CoreResult<GeoFenceRuleRecord> {
    Ok(GeoFenceRuleRecord {
        id: row.try_get("id")?,
        action: super::word(row, "action", GeoFenceAction::from_stored)?,
        countries: split_list(&row.try_get::<String, _>("countries")?),
        cidrs: split_list(&row.try_get::<String, _>("cidrs")?),
        scope: super::word(row, "scope", GeoFenceScope::from_stored)?,
        subject: row.try_get("subject")?,
    })
}

impl Store {
    /// The settings (defaults until an admin saves some).
    pub async fn geo_fence_settings(&self) -> CoreResult<GeoFenceSettingsRecord> {
        let row = sqlx::query(
            "SELECT enabled, mode, database_path, unknown_location_policy FROM geo_fence_settings WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => GeoFenceSettingsRecord {
                enabled: row.try_get::<i64, _>("enabled")? != 0,
                mode: super::word(&row, "mode", GeoFenceMode::from_stored)?,
                database_path: row.try_get("database_path")?,
                unknown_location_policy: super::word(&row, "unknown_location_policy", GeoFenceAction::from_stored)?,
            },
            None => GeoFenceSettingsRecord::default(),
        })
    }

    /// Inside `tx`: replaces the settings.
    pub async fn save_geo_fence_settings(&self, tx: &mut WriteTx, settings: &GeoFenceSettingsRecord) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO geo_fence_settings (id, enabled, mode, database_path, unknown_location_policy)
             VALUES (1, $1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled, mode = excluded.mode,
                 database_path = excluded.database_path, unknown_location_policy = excluded.unknown_location_policy",
        )
        .bind(i64::from(settings.enabled))
        .bind(settings.mode.as_str())
        .bind(&settings.database_path)
        .bind(settings.unknown_location_policy.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Every rule, by creation second (then id).
    pub async fn geo_fence_rules(&self) -> CoreResult<Vec<GeoFenceRuleRecord>> {
        sqlx::query("SELECT id, action, countries, cidrs, scope, subject FROM geo_fence_rules ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rule_from_row)
            .collect()
    }

    /// A rule by id, or `NotFound`.
    pub async fn require_geo_fence_rule(&self, id: &str) -> CoreResult<GeoFenceRuleRecord> {
        let row = sqlx::query("SELECT id, action, countries, cidrs, scope, subject FROM geo_fence_rules WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("geo-fence rule `{id}` not found")))?;
        rule_from_row(&row)
    }

    /// Inside `tx`: stores a new rule, or replaces the one with `rule.id`.
    pub async fn save_geo_fence_rule(
        &self,
        tx: &mut WriteTx,
        rule: &GeoFenceRuleRecord,
        replace: bool,
    ) -> CoreResult<GeoFenceRuleRecord> {
        let id = rule.id.clone();
        let query = if replace {
            sqlx::query(
                "UPDATE geo_fence_rules SET action = $1, countries = $2, cidrs = $3, scope = $4, subject = $5 WHERE id = $6",
            )
        } else {
            sqlx::query(
                "INSERT INTO geo_fence_rules (action, countries, cidrs, scope, subject, id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
        };
        let query = query
            .bind(rule.action.as_str())
            .bind(join_list(&rule.countries))
            .bind(join_list(&rule.cidrs))
            .bind(rule.scope.as_str())
            .bind(&rule.subject)
            .bind(&id);
        let query = if replace { query } else { query.bind(unix_now()) };
        if query.execute(&mut **tx).await?.rows_affected() == 0 {
            return Err(CoreError::NotFound(format!("geo-fence rule `{id}` not found")));
        }
        Ok(GeoFenceRuleRecord { id, ..rule.clone() })
    }

    /// Inside `tx`: deletes a rule.
    pub async fn delete_geo_fence_rule(&self, tx: &mut WriteTx, id: &str) -> CoreResult<()> {
        let done = sqlx::query("DELETE FROM geo_fence_rules WHERE id = $1").bind(id).execute(&mut **tx).await?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound(format!("geo-fence rule `{id}` not found")));
        }
        Ok(())
    }
}
