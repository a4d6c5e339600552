//! First start: the local admin account.

use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::secrets::{hash_password, random_password};
use crate::services::LOCAL_PROVIDER;
use crate::store::{NewUser, Store};
use crate::validate;

/// Username of the bootstrap admin.
pub const ADMIN_USERNAME: &str = "admin";

/// What bootstrapping did.
#[derive(PartialEq, Eq)]
pub enum AdminBootstrap {
    /// An admin already existed.
    AlreadyPresent,
    /// Created with the password from the environment.
    CreatedWithGivenPassword,
    /// Created with this random password, to be shown once.
    CreatedWithRandomPassword(String),
}

impl std::fmt::Debug for AdminBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminBootstrap::AlreadyPresent => f.write_str("AlreadyPresent"),
            AdminBootstrap::CreatedWithGivenPassword => f.write_str("CreatedWithGivenPassword"),
            AdminBootstrap::CreatedWithRandomPassword(_) => f.write_str("CreatedWithRandomPassword(..)"),
        }
    }
}

/// Creates the `admin` account unless it exists, with `given_password` or a random one.
pub async fn ensure_admin(store: &Store, given_password: Option<&str>) -> CoreResult<AdminBootstrap> {
    if store.password_hash_for(ADMIN_USERNAME).await?.is_some() {
        return Ok(AdminBootstrap::AlreadyPresent);
    }
    let (password, outcome) = match given_password {
        Some(password) => {
            validate::password(password)
                .map_err(|e| CoreError::InvalidArgument(format!("GATEKEY_ADMIN_PASSWORD is unusable ({e})")))?;
            (password.to_owned(), AdminBootstrap::CreatedWithGivenPassword)
        }
        None => {
            let password = random_password();
            (password.clone(), AdminBootstrap::CreatedWithRandomPassword(password))
        }
    };
    let password_hash = hash_password(&password).map_err(|e| CoreError::Internal(e.to_string()))?;
    let mut tx = store.begin_write().await?;
    store
        .create_user(
            &mut tx,
            NewUser {
                id: new_id(IdKind::User),
                username: ADMIN_USERNAME.into(),
                email: "admin@gatekey.invalid".into(),
                name: "GateKey administrator".into(),
                password_hash: Some(password_hash),
                is_admin: true,
                groups: Vec::new(),
                provider: LOCAL_PROVIDER.into(),
                email_verified_by: None,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(outcome)
}
