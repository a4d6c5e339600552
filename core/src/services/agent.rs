//! `GatewayAgentService`: what gateway agents call with their `x-gateway-token`. The
//! stream carries hello, heartbeats, verifies, reports and acks one way, and welcome,
//! verdicts, rule snapshots, kills and CRLs the other; the unary methods mean the same
//! for simple agents and the REST `/gateway/*` endpoints.

use super::{GrpcResult, respond};
use crate::agent_hub::{Outbound, push_coalesced};
use crate::context::CoreContext;
use crate::domain::agents;
use crate::error::{CoreError, CoreResult};
use crate::pki::CertificatePurpose;
use crate::pki::lifecycle::{current_crl, gateway_tls_crypt_key};
use crate::pki::serial;
use crate::policy;
use crate::store::{
    CertificateRecord, GatewayRecord, GatewayRole, OpenSession, SessionReport, SessionTotals, unix_now,
};
use crate::validate;
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::gateway_agent_service_server::GatewayAgentService;
use gatekey::v1::*;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

/// How long a new stream may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Implements `GatewayAgentService`.
#[derive(Debug, Clone)]
pub struct GatewayAgentApi(pub Arc<CoreContext>);

/// The stream type of `OpenStream`.
type CoreMessageStream = Pin<Box<dyn futures::Stream<Item = Result<CoreMessage, Status>> + Send>>;

fn message(request_id: u64, body: CoreBody) -> CoreMessage {
    CoreMessage { request_id, body: Some(body) }
}

/// The configuration version an agent runs: any change to the gateway means reprovision.
fn config_version(gateway: &GatewayRecord) -> u64 {
    u64::try_from(gateway.updated_at).unwrap_or(0)
}

/// A connect report in store form; the session key and serial are required.
/// A session key as agents report it: 1 to 200 bytes without control characters.
fn session_key(value: &str) -> CoreResult<&str> {
    if value.len() > 200 {
        return Err(CoreError::InvalidArgument("session_key: must be 1 to 200 bytes".into()));
    }
    validate::id("session_key", value)
}

fn session_report(report: &ClientConnected) -> CoreResult<SessionReport> {
    Ok(SessionReport {
        session_key: session_key(&report.session_key)?.to_owned(),
        common_name: validate::reported("common_name", &report.common_name, 320)?,
        // After an agent restart OpenVPN's status list lacks serials: those come empty.
        serial: if report.serial.is_empty() { String::new() } else { serial::parse(&report.serial)? },
        vpn_address: validate::reported("vpn_address", &report.vpn_address, 64)?,
        client_address: validate::reported("client_address", &report.client_address, 64)?,
        connected_at: report.connected_at.as_ref().map_or_else(unix_now, |at| at.seconds),
    })
}

fn session_totals(report: &ClientDisconnected) -> CoreResult<SessionTotals> {
    session_key(&report.session_key)?;
    Ok(SessionTotals {
        bytes_received: report.bytes_received,
        bytes_sent: report.bytes_sent,
        disconnected_at: report.disconnected_at.as_ref().map_or_else(unix_now, |at| at.seconds),
    })
}

impl GatewayAgentApi {
    async fn heartbeat_of(&self, gateway: &GatewayRecord) -> CoreResult<HeartbeatResponse> {
        agents::heartbeat(&self.0, &gateway.id).await?;
        Ok(HeartbeatResponse { config_version: config_version(gateway) })
    }

    /// Why a just-reported session must end at once, if it must: its certificate no
    /// longer stands (the same rule as the verdict; a revocation or disable may have
    /// raced with the connection).
    async fn kill_reason(&self, session: &SessionReport) -> CoreResult<Option<String>> {
        if session.serial.is_empty() {
            return Ok(None);
        }
        Ok(policy::certificate_standing(&self.0.store, &session.serial).await?.err())
    }

    async fn verify_for(&self, gateway_id: &str, request: &VerifyRequest) -> CoreResult<VerifyResponse> {
        policy::verify(&self.0.store, &self.0.geo_fence, &self.0.verdict_inputs, gateway_id, request).await
    }
}

/// Aborts a stream's tasks and forgets it in the hub when the response stream is dropped.
struct StreamGuard {
    context: Arc<CoreContext>,
    gateway_id: String,
    connection: u64,
    tasks: Vec<AbortHandle>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.context.hub.detach(&self.gateway_id, self.connection);
        let (context, gateway_id) = (self.context.clone(), self.gateway_id.clone());
        tokio::spawn(async move {
            // A newer stream of the same gateway on this node: it stays held, and connected.
            if context.hub.holds(&gateway_id) {
                return;
            }
            if let Err(error) = agents::stream_closed(&context, &gateway_id).await {
                tracing::debug!(%error, "cannot record that the stream ended");
            }
        });
    }
}

/// Sends the gateway a fresh snapshot each time its rules change (coalesced, see
/// [`push_coalesced`]); ends when the gateway is deleted.
async fn push_rules(
    context: Arc<CoreContext>,
    gateway_id: String,
    changed: Arc<Notify>,
    sender: mpsc::Sender<CoreMessage>,
) {
    push_coalesced(changed, sender, || async {
        let snapshot = context.snapshots.snapshot(&context.store, &gateway_id).await?;
        Ok(snapshot.map(|snapshot| message(0, CoreBody::RuleSnapshot(snapshot))))
    })
    .await;
}

/// Handles what the agent sends until it hangs up or a newer stream replaces this one.
async fn read_agent(
    api: GatewayAgentApi,
    gateway_id: String,
    role: GatewayRole,
    config_version: u64,
    mut inbound: Streaming<AgentMessage>,
    outbound: mpsc::UnboundedSender<Outbound>,
    replaced: Arc<Notify>,
) {
    loop {
        let next = tokio::select! {
            () = replaced.notified() => {
                tracing::info!(gateway = %gateway_id, "stream replaced by a newer one");
                return;
            }
            next = inbound.message() => next,
        };
        let AgentMessage { request_id, body } = match next {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(status) => {
                tracing::debug!(gateway = %gateway_id, %status, "agent stream ended");
                return;
            }
        };
        let store = &api.0.store;
        let outcome = match body {
            Some(AgentBody::Heartbeat(heartbeat)) => {
                api.0.hub.heartbeat(&gateway_id);
                let _ = outbound
                    .send(Ok(message(request_id, CoreBody::HeartbeatAck(HeartbeatResponse { config_version }))));
                record_session_bytes(store, &gateway_id, &heartbeat.session_bytes).await
            }
            Some(AgentBody::Verify(verify)) => {
                // Verdicts run concurrently so a slow one holds up nothing else.
                let (api, gateway_id, outbound) = (api.clone(), gateway_id.clone(), outbound.clone());
                tokio::spawn(async move {
                    let verdict = api.verify_for(&gateway_id, &verify).await.unwrap_or_else(|error| {
                        tracing::error!(gateway = %gateway_id, %error, "verify failed; denying");
                        VerifyResponse {
                            allowed: false,
                            reason: "the control plane could not decide".into(),
                            ..Default::default()
                        }
                    });
                    let _ = outbound.send(Ok(message(request_id, CoreBody::VerifyResult(verdict))));
                });
                Ok(())
            }
            Some(AgentBody::ClientConnected(report)) => match session_report(&report) {
                Ok(session) => match agents::record_connected(&api.0, &gateway_id, role, &session).await {
                    Ok(()) => {
                        let _ = outbound.send(Ok(message(request_id, CoreBody::ReportAck(ReportResponse {}))));
                        // A revocation or disable that raced with this connection still ends it.
                        match api.kill_reason(&session).await {
                            Ok(Some(reason)) => {
                                let kill =
                                    KillSession { common_name: session.common_name, serial: session.serial, reason };
                                let _ = outbound.send(Ok(message(0, CoreBody::KillSession(kill))));
                                Ok(())
                            }
                            Ok(None) => Ok(()),
                            Err(error) => Err(error),
                        }
                    }
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            },
            Some(AgentBody::ClientDisconnected(report)) => match session_totals(&report) {
                Ok(totals) => match agents::record_disconnected(
                    &api.0,
                    &gateway_id,
                    role,
                    (&report.session_key, &report.common_name),
                    totals,
                )
                .await
                {
                    Ok(()) => {
                        let _ = outbound.send(Ok(message(request_id, CoreBody::ReportAck(ReportResponse {}))));
                        Ok(())
                    }
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            },
            Some(AgentBody::RulesApplied(applied)) => {
                api.0.hub.rules_applied(&gateway_id, applied.version);
                Ok(())
            }
            Some(AgentBody::Hello(_)) | None => {
                Err(CoreError::InvalidArgument("unexpected message on an open stream".into()))
            }
        };
        if let Err(error) = outcome {
            tracing::warn!(gateway = %gateway_id, request_id, %error, "agent message not handled");
        }
    }
}

/// Keeps the byte counts a heartbeat carries (for the sessions the agent knows).
async fn record_session_bytes(
    store: &crate::store::Store,
    gateway_id: &str,
    reported: &[SessionBytes],
) -> CoreResult<()> {
    let counts = reported
        .iter()
        .map(|bytes| {
            let key = validate::reported("session_key", &bytes.session_key, 128)?;
            Ok((key, bytes.bytes_received, bytes.bytes_sent))
        })
        .collect::<CoreResult<Vec<_>>>()?;
    store.record_session_bytes(gateway_id, &counts).await
}

#[tonic::async_trait]
impl GatewayAgentService for GatewayAgentApi {
    type OpenStreamStream = CoreMessageStream;

    async fn open_stream(&self, request: Request<Streaming<AgentMessage>>) -> GrpcResult<CoreMessageStream> {
        let context = self.0.clone();
        let (gateway, token_selector) = context.auth.authenticate_gateway_token(&request).await?;
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(AgentMessage { body: Some(AgentBody::Hello(hello)), .. }))) => hello,
            Ok(Err(status)) => return Err(status),
            _ => return Err(CoreError::InvalidArgument("the first message on the stream must be hello".into()).into()),
        };
        let live = hello.live_sessions.iter().map(session_report).collect::<CoreResult<Vec<_>>>()?;
        agents::stream_opened(&context, &gateway.id, gateway.role, &live).await?;
        let link = context.hub.attach(&gateway.id, &token_selector);
        // From here on, whatever happens, the hub forgets this stream when it ends.
        let mut guard = StreamGuard {
            context: context.clone(),
            gateway_id: gateway.id.clone(),
            connection: link.connection,
            tasks: vec![],
        };
        tracing::info!(gateway = %gateway.id, agent = %hello.agent_version, live = live.len(), "agent connected");

        // Welcome and the first snapshot go first, in this order.
        let welcome = Welcome {
            gateway_id: gateway.id.clone(),
            heartbeat_interval_seconds: u32::try_from(context.settings.heartbeat_interval_seconds).unwrap_or(30),
            config_version: config_version(&gateway),
        };
        let _ = link.outbound.send(Ok(message(0, CoreBody::Welcome(welcome))));
        let snapshot = policy::snapshot(&context.store, &gateway.id).await?;
        let _ = link.outbound.send(Ok(message(0, CoreBody::RuleSnapshot(snapshot))));
        // What the agent may have missed while it held no stream (between nodes, say):
        // the current CRL, and kills for the live sessions whose certificates no longer
        // stand.
        let crl = current_crl(&context).await?;
        let update = CrlUpdate { pem: crl.signed.pem, number: crl.number };
        let _ = link.outbound.send(Ok(message(0, CoreBody::CrlUpdate(update))));
        for session in &live {
            if let Some(reason) = self.kill_reason(session).await? {
                let kill =
                    KillSession { common_name: session.common_name.clone(), serial: session.serial.clone(), reason };
                let _ = link.outbound.send(Ok(message(0, CoreBody::KillSession(kill))));
            }
        }

        let (snapshot_sender, snapshot_receiver) = mpsc::channel(1);
        let pusher =
            tokio::spawn(push_rules(context.clone(), gateway.id.clone(), link.rules_changed.clone(), snapshot_sender));
        let reader = tokio::spawn(read_agent(
            self.clone(),
            gateway.id.clone(),
            gateway.role,
            config_version(&gateway),
            inbound,
            link.outbound.clone(),
            link.replaced,
        ));
        guard.tasks = vec![pusher.abort_handle(), reader.abort_handle()];
        // The reader ending (hang-up or replacement) ends the whole stream.
        let reader_done = futures::stream::once(async move {
            let _ = reader.await;
        });
        // An `Err` in the queue (deletion, rotation, shutdown) ends the stream with it.
        let messages = UnboundedReceiverStream::new(link.outbound_receiver)
            .merge(ReceiverStream::new(snapshot_receiver).map(Ok))
            .map(Some)
            .merge(reader_done.map(|()| None))
            .map_while(|item| item)
            .map(move |item| {
                let _ = &guard;
                item
            });
        Ok(Response::new(Box::pin(messages)))
    }

    async fn provision(&self, request: Request<ProvisionRequest>) -> GrpcResult<ProvisionResponse> {
        respond(
            async {
                let context = &self.0;
                let gateway = context.auth.authenticate_gateway(&request).await?;
                let issued = context.authority.issue(
                    &CertificatePurpose::Server { hostname: gateway.hostname.clone() },
                    context.settings.server_certificate_ttl_seconds,
                )?;
                context
                    .store
                    .record_certificate(&CertificateRecord {
                        serial: issued.serial.clone(),
                        kind: crate::domain::CertificateKind::Server,
                        subject: gateway.hostname.clone(),
                        user_id: None,
                        gateway_id: Some(gateway.id.clone()),
                        issued_at: unix_now(),
                        expires_at: issued.not_after,
                        revoked_at: None,
                        revocation_reason: None,
                    })
                    .await?;
                let tls_crypt_key = gateway_tls_crypt_key(&context.store, &context.sealer, &gateway.id).await?;
                let crl = current_crl(context).await?;
                tracing::info!(gateway = %gateway.id, serial = %issued.serial, "provisioned gateway");
                Ok(ProvisionResponse {
                    config_version: config_version(&gateway),
                    gateway_id: gateway.id,
                    ca_certificate_pem: context.authority.certificate_pem().to_owned(),
                    server_certificate_pem: issued.certificate_pem,
                    server_private_key_pem: issued.private_key_pem,
                    tls_crypt_key,
                    vpn_subnet: gateway.vpn_subnet,
                    port: u32::from(gateway.port),
                    protocol: gateway.protocol.as_str().into(),
                    crl_pem: crl.signed.pem,
                    role: gateway.role.as_str().into(),
                })
            }
            .await,
        )
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> GrpcResult<HeartbeatResponse> {
        respond(
            async {
                let gateway = self.0.auth.authenticate_gateway(&request).await?;
                self.0.limits.heartbeat.check(&gateway.id)?;
                record_session_bytes(&self.0.store, &gateway.id, &request.get_ref().session_bytes).await?;
                self.heartbeat_of(&gateway).await
            }
            .await,
        )
    }

    async fn verify(&self, request: Request<VerifyRequest>) -> GrpcResult<VerifyResponse> {
        respond(
            async {
                let gateway = self.0.auth.authenticate_gateway(&request).await?;
                self.verify_for(&gateway.id, request.get_ref()).await
            }
            .await,
        )
    }

    async fn report_connect(&self, request: Request<ClientConnected>) -> GrpcResult<ReportResponse> {
        respond(
            async {
                let gateway = self.0.auth.authenticate_gateway(&request).await?;
                let session = session_report(request.get_ref())?;
                agents::record_connected(&self.0, &gateway.id, gateway.role, &session).await?;
                // A revocation or disable that raced with this connection still ends it:
                // the refusal makes a client-connect hook fail (so OpenVPN drops the
                // client), and a stream the gateway may hold hears the kill.
                if let Some(reason) = self.kill_reason(&session).await? {
                    let open = OpenSession {
                        gateway_id: gateway.id.clone(),
                        common_name: session.common_name.clone(),
                        serial: session.serial.clone(),
                    };
                    agents::cut(&self.0, &[open], &reason).await?;
                    // OpenVPN runs no client-disconnect after a refused client-connect.
                    let ended = SessionTotals { disconnected_at: unix_now(), ..Default::default() };
                    let key = (session.session_key.as_str(), session.common_name.as_str());
                    agents::record_disconnected(&self.0, &gateway.id, gateway.role, key, ended).await?;
                    return Err(CoreError::Forbidden(reason));
                }
                Ok(ReportResponse {})
            }
            .await,
        )
    }

    async fn report_disconnect(&self, request: Request<ClientDisconnected>) -> GrpcResult<ReportResponse> {
        respond(
            async {
                let gateway = self.0.auth.authenticate_gateway(&request).await?;
                let report = request.get_ref();
                let key = (report.session_key.as_str(), report.common_name.as_str());
                agents::record_disconnected(&self.0, &gateway.id, gateway.role, key, session_totals(report)?).await?;
                Ok(ReportResponse {})
            }
            .await,
        )
    }

    async fn get_client_rules(&self, request: Request<GetClientRulesRequest>) -> GrpcResult<ClientRules> {
        respond(
            async {
                let gateway = self.0.auth.authenticate_gateway(&request).await?;
                let common_name = &request.get_ref().common_name;
                policy::snapshot(&self.0.store, &gateway.id)
                    .await?
                    .clients
                    .into_iter()
                    .find(|client| &client.common_name == common_name)
                    .ok_or_else(|| CoreError::NotFound(format!("`{common_name}` has no rules at this gateway")))
            }
            .await,
        )
    }

    async fn get_all_rules(&self, request: Request<GetAllRulesRequest>) -> GrpcResult<RuleSnapshot> {
        respond(
            async {
                let gateway = self.0.auth.authenticate_gateway(&request).await?;
                policy::snapshot(&self.0.store, &gateway.id).await
            }
            .await,
        )
    }
}
