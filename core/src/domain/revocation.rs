//! Revoking a client or gateway certificate.

use super::{UnitOfWork, agents};
use crate::context::CoreContext;
use crate::error::CoreResult;
use crate::store::{CertificateRecord, OpenSession, SessionsOf};

/// What a client whose certificate was revoked is told.
const REVOKED: &str = "the certificate was revoked";

/// Revokes the certificate `serial` for `reason` (keeping the first revocation if
/// repeated): with it, any config still holding its key is purged, the sessions running
/// on it are cut, and a new CRL goes to every agent. Answers the record and whether this
/// call revoked it.
pub async fn revoke_certificate(
    context: &CoreContext,
    serial: &str,
    reason: &str,
) -> CoreResult<(CertificateRecord, bool)> {
    let mut work = UnitOfWork::begin(context).await?;
    let (certificate, newly_revoked) = context.store.revoke_certificate(&mut work.tx, serial, reason).await?;
    let sessions = context.store.open_sessions_in(&mut work.tx, SessionsOf::Certificate(serial)).await?;
    work.kill(&sessions, REVOKED).await?;
    if newly_revoked {
        work.sign_next_crl().await?;
    }
    work.commit().await?;
    // A session recorded while the revocation was committing (its connect checked the
    // certificate before the commit) is cut too.
    let late: Vec<OpenSession> = context
        .store
        .open_sessions(SessionsOf::Certificate(serial))
        .await?
        .into_iter()
        .filter(|session| !sessions.contains(session))
        .collect();
    agents::cut(context, &late, REVOKED).await?;
    Ok((certificate, newly_revoked))
}
