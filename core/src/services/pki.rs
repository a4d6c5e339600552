//! `PkiService` (public: CRL and serial checks) and `AdminPkiService` (revocation).

use super::{GrpcResult, respond};
use crate::auth::Access;
use crate::context::CoreContext;
use crate::convert;
use crate::error::CoreError;
use crate::pki::lifecycle::{crl_committed, crl_signer, current_crl};
use crate::pki::{RevocationReasonName, serial};
use crate::store::OpenSession;
use gatekey::v1::admin_pki_service_server::AdminPkiService;
use gatekey::v1::pki_service_server::PkiService;
use gatekey::v1::{CheckSerialRequest, CheckSerialResponse, GetCrlRequest, GetCrlResponse, RevokeCertificateRequest};

/// What a client whose certificate was revoked is told.
const REVOKED: &str = "the certificate was revoked";
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
                // The order to end the sessions running on it commits with the revocation.
                let fleet = &self.0.fleet;
                let kill = |sessions: &[OpenSession]| fleet.kill_entry(sessions, REVOKED);
                let sign = crl_signer(&self.0.authority, fleet);
                let (certificate, newly_revoked, sessions, crl) =
                    self.0.store.revoke_certificate(&serial, reason.as_str(), kill, sign).await?;
                if newly_revoked {
                    tracing::info!(%serial, reason = reason.as_str(), by = %caller.user.id, "revoked certificate");
                }
                // This node's agents hear of it at once (the other nodes from the outbox).
                fleet.killed_here(&self.0.hub, &sessions, REVOKED);
                if let Some(crl) = crl {
                    crl_committed(&self.0, &crl)?;
                }
                // A session recorded while the revocation was committing (its connect
                // checked the certificate before the commit) is ended too.
                let late: Vec<OpenSession> = self
                    .0
                    .store
                    .open_sessions_with_serial(&serial)
                    .await?
                    .into_iter()
                    .filter(|session| !sessions.contains(session))
                    .collect();
                self.0.kill_sessions(&late, REVOKED).await?;
                Ok(convert::serial_status(certificate))
            }
            .await,
        )
    }
}
