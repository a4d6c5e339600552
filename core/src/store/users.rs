//! Users and their groups.

use super::{Listing, Page, Store, WriteTx, conflict_on_duplicate, flag, total_of, unix_now};
use crate::error::{CoreError, CoreResult};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// A stored user (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// `usr-…`
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// Unique e-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Group names, sorted.
    pub groups: Vec<String>,
    /// Admin role.
    pub is_admin: bool,
    /// Disabled accounts cannot authenticate.
    pub disabled: bool,
    /// `local` or an SSO provider name.
    pub provider: String,
    /// The identity provider (id) that vouched for the e-mail when it was last set.
    pub email_verified_by: Option<String>,
    /// Made by this provider (id) before subjects were kept: its first verified sign-in
    /// with this e-mail claims the account.
    pub awaiting_subject_of: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if ever signed in.
    pub last_login_at: Option<i64>,
}

#[cfg(test)]
impl UserRecord {
    /// An enabled local user who is not an admin, for unit tests.
    pub(crate) fn sample(id: &str, groups: &[&str]) -> UserRecord {
        UserRecord {
            id: id.into(),
            username: id.into(),
            email: format!("{id}@example.com"),
            name: id.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            is_admin: false,
            disabled: false,
            provider: "local".into(),
            email_verified_by: None,
            awaiting_subject_of: None,
            created_at: 0,
            last_login_at: None,
        }
    }
}

/// A user to create.
pub struct NewUser {
    /// `usr-…`, made by the caller.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// Unique e-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// argon2id PHC string, for local accounts.
    pub password_hash: Option<String>,
    /// Admin role.
    pub is_admin: bool,
    /// Group names.
    pub groups: Vec<String>,
    /// `local` or an SSO provider name.
    pub provider: String,
    /// The identity provider (id) that vouched for the e-mail, if one did.
    pub email_verified_by: Option<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Default)]
pub struct UserChanges {
    /// New e-mail.
    pub email: Option<String>,
    /// Who vouches for the e-mail from now on (`Some(None)`: no one).
    pub email_verified_by: Option<Option<String>>,
    /// New display name.
    pub name: Option<String>,
    /// New argon2id PHC string.
    pub password_hash: Option<String>,
    /// New admin flag.
    pub is_admin: Option<bool>,
    /// New disabled flag.
    pub disabled: Option<bool>,
    /// New groups, replacing the old.
    pub groups: Option<Vec<String>>,
    /// The session to keep when a new password ends the user's sessions (the caller's own).
    pub keep_session: Option<String>,
}

/// Columns of a user row, as [`Store::users_from_rows`] reads them.
pub(super) const USER_COLUMNS: &str = "id, username, email, name, is_admin, disabled, provider, email_verified_by, awaiting_subject_of, created_at, last_login_at";

/// What a user's change did.
#[derive(Debug)]
pub struct UserUpdate {
    /// The e-mail address before the change: the name of the certificates of the VPN
    /// sessions open until now.
    pub old_email: String,
    /// Why the change ends the user's VPN sessions; none when it ends none.
    pub ends_vpn_sessions: Option<VpnSessionsEnd>,
    /// The gateways granted to the user before or after, whose rules changed.
    pub gateways_changed: Vec<String>,
}

/// Why a user change ends their VPN sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpnSessionsEnd {
    /// The user was disabled.
    Disabled,
    /// The user's e-mail address (their certificates' name) changed.
    EmailChanged,
}

impl VpnSessionsEnd {
    /// What the client is told.
    pub fn reason(self) -> &'static str {
        match self {
            VpnSessionsEnd::Disabled => "the user was disabled",
            VpnSessionsEnd::EmailChanged => "the user's e-mail address changed",
        }
    }
}

impl Store {
    /// Inside `tx`: creates a user; a duplicate username or e-mail is a conflict.
    pub async fn create_user(&self, tx: &mut WriteTx, user: NewUser) -> CoreResult<()> {
        insert_user(tx, user).await.map(|_| ())
    }

    /// A user by id, read with its groups in one statement (a row per group, or one
    /// row without a group): verdicts read it on every connection.
    pub async fn find_user(&self, id: &str) -> CoreResult<Option<UserRecord>> {
        let rows = query_fmt!(
            "SELECT {USER_COLUMNS}, user_groups.group_name FROM users
             LEFT JOIN user_groups ON user_groups.user_id = users.id WHERE users.id = $1 ORDER BY user_groups.group_name"
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        user_with_groups(&rows)
    }

    /// A user by id, or `NotFound`.
    pub async fn require_user(&self, id: &str) -> CoreResult<UserRecord> {
        self.find_user(id).await?.ok_or_else(|| CoreError::NotFound(format!("user `{id}` not found")))
    }

    /// The id and password hash of the user with this username, if any.
    pub async fn password_hash_for(&self, username: &str) -> CoreResult<Option<(String, Option<String>)>> {
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((row.try_get("id")?, row.try_get("password_hash")?))).transpose()
    }

    /// Whether a user with this username exists.
    pub async fn username_exists(&self, username: &str) -> CoreResult<bool> {
        Ok(self.password_hash_for(username).await?.is_some())
    }

    /// A page of users ordered by username, those whose username, e-mail or name
    /// contains `containing` (any case; empty for all).
    pub async fn list_users(&self, page: Page, containing: &str) -> CoreResult<Listing<UserRecord>> {
        // `LIKE` with `\` escaping `%`, `_` and itself reads the same on both backends.
        let escaped: String = containing
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = format!("%{escaped}%");
        const MATCHES: &str = "(LOWER(username) LIKE $1 ESCAPE '\\' OR LOWER(email) LIKE $1 ESCAPE '\\' \
             OR LOWER(name) LIKE $1 ESCAPE '\\')";
        let total = total_of(
            &query_fmt!("SELECT COUNT(*) AS total FROM users WHERE {MATCHES}")
                .bind(&pattern)
                .fetch_one(&self.pool)
                .await?,
        )?;
        let rows = query_fmt!("SELECT {USER_COLUMNS} FROM users WHERE {MATCHES} ORDER BY username LIMIT $2 OFFSET $3")
            .bind(&pattern)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        Ok(Listing { items: self.users_from_rows(&rows).await?, total })
    }

    /// Inside `tx`: applies changes to a user. A new password ends the user's sign-in
    /// sessions but `keep_session`; disabling ends them all and revokes the user's API
    /// keys (enabling the user again does not bring them back). Answers what else the
    /// change calls for: whether the VPN sessions under the old address end (the user is
    /// disabled, or their e-mail address changed) and which gateways' rules changed.
    pub async fn update_user(&self, tx: &mut WriteTx, id: &str, changes: UserChanges) -> CoreResult<UserUpdate> {
        let old_email: String = sqlx::query("SELECT email FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("user `{id}` not found")))?
            .try_get("email")?;
        let mut granted = super::gateways::gateways_granted_to_user(&mut **tx, id).await?;
        let disabling = changes.disabled == Some(true);
        let email_changes = changes.email.as_ref().is_some_and(|email| *email != old_email);
        let email_for_message = changes.email.clone().unwrap_or_default();
        let new_password = changes.password_hash.is_some();
        let done = sqlx::query(
            "UPDATE users SET email = COALESCE($1, email), name = COALESCE($2, name),
                 password_hash = COALESCE($3, password_hash), is_admin = COALESCE($4, is_admin),
                 disabled = COALESCE($5, disabled),
                 email_verified_by = CASE WHEN $6 = 1 THEN $7 ELSE email_verified_by END, updated_at = $8
             WHERE id = $9",
        )
        .bind(changes.email)
        .bind(changes.name)
        .bind(changes.password_hash)
        .bind(changes.is_admin.map(i64::from))
        .bind(changes.disabled.map(i64::from))
        .bind(i64::from(changes.email_verified_by.is_some()))
        .bind(changes.email_verified_by.flatten())
        .bind(unix_now())
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict_on_duplicate(e, || format!("a user with email `{email_for_message}` already exists")))?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound(format!("user `{id}` not found")));
        }
        if let Some(groups) = &changes.groups {
            replace_groups(tx, id, groups).await?;
        }
        if changes.disabled == Some(true) {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut **tx).await?;
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(unix_now())
                .bind(id)
                .execute(&mut **tx)
                .await?;
        } else if new_password {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
                .bind(id)
                .bind(changes.keep_session.unwrap_or_default())
                .execute(&mut **tx)
                .await?;
        }
        let ended = match (disabling, email_changes) {
            (true, _) => Some(VpnSessionsEnd::Disabled),
            (false, true) => Some(VpnSessionsEnd::EmailChanged),
            (false, false) => None,
        };
        granted.extend(super::gateways::gateways_granted_to_user(&mut **tx, id).await?);
        granted.sort();
        granted.dedup();
        Ok(UserUpdate { old_email, ends_vpn_sessions: ended, gateways_changed: granted })
    }

    /// Inside `tx`: records a successful sign-in.
    pub async fn touch_last_login(&self, tx: &mut WriteTx, id: &str) -> CoreResult<()> {
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(unix_now())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Users from rows of [`USER_COLUMNS`], with their groups read in one query.
    pub(super) async fn users_from_rows(&self, rows: &[AnyRow]) -> CoreResult<Vec<UserRecord>> {
        let ids = rows.iter().map(|row| row.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?;
        let [mut groups] = self.related_values("user_id", [("user_groups", "group_name")], &ids).await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| {
                let user_groups = groups.remove(&id).unwrap_or_default();
                user_record(row, id, user_groups)
            })
            .collect()
    }
}

/// The user of rows of [`USER_COLUMNS`] joined with its groups (`group_name`, a row per
/// group, or one row with none); `None` without rows.
pub(super) fn user_with_groups(rows: &[AnyRow]) -> CoreResult<Option<UserRecord>> {
    let Some(first) = rows.first() else { return Ok(None) };
    let groups = rows
        .iter()
        .filter_map(|row| row.try_get::<Option<String>, _>("group_name").transpose())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(user_record(first, first.try_get("id")?, groups)?))
}

/// The user of a row of [`USER_COLUMNS`], with `id` and `groups` read already.
fn user_record(row: &AnyRow, id: String, groups: Vec<String>) -> CoreResult<UserRecord> {
    Ok(UserRecord {
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        groups,
        is_admin: flag(row, "is_admin")?,
        disabled: flag(row, "disabled")?,
        provider: row.try_get("provider")?,
        email_verified_by: row.try_get("email_verified_by")?,
        awaiting_subject_of: row.try_get("awaiting_subject_of")?,
        created_at: row.try_get("created_at")?,
        last_login_at: row.try_get("last_login_at")?,
        id,
    })
}

/// Inserts a user and its groups in `tx`; returns the new id. A duplicate username
/// or e-mail is a conflict.
pub(super) async fn insert_user(tx: &mut Transaction<'_, Any>, user: NewUser) -> CoreResult<String> {
    let id = user.id.clone();
    sqlx::query(
        "INSERT INTO users (id, username, email, name, password_hash, is_admin, disabled, provider, email_verified_by,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(&user.username)
    .bind(&user.email)
    .bind(&user.name)
    .bind(user.password_hash)
    .bind(i64::from(user.is_admin))
    .bind(&user.provider)
    .bind(user.email_verified_by)
    .bind(unix_now())
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        conflict_on_duplicate(e, || {
            format!("a user with username `{}` or email `{}` already exists", user.username, user.email)
        })
    })?;
    replace_groups(tx, &id, &user.groups).await?;
    Ok(id)
}

async fn replace_groups(tx: &mut Transaction<'_, Any>, user_id: &str, groups: &[String]) -> CoreResult<()> {
    sqlx::query("DELETE FROM user_groups WHERE user_id = $1").bind(user_id).execute(&mut **tx).await?;
    for group in groups {
        sqlx::query("INSERT INTO user_groups (user_id, group_name) VALUES ($1, $2)")
            .bind(user_id)
            .bind(group)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
