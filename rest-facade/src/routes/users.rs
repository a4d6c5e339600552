//! `/admin/users`.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{Data, Listed, UserView};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::admin_user_service_client::AdminUserServiceClient;
use gatekey::v1::{CreateUserRequest, GetUserRequest, GroupList, ListUsersRequest, UpdateUserRequest};
use serde::Deserialize;

/// Body of `POST /admin/users`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    #[schema(schema_with = crate::constraints::username)]
    username: String,
    #[schema(schema_with = crate::constraints::email)]
    email: String,
    #[schema(schema_with = crate::constraints::display_name)]
    #[serde(default)]
    name: String,
    #[schema(schema_with = crate::constraints::password)]
    password: String,
    #[serde(default)]
    is_admin: bool,
    #[schema(schema_with = crate::constraints::groups)]
    #[serde(default)]
    groups: Vec<String>,
}

/// Body of `PUT /admin/users/{id}`; absent fields stay unchanged.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    #[schema(schema_with = crate::constraints::email)]
    email: Option<String>,
    #[schema(schema_with = crate::constraints::display_name)]
    name: Option<String>,
    #[schema(schema_with = crate::constraints::password)]
    password: Option<String>,
    is_admin: Option<bool>,
    disabled: Option<bool>,
    #[schema(schema_with = crate::constraints::groups)]
    groups: Option<Vec<String>>,
}

/// `?page=`, `?per_page=` and `?q=` of `GET /admin/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserListQuery {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 2_147_483_647)]
    page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
    /// Only users whose username, e-mail or name contains this text (any case).
    #[param(schema_with = crate::constraints::search_text)]
    #[serde(default)]
    q: String,
}

#[utoipa::path(get, operation_id = "users_list", path = "/admin/users", tag = "admin-users", security(("session_cookie" = []), ("bearer" = [])), params(UserListQuery), responses((status = 200, description = "Users, by username", body = Listed<UserView>), ErrorResponses))]
pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(query): ApiQuery<UserListQuery>,
) -> ApiResult<Json<Listed<UserView>>> {
    let page = PageQuery { page: query.page, per_page: query.per_page }.into_request()?;
    let request = call.request(ListUsersRequest { page: Some(page), query: query.q });
    let listing = AdminUserServiceClient::new(state.channel).list_users(request).await?.into_inner();
    Ok(Json(Listed::new(listing.users, listing.page, UserView::from)))
}

#[utoipa::path(post, operation_id = "users_create", path = "/admin/users", tag = "admin-users", security(("session_cookie" = []), ("bearer" = [])), request_body = CreateUserBody, responses((status = 201, description = "The user", body = Data<UserView>), ErrorResponses))]
pub async fn create(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> ApiResult<(StatusCode, Json<Data<UserView>>)> {
    let request = call.request(CreateUserRequest {
        username: body.username,
        email: body.email,
        name: body.name,
        password: body.password,
        is_admin: body.is_admin,
        groups: body.groups,
    });
    let user = AdminUserServiceClient::new(state.channel).create_user(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(Data { data: user.into() })))
}

/// One user.
#[utoipa::path(get, operation_id = "users_get", path = "/admin/users/{id}", tag = "admin-users", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The user's id")), responses((status = 200, description = "The user", body = Data<UserView>), ErrorResponses))]
pub async fn get(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<UserView>>> {
    let found =
        AdminUserServiceClient::new(state.channel).get_user(call.request(GetUserRequest { id })).await?.into_inner();
    Ok(Json(Data { data: found.into() }))
}

#[utoipa::path(put, operation_id = "users_update", path = "/admin/users/{id}", tag = "admin-users", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The user's id")), request_body = UpdateUserBody, responses((status = 200, description = "The user", body = Data<UserView>), ErrorResponses))]
pub async fn update(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> ApiResult<Json<Data<UserView>>> {
    let request = call.request(UpdateUserRequest {
        id,
        email: body.email,
        name: body.name,
        password: body.password,
        is_admin: body.is_admin,
        disabled: body.disabled,
        groups: body.groups.map(|groups| GroupList { groups }),
    });
    let user = AdminUserServiceClient::new(state.channel).update_user(request).await?.into_inner();
    Ok(Json(Data { data: user.into() }))
}
