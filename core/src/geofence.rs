//! Geo-fencing: whether a user may sign in, fetch a config or connect from a client
//! address. Rules allow or deny countries (looked up in a MaxMind-format database) and
//! CIDRs. The most specific scope that decides wins (user, then group, then global);
//! within a scope a matching deny beats a matching allow. When nothing matches: an
//! address the configured database does not place follows the unknown-location policy;
//! otherwise a user with allow rules is outside them and denied, and everyone else is
//! allowed. Without a database only CIDRs can match, and the unknown-location policy
//! does not apply.

use crate::domain::{GeoFenceAction, GeoFenceMode, GeoFenceScope};
use crate::error::{CoreError, CoreResult};
use crate::store::{GeoFenceRuleRecord, GeoFenceSettingsRecord, Store, UserRecord};
use maxminddb::Reader;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The verdict for one user at one address, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoVerdict {
    /// Whether access is allowed.
    pub allowed: bool,
    /// The country of the address, if the database knows it.
    pub country: Option<String>,
    /// The rule that decided, if one did.
    pub rule_id: Option<String>,
    /// A sentence explaining the verdict.
    pub explanation: String,
}

/// A country database as opened from `path` when it was last modified at `modified`.
struct OpenDatabase {
    path: String,
    modified: Option<SystemTime>,
    reader: Arc<Reader<Vec<u8>>>,
}

/// Geo-fence checks with the country database kept open between them.
#[derive(Default)]
pub struct GeoFence {
    database: Mutex<Option<OpenDatabase>>,
}

impl std::fmt::Debug for GeoFence {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("GeoFence").finish_non_exhaustive()
    }
}

impl GeoFence {
    /// The database at `path`, reopened when the file changes.
    fn database(&self, path: &str) -> CoreResult<Arc<Reader<Vec<u8>>>> {
        let unreadable = |error: &dyn std::fmt::Display| {
            CoreError::Internal(format!("geo-fence country database `{path}` cannot be read: {error}"))
        };
        let modified = std::fs::metadata(path).map_err(|e| unreadable(&e))?.modified().ok();
        let mut cached = self.database.lock().map_err(|_| CoreError::Internal("geo-fence cache poisoned".into()))?;
        if let Some(open) = cached.as_ref().filter(|open| open.path == path && open.modified == modified) {
            return Ok(open.reader.clone());
        }
        let reader = Arc::new(Reader::open_readfile(path).map_err(|e| unreadable(&e))?);
        *cached = Some(OpenDatabase { path: path.to_owned(), modified, reader: reader.clone() });
        Ok(reader)
    }

    /// Refuses a database path that cannot be opened as a country database.
    pub fn check_database(&self, path: &str) -> CoreResult<()> {
        match self.database(path) {
            Ok(_) => Ok(()),
            Err(CoreError::Internal(problem)) => Err(CoreError::InvalidArgument(format!("database_path: {problem}"))),
            Err(other) => Err(other),
        }
    }

    /// The ISO country code of `address`, if the database knows it.
    fn country(&self, path: &str, address: IpAddr) -> CoreResult<Option<String>> {
        if path.is_empty() {
            return Ok(None);
        }
        let reader = self.database(path)?;
        let lookup = reader.lookup(address).map_err(|e| CoreError::Internal(format!("geo-fence lookup: {e}")))?;
        let found = lookup
            .decode::<maxminddb::geoip2::Country>()
            .map_err(|e| CoreError::Internal(format!("geo-fence lookup: {e}")))?;
        Ok(found.and_then(|record| record.country.iso_code.map(str::to_owned)))
    }

    /// The verdict for `user` at `address` under the stored rules, as it would be with
    /// geo-fencing enabled (the explanation says when it is not).
    pub async fn judge(&self, store: &Store, user: &UserRecord, address: Option<IpAddr>) -> CoreResult<GeoVerdict> {
        let settings = store.geo_fence_settings().await?;
        let mut verdict = self.judge_under(&settings, store, user, address).await?;
        if !settings.enabled {
            verdict.explanation.push_str(" (geo-fencing is disabled, so nothing is refused yet)");
        }
        Ok(verdict)
    }

    async fn judge_under(
        &self,
        settings: &GeoFenceSettingsRecord,
        store: &Store,
        user: &UserRecord,
        address: Option<IpAddr>,
    ) -> CoreResult<GeoVerdict> {
        let country = match address {
            Some(address) => self.country(&settings.database_path, address)?,
            None => None,
        };
        let rules = store.geo_fence_rules().await?;
        Ok(judge(settings, &rules, user, address, country))
    }

    /// Why an enforcing geo-fence refuses `user` at `address` (a client address string),
    /// or `None`. Refusals are logged; an auditing fence only logs what it would refuse,
    /// and lets everything through even when the database cannot be read.
    pub async fn refusal(&self, store: &Store, user: &UserRecord, address: &str) -> CoreResult<Option<String>> {
        let settings = store.geo_fence_settings().await?;
        if !settings.enabled {
            return Ok(None);
        }
        let parsed = address.parse::<IpAddr>().ok().map(|address| address.to_canonical());
        let audit = settings.mode == GeoFenceMode::Audit;
        let verdict = match self.judge_under(&settings, store, user, parsed).await {
            Ok(verdict) => verdict,
            Err(error) if audit => {
                tracing::error!(user = %user.id, client_address = %address, %error, "geo-fence cannot judge (audit mode)");
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        if verdict.allowed {
            return Ok(None);
        }
        if audit {
            tracing::warn!(user = %user.id, client_address = %address, explanation = %verdict.explanation,
                "geo-fence would deny (audit mode)");
            return Ok(None);
        }
        tracing::warn!(user = %user.id, client_address = %address, explanation = %verdict.explanation,
            "geo-fence denied");
        Ok(Some(verdict.explanation))
    }

    /// Refuses `user` at `address` when an enforcing geo-fence does. The caller learns
    /// only that the fence refused its address; the rules behind it stay in the log.
    pub async fn enforce(&self, store: &Store, user: &UserRecord, address: &str) -> CoreResult<()> {
        match self.refusal(store, user, address).await? {
            Some(_) => Err(CoreError::Forbidden(format!("geo-fence: access from {address} is refused"))),
            None => Ok(()),
        }
    }
}

/// Whether a rule matches an address or its country.
fn matches(rule: &GeoFenceRuleRecord, address: Option<IpAddr>, country: Option<&str>) -> bool {
    let in_cidr = address.is_some_and(|address| {
        rule.cidrs.iter().filter_map(|cidr| cidr.parse::<ipnet::IpNet>().ok()).any(|net| net.contains(&address))
    });
    in_cidr || country.is_some_and(|country| rule.countries.iter().any(|listed| listed == country))
}

/// Whether a rule applies to a user at all.
fn applies(rule: &GeoFenceRuleRecord, user: &UserRecord, scope: GeoFenceScope) -> bool {
    rule.scope == scope
        && match scope {
            GeoFenceScope::User => rule.subject == user.id,
            GeoFenceScope::Group => user.groups.contains(&rule.subject),
            GeoFenceScope::Global => true,
        }
}

/// The verdict for `user` at `address` in `country` (pure; see the module docs).
pub fn judge(
    settings: &GeoFenceSettingsRecord,
    rules: &[GeoFenceRuleRecord],
    user: &UserRecord,
    address: Option<IpAddr>,
    country: Option<String>,
) -> GeoVerdict {
    let place = match (&country, address) {
        (Some(country), Some(address)) => format!("{address} ({country})"),
        (None, Some(address)) => format!("{address} (no known country)"),
        _ => "an unknown address".to_owned(),
    };
    let verdict = |allowed: bool, rule_id: Option<&str>, explanation: String| GeoVerdict {
        allowed,
        country: country.clone(),
        rule_id: rule_id.map(str::to_owned),
        explanation,
    };
    let mut has_allow_rules = false;
    for scope in [GeoFenceScope::User, GeoFenceScope::Group, GeoFenceScope::Global] {
        let scoped: Vec<&GeoFenceRuleRecord> = rules.iter().filter(|rule| applies(rule, user, scope)).collect();
        has_allow_rules |= scoped.iter().any(|rule| rule.action == GeoFenceAction::Allow);
        let matching = |action: GeoFenceAction| {
            scoped.iter().find(|rule| rule.action == action && matches(rule, address, country.as_deref()))
        };
        if let Some(rule) = matching(GeoFenceAction::Deny) {
            return verdict(false, Some(&rule.id), format!("{place} is denied by {scope} rule {}", rule.id));
        }
        if let Some(rule) = matching(GeoFenceAction::Allow) {
            return verdict(true, Some(&rule.id), format!("{place} is allowed by {scope} rule {}", rule.id));
        }
    }
    if country.is_none() && !settings.database_path.is_empty() {
        let allowed = settings.unknown_location_policy == GeoFenceAction::Allow;
        let action = if allowed { "allows" } else { "denies" };
        return verdict(allowed, None, format!("{place}: the unknown-location policy {action} it"));
    }
    if has_allow_rules {
        return verdict(false, None, format!("{place} is outside every allow rule that applies"));
    }
    verdict(true, None, format!("{place}: no rule applies"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserRecord {
        UserRecord::sample("usr-1", &["travel"])
    }

    fn rule(
        id: &str,
        action: &str,
        countries: &[&str],
        cidrs: &[&str],
        scope: &str,
        subject: &str,
    ) -> GeoFenceRuleRecord {
        GeoFenceRuleRecord {
            id: id.into(),
            action: GeoFenceAction::from_stored(action).unwrap(),
            countries: countries.iter().map(|c| (*c).to_owned()).collect(),
            cidrs: cidrs.iter().map(|c| (*c).to_owned()).collect(),
            scope: GeoFenceScope::from_stored(scope).unwrap(),
            subject: subject.into(),
        }
    }

    fn settings() -> GeoFenceSettingsRecord {
        GeoFenceSettingsRecord { enabled: true, database_path: "countries.mmdb".into(), ..Default::default() }
    }

    fn at(rules: &[GeoFenceRuleRecord], address: &str, country: Option<&str>) -> GeoVerdict {
        judge(&settings(), rules, &user(), address.parse().ok(), country.map(str::to_owned))
    }

    #[test]
    fn allow_list_denies_other_countries_and_deny_beats_allow() {
        let rules =
            [rule("a", "allow", &["DE", "FR"], &[], "global", ""), rule("d", "deny", &["FR"], &[], "global", "")];
        assert!(at(&rules, "198.51.100.1", Some("DE")).allowed);
        let france = at(&rules, "198.51.100.1", Some("FR"));
        assert_eq!((france.allowed, france.rule_id.as_deref()), (false, Some("d")));
        let spain = at(&rules, "198.51.100.1", Some("ES"));
        assert!(!spain.allowed && spain.rule_id.is_none(), "{spain:?}");
    }

    #[test]
    fn specific_scopes_win_and_cidrs_match_without_a_country() {
        let rules = [
            rule("g", "deny", &["US"], &[], "global", ""),
            rule("grp", "allow", &["US"], &[], "group", "travel"),
            rule("other", "deny", &["US"], &[], "group", "sales"),
            rule("office", "allow", &[], &["10.0.0.0/8"], "user", "usr-1"),
        ];
        assert_eq!(at(&rules, "198.51.100.1", Some("US")).rule_id.as_deref(), Some("grp"));
        assert_eq!(at(&rules, "10.1.2.3", None).rule_id.as_deref(), Some("office"));
        // No country and no matching CIDR: the unknown-location policy (deny by default).
        assert!(!at(&rules, "192.0.2.1", None).allowed);
        let lenient = GeoFenceSettingsRecord { unknown_location_policy: GeoFenceAction::Allow, ..settings() };
        assert!(judge(&lenient, &rules, &user(), None, None).allowed);
    }

    #[test]
    fn without_a_database_only_cidrs_decide() {
        let no_database = GeoFenceSettingsRecord { enabled: true, ..Default::default() };
        let office = [rule("o", "deny", &[], &["10.0.0.0/8"], "global", "")];
        assert!(!judge(&no_database, &office, &user(), "10.1.1.1".parse().ok(), None).allowed);
        assert!(judge(&no_database, &office, &user(), "192.0.2.1".parse().ok(), None).allowed);
        let allow_office = [rule("o", "allow", &[], &["10.0.0.0/8"], "global", "")];
        assert!(!judge(&no_database, &allow_office, &user(), "192.0.2.1".parse().ok(), None).allowed);
    }

    #[test]
    fn without_rules_everyone_with_a_country_is_allowed() {
        assert!(at(&[], "198.51.100.1", Some("JP")).allowed);
    }
}
