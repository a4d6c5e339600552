//! `AdminUserService`: local accounts and user administration.

use super::{GrpcResult, respond};
use crate::auth::{Access, Credential};
use crate::context::CoreContext;
use crate::domain::{UnitOfWork, users};
use crate::error::CoreError;
use crate::ids::{IdKind, new_id};
use crate::secrets::hash_password;
use crate::store::{NewUser, UserChanges};
use crate::{convert, validate};
use gatekey::v1::admin_user_service_server::AdminUserService;
use gatekey::v1::{CreateUserRequest, GetUserRequest, ListUsersRequest, ListUsersResponse, UpdateUserRequest, User};
use std::sync::Arc;
use tonic::Request;

/// Provider name of accounts created here.
pub const LOCAL_PROVIDER: &str = "local";

/// Implements `AdminUserService`.
#[derive(Debug, Clone)]
pub struct AdminUserApi(pub Arc<CoreContext>);

#[tonic::async_trait]
impl AdminUserService for AdminUserApi {
    async fn list_users(&self, request: Request<ListUsersRequest>) -> GrpcResult<ListUsersResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let input = request.into_inner();
                let page = validate::page(input.page)?;
                let containing = validate::text("query", &input.query, 100)?;
                let listing = self.0.store.list_users(page, &containing).await?;
                Ok(ListUsersResponse {
                    users: listing.items.into_iter().map(convert::user).collect(),
                    page: Some(convert::page_info(listing.total, page)),
                })
            }
            .await,
        )
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> GrpcResult<User> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let user = self.0.store.require_user(validate::id("id", &request.get_ref().id)?).await?;
                Ok(convert::user(user))
            }
            .await,
        )
    }

    async fn create_user(&self, request: Request<CreateUserRequest>) -> GrpcResult<User> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let username = validate::username(&input.username)?;
                let email = validate::email(&input.email)?;
                let name = validate::text("name", &input.name, 200)?;
                let groups = validate::groups("groups", &input.groups)?;
                let password_hash = hash(validate::password(&input.password)?)?;
                let id = new_id(IdKind::User);
                let mut work = UnitOfWork::begin(&self.0).await?;
                self.0
                    .store
                    .create_user(
                        &mut work.tx,
                        NewUser {
                            id: id.clone(),
                            name: if name.is_empty() { username.clone() } else { name },
                            username,
                            email,
                            password_hash: Some(password_hash),
                            is_admin: input.is_admin,
                            groups,
                            provider: LOCAL_PROVIDER.into(),
                            email_verified_by: None,
                        },
                    )
                    .await?;
                work.commit().await?;
                Ok(convert::user(self.0.store.require_user(&id).await?))
            }
            .await,
        )
    }

    async fn update_user(&self, request: Request<UpdateUserRequest>) -> GrpcResult<User> {
        respond(
            async {
                let caller = self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let id = validate::id("id", &input.id)?;
                let target = self.0.store.require_user(id).await?;
                if id == caller.user.id && (input.disabled == Some(true) || input.is_admin == Some(false)) {
                    return Err(CoreError::InvalidArgument(
                        "id: an admin cannot disable or demote their own account".into(),
                    ));
                }
                let password_hash = match input.password.as_deref() {
                    Some(_) if target.provider != LOCAL_PROVIDER => {
                        return Err(CoreError::InvalidArgument(format!(
                            "password: `{}` signs in through `{}`; only local accounts have passwords",
                            target.username, target.provider
                        )));
                    }
                    Some(password) => Some(hash(validate::password(password)?)?),
                    None => None,
                };
                let email = input.email.as_deref().map(validate::email).transpose()?;
                let changes = UserChanges {
                    // No provider vouches for an address an admin typed in.
                    email_verified_by: email.as_ref().map(|_| None),
                    email,
                    name: input.name.as_deref().map(|name| validate::text("name", name, 200)).transpose()?,
                    password_hash,
                    is_admin: input.is_admin,
                    disabled: input.disabled,
                    groups: input.groups.map(|list| validate::groups("groups", &list.groups)).transpose()?,
                    // An admin setting their own password stays signed in here, and only here.
                    keep_session: match &caller.credential {
                        Credential::Session { id: session, .. } if id == caller.user.id => Some(session.clone()),
                        _ => None,
                    },
                };
                Ok(convert::user(users::update(&self.0, id, changes).await?))
            }
            .await,
        )
    }
}

fn hash(password: &str) -> Result<String, CoreError> {
    hash_password(password).map_err(|e| CoreError::Internal(format!("password hashing failed: {e}")))
}
