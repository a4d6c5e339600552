//! VPN configs: issuing one (a client certificate and the rendered profile, sealed
//! until its one download) and downloading it.

use super::{UnitOfWork, VpnProtocol};
use crate::context::CoreContext;
use crate::domain::CertificateKind;
use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::ovpn::{ClientProfile, render_client_profile};
use crate::pki::CertificatePurpose;
use crate::pki::lifecycle::gateway_tls_crypt_key;
use crate::store::{CertificateRecord, NewConfig, UserRecord, unix_now};
use gatekey::ErrorCode;
use gatekey::v1::{ConfigIssued, event};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// A config just issued.
#[derive(Debug)]
pub struct IssuedConfig {
    /// Its id, for the download.
    pub config_id: String,
    /// Its certificate's serial.
    pub serial: String,
    /// When its certificate expires (Unix seconds).
    pub expires_at: i64,
}

/// A config's one download.
#[derive(Debug)]
pub struct DownloadedConfig {
    /// The file name to save it as.
    pub file_name: String,
    /// The profile, with its private key.
    pub content: String,
}

/// Issues `user` a config for the gateway or hub `gateway_id` (users connect to hubs like
/// to gateways), if it is active and granted to them: a new client certificate in a
/// rendered profile, sealed until it is downloaded once. It is stored with the configs
/// issued meanwhile, in one transaction (see [`ConfigCommits`]).
pub async fn issue(
    context: &Arc<CoreContext>,
    user: &UserRecord,
    gateway_id: &str,
    protocol: VpnProtocol,
) -> CoreResult<IssuedConfig> {
    // What a verdict there reads, at the gateway's current rule version: the gateway
    // and who is granted it (a user created since it was read is looked up).
    let inputs = context.verdict_inputs.current(&context.store, gateway_id).await?;
    let gateway = &inputs.gateway;
    let noun = gateway.role.as_str();
    if !gateway.is_active {
        return Err(CoreError::Forbidden(format!("{noun} `{}` is deactivated", gateway.name)));
    }
    if !inputs.granted.contains(&user.id) && !context.store.gateway_granted_to(&user.id, gateway_id).await? {
        return Err(CoreError::Forbidden(format!("you have not been granted {noun} `{}`", gateway.name)));
    }
    let tls_crypt_key = gateway_tls_crypt_key(&context.store, &context.sealer, gateway_id).await?;
    let issued = context.authority.issue(
        &CertificatePurpose::Client { email: user.email.clone() },
        context.settings.client_certificate_ttl_seconds,
    )?;
    let profile = render_client_profile(&ClientProfile {
        hostname: &gateway.hostname,
        port: gateway.port,
        protocol: gateway.protocol,
        ca_certificate_pem: context.authority.certificate_pem(),
        client_certificate_pem: &issued.certificate_pem,
        client_private_key_pem: &issued.private_key_pem,
        tls_crypt_key: &tls_crypt_key,
    });
    let config_id = new_id(IdKind::Config);
    let sealed_content = context.sealer.seal(&config_context(&config_id), profile.as_bytes())?;
    let now = unix_now();
    let certificate = CertificateRecord {
        serial: issued.serial.clone(),
        kind: CertificateKind::Client,
        subject: user.email.clone(),
        user_id: Some(user.id.clone()),
        gateway_id: Some(gateway.id.clone()),
        issued_at: now,
        expires_at: issued.not_after,
        revoked_at: None,
        revocation_reason: None,
    };
    let (stored, stored_receiver) = oneshot::channel();
    let pending = PendingConfig {
        config_id: config_id.clone(),
        user_id: user.id.clone(),
        gateway_id: gateway.id.clone(),
        gateway_name: gateway.name.clone(),
        protocol,
        sealed_content,
        purge_after: now + context.settings.config_download_window_seconds,
        certificate,
        stored,
    };
    context.config_commits.store(context, pending);
    stored_receiver.await.map_err(|_| CoreError::Internal("the config's commit was lost".into()))??;
    tracing::info!(config = %config_id, user = %user.id, gateway = %gateway.id, serial = %issued.serial, "issued VPN config");
    context.metrics.config_issued();
    Ok(IssuedConfig { config_id, serial: issued.serial.clone(), expires_at: issued.not_after })
}

/// The one download of `user_id`'s config `config_id`: its content is handed out and no
/// longer kept.
pub async fn download(context: &CoreContext, user_id: &str, config_id: &str) -> CoreResult<DownloadedConfig> {
    let config = context
        .store
        .find_config(config_id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("config `{config_id}` not found")))?;
    if config.user_id != user_id {
        return Err(CoreError::Forbidden("this config belongs to another user".into()));
    }
    if config.certificate.revoked_at.is_some() {
        return Err(CoreError::Gone(ErrorCode::ConfigRevoked, "this config's certificate has been revoked".into()));
    }
    if config.expires_at <= unix_now() {
        return Err(CoreError::Gone(ErrorCode::ConfigExpired, "this config's certificate has expired".into()));
    }
    let purged = || {
        CoreError::Gone(
            ErrorCode::ConfigPurged,
            "this config was already downloaded or its download window passed; its private key is not kept, \
             so generate a new config"
                .into(),
        )
    };
    if config.purge_after <= unix_now() {
        return Err(purged());
    }
    let sealed = context.store.take_config_content(&config.id).await?.ok_or_else(purged)?;
    let content = context.sealer.open_text(&config_context(&config.id), &sealed)?;
    Ok(DownloadedConfig { file_name: format!("gatekey-{}.ovpn", config.gateway_name), content })
}

/// A config ready to be stored, and who waits for it.
struct PendingConfig {
    config_id: String,
    user_id: String,
    gateway_id: String,
    gateway_name: String,
    protocol: VpnProtocol,
    sealed_content: String,
    purge_after: i64,
    certificate: CertificateRecord,
    /// Told whether it was stored.
    stored: oneshot::Sender<CoreResult<()>>,
}

impl PendingConfig {
    /// Stores it, with the event watching admins see, in `work`.
    async fn store_in(&self, context: &CoreContext, work: &mut UnitOfWork<'_>) -> CoreResult<()> {
        let config = NewConfig {
            id: &self.config_id,
            user_id: &self.user_id,
            gateway_id: &self.gateway_id,
            gateway_name: &self.gateway_name,
            protocol: self.protocol,
            sealed_content: &self.sealed_content,
            purge_after: self.purge_after,
            certificate: &self.certificate,
        };
        context.store.create_config(&mut work.tx, config).await?;
        let issued = ConfigIssued {
            config_id: self.config_id.clone(),
            gateway_id: self.gateway_id.clone(),
            user_id: self.user_id.clone(),
        };
        work.watched(event::Kind::Config(issued)).await
    }
}

/// Group commit of issued configs: while one transaction commits (on SQLite, one WAL
/// sync at a time), the configs issued meanwhile queue, and the next transaction stores
/// all of them. A config the store refuses fails alone: the others of its batch are
/// stored one at a time. One per core node.
#[derive(Default)]
pub struct ConfigCommits {
    /// The configs waiting, and whether a committer is draining them.
    queue: Mutex<(Vec<PendingConfig>, bool)>,
}

impl std::fmt::Debug for ConfigCommits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCommits").finish_non_exhaustive()
    }
}

impl ConfigCommits {
    /// Queues `pending` for the next commit, starting a committer when none runs. The
    /// committer is a task of its own: a request dropped meanwhile changes nothing for
    /// the others.
    fn store(&self, context: &Arc<CoreContext>, pending: PendingConfig) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.0.push(pending);
        if !queue.1 {
            queue.1 = true;
            tokio::spawn(Self::drain(context.clone()));
        }
    }

    /// Commits what is queued, batch after batch (at most [`MAX_BATCH`] configs each),
    /// until the queue is empty.
    async fn drain(context: Arc<CoreContext>) {
        let _unwinding = FailOnPanic(&context.config_commits);
        loop {
            let batch: Vec<PendingConfig> = {
                let mut queue = context.config_commits.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.0.is_empty() {
                    queue.1 = false;
                    return;
                }
                let taken = queue.0.len().min(MAX_BATCH);
                queue.0.drain(..taken).collect()
            };
            context.metrics.config_batch_committed(batch.len());
            commit_batch(&context, batch).await;
        }
    }
}

/// The most configs one group commit stores.
const MAX_BATCH: usize = 128;

/// Fails the queued configs (their requesters hear that the commit was lost) and lets
/// the next config start a committer, should the committer panic.
struct FailOnPanic<'a>(&'a ConfigCommits);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.0.clear();
            queue.1 = false;
        }
    }
}

/// Stores `batch` in one unit of work and tells each requester how it went. A config
/// the store refuses is left out, the others stored again without it, one at a time;
/// a transaction that cannot begin or commit fails the whole batch (a commit whose
/// outcome is unknown is never retried, so no config is stored twice).
async fn commit_batch(context: &CoreContext, batch: Vec<PendingConfig>) {
    let fail_all = |batch: Vec<PendingConfig>, error: CoreError| {
        let message = error.to_string();
        for pending in batch {
            let _ = pending.stored.send(Err(CoreError::Internal(message.clone())));
        }
    };
    let mut work = match UnitOfWork::begin(context).await {
        Ok(work) => work,
        Err(error) => return fail_all(batch, error),
    };
    for pending in &batch {
        if let Err(error) = pending.store_in(context, &mut work).await {
            drop(work);
            match <[PendingConfig; 1]>::try_from(batch) {
                // Alone in its batch, it has its answer already.
                Ok([alone]) => {
                    let _ = alone.stored.send(Err(error));
                }
                Err(batch) => {
                    for pending in batch {
                        commit_alone(context, pending).await;
                    }
                }
            }
            return;
        }
    }
    match work.commit().await {
        Ok(()) => {
            for pending in batch {
                let _ = pending.stored.send(Ok(()));
            }
        }
        Err(error) => fail_all(batch, error),
    }
}

/// Stores `pending` in a unit of work of its own and tells its requester how it went.
async fn commit_alone(context: &CoreContext, pending: PendingConfig) {
    let stored = async {
        let mut work = UnitOfWork::begin(context).await?;
        pending.store_in(context, &mut work).await?;
        work.commit().await
    };
    let outcome = stored.await;
    let _ = pending.stored.send(outcome);
}

/// The sealing context of a config's content.
fn config_context(config_id: &str) -> String {
    format!("config:{config_id}")
}
