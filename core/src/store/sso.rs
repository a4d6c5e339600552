//! Single sign-on state: identity providers, in-flight login flows (single use, short
//! lived), SAML assertion replay guard, and the login record.

use super::users::USER_COLUMNS;
use super::{
    AnyQuery, Listing, NewUser, Page, Store, UserRecord, WriteTx, conflict_on_duplicate, flag, join_list, split_list,
    total_of, unix_now,
};
use crate::domain::ProviderKind;
use crate::error::{CoreError, CoreResult};
use sqlx::Row;
use sqlx::any::AnyRow;

/// The writable settings of an identity provider.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthProviderFields {
    /// Unique name, used as `?provider=`.
    pub name: String,
    /// Its protocol.
    pub kind: ProviderKind,
    /// OIDC issuer URL.
    pub issuer_url: String,
    /// OIDC client id.
    pub client_id: String,
    /// OIDC client secret, sealed with the at-rest key.
    pub sealed_client_secret: Option<String>,
    /// OIDC scopes.
    pub scopes: Vec<String>,
    /// Name of the groups claim or attribute.
    pub groups_claim: String,
    /// Members of this group are admins.
    pub admin_group: String,
    /// If not empty, only members of these groups may sign in.
    pub allowed_groups: Vec<String>,
    /// SAML IdP metadata XML.
    pub saml_idp_metadata: String,
    /// SAML SP entity id.
    pub saml_entity_id: String,
    /// Link a new subject to an existing account with the same, verified e-mail.
    pub link_by_email: bool,
    /// Accept e-mails the provider does not mark verified (never for linking).
    pub allow_unverified_email: bool,
}

impl std::fmt::Debug for AuthProviderFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthProviderFields").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// A stored identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthProviderRecord {
    /// `idp-…`
    pub id: String,
    /// Its settings.
    pub fields: AuthProviderFields,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Where a login flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFlowStage {
    /// Sent to the provider; waiting for its answer (OIDC callback, SAML response).
    Started,
    /// The provider's answer was verified; waiting for the browser that started the
    /// flow to finish it (SAML, whose response arrives by a cross-site POST).
    Verified,
}

impl LoginFlowStage {
    fn as_str(self) -> &'static str {
        match self {
            LoginFlowStage::Started => "started",
            LoginFlowStage::Verified => "verified",
        }
    }
}

/// A login flow waiting for its next step.
#[derive(Debug, Clone)]
pub struct LoginFlow {
    /// The provider it started with.
    pub provider_id: String,
    /// Sealed: the nonce and PKCE verifier or the request id (started), or the
    /// verified identity (verified).
    pub sealed_secrets: String,
    /// Where to send the browser afterwards.
    pub redirect_to: String,
    /// SHA-256 (hex) of the secret the starting browser holds in its login cookie.
    pub browser_binding_hash: String,
    /// Where it stands.
    pub stage: LoginFlowStage,
    /// Unix seconds.
    pub expires_at: i64,
}

/// One login attempt, for the record.
#[derive(Debug, Clone)]
pub struct LoginEvent<'a> {
    /// `login-…`, made by the caller.
    pub id: String,
    /// `local` or a provider name.
    pub provider: &'a str,
    /// Who tried (username or e-mail), as far as known.
    pub subject: &'a str,
    /// The client's address.
    pub client_address: &'a str,
    /// Whether a session was opened.
    pub success: bool,
    /// Why not, or `ok`.
    pub reason: &'a str,
}

const PROVIDER_COLUMNS: &str = "id, name, kind, issuer_url, client_id, sealed_client_secret, scopes, groups_claim, admin_group, \
     allowed_groups, saml_idp_metadata, saml_entity_id, link_by_email, allow_unverified_email, created_at, updated_at";

fn provider_from_row(row: &AnyRow) -> CoreResult<AuthProviderRecord> {
    Ok(AuthProviderRecord {
        id: row.try_get("id")?,
        fields: AuthProviderFields {
            name: row.try_get("name")?,
            kind: super::word(row, "kind", ProviderKind::from_stored)?,
            issuer_url: row.try_get("issuer_url")?,
            client_id: row.try_get("client_id")?,
            sealed_client_secret: row.try_get("sealed_client_secret")?,
            scopes: split_list(&row.try_get::<String, _>("scopes")?),
            groups_claim: row.try_get("groups_claim")?,
            admin_group: row.try_get("admin_group")?,
            allowed_groups: split_list(&row.try_get::<String, _>("allowed_groups")?),
            saml_idp_metadata: row.try_get("saml_idp_metadata")?,
            saml_entity_id: row.try_get("saml_entity_id")?,
            link_by_email: flag(row, "link_by_email")?,
            allow_unverified_email: flag(row, "allow_unverified_email")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Binds a provider's fields as `$1`…`$13`, in the column order of the statements below.
fn bind_provider_fields<'q>(query: AnyQuery<'q>, fields: &AuthProviderFields) -> AnyQuery<'q> {
    query
        .bind(&fields.name)
        .bind(fields.kind.as_str())
        .bind(&fields.issuer_url)
        .bind(&fields.client_id)
        .bind(&fields.sealed_client_secret)
        .bind(join_list(&fields.scopes))
        .bind(&fields.groups_claim)
        .bind(&fields.admin_group)
        .bind(join_list(&fields.allowed_groups))
        .bind(&fields.saml_idp_metadata)
        .bind(&fields.saml_entity_id)
        .bind(i64::from(fields.link_by_email))
        .bind(i64::from(fields.allow_unverified_email))
}

impl Store {
    /// Creates provider `id` (made by the caller, whose sealed secret is bound to it); a
    /// duplicate name is a conflict.
    pub async fn create_auth_provider(
        &self,
        tx: &mut WriteTx,
        id: &str,
        fields: &AuthProviderFields,
    ) -> CoreResult<()> {
        let insert = sqlx::query(
            "INSERT INTO auth_providers (name, kind, issuer_url, client_id, sealed_client_secret, scopes, groups_claim,
                 admin_group, allowed_groups, saml_idp_metadata, saml_entity_id, link_by_email, allow_unverified_email,
                 id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)",
        );
        bind_provider_fields(insert, fields).bind(id).bind(unix_now()).execute(&mut **tx).await.map_err(|e| {
            conflict_on_duplicate(e, || format!("an identity provider named `{}` already exists", fields.name))
        })?;
        Ok(())
    }

    /// Replaces a provider's settings; a new name follows onto the accounts it made.
    /// `forget_identities` drops the subjects linked through it (its issuer changed, so
    /// an old subject may name someone else now).
    pub async fn replace_auth_provider(
        &self,
        tx: &mut WriteTx,
        previous: &AuthProviderRecord,
        fields: &AuthProviderFields,
        forget_identities: bool,
    ) -> CoreResult<()> {
        let id = &previous.id;
        let update = sqlx::query(
            "UPDATE auth_providers SET name = $1, kind = $2, issuer_url = $3, client_id = $4, sealed_client_secret = $5,
                 scopes = $6, groups_claim = $7, admin_group = $8, allowed_groups = $9, saml_idp_metadata = $10,
                 saml_entity_id = $11, link_by_email = $12, allow_unverified_email = $13, updated_at = $14 WHERE id = $15",
        );
        let done =
            bind_provider_fields(update, fields).bind(unix_now()).bind(id).execute(&mut **tx).await.map_err(|e| {
                conflict_on_duplicate(e, || format!("an identity provider named `{}` already exists", fields.name))
            })?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound(format!("identity provider `{id}` not found")));
        }
        if forget_identities {
            sqlx::query("DELETE FROM external_identities WHERE provider_id = $1").bind(id).execute(&mut **tx).await?;
        }
        if previous.fields.name != fields.name {
            sqlx::query("UPDATE users SET provider = $1 WHERE provider = $2")
                .bind(&fields.name)
                .bind(&previous.fields.name)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Deletes a provider.
    pub async fn delete_auth_provider(&self, tx: &mut WriteTx, id: &str) -> CoreResult<()> {
        let done = sqlx::query("DELETE FROM auth_providers WHERE id = $1").bind(id).execute(&mut **tx).await?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound(format!("identity provider `{id}` not found")));
        }
        Ok(())
    }

    /// Inside `tx`: a provider by id, or `NotFound`, locked until `tx` ends (on
    /// PostgreSQL; SQLite's write transaction already holds every row), so that a
    /// replacement decides from what it replaces.
    pub async fn lock_auth_provider(&self, tx: &mut WriteTx, id: &str) -> CoreResult<AuthProviderRecord> {
        let lock = if self.backend == "postgres" { " FOR UPDATE" } else { "" };
        let row = query_fmt!("SELECT {PROVIDER_COLUMNS} FROM auth_providers WHERE id = $1{lock}")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("identity provider `{id}` not found")))?;
        provider_from_row(&row)
    }

    /// A provider by id, or `NotFound`.
    pub async fn require_auth_provider(&self, id: &str) -> CoreResult<AuthProviderRecord> {
        let row = query_fmt!("SELECT {PROVIDER_COLUMNS} FROM auth_providers WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("identity provider `{id}` not found")))?;
        provider_from_row(&row)
    }

    /// A provider by name.
    pub async fn find_auth_provider_by_name(&self, name: &str) -> CoreResult<Option<AuthProviderRecord>> {
        let row = query_fmt!("SELECT {PROVIDER_COLUMNS} FROM auth_providers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(provider_from_row).transpose()
    }

    /// Every provider of a kind, by name.
    pub async fn auth_providers_of_kind(&self, kind: ProviderKind) -> CoreResult<Vec<AuthProviderRecord>> {
        query_fmt!("SELECT {PROVIDER_COLUMNS} FROM auth_providers WHERE kind = $1 ORDER BY name")
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(provider_from_row)
            .collect()
    }

    /// A page of providers by name.
    pub async fn list_auth_providers(&self, page: Page) -> CoreResult<Listing<AuthProviderRecord>> {
        let total =
            total_of(&sqlx::query("SELECT COUNT(*) AS total FROM auth_providers").fetch_one(&self.pool).await?)?;
        let rows = query_fmt!("SELECT {PROVIDER_COLUMNS} FROM auth_providers ORDER BY name LIMIT $1 OFFSET $2")
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        Ok(Listing { items: rows.iter().map(provider_from_row).collect::<CoreResult<_>>()?, total })
    }

    /// Stores a login flow under the hash of its state.
    pub async fn create_login_flow(&self, state_hash: &str, flow: &LoginFlow) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO login_flows (state_hash, provider_id, sealed_secrets, redirect_to, browser_binding_hash, stage,
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(state_hash)
        .bind(&flow.provider_id)
        .bind(&flow.sealed_secrets)
        .bind(&flow.redirect_to)
        .bind(&flow.browser_binding_hash)
        .bind(flow.stage.as_str())
        .bind(flow.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a login flow at `stage` out of the store in one statement: a state works
    /// once, for one caller, even when two race for it. With `browser_binding_hash`,
    /// only the flow of that browser is taken: another browser cannot even spend it.
    pub async fn take_login_flow(
        &self,
        state_hash: &str,
        stage: LoginFlowStage,
        browser_binding_hash: Option<&str>,
    ) -> CoreResult<Option<LoginFlow>> {
        let row = sqlx::query(
            "DELETE FROM login_flows WHERE state_hash = $1 AND stage = $2 AND ($3 IS NULL OR browser_binding_hash = $3)
             RETURNING provider_id, sealed_secrets, redirect_to, browser_binding_hash, expires_at",
        )
        .bind(state_hash)
        .bind(stage.as_str())
        .bind(browser_binding_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(LoginFlow {
                provider_id: row.try_get("provider_id")?,
                sealed_secrets: row.try_get("sealed_secrets")?,
                redirect_to: row.try_get("redirect_to")?,
                browser_binding_hash: row.try_get("browser_binding_hash")?,
                stage,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Whether a login flow with this state is waiting (in any browser).
    pub async fn login_flow_exists(&self, state_hash: &str) -> CoreResult<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS total FROM login_flows WHERE state_hash = $1")
            .bind(state_hash)
            .fetch_one(&self.pool)
            .await?;
        Ok(total_of(&row)? > 0)
    }

    /// Records a SAML assertion id until it expires; false if it was seen before.
    pub async fn remember_assertion(&self, assertion_id: &str, expires_at: i64) -> CoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO saml_seen_assertions (assertion_id, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(assertion_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Drops expired login flows and replay records.
    pub async fn purge_expired_sso_state(&self) -> CoreResult<()> {
        let now = unix_now();
        sqlx::query("DELETE FROM login_flows WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        sqlx::query("DELETE FROM saml_seen_assertions WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        sqlx::query("DELETE FROM client_logins WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        Ok(())
    }

    /// Records a login attempt (never a token) and answers the record. The subject and
    /// reason come from the client or the provider: they are kept with control
    /// characters escaped and cut to 256 characters, so any attempt can be recorded on
    /// any backend.
    pub async fn record_login_event(&self, event: LoginEvent<'_>) -> CoreResult<super::LoginEventRecord> {
        let recordable = |text: &str| -> String { text.escape_default().take(256).collect() };
        let record = super::LoginEventRecord {
            id: event.id,
            at: unix_now(),
            provider: recordable(event.provider),
            subject: recordable(event.subject),
            client_address: recordable(event.client_address),
            success: event.success,
            reason: recordable(event.reason),
        };
        sqlx::query(
            "INSERT INTO login_events (id, at, provider, subject, client_address, success, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&record.id)
        .bind(record.at)
        .bind(&record.provider)
        .bind(&record.subject)
        .bind(&record.client_address)
        .bind(i64::from(record.success))
        .bind(&record.reason)
        .execute(&self.pool)
        .await?;
        Ok(record)
    }

    /// Drops login records from before `older_than` (Unix seconds), then all but the
    /// newest `max_rows`; returns how many went.
    pub async fn prune_login_events(&self, older_than: i64, max_rows: u64) -> CoreResult<u64> {
        let aged = sqlx::query("DELETE FROM login_events WHERE at < $1")
            .bind(older_than)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let overflow = sqlx::query(
            "DELETE FROM login_events WHERE id NOT IN (SELECT id FROM login_events ORDER BY at DESC, id DESC LIMIT $1)",
        )
        .bind(i64::try_from(max_rows).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(aged + overflow)
    }

    /// A user by e-mail.
    pub async fn find_user_by_email(&self, email: &str) -> CoreResult<Option<UserRecord>> {
        let rows =
            query_fmt!("SELECT {USER_COLUMNS} FROM users WHERE email = $1").bind(email).fetch_all(&self.pool).await?;
        Ok(self.users_from_rows(&rows).await?.pop())
    }

    /// The user a provider's subject is linked to.
    pub async fn find_user_by_external_identity(
        &self,
        provider_id: &str,
        subject: &str,
    ) -> CoreResult<Option<UserRecord>> {
        let rows = query_fmt!(
            "SELECT {USER_COLUMNS} FROM users WHERE id =
                 (SELECT user_id FROM external_identities WHERE provider_id = $1 AND subject = $2)"
        )
        .bind(provider_id)
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.users_from_rows(&rows).await?.pop())
    }

    /// The ids of the providers that have a subject linked to a user.
    pub async fn external_identity_providers_of(&self, user_id: &str) -> CoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT provider_id FROM external_identities WHERE user_id = $1 ORDER BY provider_id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get("provider_id")?)).collect()
    }

    /// Inside `tx`: links a provider's subject to a user, which no longer awaits one; a
    /// subject already linked, or a user already holding a subject of this provider, is
    /// a conflict.
    pub async fn link_external_identity(
        &self,
        tx: &mut WriteTx,
        user_id: &str,
        provider_id: &str,
        subject: &str,
    ) -> CoreResult<()> {
        insert_external_identity(&mut **tx, user_id, provider_id, subject).await?;
        sqlx::query("UPDATE users SET awaiting_subject_of = NULL WHERE id = $1")
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Inside `tx`: creates a user for a provider's subject and links them; answers the
    /// user's id.
    pub async fn create_external_user(
        &self,
        tx: &mut WriteTx,
        user: NewUser,
        provider_id: &str,
        subject: &str,
    ) -> CoreResult<String> {
        let id = super::users::insert_user(tx, user).await?;
        insert_external_identity(&mut **tx, &id, provider_id, subject).await?;
        Ok(id)
    }
}

async fn insert_external_identity<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    user_id: &str,
    provider_id: &str,
    subject: &str,
) -> CoreResult<()> {
    sqlx::query("INSERT INTO external_identities (provider_id, subject, user_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(provider_id)
        .bind(subject)
        .bind(user_id)
        .bind(unix_now())
        .execute(executor)
        .await
        .map_err(|e| {
            conflict_on_duplicate(e, || {
                "this identity is already linked to an account, or that account to another identity of this provider"
                    .into()
            })
        })?;
    Ok(())
}
