//! `AdminGeoFenceService`: geo-fence settings, rules and verdict checks.

use super::{GrpcResult, respond};
use crate::auth::Access;
use crate::context::CoreContext;
use crate::domain::{GeoFenceAction, GeoFenceMode, GeoFenceScope, UnitOfWork};
use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::store::{GeoFenceRuleRecord, GeoFenceSettingsRecord};
use crate::{convert, validate};
use gatekey::v1::admin_geo_fence_service_server::AdminGeoFenceService;
use gatekey::v1::{
    DeleteGeoFenceRuleRequest, DeleteGeoFenceRuleResponse, GeoFenceCheckRequest, GeoFenceCheckResponse, GeoFenceRule,
    GeoFenceSettings, GetGeoFenceRuleRequest, GetGeoFenceSettingsRequest, ListGeoFenceRulesRequest,
    ListGeoFenceRulesResponse,
};
use std::sync::Arc;
use tonic::Request;

/// Implements `AdminGeoFenceService`.
#[derive(Debug, Clone)]
pub struct AdminGeoFenceApi(pub Arc<CoreContext>);

impl AdminGeoFenceApi {
    /// A rule as the admin wrote it, checked field by field.
    async fn validated_rule(&self, input: GeoFenceRule) -> CoreResult<GeoFenceRuleRecord> {
        let action = GeoFenceAction::parse_field("action", &input.action)?;
        let countries = validate::country_codes("countries", &input.countries)?;
        let cidrs = input.cidrs.iter().map(|cidr| validate::cidr("cidrs", cidr)).collect::<CoreResult<Vec<_>>>()?;
        if countries.is_empty() && cidrs.is_empty() {
            return Err(CoreError::InvalidArgument("countries: a rule needs at least one country or CIDR".into()));
        }
        if cidrs.len() > 64 {
            return Err(CoreError::InvalidArgument("cidrs: at most 64 CIDRs".into()));
        }
        let scope = GeoFenceScope::parse_field("scope", &input.scope)?;
        let subject = match scope {
            GeoFenceScope::Global if input.subject.is_empty() => String::new(),
            GeoFenceScope::Global => {
                return Err(CoreError::InvalidArgument("subject: must be empty for a global rule".into()));
            }
            GeoFenceScope::Group => validate::groups("subject", std::slice::from_ref(&input.subject))?
                .pop()
                .ok_or_else(|| CoreError::InvalidArgument("subject: a group rule names its group".into()))?,
            GeoFenceScope::User => self.0.store.require_user(validate::id("subject", &input.subject)?).await?.id,
        };
        Ok(GeoFenceRuleRecord { id: input.id, action, countries, cidrs, scope, subject })
    }
}

#[tonic::async_trait]
impl AdminGeoFenceService for AdminGeoFenceApi {
    async fn get_settings(&self, request: Request<GetGeoFenceSettingsRequest>) -> GrpcResult<GeoFenceSettings> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                Ok(convert::geo_fence_settings(self.0.store.geo_fence_settings().await?))
            }
            .await,
        )
    }

    async fn update_settings(&self, request: Request<GeoFenceSettings>) -> GrpcResult<GeoFenceSettings> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let settings = GeoFenceSettingsRecord {
                    enabled: input.enabled,
                    mode: GeoFenceMode::parse_field("mode", &input.mode)?,
                    database_path: validate::text("database_path", input.database_path.trim(), 4096)?,
                    unknown_location_policy: GeoFenceAction::parse_field(
                        "unknown_location_policy",
                        &input.unknown_location_policy,
                    )?,
                };
                if !settings.database_path.is_empty() {
                    self.0.geo_fence.check_database(&settings.database_path)?;
                }
                let mut work = UnitOfWork::begin(&self.0).await?;
                self.0.store.save_geo_fence_settings(&mut work.tx, &settings).await?;
                work.commit().await?;
                tracing::info!(enabled = settings.enabled, mode = %settings.mode, "geo-fence settings changed");
                Ok(convert::geo_fence_settings(settings))
            }
            .await,
        )
    }

    async fn list_rules(&self, request: Request<ListGeoFenceRulesRequest>) -> GrpcResult<ListGeoFenceRulesResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let rules = self.0.store.geo_fence_rules().await?;
                let total = rules.len() as u64;
                let skip = (page.number.saturating_sub(1) as usize).saturating_mul(page.size as usize);
                Ok(ListGeoFenceRulesResponse {
                    rules: rules.into_iter().skip(skip).take(page.size as usize).map(convert::geo_fence_rule).collect(),
                    page: Some(convert::page_info(total, page)),
                })
            }
            .await,
        )
    }

    async fn create_rule(&self, request: Request<GeoFenceRule>) -> GrpcResult<GeoFenceRule> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let rule = GeoFenceRuleRecord {
                    id: new_id(IdKind::GeoFenceRule),
                    ..self.validated_rule(request.into_inner()).await?
                };
                let mut work = UnitOfWork::begin(&self.0).await?;
                let rule = self.0.store.save_geo_fence_rule(&mut work.tx, &rule, false).await?;
                work.commit().await?;
                tracing::info!(rule = %rule.id, action = %rule.action, scope = %rule.scope, "geo-fence rule created");
                Ok(convert::geo_fence_rule(rule))
            }
            .await,
        )
    }

    async fn update_rule(&self, request: Request<GeoFenceRule>) -> GrpcResult<GeoFenceRule> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                validate::id("id", &input.id)?;
                let rule = self.validated_rule(input).await?;
                let mut work = UnitOfWork::begin(&self.0).await?;
                let rule = self.0.store.save_geo_fence_rule(&mut work.tx, &rule, true).await?;
                work.commit().await?;
                tracing::info!(rule = %rule.id, action = %rule.action, scope = %rule.scope, "geo-fence rule replaced");
                Ok(convert::geo_fence_rule(rule))
            }
            .await,
        )
    }

    async fn get_rule(&self, request: Request<GetGeoFenceRuleRequest>) -> GrpcResult<GeoFenceRule> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let rule = self.0.store.require_geo_fence_rule(validate::id("id", &request.get_ref().id)?).await?;
                Ok(convert::geo_fence_rule(rule))
            }
            .await,
        )
    }

    async fn delete_rule(&self, request: Request<DeleteGeoFenceRuleRequest>) -> GrpcResult<DeleteGeoFenceRuleResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let id = validate::id("id", &request.get_ref().id)?;
                let mut work = UnitOfWork::begin(&self.0).await?;
                self.0.store.delete_geo_fence_rule(&mut work.tx, id).await?;
                work.commit().await?;
                tracing::info!(rule = %id, "geo-fence rule deleted");
                Ok(DeleteGeoFenceRuleResponse {})
            }
            .await,
        )
    }

    async fn check(&self, request: Request<GeoFenceCheckRequest>) -> GrpcResult<GeoFenceCheckResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let input = request.into_inner();
                let user = self.0.store.require_user(validate::id("user_id", &input.user_id)?).await?;
                let address = input.address.trim().parse::<std::net::IpAddr>().map_err(|_| {
                    CoreError::InvalidArgument(format!("address: `{}` is not an IP address", input.address))
                })?;
                let verdict = self.0.geo_fence.judge(&self.0.store, &user, Some(address.to_canonical())).await?;
                Ok(GeoFenceCheckResponse {
                    allowed: verdict.allowed,
                    country: verdict.country.unwrap_or_default(),
                    rule_id: verdict.rule_id.unwrap_or_default(),
                    explanation: verdict.explanation,
                })
            }
            .await,
        )
    }
}
