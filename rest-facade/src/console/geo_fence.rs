//! The geo-fence: its settings, its allow and deny rules, and a tool that tells
//! whether a user at an address would get in, and why. One page; each of its forms
//! brings it back with that form's errors and values when the core refuses.

use super::form::ConsoleForm;
use super::page::{AdminViewer, FieldErrors, Nav, Viewer, render_with};
use super::users::{UserChoice, first_users, form_failure, user_choices};
use crate::FacadeState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gatekey::v1::admin_geo_fence_service_client::AdminGeoFenceServiceClient;
use gatekey::v1::{
    DeleteGeoFenceRuleRequest, GeoFenceCheckRequest, GeoFenceCheckResponse, GeoFenceRule, GeoFenceSettings,
    GetGeoFenceSettingsRequest, ListGeoFenceRulesRequest, PageRequest, User,
};
use tonic::transport::Channel;

/// The fields of the settings form.
const SETTINGS_FIELDS: [&str; 4] = ["enabled", "mode", "database_path", "unknown_location_policy"];

/// The fields of the new-rule form.
const RULE_FIELDS: [&str; 5] = ["action", "countries", "cidrs", "scope", "subject"];

/// The fields of the check tool.
const CHECK_FIELDS: [&str; 2] = ["user_id", "address"];

/// What the settings form holds.
struct SettingsFields {
    /// Whether geo-fencing applies.
    enabled: bool,
    /// `enforce` or `audit`.
    mode: String,
    /// The country database's path on the core's host.
    database_path: String,
    /// `deny` or `allow`.
    unknown_location_policy: String,
}

impl From<GeoFenceSettings> for SettingsFields {
    fn from(settings: GeoFenceSettings) -> Self {
        SettingsFields {
            enabled: settings.enabled,
            mode: settings.mode,
            database_path: settings.database_path,
            unknown_location_policy: settings.unknown_location_policy,
        }
    }
}

/// What the new-rule form holds.
struct RuleFields {
    /// `allow` or `deny`.
    action: String,
    /// Country codes, comma-separated.
    countries: String,
    /// CIDRs, comma-separated.
    cidrs: String,
    /// `global`, `group` or `user`.
    scope: String,
    /// The group name or user id.
    subject: String,
}

impl Default for RuleFields {
    fn default() -> Self {
        RuleFields {
            action: "deny".into(),
            countries: String::new(),
            cidrs: String::new(),
            scope: "global".into(),
            subject: String::new(),
        }
    }
}

/// What the check tool holds.
#[derive(Default)]
struct CheckFields {
    /// The user's id.
    user_id: String,
    /// The address.
    address: String,
}

/// A rule as the table shows it.
struct RuleRow {
    /// Its id.
    id: String,
    /// `allow` or `deny`.
    action: String,
    /// Country codes.
    countries: String,
    /// CIDRs.
    cidrs: String,
    /// `global`, `group` or `user`.
    scope: String,
    /// The group, or the user by username.
    subject: String,
}

impl RuleRow {
    /// `rule`, its user named from `users` when it is among them.
    fn of(rule: &GeoFenceRule, users: &[User]) -> Self {
        let subject = match rule.scope.as_str() {
            "user" => users
                .iter()
                .find(|user| user.id == rule.subject)
                .map_or_else(|| rule.subject.clone(), |user| user.username.clone()),
            _ => rule.subject.clone(),
        };
        RuleRow {
            id: rule.id.clone(),
            action: rule.action.clone(),
            countries: rule.countries.join(", "),
            cidrs: rule.cidrs.join(", "),
            scope: rule.scope.clone(),
            subject,
        }
    }

    /// The rule in a few words, e.g. `deny CN, RU (global)`.
    fn summary(&self) -> String {
        let places = [self.countries.as_str(), self.cidrs.as_str()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        match self.scope.as_str() {
            "global" => format!("{} {places} (global)", self.action),
            scope => format!("{} {places} ({scope} {})", self.action, self.subject),
        }
    }
}

/// The answer of the check tool.
struct Verdict {
    /// Whether access would be allowed.
    allowed: bool,
    /// The country found, or "".
    country: String,
    /// The deciding rule in words, or "".
    rule: String,
    /// Why.
    explanation: String,
}

impl Verdict {
    /// `answer`, its rule described from `rules`.
    fn of(answer: GeoFenceCheckResponse, rules: &[RuleRow]) -> Self {
        let rule = match rules.iter().find(|rule| rule.id == answer.rule_id) {
            Some(rule) if !answer.rule_id.is_empty() => rule.summary(),
            _ => answer.rule_id,
        };
        Verdict { allowed: answer.allowed, country: answer.country, rule, explanation: answer.explanation }
    }
}

/// The page.
#[derive(Template)]
#[template(path = "admin/geo_fence.html")]
struct GeoFencePage {
    /// The navigation.
    nav: Option<Nav>,
    /// The token of the forms.
    csrf: String,
    /// The settings form.
    settings: SettingsFields,
    /// Its errors.
    settings_errors: FieldErrors,
    /// The rules.
    rules: Vec<RuleRow>,
    /// The new-rule form.
    rule: RuleFields,
    /// Its errors.
    rule_errors: FieldErrors,
    /// The users offered (for the check tool and as rule subjects).
    users: Vec<UserChoice>,
    /// The check tool.
    check: CheckFields,
    /// Its errors.
    check_errors: FieldErrors,
    /// Its answer.
    verdict: Option<Verdict>,
}

/// What a handler puts on the page besides what is stored: one form's values, errors
/// or answer.
#[derive(Default)]
struct Sections {
    /// The settings as posted (else the stored ones show).
    settings: Option<SettingsFields>,
    /// The settings' errors.
    settings_errors: FieldErrors,
    /// The new rule as posted.
    rule: RuleFields,
    /// Its errors.
    rule_errors: FieldErrors,
    /// The check as posted.
    check: CheckFields,
    /// Its errors.
    check_errors: FieldErrors,
    /// The check's answer.
    verdict: Option<GeoFenceCheckResponse>,
}

fn client(state: &FacadeState) -> AdminGeoFenceServiceClient<Channel> {
    AdminGeoFenceServiceClient::new(state.channel.clone())
}

/// The stored settings (unless `posted`) and rules, and the users offered.
async fn stored(
    state: &FacadeState,
    viewer: &Viewer,
    posted: Option<SettingsFields>,
) -> Result<(SettingsFields, Vec<GeoFenceRule>, Vec<User>), Response> {
    let settings = async {
        match posted {
            Some(posted) => Ok(posted),
            None => client(state)
                .get_settings(viewer.call.request(GetGeoFenceSettingsRequest {}))
                .await
                .map(|settings| SettingsFields::from(settings.into_inner())),
        }
    };
    let rules = async {
        let request =
            viewer.call.request(ListGeoFenceRulesRequest { page: Some(PageRequest { page: 1, per_page: 100 }) });
        client(state).list_rules(request).await.map(|listed| listed.into_inner().rules)
    };
    let (settings, rules, users) = tokio::join!(settings, rules, first_users(state, viewer));
    let failed = |status: tonic::Status| viewer.failed(status).into_response();
    Ok((settings.map_err(failed)?, rules.map_err(failed)?, users?))
}

/// The page with `sections`, answered with `status`.
async fn geo_page(state: &FacadeState, viewer: &Viewer, sections: Sections, status: StatusCode) -> Response {
    let (settings, rules, users) = match stored(state, viewer, sections.settings).await {
        Ok(stored) => stored,
        Err(response) => return response,
    };
    let rules: Vec<RuleRow> = rules.iter().map(|rule| RuleRow::of(rule, &users)).collect();
    let page = GeoFencePage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        settings,
        settings_errors: sections.settings_errors,
        verdict: sections.verdict.map(|answer| Verdict::of(answer, &rules)),
        rules,
        rule: sections.rule,
        rule_errors: sections.rule_errors,
        users: user_choices(&users, std::slice::from_ref(&sections.check.user_id)),
        check: sections.check,
        check_errors: sections.check_errors,
    };
    render_with(status, &page)
}

/// `/admin/geo-fence`.
pub(super) async fn page(State(state): State<FacadeState>, AdminViewer(viewer): AdminViewer) -> Response {
    geo_page(&state, &viewer, Sections::default(), StatusCode::OK).await
}

/// `POST /admin/geo-fence/settings`: replaces the settings.
pub(super) async fn save_settings(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let data = &form.data;
    let settings = GeoFenceSettings {
        enabled: data.checked("enabled"),
        mode: data.get("mode").to_owned(),
        database_path: data.get("database_path").trim().to_owned(),
        unknown_location_policy: data.get("unknown_location_policy").to_owned(),
    };
    match client(&state).update_settings(form.viewer.call.request(settings.clone())).await {
        Ok(_) => Redirect::to("/admin/geo-fence").into_response(),
        Err(status) => match form_failure(status, &SETTINGS_FIELDS) {
            Ok((status, settings_errors)) => {
                let sections =
                    Sections { settings: Some(SettingsFields::from(settings)), settings_errors, ..Sections::default() };
                geo_page(&state, &form.viewer, sections, status).await
            }
            Err(error) => form.viewer.failed(error).into_response(),
        },
    }
}

/// `POST /admin/geo-fence/rules`: adds a rule.
pub(super) async fn create_rule(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let data = &form.data;
    let fields = RuleFields {
        action: data.get("action").to_owned(),
        countries: data.get("countries").to_owned(),
        cidrs: data.get("cidrs").to_owned(),
        scope: data.get("scope").to_owned(),
        subject: data.get("subject").trim().to_owned(),
    };
    let rule = GeoFenceRule {
        id: String::new(),
        action: fields.action.clone(),
        countries: data.list("countries").into_iter().map(|code| code.to_ascii_uppercase()).collect(),
        cidrs: data.list("cidrs"),
        scope: fields.scope.clone(),
        subject: fields.subject.clone(),
    };
    match client(&state).create_rule(form.viewer.call.request(rule)).await {
        Ok(_) => Redirect::to("/admin/geo-fence").into_response(),
        Err(status) => {
            // A user subject that is not a user: the core's 404 names no field.
            let status = if fields.scope == "user" { unknown_as_field(status, "subject") } else { status };
            match form_failure(status, &RULE_FIELDS) {
                Ok((status, rule_errors)) => {
                    let sections = Sections { rule: fields, rule_errors, ..Sections::default() };
                    geo_page(&state, &form.viewer, sections, status).await
                }
                Err(error) => form.viewer.failed(error).into_response(),
            }
        }
    }
}

/// A "not found" from the core as a mistake in `field` of the form (where the user
/// chose or typed what is not there), not as a missing page.
fn unknown_as_field(status: tonic::Status, field: &str) -> tonic::Status {
    if status.code() == tonic::Code::NotFound {
        tonic::Status::invalid_argument(format!("{field}: {}", status.message()))
    } else {
        status
    }
}

/// `POST /admin/geo-fence/rules/{id}/delete`.
pub(super) async fn delete_rule(
    State(state): State<FacadeState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Response {
    form.viewer.then_to(
        client(&state).delete_rule(form.viewer.call.request(DeleteGeoFenceRuleRequest { id })).await,
        "/admin/geo-fence",
    )
}

/// `POST /admin/geo-fence/check`: the page with the verdict for a user and an address.
pub(super) async fn check(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let fields = CheckFields {
        user_id: form.data.get("user_id").to_owned(),
        address: form.data.get("address").trim().to_owned(),
    };
    let request = form
        .viewer
        .call
        .request(GeoFenceCheckRequest { user_id: fields.user_id.clone(), address: fields.address.clone() });
    match client(&state).check(request).await {
        Ok(answer) => {
            let sections = Sections { check: fields, verdict: Some(answer.into_inner()), ..Sections::default() };
            geo_page(&state, &form.viewer, sections, StatusCode::OK).await
        }
        Err(status) => match form_failure(unknown_as_field(status, "user_id"), &CHECK_FIELDS) {
            Ok((status, check_errors)) => {
                let sections = Sections { check: fields, check_errors, ..Sections::default() };
                geo_page(&state, &form.viewer, sections, status).await
            }
            Err(error) => form.viewer.failed(error).into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    fn rules() -> Vec<RuleRow> {
        let users = [User { id: "usr-1".into(), username: "alice".into(), ..User::default() }];
        let rule = |id: &str, scope: &str, subject: &str| GeoFenceRule {
            id: id.into(),
            action: "deny".into(),
            countries: vec!["CN".into(), "RU".into()],
            cidrs: vec![],
            scope: scope.into(),
            subject: subject.into(),
        };
        [rule("geo-1", "global", ""), rule("geo-2", "user", "usr-1")]
            .iter()
            .map(|rule| RuleRow::of(rule, &users))
            .collect()
    }

    #[test]
    fn verdicts_describe_the_deciding_rule() {
        let rules = rules();
        assert_eq!(rules[1].subject, "alice");
        let answer = |rule_id: &str| GeoFenceCheckResponse {
            allowed: false,
            country: "CN".into(),
            rule_id: rule_id.into(),
            explanation: "denied by a rule".into(),
        };
        assert_eq!(Verdict::of(answer("geo-1"), &rules).rule, "deny CN, RU (global)");
        assert_eq!(Verdict::of(answer("geo-2"), &rules).rule, "deny CN, RU (user alice)");
        assert_eq!(Verdict::of(answer("geo-9"), &rules).rule, "geo-9");
        assert_eq!(Verdict::of(answer(""), &rules).rule, "");
    }

    #[test]
    fn each_form_shows_its_own_errors_and_the_verdict_shows() {
        let page = GeoFencePage {
            nav: None,
            csrf: "tok".into(),
            settings: SettingsFields {
                enabled: true,
                mode: "audit".into(),
                database_path: String::new(),
                unknown_location_policy: "allow".into(),
            },
            settings_errors: FieldErrors::none(),
            rules: rules(),
            rule: RuleFields { scope: "group".into(), ..RuleFields::default() },
            rule_errors: FieldErrors::from(&ApiError::invalid_request("subject: a group rule names its group")),
            users: user_choices(&[], &[]),
            check: CheckFields { user_id: String::new(), address: "198.51.100.7".into() },
            check_errors: FieldErrors::none(),
            verdict: Some(Verdict {
                allowed: true,
                country: "DE".into(),
                rule: String::new(),
                explanation: "no rule applies".into(),
            }),
        };
        let html = page.render().unwrap();
        assert!(html.contains(r#"aria-invalid="true" aria-describedby="subject-error""#));
        assert!(!html.contains(r#"aria-describedby="address-error""#));
        assert!(
            html.contains(r#"<option value="audit" selected>"#) && html.contains(r#"<option value="allow" selected>"#)
        );
        assert!(html.contains(r#"<option value="group" selected>"#));
        assert!(html.contains(r#"action="/admin/geo-fence/rules/geo-2/delete""#));
        assert!(html.contains("no rule applies") && html.contains(r#"value="198.51.100.7""#));
        assert!(!html.contains("style="));
    }
}
