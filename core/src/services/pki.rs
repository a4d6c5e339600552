//! `PkiService` (public: CRL and serial checks) and `AdminPkiService` (revocation).

use super::{GrpcResult, respond};
use crate::auth::Access;
use crate::context::CoreContext;
use crate::convert;
use crate::domain::revocation;
use crate::error::CoreError;
use crate::pki::lifecycle::current_crl;
use crate::pki::{RevocationReasonName, serial};
use gatekey::v1::admin_pki_service_server::AdminPkiService;
use gatekey::v1::pki_service_server::PkiService;
use gatekey::v1::{CheckSerialRequest, CheckSerialResponse, GetCrlRequest, GetCrlResponse, RevokeCertificateRequest};

use std::sync::Arc;
use tonic::Request;

/// Implements `PkiService`.
#[derive(Debug, Clone)]
pub struct PkiApi(pub Arc<CoreContext>);

/// Implements `AdminPkiService`.
#[derive(Debug, Clone)]
pub struct AdminPkiApi(pub Arc<CoreContext>);

#[tonic::async_trait]
impl PkiService for PkiApi {
    async fn get_crl(&self, _: Request<GetCrlRequest>) -> GrpcResult<GetCrlResponse> {
        respond(
            async {
                let crl = current_crl(&self.0).await?;
                Ok(GetCrlResponse {
                    der: crl.signed.der,
                    pem: crl.signed.pem,
                    number: crl.number,
                    this_update: Some(convert::timestamp(crl.this_update)),
                    next_update: Some(convert::timestamp(crl.next_update)),
                })
            }
            .await,
        )
    }

    async fn check_serial(&self, request: Request<CheckSerialRequest>) -> GrpcResult<CheckSerialResponse> {
        respond(
            async {
                let serial = serial::parse(&request.into_inner().serial)?;
                let certificate =
                    self.0.store.find_certificate(&serial).await?.ok_or_else(|| {
                        CoreError::NotFound(format!("no certificate with serial `{serial}` was issued"))
                    })?;
                Ok(convert::serial_status(certificate))
            }
            .await,
        )
    }
}

#[tonic::async_trait]
impl AdminPkiService for AdminPkiApi {
    async fn revoke_certificate(&self, request: Request<RevokeCertificateRequest>) -> GrpcResult<CheckSerialResponse> {
        respond(
            async {
                let caller = self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let serial = serial::parse(&input.serial)?;
                let reason = RevocationReasonName::parse(&input.reason)?;
                let (certificate, newly_revoked) =
                    revocation::revoke_certificate(&self.0, &serial, reason.as_str()).await?;
                if newly_revoked {
                    tracing::info!(%serial, reason = reason.as_str(), by = %caller.user.id, "revoked certificate");
                }
                Ok(convert::serial_status(certificate))
            }
            .await,
        )
    }
}
