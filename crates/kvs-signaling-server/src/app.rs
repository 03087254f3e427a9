//! The one listener: routing of the control plane, the HTTPS data plane, the WebSocket connect,
//! health and metrics.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use kvs_ice_rest::{AuthError, HeaderSignedRequest, TurnConfig, TurnSecret, Verifier};
use kvs_signaling_core::{Hub, Registry, SplitMix64};
use kvs_signaling_proto::{ErrorType, Operation};
use kvs_transport_tokio::{ShardHandle, Telemetry};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accept::{Connections, Slot, accept_loop};
use crate::config::{AuthMode, ServerConfig};
use crate::http::{HttpResponse, Reply, rest_error, text};

/// The shared state of every request.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) config: ServerConfig,
    /// The control plane's channels: here, or in Redis in cluster mode.
    pub(crate) channels: crate::channels::Channels,
    /// One hub per shard; a channel lives on the shard its ARN hashes to.
    pub(crate) shards: Shards,
    pub(crate) verifier: Verifier,
    /// `scheme://host[:port]` of this server as clients reach it.
    pub(crate) public_url: String,
    /// Requests refused for their signature or their key's limits, REST and connect.
    pub(crate) auth_failures: AtomicU64,
    /// REST calls answered with an error.
    pub(crate) rest_errors: AtomicU64,
    /// The ICE servers GetIceServerConfig hands out; replaced when the TURN secrets rotate.
    pub(crate) ice: Arc<RwLock<Arc<TurnConfig>>>,
    /// The open connections and their cap.
    pub(crate) connections: Arc<Connections>,
    /// Accepts that failed for want of descriptors or memory.
    pub(crate) accept_errors: AtomicU64,
    /// Connections refused at the cap.
    pub(crate) connections_refused: AtomicU64,
    /// The relay latency and the bytes in and out, over every shard, and what the hubs do
    /// for the console's event stream.
    pub(crate) telemetry: Arc<Telemetry>,
    /// The live console, when it is on.
    pub(crate) console: Option<crate::console::Console>,
    /// In cluster mode, the routing of connects and calls to each channel's owner node.
    pub(crate) router: Option<Arc<crate::cluster::Router>>,
    /// Turns true when the server drains: long-lived answers (the console's event streams)
    /// end then.
    pub(crate) stopping: watch::Receiver<bool>,
}

impl App {
    /// The ICE configuration in force.
    pub(crate) fn ice(&self) -> Arc<TurnConfig> {
        Arc::clone(&self.ice.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl App {
    /// The limits of the key `access_key_id`, when it has any.
    pub(crate) fn caller(&self, access_key_id: String) -> Option<crate::access::Caller<'_>> {
        let scope = self.config.scopes.get(&access_key_id)?;
        Some(crate::access::Caller {
            access_key_id,
            scope,
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    public_url: String,
    console_url: Option<String>,
    shutdown: watch::Sender<bool>,
    accept: JoinHandle<()>,
    shards: Shards,
    shard_tasks: Vec<JoinHandle<()>>,
    ice: Arc<RwLock<Arc<TurnConfig>>>,
    /// The state every connection task holds, to know when the last one let go.
    app: std::sync::Weak<App>,
    /// The open connections, to wait for on drain.
    connections: Arc<Connections>,
    /// In cluster mode, the routing: held here, so that it outlives the connections for
    /// [`Server::leave`].
    router: Option<Arc<crate::cluster::Router>>,
}

/// The shards of a server. Channels are independent, so each lives on one shard, chosen by a
/// stable hash of its ARN; no state is shared between shards.
#[derive(Debug, Clone)]
pub(crate) struct Shards(Vec<ShardHandle>);

impl Shards {
    /// The index of the shard of `arn`.
    pub(crate) fn index_of(&self, arn: &kvs_signaling_proto::ChannelArn) -> usize {
        // FNV-1a: stable across runs and platforms.
        let hash = arn
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let len = self.0.len().max(1) as u64;
        usize::try_from(hash % len).unwrap_or(0)
    }

    /// The shard of `arn`.
    pub(crate) fn of(&self, arn: &kvs_signaling_proto::ChannelArn) -> &ShardHandle {
        // `Server::start` makes at least one shard.
        &self.0[self.index_of(arn)]
    }

    /// Every shard.
    pub(crate) fn all(&self) -> &[ShardHandle] {
        &self.0
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The hub's configuration is invalid.
    #[error("hub configuration: {0}")]
    Hub(#[from] kvs_signaling_core::HubConfigError),
    /// The registry's configuration is invalid.
    #[error("registry configuration: {0}")]
    Registry(#[from] kvs_signaling_core::RegistryConfigError),
    /// The saved channels cannot be read or no longer fit the configuration.
    #[error("saved channels: {0}")]
    Restore(String),
    /// The store cannot be opened.
    #[error("channel store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The console's settings cannot be used.
    #[error("{0}")]
    Console(String),
    /// The node cannot join its cluster.
    #[error("{0}")]
    Cluster(#[from] crate::ClusterError),
}

impl Server {
    /// Binds the listener and starts serving on the current tokio runtime.
    pub async fn start(
        #[cfg_attr(
            not(test),
            expect(unused_mut, reason = "tests take the faulty store out")
        )]
        mut config: ServerConfig,
    ) -> Result<Self, StartError> {
        let listener = kvs_transport_tokio::listen(config.listen, config.listen_backlog).map_err(
            |source| StartError::Bind {
                addr: config.listen,
                source,
            },
        )?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let acceptor = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        if config.cluster.is_some() && config.public_url.is_none() {
            // GetSignalingChannelEndpoint must never pin a client to one node: the official C
            // SDK caches the endpoint it gets.
            return Err(StartError::Cluster(crate::ClusterError::Config(
                "--public-url is required in cluster mode: the URL of the load balancer in \
                 front of the nodes, which GetSignalingChannelEndpoint hands out"
                    .to_owned(),
            )));
        }
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local_addr}"));
        if config.auth == AuthMode::DisabledInsecure {
            tracing::warn!(
                "SIGNATURE VERIFICATION IS OFF: anyone who can reach {local_addr} can create, \
                 delete and join channels. Use this only for throwaway local testing."
            );
        }
        let mut shards = Vec::with_capacity(config.shards.max(1));
        let mut shard_tasks = Vec::with_capacity(config.shards.max(1));
        // The held-bytes budget is the server's, shared equally by its hubs.
        let shard_count = config.shards.max(1);
        let hub_config = config
            .hub
            .clone()
            .max_held_bytes((config.hub.max_held_bytes / shard_count).max(1));
        let telemetry = Arc::new(Telemetry::default());
        for _ in 0..shard_count {
            let hub = Hub::new(hub_config.clone())?;
            let (shard, task) = kvs_transport_tokio::spawn_with_telemetry(
                hub,
                config.shard,
                Arc::clone(&telemetry),
            );
            shards.push(shard);
            shard_tasks.push(task);
        }
        let shards = Shards(shards);
        // The registry's only randomness is channel versions; seed it from the clock at the
        // edge, as the core takes no randomness of its own.
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let registry_config = config.registry.clone().region(config.region.clone());
        let channels = match &config.cluster {
            Some(cluster) => crate::channels::Channels::Cluster(
                crate::cluster::Cluster::join(
                    cluster,
                    registry_config,
                    settings_fingerprint(&config),
                )
                .await?,
            ),
            None => {
                #[cfg(test)]
                let store = match config.faulty_store.take() {
                    Some(faulty) => Arc::new(crate::store::Store::Faulty(faulty)),
                    None => Arc::new(crate::store::Store::open(config.data_dir.as_deref())?),
                };
                #[cfg(not(test))]
                let store = Arc::new(crate::store::Store::open(config.data_dir.as_deref())?);
                let snapshot = store.load()?;
                let restored = snapshot.channels.len();
                let registry = Registry::restore(registry_config, SplitMix64::new(seed), snapshot)
                    .map_err(|err| StartError::Restore(err.to_string()))?;
                if let Some(path) = store.path() {
                    tracing::info!(channels = restored, path = %path.display(), "channels restored");
                }
                crate::channels::Channels::Local(Box::new(crate::channels::Local::new(
                    registry, store,
                )))
            }
        };
        let verifier = Verifier::new(config.region.clone(), config.credentials.clone());
        let ice = Arc::new(RwLock::new(Arc::new(config.ice.clone())));
        let connections = Arc::new(Connections::new(config.max_connections));
        let console = crate::console::Console::new(&config.console).map_err(StartError::Console)?;
        let console_url = console
            .as_ref()
            .map(|console| format!("{public_url}/console/?token={}", console.token()));
        let (shutdown, stop) = watch::channel(false);
        let router = match &channels {
            crate::channels::Channels::Cluster(cluster) => Some(
                crate::cluster::Router::start(
                    Arc::clone(cluster),
                    shards.clone(),
                    config.shard,
                    Arc::clone(&telemetry),
                )
                .await,
            ),
            crate::channels::Channels::Local(_) => None,
        };
        let app = Arc::new(App {
            config,
            channels,
            shards: shards.clone(),
            verifier,
            public_url: public_url.clone(),
            auth_failures: AtomicU64::new(0),
            rest_errors: AtomicU64::new(0),
            ice: Arc::clone(&ice),
            connections: Arc::clone(&connections),
            accept_errors: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            telemetry,
            console,
            router: router.clone(),
            stopping: stop.clone(),
        });
        let weak = Arc::downgrade(&app);
        let accept = tokio::spawn(accept_loop(listener, acceptor, app, stop));
        Ok(Self {
            local_addr,
            public_url,
            console_url,
            shutdown,
            accept,
            shards,
            shard_tasks,
            ice,
            app: weak,
            connections,
            router,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients reach the server at.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The live console's URL, with its token (`PUBLIC_URL/console/?token=...`); `None` when
    /// the console is off. Whoever has it can administer every channel.
    pub fn console_url(&self) -> Option<&str> {
        self.console_url.as_deref()
    }

    /// Stops taking connections, and ends the open ones: an HTTP connection after its
    /// request in flight; a WebSocket at once with 1001, or, if its client handles GO_AWAY
    /// ([`crate::IndicationPolicy`]), with GO_AWAY and a close a grace period later.
    /// [`Server::wait_closed`] then waits for the last one.
    ///
    /// In cluster mode, only this node's own clients are ended so: the sockets other nodes
    /// hold for the channels this node owns go on, and the channels are handed to other
    /// nodes by [`Server::leave`], once this node's clients are gone.
    pub async fn drain(&self) {
        let _ = self.shutdown.send(true);
        if let Some(router) = &self.router {
            router.drain_local().await;
            return;
        }
        for shard in self.shards.all() {
            let _ = shard.drain().await;
        }
    }

    /// In cluster mode, after [`Server::drain`] and [`Server::wait_closed`]: hands every
    /// channel this node owns to the other nodes, with its held messages, so that no channel
    /// and no held message is lost when it stops. Nothing to do for a single server.
    pub async fn leave(&self) {
        if let Some(router) = &self.router {
            router.leave().await;
        }
    }

    /// Waits until every connection is closed (its closing handshake done or timed out), or
    /// until `timeout` passes; returns how many are still open.
    pub async fn wait_closed(&self, timeout: Duration) -> usize {
        let _ = tokio::time::timeout(timeout, self.connections.all_closed()).await;
        self.connections.open()
    }

    /// Connections open now, HTTP and WebSocket alike.
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// Replaces the TURN shared secrets (newest first: the first live one signs). When the
    /// signing secret changes, every live connection gets RECONNECT_ICE_SERVER so that its
    /// client fetches credentials signed with the new one; returns whether it changed.
    pub async fn set_turn_secrets(
        &self,
        secrets: Vec<TurnSecret>,
    ) -> Result<bool, kvs_ice_rest::TurnConfigError> {
        let now = SystemTime::now();
        let signing = |config: &TurnConfig| {
            config
                .secrets
                .iter()
                .find(|s| s.retired_at.is_none_or(|at| now < at))
                .map(|s| s.secret.clone())
        };
        let changed = {
            let mut current = self.ice.write().unwrap_or_else(PoisonError::into_inner);
            let next = TurnConfig::new(
                current.turn_uris.clone(),
                current.stun_uris.clone(),
                secrets,
                current.ttl,
            )?;
            let changed = signing(&current) != signing(&next);
            *current = Arc::new(next);
            changed
        };
        if changed {
            tracing::info!(
                "the TURN signing secret changed: RECONNECT_ICE_SERVER to every connection"
            );
            for shard in self.shards.all() {
                let _ = shard.reconnect_ice_servers(None).await;
            }
        }
        Ok(changed)
    }

    /// Stops the listener at once.
    pub fn abort(&self) {
        self.accept.abort();
    }

    /// Stops at once, as a crash would but cleanly: the listener, the hubs and with them every
    /// connection (their sockets are closed). Waits, up to 5 s, until every task has let go of
    /// the store, so that another server can open the same data directory.
    pub async fn stop(self) {
        self.accept.abort();
        let _ = self.accept.await;
        for task in &self.shard_tasks {
            task.abort();
        }
        for task in self.shard_tasks {
            let _ = task.await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.app.strong_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Routes one request. `slot` is the connection's place under the cap, which a WebSocket
/// keeps for as long as its socket is open.
pub(crate) async fn handle(app: Arc<App>, request: Request<Incoming>, slot: Slot) -> Reply {
    // The console is for its own page only: no CORS, its own authentication.
    if crate::console::is_console(request.uri().path()) && !is_upgrade(&request) {
        return crate::console::handle(app, request).await;
    }
    let full = |response: HttpResponse| response.map(http_body_util::Either::Left);
    // A WebSocket connect is authenticated by its signature alone, as the service's is:
    // CORS does not apply to it.
    if is_upgrade(&request) {
        return full(route(app, request, slot).await);
    }
    let decision = match app.config.cors.decide(request.method(), request.headers()) {
        crate::cors::Decision::Answer(answer) => return full(answer),
        decision => decision,
    };
    let mut response = route(Arc::clone(&app), request, slot).await;
    app.config.cors.apply(&mut response, decision);
    full(response)
}

/// A digest of the settings every node of a cluster must share: who may call and what they
/// may do, the TURN secrets and ICE servers, the hub's limits, the region, CORS, the
/// GO_AWAY policy and the cluster's heartbeat and TTL. Nodes publish it; `/health` warns when
/// another node's differs.
fn settings_fingerprint(config: &ServerConfig) -> String {
    // Secrets are redacted in debug output: they go in as themselves, or (TURN's, which
    // stay private) as the credentials they sign for a fixed time and channel.
    let secrets: Vec<(&str, &str)> = config
        .credentials
        .iter()
        .map(|c| (c.access_key_id.as_str(), c.secret_access_key.as_str()))
        .collect();
    let turn = kvs_signaling_proto::ChannelArn::new(
        "arn:aws:kinesisvideo:us-east-1:000000000000:channel/settings/0",
    )
    .ok()
    .and_then(|arn| {
        config.ice.issue(
            std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
            &arn,
        )
    });
    // The cluster's timing, by which nodes judge each other's deaths, when it is not the
    // default: a release that had no such setting gives the same digest with the defaults.
    let defaults = crate::ClusterConfig::new(String::new());
    let cluster = config
        .cluster
        .as_ref()
        .map(|cluster| (cluster.heartbeat_interval, cluster.node_ttl))
        .filter(|timing| *timing != (defaults.heartbeat_interval, defaults.node_ttl))
        .map(|timing| format!("|{timing:?}"))
        .unwrap_or_default();
    let shared = format!(
        "{:?}|{secrets:?}|{turn:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}{cluster}",
        config.region,
        config.credentials,
        config.auth,
        config.scopes,
        config.hub,
        config.registry,
        config.ice,
        config.cors,
        config.indications,
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, shared.as_bytes());
    digest
        .as_ref()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `/health`: `ok`, or, in cluster mode, `503` while this node cannot reach Redis (it then
/// serves only the sockets it holds for channels it owns); in cluster mode, `ok` is followed
/// by a warning when nodes run with other shared settings, and by a note or a warning when
/// nodes read other formats (see `cluster::format`), and by a warning when nodes fell behind
/// their inboxes.
async fn health(app: &App) -> HttpResponse {
    let Some(router) = &app.router else {
        return text(StatusCode::OK, "ok\n".to_owned());
    };
    if let Some(trouble) = router.trouble() {
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("{trouble}\n"));
    }
    let mut body = "ok\n".to_owned();
    let drift = router.drift().await;
    if !drift.is_empty() {
        body.push_str(&format!(
            "warning: nodes {} run with other settings than this node (credentials, TURN, \
             limits, region, CORS, the GO_AWAY policy or the cluster's heartbeat and TTL): \
             clients will see different answers from different nodes\n",
            drift.join(", ")
        ));
    }
    if let Some(formats) = router.formats() {
        body.push_str(&formats);
        body.push('\n');
    }
    if let Some(behind) = router.behind() {
        body.push_str(&behind);
        body.push('\n');
    }
    text(StatusCode::OK, body)
}

/// `/ready`: whether a balancer should send this server new clients: not while it drains,
/// nor, in cluster mode, while it cannot reach Redis.
fn ready(app: &App) -> HttpResponse {
    if *app.stopping.borrow() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".to_owned());
    }
    match app.router.as_ref().and_then(|router| router.trouble()) {
        Some(trouble) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{trouble}\n")),
        None => text(StatusCode::OK, "ok\n".to_owned()),
    }
}

async fn route(app: Arc<App>, request: Request<Incoming>, slot: Slot) -> HttpResponse {
    let path = request.uri().path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/health") => health(&app).await,
        (Method::GET, "/live") => text(StatusCode::OK, "ok\n".to_owned()),
        (Method::GET, "/ready") => ready(&app),
        (Method::GET, "/metrics") => metrics(&app).await,
        (Method::GET, _) if is_upgrade(&request) => {
            crate::connect::connect(app, request, slot).await
        }
        (Method::POST, path) => match Operation::from_path(path) {
            Some(operation) => rest(app, operation, request).await,
            None => rest_error(
                ErrorType::ResourceNotFoundException,
                format!("no operation at {path}"),
            ),
        },
        (method, path) => text(
            StatusCode::NOT_FOUND,
            format!("no route for {method} {path}\n"),
        ),
    }
}

fn is_upgrade(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The host a client addressed, as SigV4 signed it.
pub(crate) fn host(request: &Request<Incoming>) -> String {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default()
}

async fn rest(app: Arc<App>, operation: Operation, request: Request<Incoming>) -> HttpResponse {
    let (parts, body) = request.into_parts();
    // The body has the head's deadline of its own: a client that announces a length and sends
    // nothing (the signature is checked only once the body is in) must not hold its socket.
    let timeout = app.config.header_read_timeout;
    let collected = tokio::time::timeout(
        timeout,
        Limited::new(body, app.config.max_body_len).collect(),
    )
    .await;
    let body = match collected {
        Err(_) => {
            return crate::http::error(
                ErrorType::InvalidArgumentException,
                408,
                format!(
                    "request body: not received within {} s (header_read_timeout_seconds)",
                    timeout.as_secs()
                ),
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) => {
            return rest_error(
                ErrorType::InvalidArgumentException,
                format!(
                    "request body: at most {} bytes are accepted ({err})",
                    app.config.max_body_len
                ),
            );
        }
    };
    let mut access_key_id = None;
    if app.config.auth == AuthMode::Verify {
        let headers: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let mut signed =
            HeaderSignedRequest::new(parts.method.as_str(), parts.uri.path(), &headers, &body);
        signed.query = parts.uri.query().unwrap_or("");
        match app.verifier.verify_header(SystemTime::now(), &signed) {
            Ok(verified) => access_key_id = Some(verified.access_key_id),
            Err(err) => {
                app.auth_failures.fetch_add(1, Ordering::Relaxed);
                app.rest_errors.fetch_add(1, Ordering::Relaxed);
                return auth_error(&err);
            }
        }
    }
    // On a task of its own: hyper drops this future when the client goes away mid-call, and
    // a control-plane write must not stop between its save and its commit, nor before the
    // hubs hear of it.
    let task = Arc::clone(&app);
    let dispatched = tokio::spawn(async move {
        let caller = access_key_id.and_then(|key| task.caller(key));
        crate::control::dispatch(&task, caller.as_ref(), operation, body).await
    })
    .await;
    let response = dispatched.unwrap_or_else(|err| {
        rest_error(
            ErrorType::InternalFailure,
            format!("the call failed inside the server: {err}"),
        )
    });
    if response.status().is_client_error() || response.status().is_server_error() {
        app.rest_errors.fetch_add(1, Ordering::Relaxed);
        if response.status() == StatusCode::UNAUTHORIZED {
            app.auth_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    response
}

fn auth_error(err: &AuthError) -> HttpResponse {
    let error_type = err.error_type();
    crate::http::error(error_type, 403, err.message.clone())
}

async fn metrics(app: &App) -> HttpResponse {
    let mut counters = kvs_signaling_core::Counters::default();
    for shard in app.shards.all() {
        let Ok(c) = shard.counters().await else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "a hub has stopped\n".to_owned(),
            );
        };
        counters.opened += c.opened;
        counters.refused += c.refused;
        counters.closed_by_client += c.closed_by_client;
        counters.closed_by_hub += c.closed_by_hub;
        counters.delivered += c.delivered;
        counters.buffered += c.buffered;
        counters.expired += c.expired;
        counters.throttled += c.throttled;
        counters.invalid += c.invalid;
        counters.rejected_silently += c.rejected_silently;
        counters.dropped_from_superseded += c.dropped_from_superseded;
        counters.buffer_full += c.buffer_full;
        counters.status_responses += c.status_responses;
        counters.closed_without_go_away += c.closed_without_go_away;
    }
    let channels = app.channels.count().await.unwrap_or(0);
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP kvs_{name} {help}");
        let _ = writeln!(out, "# TYPE kvs_{name} counter");
        let _ = writeln!(out, "kvs_{name} {value}");
    };
    counter(
        "connections_opened_total",
        "WebSocket connections opened.",
        counters.opened,
    );
    counter(
        "connections_refused_total",
        "WebSocket connects refused.",
        counters.refused,
    );
    counter(
        "connections_closed_total",
        "WebSocket connections closed, by their client or by the server.",
        counters.closed_by_client + counters.closed_by_hub,
    );
    counter(
        "messages_delivered_total",
        "Relayed messages delivered.",
        counters.delivered,
    );
    counter(
        "messages_buffered_total",
        "Messages buffered for an absent recipient.",
        counters.buffered,
    );
    counter(
        "messages_expired_total",
        "Buffered messages dropped at their TTL.",
        counters.expired,
    );
    counter(
        "messages_throttled_total",
        "Messages refused by a rate limit.",
        counters.throttled,
    );
    counter(
        "messages_invalid_total",
        "Messages refused as invalid.",
        counters.invalid,
    );
    counter(
        "messages_dropped_total",
        "Messages dropped: refused without a correlation id, from superseded connections, or for a full buffer.",
        counters.rejected_silently + counters.dropped_from_superseded + counters.buffer_full,
    );
    counter(
        "rest_errors_total",
        "REST calls answered with an error.",
        app.rest_errors.load(Ordering::Relaxed),
    );
    counter(
        "auth_failures_total",
        "REST calls and connects refused for their signature or their key's limits.",
        app.auth_failures.load(Ordering::Relaxed),
    );
    counter(
        "status_responses_total",
        "STATUS_RESPONSE errors sent.",
        counters.status_responses,
    );
    counter(
        "sockets_refused_total",
        "Connections refused with 503 at the cap on open connections (max_connections).",
        app.connections_refused.load(Ordering::Relaxed),
    );
    counter(
        "accept_errors_total",
        "Accepts that failed for want of descriptors or memory (the listener then backs off).",
        app.accept_errors.load(Ordering::Relaxed),
    );
    counter(
        "connections_closed_without_go_away_total",
        "WebSocket connections closed at the duration cap or on drain without GO_AWAY, their client not handling it.",
        counters.closed_without_go_away,
    );
    let telemetry = &app.telemetry;
    counter(
        "websocket_bytes_received_total",
        "WebSocket bytes read from clients, frame headers included.",
        telemetry.bytes_in(),
    );
    counter(
        "websocket_bytes_sent_total",
        "WebSocket bytes written to clients, frame headers included.",
        telemetry.bytes_out(),
    );
    counter(
        "websocket_messages_received_total",
        "Text messages read from clients.",
        telemetry.frames_in(),
    );
    counter(
        "websocket_frames_sent_total",
        "Text frames written to clients.",
        telemetry.frames_out(),
    );
    relay_histogram(&mut out, &telemetry.relay_latency.snapshot());
    let _ = writeln!(
        out,
        "# HELP kvs_sockets_open Connections open now, HTTP and WebSocket, and their cap."
    );
    let _ = writeln!(out, "# TYPE kvs_sockets_open gauge");
    let _ = writeln!(out, "kvs_sockets_open {}", app.connections.open());
    let _ = writeln!(out, "# HELP kvs_sockets_max The cap on open connections.");
    let _ = writeln!(out, "# TYPE kvs_sockets_max gauge");
    let _ = writeln!(out, "kvs_sockets_max {}", app.connections.max());
    let _ = writeln!(
        out,
        "# HELP kvs_channels Signaling channels in the registry."
    );
    let _ = writeln!(out, "# TYPE kvs_channels gauge");
    let _ = writeln!(out, "kvs_channels {channels}");
    if let Some(router) = &app.router {
        router.write_metrics(&mut out);
    }
    let mut response = text(StatusCode::OK, out);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// The relay latency as a Prometheus histogram, in seconds.
fn relay_histogram(out: &mut String, snapshot: &kvs_transport_tokio::HistogramSnapshot) {
    let name = "kvs_relay_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From a message read off its sender's socket to its relay written to the \
         recipient's, for messages relayed at once."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, count) in kvs_transport_tokio::HistogramSnapshot::bounds().zip(&snapshot.counts) {
        cumulative += count;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            bound.as_secs_f64()
        );
    }
    let total = snapshot.count();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {}", snapshot.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {total}");
}
