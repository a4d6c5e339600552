//! User accounts: searched and paged, local accounts made, any account changed. Also
//! what the other admin forms share: the users offered in pickers, and how a failed
//! call becomes errors next to the form's fields.

use super::configs::Paging;
use super::form::{ConsoleForm, FormData};
use super::networks::shown_on_form;
use super::page::{AdminViewer, FieldErrors, Nav, Viewer, at, render, render_form};
use crate::FacadeState;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gatekey::v1::admin_user_service_client::AdminUserServiceClient;
use gatekey::v1::{
    CreateUserRequest, GetUserRequest, GroupList, ListUsersRequest, PageRequest, UpdateUserRequest, User,
};
use serde::Deserialize;
use tonic::transport::Channel;

/// Users on a page of the list.
const USERS_PER_PAGE: u32 = 50;

/// The fields of the form that makes a local account.
const NEW_USER_FIELDS: [&str; 6] = ["username", "email", "name", "password", "groups", "is_admin"];

/// The fields of the form that changes an account.
const USER_FIELDS: [&str; 6] = ["email", "name", "password", "groups", "is_admin", "disabled"];

/// The provider of accounts that sign in with a password here.
const LOCAL_PROVIDER: &str = "local";

/// A user as the list shows it.
struct UserRow {
    /// The user's id.
    id: String,
    /// Login name.
    username: String,
    /// E-mail address.
    email: String,
    /// Display name.
    name: String,
    /// Groups, comma-separated.
    groups: String,
    /// Whether the user is an administrator.
    is_admin: bool,
    /// Whether the account is disabled.
    disabled: bool,
    /// `local` or the identity provider's name.
    provider: String,
    /// Last sign-in (RFC 3339), or "".
    last_login_at: String,
}

impl From<User> for UserRow {
    fn from(user: User) -> Self {
        UserRow {
            groups: user.groups.join(", "),
            last_login_at: at(user.last_login_at),
            id: user.id,
            username: user.username,
            email: user.email,
            name: user.name,
            is_admin: user.is_admin,
            disabled: user.disabled,
            provider: user.provider,
        }
    }
}

/// What the form for a new local account holds again after an error (never the
/// password).
#[derive(Default)]
struct NewUserFields {
    /// Login name.
    username: String,
    /// E-mail address.
    email: String,
    /// Display name.
    name: String,
    /// Groups, comma-separated.
    groups: String,
    /// Whether to make an administrator.
    is_admin: bool,
}

/// What the form that changes an account holds (never the password).
struct UserFields {
    /// E-mail address.
    email: String,
    /// Display name.
    name: String,
    /// Groups, comma-separated.
    groups: String,
    /// Whether the user is an administrator.
    is_admin: bool,
    /// Whether the account is disabled.
    disabled: bool,
}

impl From<&User> for UserFields {
    fn from(user: &User) -> Self {
        UserFields {
            email: user.email.clone(),
            name: user.name.clone(),
            groups: user.groups.join(", "),
            is_admin: user.is_admin,
            disabled: user.disabled,
        }
    }
}

/// The list (searched, paged) and the form for a new local account.
#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    /// The navigation.
    nav: Option<Nav>,
    /// The token of the forms.
    csrf: String,
    /// This page of users.
    users: Vec<UserRow>,
    /// Where the page is in the list.
    paging: Paging,
    /// The search text.
    query: String,
    /// The search, as the end of the paging links' query string (`&q=…`, or "").
    query_suffix: String,
    /// The new account's form.
    fields: NewUserFields,
    /// The new account's errors.
    errors: FieldErrors,
}

/// One account's form.
#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    /// The navigation.
    nav: Option<Nav>,
    /// The token of the form.
    csrf: String,
    /// The user's id.
    id: String,
    /// Login name (not changed here).
    username: String,
    /// `local` or the identity provider's name.
    provider: String,
    /// Whether the account signs in with a password here.
    local: bool,
    /// Whether the viewer is looking at their own account.
    own: bool,
    /// When the account was made (RFC 3339).
    created_at: String,
    /// Last sign-in (RFC 3339), or "".
    last_login_at: String,
    /// The form.
    fields: UserFields,
    /// Its errors.
    errors: FieldErrors,
}

impl UserPage {
    /// The page of `user` with `fields` and `errors`.
    fn of(viewer: &Viewer, user: &User, fields: UserFields, errors: FieldErrors) -> Self {
        UserPage {
            nav: Some(viewer.nav()),
            csrf: viewer.csrf.clone(),
            id: user.id.clone(),
            username: user.username.clone(),
            provider: user.provider.clone(),
            local: user.provider == LOCAL_PROVIDER,
            own: user.id == viewer.user.id,
            created_at: at(user.created_at),
            last_login_at: at(user.last_login_at),
            fields,
            errors,
        }
    }
}

/// `?q=&page=` of the list.
#[derive(Debug, Default, Deserialize)]
pub(super) struct UserListParams {
    /// Page number, from 1.
    #[serde(default)]
    page: Option<u32>,
    /// Search text.
    #[serde(default)]
    q: String,
}

fn client(state: &FacadeState) -> AdminUserServiceClient<Channel> {
    AdminUserServiceClient::new(state.channel.clone())
}

/// The first 100 users (by username), for pickers.
pub(super) async fn first_users(state: &FacadeState, viewer: &Viewer) -> Result<Vec<User>, Response> {
    let request = viewer
        .call
        .request(ListUsersRequest { page: Some(PageRequest { page: 1, per_page: 100 }), query: String::new() });
    match client(state).list_users(request).await {
        Ok(listed) => Ok(listed.into_inner().users),
        Err(status) => Err(viewer.failed(status).into_response()),
    }
}

/// A user offered in a picker.
pub(super) struct UserChoice {
    /// The user's id (the option's value).
    pub id: String,
    /// What the option shows: username and e-mail.
    pub label: String,
    /// Whether the option is selected.
    pub selected: bool,
}

/// `users` as options, those in `selected` selected; a selected id not among `users`
/// is offered too (by its id), so that saving the form keeps it.
pub(super) fn user_choices(users: &[User], selected: &[String]) -> Vec<UserChoice> {
    let mut choices: Vec<UserChoice> = users
        .iter()
        .map(|user| UserChoice {
            id: user.id.clone(),
            label: format!("{} ({})", user.username, user.email),
            selected: selected.contains(&user.id),
        })
        .collect();
    for id in selected.iter().filter(|id| !id.is_empty() && !users.iter().any(|user| &user.id == *id)) {
        choices.push(UserChoice { id: id.clone(), label: id.clone(), selected: true });
    }
    choices
}

/// How the list names a user: its e-mail, or its id when not among `users`.
pub(super) fn user_label(users: &[User], id: &str) -> String {
    users.iter().find(|user| user.id == id).map_or_else(|| id.to_owned(), |user| user.email.clone())
}

/// The errors of a form whose fields are `fields`: an error naming no field shows at
/// the top of the form, and so does one naming a field the form lacks (without the
/// field's name).
pub(super) fn form_errors(error: &ApiError, fields: &[&str]) -> FieldErrors {
    let errors = FieldErrors::from(error);
    if errors.general.is_some() || fields.iter().any(|field| errors.get(field).is_some()) {
        return errors;
    }
    let message = error.message();
    let problem = message.split_once(": ").map_or(message, |(_, problem)| problem);
    let mut general = FieldErrors::none();
    let mut letters = problem.chars();
    general.general = letters.next().map(|first| first.to_uppercase().chain(letters).collect());
    general
}

/// A failed call of a form: its status and errors when they belong on the form (bad
/// input, a clash), else (`Err`) the error for a page of its own.
pub(super) fn form_failure(status: tonic::Status, fields: &[&str]) -> Result<(StatusCode, FieldErrors), ApiError> {
    let error = ApiError::from(status);
    if !shown_on_form(&error) {
        return Err(error);
    }
    Ok((error.status(), form_errors(&error, fields)))
}

/// A form's own complaint about a field (`field: problem`), as a 400.
pub(super) fn invalid_field(message: String) -> (StatusCode, FieldErrors) {
    (StatusCode::BAD_REQUEST, FieldErrors::from(&ApiError::invalid_request(message)))
}

/// The list page with the new-account form holding `fields` and `errors`.
async fn list_page(
    state: &FacadeState,
    viewer: &Viewer,
    params: UserListParams,
    fields: NewUserFields,
    (status, errors): (StatusCode, FieldErrors),
) -> Response {
    let query = params.q.trim().to_owned();
    let request = viewer
        .call
        .request(ListUsersRequest { page: Some(Paging::request(params.page, USERS_PER_PAGE)), query: query.clone() });
    let listed = match client(state).list_users(request).await {
        Ok(listed) => listed.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let query_suffix = match serde_urlencoded::to_string([("q", query.as_str())]) {
        Ok(encoded) if !query.is_empty() => format!("&{encoded}"),
        _ => String::new(),
    };
    let page = UsersPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        users: listed.users.into_iter().map(UserRow::from).collect(),
        paging: Paging::of(listed.page),
        query,
        query_suffix,
        fields,
        errors,
    };
    render_form(&page.errors, status, &page)
}

/// `/admin/users?q=&page=`.
pub(super) async fn list(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Query(params): Query<UserListParams>,
) -> Response {
    list_page(&state, &viewer, params, NewUserFields::default(), (StatusCode::OK, FieldErrors::none())).await
}

/// `POST /admin/users`: makes a local account.
pub(super) async fn create(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let data = &form.data;
    let fields = NewUserFields {
        username: data.get("username").trim().to_owned(),
        email: data.get("email").trim().to_owned(),
        name: data.get("name").trim().to_owned(),
        groups: data.get("groups").to_owned(),
        is_admin: data.checked("is_admin"),
    };
    let request = form.viewer.call.request(CreateUserRequest {
        username: fields.username.clone(),
        email: fields.email.clone(),
        name: fields.name.clone(),
        password: data.get("password").to_owned(),
        is_admin: fields.is_admin,
        groups: data.list("groups"),
    });
    match client(&state).create_user(request).await {
        Ok(_) => Redirect::to("/admin/users").into_response(),
        Err(status) => match form_failure(status, &NEW_USER_FIELDS) {
            Ok(failed) => list_page(&state, &form.viewer, UserListParams::default(), fields, failed).await,
            Err(error) => form.viewer.failed(error).into_response(),
        },
    }
}

/// `/admin/users/{id}`.
pub(super) async fn edit(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    match client(&state).get_user(viewer.call.request(GetUserRequest { id })).await {
        Ok(user) => {
            let user = user.into_inner();
            render(&UserPage::of(&viewer, &user, UserFields::from(&user), FieldErrors::none()))
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// The changes the form makes to `user`: only what differs (an unchanged e-mail is
/// not sent, since setting one forgets that a provider verified it), a password only
/// when one is given.
fn changes(user: &User, fields: &UserFields, data: &FormData) -> UpdateUserRequest {
    let groups = data.list("groups");
    UpdateUserRequest {
        id: user.id.clone(),
        email: Some(fields.email.clone()).filter(|email| *email != user.email),
        // As when an account is made, an empty name means the username.
        name: Some(if fields.name.is_empty() { user.username.clone() } else { fields.name.clone() })
            .filter(|name| *name != user.name),
        password: Some(data.get("password").to_owned()).filter(|password| !password.is_empty()),
        is_admin: Some(fields.is_admin).filter(|is_admin| *is_admin != user.is_admin),
        disabled: Some(fields.disabled).filter(|disabled| *disabled != user.disabled),
        groups: (groups != user.groups).then_some(GroupList { groups }),
    }
}

/// Whether `request` changes nothing.
fn changes_nothing(request: &UpdateUserRequest) -> bool {
    request.email.is_none()
        && request.name.is_none()
        && request.password.is_none()
        && request.is_admin.is_none()
        && request.disabled.is_none()
        && request.groups.is_none()
}

/// `POST /admin/users/{id}`: changes what the form changes.
pub(super) async fn update(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    let viewer = &form.viewer;
    let user = match client(&state).get_user(viewer.call.request(GetUserRequest { id })).await {
        Ok(user) => user.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let fields = UserFields {
        email: form.data.get("email").trim().to_owned(),
        name: form.data.get("name").trim().to_owned(),
        groups: form.data.get("groups").to_owned(),
        is_admin: form.data.checked("is_admin"),
        disabled: form.data.checked("disabled"),
    };
    let request = changes(&user, &fields, &form.data);
    if changes_nothing(&request) {
        return Redirect::to("/admin/users").into_response();
    }
    match client(&state).update_user(viewer.call.request(request)).await {
        Ok(_) => Redirect::to("/admin/users").into_response(),
        Err(status) => match form_failure(status, &USER_FIELDS) {
            Ok((status, errors)) => {
                let page = UserPage::of(viewer, &user, fields, errors);
                render_form(&page.errors, status, &page)
            }
            Err(error) => viewer.failed(error).into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        User {
            id: "usr-1".into(),
            username: "alice".into(),
            email: "alice@example.com".into(),
            name: "Alice".into(),
            groups: vec!["ops".into()],
            provider: "local".into(),
            ..User::default()
        }
    }

    #[test]
    fn only_what_changed_is_sent() {
        let user = alice();
        let unchanged = FormData::parse(b"email=alice%40example.com&name=Alice&groups=ops&password=").unwrap();
        let fields = UserFields {
            email: unchanged.get("email").into(),
            name: unchanged.get("name").into(),
            groups: unchanged.get("groups").into(),
            is_admin: false,
            disabled: false,
        };
        assert!(changes_nothing(&changes(&user, &fields, &unchanged)));
        let changed =
            FormData::parse(b"email=alice%40example.com&name=Alice&groups=ops%2C+dev&password=a-long-password")
                .unwrap();
        let request = changes(&user, &UserFields { disabled: true, ..fields }, &changed);
        assert_eq!(request.email, None);
        let unnamed = changes(&user, &UserFields { name: String::new(), ..UserFields::from(&user) }, &unchanged);
        assert_eq!(unnamed.name.as_deref(), Some("alice"));
        assert_eq!(request.disabled, Some(true));
        assert_eq!(request.password.as_deref(), Some("a-long-password"));
        assert_eq!(request.groups.map(|list| list.groups), Some(vec!["ops".to_owned(), "dev".to_owned()]));
    }

    #[test]
    fn errors_naming_no_field_of_the_form_go_on_top() {
        let own = ApiError::invalid_request("id: an admin cannot disable or demote their own account");
        let errors = form_errors(&own, &USER_FIELDS);
        assert_eq!(errors.general.as_deref(), Some("An admin cannot disable or demote their own account"));
        let named = form_errors(&ApiError::invalid_request("email: not an address"), &USER_FIELDS);
        assert_eq!(named.get("email"), Some("Not an address"));
    }

    #[test]
    fn selected_users_outside_the_first_hundred_stay_selected() {
        assert_eq!(user_choices(&[alice()], &[String::new()]).len(), 1);
        let choices = user_choices(&[alice()], &["usr-2".to_owned()]);
        assert_eq!(choices.len(), 2);
        assert!(!choices[0].selected && choices[1].selected && choices[1].label == "usr-2");
        assert_eq!(user_label(&[alice()], "usr-1"), "alice@example.com");
    }

    fn nav() -> Option<Nav> {
        Some(Nav { username: "root".into(), is_admin: true, csrf: "tok".into(), path: "/admin/users".into() })
    }

    #[test]
    fn the_list_keeps_the_search_in_paging_links_and_marks_refused_fields() {
        let page = UsersPage {
            nav: nav(),
            csrf: "tok".into(),
            users: vec![UserRow::from(alice())],
            paging: Paging { page: 1, pages: 2, total: 60 },
            query: "a&b".into(),
            query_suffix: "&q=a%26b".into(),
            fields: NewUserFields { username: "<bob>".into(), ..NewUserFields::default() },
            errors: FieldErrors::from(&ApiError::invalid_request("username: is taken")),
        };
        let html = page.render().unwrap();
        assert!(html.contains(r#"href="/admin/users?page=2&#38;q=a%26b""#) || html.contains("page=2&amp;q=a%26b"));
        assert!(html.contains(r#"<a href="/admin/users/usr-1">alice</a>"#));
        assert!(html.contains(r#"aria-invalid="true" aria-describedby="username-error""#));
        assert!(html.contains(r#"id="username-error""#) && !html.contains("<bob>"));
        assert!(!html.contains("style="));
    }

    #[test]
    fn the_account_form_offers_a_password_to_local_accounts_only() {
        let viewer_nav = nav();
        let mut user = alice();
        let render_for = |user: &User| {
            let page = UserPage {
                nav: viewer_nav.clone(),
                csrf: "tok".into(),
                id: user.id.clone(),
                username: user.username.clone(),
                provider: user.provider.clone(),
                local: user.provider == LOCAL_PROVIDER,
                own: false,
                created_at: String::new(),
                last_login_at: String::new(),
                fields: UserFields::from(user),
                errors: FieldErrors::from(&ApiError::invalid_request("id: an admin cannot disable their account")),
            };
            page.render().unwrap()
        };
        let html = render_for(&user);
        assert!(html.contains(r#"name="password""#) && html.contains(r#"name="disabled""#));
        assert!(html.contains(r#"value="ops""#));
        user.provider = "corp".into();
        let html = render_for(&user);
        assert!(!html.contains(r#"name="password""#) && html.contains("corp"));
    }
}
