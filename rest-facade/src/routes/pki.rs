//! `/pki/*` (public CRL and serial checks) and `/admin/pki/revoke`.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, CoreCall};
use crate::openapi::ErrorResponses;
use crate::views::{Data, SerialStatusView};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use gatekey::v1::admin_pki_service_client::AdminPkiServiceClient;
use gatekey::v1::pki_service_client::PkiServiceClient;
use gatekey::v1::{CheckSerialRequest, GetCrlRequest, GetCrlResponse, RevokeCertificateRequest};
use serde::Deserialize;

/// Body of `POST /admin/pki/revoke`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    #[schema(schema_with = crate::constraints::serial)]
    serial: String,
    #[schema(schema_with = crate::constraints::revocation_reason)]
    #[serde(default)]
    reason: Option<String>,
}

async fn fetch_crl(state: FacadeState, call: &CoreCall) -> ApiResult<GetCrlResponse> {
    Ok(PkiServiceClient::new(state.channel).get_crl(call.request(GetCrlRequest {})).await?.into_inner())
}

fn crl_response(content_type: &'static str, body: impl IntoResponse) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CACHE_CONTROL, HeaderValue::from_static("public, max-age=60")),
    ];
    (headers, body).into_response()
}

/// The CRL in DER.
#[utoipa::path(get, operation_id = "pki_crl_der", path = "/pki/crl", tag = "pki", security(()), responses((status = 200, description = "The CRL, DER", content_type = "application/pkix-crl", body = Vec<u8>), ErrorResponses))]
pub async fn crl_der(State(state): State<FacadeState>, call: CoreCall) -> ApiResult<Response> {
    Ok(crl_response("application/pkix-crl", fetch_crl(state, &call).await?.der))
}

/// The CRL in PEM.
#[utoipa::path(get, operation_id = "pki_crl_pem", path = "/pki/crl.pem", tag = "pki", security(()), responses((status = 200, description = "The CRL, PEM", content_type = "application/x-pem-file", body = String), ErrorResponses))]
pub async fn crl_pem(State(state): State<FacadeState>, call: CoreCall) -> ApiResult<Response> {
    Ok(crl_response("application/x-pem-file", fetch_crl(state, &call).await?.pem))
}

/// Whether a serial is revoked.
#[utoipa::path(get, operation_id = "pki_check", path = "/pki/check/{serial}", tag = "pki", security(()), params(("serial" = String, Path, description = "Hex serial, any case, colons optional")), responses((status = 200, description = "The certificate's state", body = Data<SerialStatusView>), ErrorResponses))]
pub async fn check(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(serial): ApiPath<String>,
) -> ApiResult<Json<Data<SerialStatusView>>> {
    let status = PkiServiceClient::new(state.channel).check_serial(call.request(CheckSerialRequest { serial })).await?;
    Ok(Json(Data { data: status.into_inner().into() }))
}

/// Revokes a certificate (admin).
#[utoipa::path(post, operation_id = "pki_revoke", path = "/admin/pki/revoke", tag = "admin-pki", security(("session_cookie" = []), ("bearer" = [])), request_body = RevokeBody, responses((status = 200, description = "The certificate's state", body = Data<SerialStatusView>), ErrorResponses))]
pub async fn revoke(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<RevokeBody>,
) -> ApiResult<Json<Data<SerialStatusView>>> {
    let request =
        call.request(RevokeCertificateRequest { serial: body.serial, reason: body.reason.unwrap_or_default() });
    let status = AdminPkiServiceClient::new(state.channel).revoke_certificate(request).await?;
    Ok(Json(Data { data: status.into_inner().into() }))
}
