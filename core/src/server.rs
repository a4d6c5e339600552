//! Assembles the gRPC server (services, reflection, health, grpc-web) and runs it
//! beside the in-process REST facade until a shutdown signal.

use crate::agent_hub::AgentHub;
use crate::auth::{Authenticator, ClientAddressTrust};
use crate::bootstrap::{AdminBootstrap, ensure_admin};
use crate::config::ServeArgs;
use crate::context::{CoreContext, Settings};
use crate::error::CoreResult;
use crate::metrics::{Gauges, Metrics, MetricsLayer};
use crate::pki::lifecycle::load_or_create_authority;
use crate::sealing::SecretBox;
use crate::services::{
    AdminAccessRuleApi, AdminActivityApi, AdminAuthProviderApi, AdminConfigApi, AdminGatewayApi, AdminGeoFenceApi,
    AdminMeshApi, AdminNetworkApi, AdminPkiApi, AdminUserApi, AdminVpnSessionApi, ApiKeyApi, AuthApi, ConfigApi,
    GatewayAgentApi, GatewayApi, MeshApi, MeshSpokeAgentApi, PkiApi, VpnSessionApi,
};
use crate::store::Store;
use gatekey::v1::{
    admin_access_rule_service_server::AdminAccessRuleServiceServer,
    admin_activity_service_server::AdminActivityServiceServer,
    admin_auth_provider_service_server::AdminAuthProviderServiceServer,
    admin_config_service_server::AdminConfigServiceServer, admin_gateway_service_server::AdminGatewayServiceServer,
    admin_geo_fence_service_server::AdminGeoFenceServiceServer, admin_mesh_service_server::AdminMeshServiceServer,
    admin_network_service_server::AdminNetworkServiceServer, admin_pki_service_server::AdminPkiServiceServer,
    admin_user_service_server::AdminUserServiceServer, admin_vpn_session_service_server::AdminVpnSessionServiceServer,
    api_key_service_server::ApiKeyServiceServer, auth_service_server::AuthServiceServer,
    config_service_server::ConfigServiceServer, gateway_agent_service_server::GatewayAgentServiceServer,
    gateway_service_server::GatewayServiceServer, mesh_service_server::MeshServiceServer,
    mesh_spoke_agent_service_server::MeshSpokeAgentServiceServer, pki_service_server::PkiServiceServer,
    vpn_session_service_server::VpnSessionServiceServer,
};
use std::error::Error;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};

/// Every GateKey gRPC service plus reflection (v1 and v1alpha) and health.
pub async fn grpc_routes(context: Arc<CoreContext>) -> Result<Routes, Box<dyn Error + Send + Sync>> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(gatekey::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<AuthServiceServer<AuthApi>>().await;
    Ok(Routes::new(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(AuthServiceServer::new(AuthApi(context.clone())))
        .add_service(ApiKeyServiceServer::new(ApiKeyApi(context.clone())))
        .add_service(GatewayServiceServer::new(GatewayApi(context.clone())))
        .add_service(AdminGatewayServiceServer::new(AdminGatewayApi(context.clone())))
        .add_service(AdminNetworkServiceServer::new(AdminNetworkApi(context.clone())))
        .add_service(AdminUserServiceServer::new(AdminUserApi(context.clone())))
        .add_service(ConfigServiceServer::new(ConfigApi(context.clone())))
        .add_service(AdminConfigServiceServer::new(AdminConfigApi(context.clone())))
        .add_service(PkiServiceServer::new(PkiApi(context.clone())))
        .add_service(AdminPkiServiceServer::new(AdminPkiApi(context.clone())))
        .add_service(GatewayAgentServiceServer::new(GatewayAgentApi(context.clone())))
        .add_service(AdminAccessRuleServiceServer::new(AdminAccessRuleApi(context.clone())))
        .add_service(MeshServiceServer::new(MeshApi(context.clone())))
        .add_service(AdminMeshServiceServer::new(AdminMeshApi(context.clone())))
        .add_service(MeshSpokeAgentServiceServer::new(MeshSpokeAgentApi(context.clone())))
        .add_service(AdminGeoFenceServiceServer::new(AdminGeoFenceApi(context.clone())))
        .add_service(AdminAuthProviderServiceServer::new(AdminAuthProviderApi(context.clone())))
        .add_service(VpnSessionServiceServer::new(VpnSessionApi(context.clone())))
        .add_service(AdminVpnSessionServiceServer::new(AdminVpnSessionApi(context.clone())))
        .add_service(AdminActivityServiceServer::new(AdminActivityApi(context))))
}

/// Runs `gatekey-core serve` until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), Box<dyn Error + Send + Sync>> {
    private_directory(&args.data_dir)
        .map_err(|e| format!("cannot prepare data directory {}: {e}", args.data_dir.display()))?;
    let store = Store::open(&args.database_url()).await?;
    tracing::info!(backend = store.backend_name(), "storage ready");
    let admin_password = std::env::var("GATEKEY_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
    match ensure_admin(&store, admin_password.as_deref()).await? {
        AdminBootstrap::CreatedWithRandomPassword(password) => {
            // Shown once, on stdout and never in logs; the operator changes it after signing in.
            println!("bootstrap admin created: username `admin`, password `{password}` (shown only once)");
        }
        AdminBootstrap::CreatedWithGivenPassword => {
            tracing::info!("bootstrap admin created from GATEKEY_ADMIN_PASSWORD")
        }
        AdminBootstrap::AlreadyPresent => {}
    }
    let secret_key = std::env::var("GATEKEY_SECRET_KEY").ok().filter(|key| !key.is_empty());
    let sealer = SecretBox::load(secret_key.as_deref(), &args.secret_key_file())?;
    let authority = load_or_create_authority(&store, &sealer, args.ca_validity_days).await?;

    // Listeners first: the public URL defaults to the HTTP listener's real address.
    let grpc_listener = TcpListener::bind(args.grpc_listen)
        .await
        .map_err(|e| format!("cannot listen for gRPC on {}: {e}", args.grpc_listen))?;
    let grpc_address = grpc_listener.local_addr()?;
    let http_listener = match args.no_http {
        true => None,
        false => Some(
            TcpListener::bind(args.http_listen)
                .await
                .map_err(|e| format!("cannot listen for HTTP on {}: {e}", args.http_listen))?,
        ),
    };
    let http_address = http_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", reachable(http_address.unwrap_or(grpc_address))));

    // The in-process facade proves itself with a key made now; standalone facades with
    // the configured one.
    let internal_facade_key = crate::secrets::mint_token("gkfacade_").secret;
    let external_facade_key = gatekey::connect::facade_key(args.facade_key_file.as_deref())?;
    let fleet = Arc::new(crate::fleet::FleetRelay::new(reachable(grpc_address).to_string()));
    let metrics = Arc::new(Metrics::for_node(fleet.node_id()));
    let context = Arc::new(CoreContext {
        auth: Authenticator::new(store.clone(), args.session_ttl_seconds),
        settings: Settings {
            heartbeat_interval_seconds: args.heartbeat_interval_seconds,
            client_certificate_ttl_seconds: args.client_cert_ttl_seconds,
            spoke_certificate_ttl_seconds: args.spoke_cert_ttl_seconds,
            server_certificate_ttl_seconds: args.server_cert_ttl_seconds,
            config_download_window_seconds: args.config_download_window_seconds,
            public_routes: gatekey_rest::public_routes::PublicRoutes::new(&public_url),
            client_address_trust: ClientAddressTrust {
                facade_key_verifiers: [Some(&internal_facade_key), external_facade_key.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(|key| crate::secrets::token_verifier(key))
                    .collect(),
                grpc_proxies: args.grpc_trusted_proxies.clone(),
            },
        },
        store: store.clone(),
        authority,
        sealer,
        hub: Arc::new(AgentHub::new(metrics.clone())),
        geo_fence: crate::geofence::GeoFence::default(),
        limits: args.rate_limits(),
        metrics: metrics.clone(),
        events: Arc::default(),
        fleet,
        snapshots: crate::snapshot_batch::SnapshotBatcher::default(),
        verdict_inputs: crate::verdict_inputs::VerdictInputsCache::default(),
        config_commits: crate::domain::configs::ConfigCommits::default(),
    });
    if let Some(path) = &args.providers_file {
        crate::providers_file::apply(&context, path).await?;
    }

    let (stop_sender, stop_receiver) = watch::channel(false);
    let stopped = move || {
        let mut receiver = stop_receiver.clone();
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    };

    // Prometheus scrapes `/metrics` on the HTTP listener, beside the REST facade.
    let metrics_routes = axum::Router::new().route(
        "/metrics",
        axum::routing::get({
            let context = context.clone();
            move || render_metrics(context.clone())
        }),
    );
    crate::pki::lifecycle::refresh_crl_if_due(&context).await?;
    // Before any stream can attach: see FleetRelay::start_after_outbox.
    context.fleet.start_after_outbox(&store).await?;
    let routes = grpc_routes(context.clone()).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let mut public_grpc = Server::builder().accept_http1(true);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let read =
            |path: &std::path::PathBuf| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
        let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
        public_grpc = public_grpc
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| format!("TLS configuration: {e}"))?;
    }
    // The in-process facade calls the same services over in-memory pipes.
    let facade_channel =
        http_listener.is_some().then(|| in_process_channel(routes.clone(), metrics.clone(), stopped(), &mut tasks));
    let grpc_server = public_grpc
        .layer(request_trace_layer())
        .layer(MetricsLayer(metrics.clone()))
        .layer(tonic_web::GrpcWebLayer::new())
        .add_routes(routes)
        .serve_with_incoming_shutdown(no_delay(grpc_listener), stopped());
    tasks.spawn(async move { grpc_server.await.map_err(|e| format!("gRPC server failed: {e}")) });
    tasks.spawn(maintain(context.clone(), stopped()));
    tasks.spawn(crate::fleet::FleetRelay::run(context.clone(), stopped()));

    if let (Some(listener), Some(channel)) = (http_listener, facade_channel) {
        // Only a configured public URL pins the origin; otherwise the request's Host does.
        let options = gatekey_rest::FacadeOptions {
            trusted_proxies: args.trusted_proxies.clone(),
            facade_key: Some(internal_facade_key.clone()),
            ..gatekey_rest::FacadeOptions::new(!args.plain_http_cookies, args.public_url.as_deref())
        };
        let app = gatekey_rest::router(channel, options).merge(metrics_routes);
        let shutdown = stopped();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        tasks.spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|e| format!("HTTP server failed: {e}"))
        });
    }
    let http_text = http_address.map_or_else(|| "off".to_owned(), |a| a.to_string());
    let node = context.fleet.node_id();
    tracing::info!(grpc = %grpc_address, http = %http_text, node, "gatekey-core listening");
    // A machine-readable line for scripts and the test kit.
    println!("gatekey-core ready grpc={grpc_address} http={http_text} node={node}");

    let failure = tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            None
        }
        Some(finished) = tasks.join_next() => match finished {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error),
            Err(error) => Some(error.to_string()),
        },
    };
    // Agents hear why their stream ends and reconnect (elsewhere) at once; the servers
    // stop accepting and finish what is in flight; upkeep stops; buffered heartbeats
    // are written. All of it within a bound.
    context.hub.close_all("the core is shutting down");
    context.events.close();
    let _ = stop_sender.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(finished) = tasks.join_next().await {
            if let Ok(Err(error)) = finished {
                tracing::error!(%error, "server stopped with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "requests still running at shutdown were cut");
        tasks.abort_all();
    }
    if let Err(error) = context.hub.flush_reports(&store).await {
        tracing::warn!(%error, "writing the last heartbeats and applied rule versions failed");
    }
    if let Err(error) = context.fleet.leave(&store).await {
        tracing::warn!(%error, "removing this node's row failed");
    }
    store.close().await;
    tracing::info!("stopped");
    match failure {
        None => Ok(()),
        Some(error) => Err(error.into()),
    }
}

/// How many bytes an in-process pipe buffers each way.
const IN_PROCESS_PIPE_BYTES: usize = 1 << 20;

/// A channel to `routes` inside this process: each connection is a pair of in-memory
/// pipes served by a gRPC server of their own (with the request tracing and metrics of
/// the public one), so the in-process facade's calls cost no socket. The server stops
/// with `stop`.
fn in_process_channel(
    routes: Routes,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
) -> tonic::transport::Channel {
    let (connections, incoming) = tokio::sync::mpsc::unbounded_channel::<tokio::io::DuplexStream>();
    let incoming =
        tokio_stream::StreamExt::map(tokio_stream::wrappers::UnboundedReceiverStream::new(incoming), |pipe| {
            Ok::<_, std::io::Error>(pipe)
        });
    let server = Server::builder()
        .layer(request_trace_layer())
        .layer(MetricsLayer(metrics))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, stop);
    tasks.spawn(async move { server.await.map_err(|e| format!("in-process gRPC server failed: {e}")) });
    Endpoint::from_static("http://gatekey-core.in-process").connect_with_connector_lazy(tower::service_fn(
        move |_: http::Uri| {
            let connections = connections.clone();
            async move {
                let (client, server) = tokio::io::duplex(IN_PROCESS_PIPE_BYTES);
                connections.send(server).map_err(|_| std::io::Error::other("the in-process gRPC server stopped"))?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(client))
            }
        },
    ))
}

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// A listener's connections with Nagle's algorithm off: without it, small gRPC frames
/// wait for the peer's delayed ACK (about 40 ms a call).
fn no_delay(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Background upkeep until the server stops: every few seconds, writes the batched
/// stream heartbeats and applied rule versions; every minute, drops expired sessions,
/// login flows and the sealed content of configs whose download window has passed, and
/// forgets rate-limit keys whose allowance is whole again; every hour, prunes the sign-in record and the
/// fleet's outbox and re-signs the CRL when it is a day old. Also keeps this node's
/// heartbeat row. Ends when `stop` resolves.
async fn maintain(context: Arc<CoreContext>, stop: impl std::future::Future<Output = ()>) -> Result<(), String> {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(HEARTBEAT_FLUSH_SECONDS));
    tokio::pin!(stop);
    for tick in 0u64.. {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut stop => return Ok(()),
        }
        if let Err(error) = context.hub.flush_reports(&context.store).await {
            tracing::warn!(%error, "writing heartbeats and applied rule versions failed");
        }
        if let Err(error) = context.fleet.heartbeat(&context.store, context.hub.connected()).await {
            tracing::warn!(%error, "writing this node's heartbeat failed");
        }
        if tick % (60 / HEARTBEAT_FLUSH_SECONDS) == 0 {
            if let Err(error) = context.store.purge_expired_sessions().await {
                tracing::warn!(%error, "purging expired sessions failed");
            }
            if let Err(error) = context.store.purge_stale_configs().await {
                tracing::warn!(%error, "purging stale configs failed");
            }
            if let Err(error) = context.store.purge_expired_sso_state().await {
                tracing::warn!(%error, "purging login flows failed");
            }
            context.limits.prune();
            if let Err(error) = context.store.prune_shared_allowances().await {
                tracing::warn!(%error, "pruning the shared rate limits failed");
            }
        }
        if tick % (3600 / HEARTBEAT_FLUSH_SECONDS) == 0 {
            let older_than = crate::store::unix_now() - LOGIN_RECORD_MAX_AGE_SECONDS;
            match context.store.prune_login_events(older_than, LOGIN_RECORD_MAX_ROWS).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned the sign-in record"),
                Err(error) => tracing::warn!(%error, "pruning the sign-in record failed"),
            }
            if let Err(error) = context.fleet.prune(&context.store).await {
                tracing::warn!(%error, "pruning the fleet's outbox failed");
            }
            if let Err(error) = crate::pki::lifecycle::refresh_crl_if_due(&context).await {
                tracing::warn!(%error, "refreshing the CRL failed");
            }
        }
    }
    Ok(())
}

/// Seconds between writes of batched heartbeats.
const HEARTBEAT_FLUSH_SECONDS: u64 = 5;
/// How long sign-in attempts are kept on record (90 days).
const LOGIN_RECORD_MAX_AGE_SECONDS: i64 = 90 * 24 * 3600;
/// How many sign-in attempts are kept on record at most (the newest).
const LOGIN_RECORD_MAX_ROWS: u64 = 100_000;

/// The metrics text, with gauges read now.
async fn render_metrics(context: Arc<CoreContext>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let counted = |count: CoreResult<u64>| {
        count.unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot count for metrics");
            0
        })
    };
    let gauges = Gauges {
        connected_gateways: context.hub.connected(),
        live_sessions: counted(context.store.count_all_open_sessions().await),
        connected_spokes: counted(context.store.count_connected_spokes().await),
    };
    ([(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], context.metrics.render(gauges)).into_response()
}

/// A span per gRPC request carrying its method and the request id the facade (or
/// another client) sent in `x-request-id`, so one id follows a request through both.
/// Only failures of the core (internal, unknown, data loss, unavailable, deadline) are
/// logged as errors; refusals of a request (bad input, no credential, not allowed, not
/// found…) are the caller's business and stay at debug level.
fn request_trace_layer() -> RequestTraceLayer {
    fn span(request: &http::Request<tonic::body::Body>) -> tracing::Span {
        let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
        tracing::info_span!("grpc", method = %request.uri().path(), request_id = %request_id)
    }
    use tower_http::classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier};
    let refusals = [
        GrpcCode::Cancelled,
        GrpcCode::InvalidArgument,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::OutOfRange,
        GrpcCode::Unauthenticated,
    ];
    let classifier = refusals.into_iter().fold(GrpcErrorsAsFailures::new(), GrpcErrorsAsFailures::with_success);
    tower_http::trace::TraceLayer::new(SharedClassifier::new(classifier)).make_span_with(span as MakeSpan)
}

/// How a gRPC request's span is made.
type MakeSpan = fn(&http::Request<tonic::body::Body>) -> tracing::Span;
/// The tracing layer of the gRPC server.
type RequestTraceLayer = tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::GrpcErrorsAsFailures>,
    MakeSpan,
>;

/// Creates the data directory readable by this user only (0700), or narrows an existing
/// one to that: it holds the database, the key file and the CA's sealed key.
fn private_directory(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        tracing::info!(path = %path.display(), from = format!("{mode:o}"), "narrowed the data directory to 0700");
    }
    Ok(())
}

/// An address this process can dial to reach a listener bound to `address`.
fn reachable(address: SocketAddr) -> SocketAddr {
    match address {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, v4.port())),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, v6.port())),
        other => other,
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! { _ = interrupt => {}, _ = terminate.recv() => {} }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
