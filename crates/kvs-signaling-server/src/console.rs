//! The live console, under `/console/`: a web page of every channel with its master and
//! viewers, the server's counters and a live stream of what the hubs do, where an operator can
//! create and delete channels and open a test call.
//!
//! Nothing of it is served without authentication: the URL `serve` prints carries a token
//! (`/console/?token=...`, as Jupyter's does), which is traded for a cookie; an access key
//! that may administer every channel signs in with its secret instead. The cookie is signed
//! with a key of this process (HMAC-SHA256), so it dies with the process, and is `HttpOnly`,
//! `SameSite=Strict` and scoped to `/console`; every call that changes something also needs
//! the header `X-Kvs-Console: 1`, which no cross-site form or image can send. The console's
//! answers carry no CORS headers: only its own page may read them.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Frame, Incoming};
use kvs_ice_rest::{Credentials, presign_connect_url};
use kvs_signaling_core::{ChannelView, ConnectionStanding, ConnectionView, Observation};
use kvs_signaling_proto::{ChannelArn, ClientId, Operation, Role};
use ring::hmac;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::access::Action;
use crate::app::App;
use crate::http::{HttpResponse, Reply};

/// How long a console cookie is good for.
const SESSION: Duration = Duration::from_secs(12 * 3600);
/// The cookie's name.
const COOKIE: &str = "kvs_console";
/// Event streams open at once, over every console page; more are refused with 503.
const MAX_STREAMS: usize = 16;
/// Events waiting for one page: a page that falls behind skips what overflows, and is told.
const STREAM_QUEUE: usize = 256;
/// A comment line on an idle event stream, so that proxies and the write deadline see it.
const STREAM_KEEPALIVE: Duration = Duration::from_secs(15);
/// The largest body a console call takes.
const MAX_BODY: usize = 16 * 1024;

const INDEX_HTML: &str = include_str!("console/index.html");
const LOGIN_HTML: &str = include_str!("console/login.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");
const LOGIN_JS: &str = include_str!("console/login.js");

/// Whether the console is served, and its token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsoleConfig {
    /// Whether `/console/` is served: yes by default.
    pub enabled: bool,
    /// The token of the console's URL; a random one, made at start, when absent. At least 16
    /// characters.
    pub token: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token: None,
        }
    }
}

impl ConsoleConfig {
    /// Sets [`ConsoleConfig::enabled`].
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets [`ConsoleConfig::token`].
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// The console's secrets and its open event streams.
#[derive(Debug)]
pub(crate) struct Console {
    token: String,
    cookie_key: hmac::Key,
    streams: Arc<AtomicUsize>,
    /// When the server started, for uptime.
    started: SystemTime,
}

impl Console {
    /// The console of a server starting now; `None` when it is off.
    pub(crate) fn new(config: &ConsoleConfig) -> Result<Option<Self>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let rng = ring::rand::SystemRandom::new();
        let token = match &config.token {
            Some(token) if token.len() < 16 => {
                return Err("console token: must be at least 16 characters".to_owned());
            }
            Some(token) if !token.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                return Err("console token: letters and digits only".to_owned());
            }
            Some(token) => token.clone(),
            None => {
                let bytes: [u8; 24] = ring::rand::generate(&rng)
                    .map_err(|_| "console token: the OS random source failed".to_owned())?
                    .expose();
                hex(&bytes)
            }
        };
        let cookie_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| "console cookie key: the OS random source failed".to_owned())?;
        Ok(Some(Self {
            token,
            cookie_key,
            streams: Arc::new(AtomicUsize::new(0)),
            started: SystemTime::now(),
        }))
    }

    /// The token of the console's URL.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// A cookie value for `who` (`token`, or an access key id), good until `expires`.
    fn cookie_value(&self, who: &str, expires: u64) -> String {
        let payload = format!("v1.{expires}.{who}");
        let tag = hmac::sign(&self.cookie_key, payload.as_bytes());
        format!("{payload}.{}", hex(tag.as_ref()))
    }

    /// Who the request's cookie (or `Authorization: Bearer` token) speaks for, if it is
    /// valid.
    fn session(&self, headers: &HeaderMap, now: SystemTime) -> Option<String> {
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return same(token.trim(), &self.token).then(|| "token".to_owned());
        }
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
        let (payload, tag) = value.rsplit_once('.')?;
        let mut parts = payload.splitn(3, '.');
        let (Some("v1"), Some(expires), Some(who)) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let tag = unhex(tag)?;
        hmac::verify(&self.cookie_key, payload.as_bytes(), &tag).ok()?;
        let expires: u64 = expires.parse().ok()?;
        (unix(now) < expires).then(|| who.to_owned())
    }

    /// The `Set-Cookie` of a new session for `who`.
    fn set_cookie(&self, who: &str, secure: bool, now: SystemTime) -> String {
        let expires = unix(now) + SESSION.as_secs();
        format!(
            "{COOKIE}={}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
            self.cookie_value(who, expires),
            SESSION.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }
}

/// Compares two secrets in constant time (for equal lengths).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A page or file of the console.
fn page(status: StatusCode, body: &'static str, content_type: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; \
             connect-src 'self' wss: ws:; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn console_json(status: StatusCode, body: &Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn console_error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    console_json(status, &json!({ "error": message.into() }))
}

fn redirect(to: &'static str, cookie: Option<String>) -> HttpResponse {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static(to));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Whether `path` is the console's.
pub(crate) fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Serves one console request.
pub(crate) async fn handle(app: Arc<App>, request: Request<Incoming>) -> Reply {
    let Some(console) = app.console.as_ref() else {
        return full(crate::http::text(
            StatusCode::NOT_FOUND,
            "the console is off on this server\n".to_owned(),
        ));
    };
    let now = SystemTime::now();
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let secure = app.public_url.starts_with("https://");
    if path == "/console" {
        return full(redirect("/console/", None));
    }
    // The token of the printed URL is traded for a cookie, and leaves the address bar.
    if method == Method::GET
        && path == "/console/"
        && let Some(token) = query_param(request.uri().query().unwrap_or(""), "token")
    {
        return full(if same(&token, console.token()) {
            redirect("/console/", Some(console.set_cookie("token", secure, now)))
        } else {
            page(
                StatusCode::UNAUTHORIZED,
                LOGIN_HTML,
                "text/html; charset=utf-8",
            )
        });
    }
    if method == Method::POST && path == "/console/login" {
        return full(login(&app, console, request, secure, now).await);
    }
    // The sign-in page's script and the style sheet hold no data: served to anyone.
    match (&method, path.as_str()) {
        (&Method::GET, "/console/login.js") => {
            return full(page(
                StatusCode::OK,
                LOGIN_JS,
                "text/javascript; charset=utf-8",
            ));
        }
        (&Method::GET, "/console/app.css") => {
            return full(page(StatusCode::OK, APP_CSS, "text/css; charset=utf-8"));
        }
        _ => {}
    }
    let Some(who) = console.session(request.headers(), now) else {
        return full(match (method, path.as_str()) {
            (Method::GET, "/console/") => page(
                StatusCode::UNAUTHORIZED,
                LOGIN_HTML,
                "text/html; charset=utf-8",
            ),
            _ => console_error(
                StatusCode::UNAUTHORIZED,
                "sign in first: open the console URL the server printed, or sign in with an \
                 access key that administers every channel",
            ),
        });
    };
    let changes = method == Method::POST;
    if changes
        && request
            .headers()
            .get("x-kvs-console")
            .is_none_or(|v| v.as_bytes() != b"1")
    {
        return full(console_error(
            StatusCode::FORBIDDEN,
            "X-Kvs-Console: the header 1 is required on calls that change something",
        ));
    }
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/console/") => {
            full(page(StatusCode::OK, INDEX_HTML, "text/html; charset=utf-8"))
        }
        (Method::GET, "/console/app.js") => full(page(
            StatusCode::OK,
            APP_JS,
            "text/javascript; charset=utf-8",
        )),
        (Method::GET, "/console/api/state") => full(state(&app, console, &who).await),
        (Method::GET, "/console/api/events") => events(&app, console),
        (Method::POST, "/console/logout") => {
            let mut response = redirect("/console/", None);
            if let Ok(value) = HeaderValue::from_str(&format!(
                "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict"
            )) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            full(response)
        }
        (Method::POST, "/console/api/create") => {
            full(rest(&app, Operation::CreateSignalingChannel, request).await)
        }
        (Method::POST, "/console/api/delete") => {
            full(rest(&app, Operation::DeleteSignalingChannel, request).await)
        }
        (Method::POST, "/console/api/describe") => {
            full(rest(&app, Operation::DescribeSignalingChannel, request).await)
        }
        (Method::POST, "/console/api/tags") => {
            full(rest(&app, Operation::ListTagsForResource, request).await)
        }
        (Method::POST, "/console/api/test-call") => full(test_call(&app, request).await),
        (method, path) => full(console_error(
            StatusCode::NOT_FOUND,
            format!("no console route for {method} {path}"),
        )),
    }
}

fn full(response: HttpResponse) -> Reply {
    response.map(http_body_util::Either::Left)
}

/// The value of `name` in a query string or form body (`+` and `%XX` decoded).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(decoded) => {
                    out.push(decoded);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn body(request: Request<Incoming>) -> Result<Bytes, HttpResponse> {
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) => Err(console_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: at most {MAX_BODY} bytes ({err})"),
        )),
    }
}

/// Signs in with the token, or with an access key that administers every channel.
async fn login(
    app: &App,
    console: &Console,
    request: Request<Incoming>,
    secure: bool,
    now: SystemTime,
) -> HttpResponse {
    let form = match body(request).await {
        Ok(form) => String::from_utf8_lossy(&form).into_owned(),
        Err(response) => return response,
    };
    let refused = |message: &str| {
        let mut response = page(
            StatusCode::UNAUTHORIZED,
            LOGIN_HTML,
            "text/html; charset=utf-8",
        );
        if let Ok(value) = HeaderValue::from_str(message) {
            response.headers_mut().insert("x-kvs-console-error", value);
        }
        response
    };
    if let Some(token) = query_param(&form, "token").filter(|t| !t.is_empty()) {
        return if same(&token, console.token()) {
            redirect("/console/", Some(console.set_cookie("token", secure, now)))
        } else {
            refused("the token is not this server's")
        };
    }
    let id = query_param(&form, "access_key_id").unwrap_or_default();
    let secret = query_param(&form, "secret_access_key").unwrap_or_default();
    let Some(key) = app
        .config
        .credentials
        .iter()
        .find(|c| c.access_key_id == id)
    else {
        return refused("no such access key");
    };
    if !same(&secret, &key.secret_access_key) {
        return refused("the secret is not the access key's");
    }
    if let Some(scope) = app.config.scopes.get(&id)
        && !(scope.grants.contains(&crate::Grant::Admin) && scope.channels.iter().any(|c| c == "*"))
    {
        return refused("the access key does not administer every channel (admin role on *)");
    }
    redirect("/console/", Some(console.set_cookie(&id, secure, now)))
}

/// Runs a REST operation as the console (an administrator) on the JSON body given.
async fn rest(app: &Arc<App>, operation: Operation, request: Request<Incoming>) -> HttpResponse {
    let body = match body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let task = Arc::clone(app);
    tokio::spawn(async move { crate::control::dispatch(&task, None, operation, body).await })
        .await
        .unwrap_or_else(|err| {
            console_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the call failed inside the server: {err}"),
            )
        })
}

/// When `at` was, on the wall clock.
fn wall(at: Instant, now: Instant, wall_now: SystemTime) -> SystemTime {
    wall_now
        .checked_sub(now.saturating_duration_since(at))
        .unwrap_or(UNIX_EPOCH)
}

fn connection_json(c: &ConnectionView, now: Instant, wall_now: SystemTime) -> Value {
    json!({
        "role": match c.role { Role::Master => "master", _ => "viewer" },
        "clientId": c.client_id.as_ref().map(|id| id.as_str()),
        "state": match c.standing {
            ConnectionStanding::Opening => "opening",
            ConnectionStanding::Current => "current",
            ConnectionStanding::Superseded => "superseded",
            _ => "other",
        },
        "since": millis(wall(c.opened, now, wall_now)),
        "lastActivity": millis(wall(c.last_activity, now, wall_now)),
        "remote": c.remote_addr.map(|a| a.to_string()),
        "messagesIn": c.messages_in,
        "messagesOut": c.messages_out,
        "indications": c.indications,
    })
}

fn channel_json(view: &ChannelView, now: Instant, wall_now: SystemTime) -> Value {
    let connections: Vec<Value> = view
        .connections
        .iter()
        .map(|c| connection_json(c, now, wall_now))
        .collect();
    let held: Vec<Value> = view
        .held
        .iter()
        .map(|h| {
            json!({
                "recipient": h.recipient.as_ref().map_or("master", |id| id.as_str()),
                "messages": h.messages,
                "bytes": h.bytes,
                "oldestAgeMs": u64::try_from(now.saturating_duration_since(h.oldest).as_millis()).unwrap_or(u64::MAX),
            })
        })
        .collect();
    json!({ "connections": connections, "held": held })
}

/// Every channel, with its live connections and held messages, and the server's counters.
/// What this process's hubs hold now, as the console shows it: `{"channels": {ARN: live},
/// "counters": {...}}`. A cluster node answers other nodes' consoles with it.
pub(crate) async fn local_state(shards: &crate::app::Shards) -> Option<Value> {
    let mut views = Vec::new();
    let mut counters = kvs_signaling_core::Counters::default();
    for shard in shards.all() {
        let (Ok(v), Ok(c)) = (shard.channel_views().await, shard.counters().await) else {
            return None;
        };
        views.extend(v);
        add_counters(&mut counters, &c);
    }
    let now = Instant::now();
    let wall_now = SystemTime::now();
    let channels: serde_json::Map<String, Value> = views
        .iter()
        .map(|v| (v.arn.as_str().to_owned(), channel_json(v, now, wall_now)))
        .collect();
    Some(json!({ "channels": channels, "counters": counters_json(&counters) }))
}

fn counters_json(counters: &kvs_signaling_core::Counters) -> Value {
    json!({
        "opened": counters.opened,
        "refused": counters.refused,
        "closedByClient": counters.closed_by_client,
        "closedByServer": counters.closed_by_hub,
        "superseded": counters.superseded,
        "delivered": counters.delivered,
        "buffered": counters.buffered,
        "expired": counters.expired,
        "overwritten": counters.overwritten,
        "throttled": counters.throttled,
        "invalid": counters.invalid,
        "statusResponses": counters.status_responses,
    })
}

async fn state(app: &App, console: &Console, who: &str) -> HttpResponse {
    let Some(local) = local_state(&app.shards).await else {
        return console_error(StatusCode::SERVICE_UNAVAILABLE, "a hub has stopped");
    };
    // In cluster mode, every node's hubs: each channel is live on its owner's.
    let mut states = vec![(app.router.as_ref().map(|r| r.node().to_owned()), local)];
    let mut missing = Vec::new();
    if let Some(router) = &app.router {
        for (node, state) in router.other_states().await {
            match state {
                Some(state) => states.push((Some(node), state)),
                None => missing.push(node),
            }
        }
    }
    let mut live: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    let mut totals = serde_json::Map::new();
    for (node, state) in states {
        if let Some(channels) = state["channels"].as_object() {
            for (arn, channel) in channels {
                let mut channel = channel.clone();
                if let Some(node) = &node {
                    channel["node"] = json!(node);
                }
                live.insert(arn.clone(), channel);
            }
        }
        if let Some(counters) = state["counters"].as_object() {
            for (name, value) in counters {
                let sum = totals.get(name).and_then(Value::as_u64).unwrap_or(0)
                    + value.as_u64().unwrap_or(0);
                totals.insert(name.clone(), json!(sum));
            }
        }
    }
    let wall_now = SystemTime::now();
    let records: Vec<Value> = {
        let records = match app
            .channels
            .read(crate::channels::Scope::All, |registry| {
                registry.channels().cloned().collect::<Vec<_>>()
            })
            .await
        {
            Ok(records) => records,
            Err(response) => return response,
        };
        records
            .iter()
            .map(|record| {
                let arn = record.arn().as_str().to_owned();
                let live = live
                    .remove(&arn)
                    .unwrap_or_else(|| json!({ "connections": [], "held": [] }));
                json!({
                    "name": record.name().as_str(),
                    "arn": arn,
                    "ttlSeconds": record.message_ttl().get(),
                    "version": record.version().as_str(),
                    "created": record.creation_time().unix_millis(),
                    "connections": live["connections"],
                    "held": live["held"],
                    "node": live.get("node").cloned().unwrap_or(Value::Null),
                })
            })
            .collect()
    };
    // Channels the hub still holds that the registry no longer has (a deletion under way).
    let orphans: Vec<Value> = live
        .into_iter()
        .map(|(arn, live)| {
            json!({
                "name": ChannelArn::new(&arn).map(|a| a.channel_name().to_owned()).unwrap_or_default(),
                "arn": arn,
                "deleted": true,
                "connections": live["connections"],
                "held": live["held"],
            })
        })
        .collect();
    let telemetry = &app.telemetry;
    for (name, value) in [
        ("bytesIn", telemetry.bytes_in()),
        ("bytesOut", telemetry.bytes_out()),
        ("restErrors", app.rest_errors.load(Ordering::Relaxed)),
        ("authFailures", app.auth_failures.load(Ordering::Relaxed)),
    ] {
        totals.insert(name.to_owned(), json!(value));
    }
    console_json(
        StatusCode::OK,
        &json!({
            "server": {
                "version": env!("CARGO_PKG_VERSION"),
                "publicUrl": app.public_url,
                "region": app.config.region,
                "started": millis(console.started),
                "now": millis(wall_now),
                "signedInAs": who,
                "socketsOpen": app.connections.open(),
                "socketsMax": app.connections.max(),
            },
            "counters": Value::Object(totals),
            "cluster": app.router.as_ref().map(|router| json!({
                "node": router.node(),
                "nodesMissing": missing,
            })),
            "channels": records.into_iter().chain(orphans).collect::<Vec<_>>(),
        }),
    )
}

fn add_counters(sum: &mut kvs_signaling_core::Counters, c: &kvs_signaling_core::Counters) {
    sum.opened += c.opened;
    sum.refused += c.refused;
    sum.closed_by_client += c.closed_by_client;
    sum.closed_by_hub += c.closed_by_hub;
    sum.superseded += c.superseded;
    sum.delivered += c.delivered;
    sum.buffered += c.buffered;
    sum.expired += c.expired;
    sum.overwritten += c.overwritten;
    sum.throttled += c.throttled;
    sum.invalid += c.invalid;
    sum.status_responses += c.status_responses;
}

/// An observation as the console's event stream carries it.
pub(crate) fn observation_json(observation: &Observation, at: SystemTime) -> Option<Value> {
    let party = |id: &Option<kvs_signaling_proto::PeerId>| {
        id.as_ref()
            .map_or("master".to_owned(), |id| id.as_str().to_owned())
    };
    let mut event = match observation {
        Observation::Connected {
            channel,
            client_id,
            remote_addr,
            ..
        } => json!({
            "type": "connected",
            "channel": channel.channel_name(),
            "who": party(client_id),
            "remote": remote_addr.map(|a| a.to_string()),
        }),
        Observation::Superseded {
            channel, client_id, ..
        } => json!({
            "type": "superseded",
            "channel": channel.channel_name(),
            "who": party(client_id),
        }),
        Observation::Closed {
            channel,
            client_id,
            reason,
            ..
        } => json!({
            "type": "closed",
            "channel": channel.channel_name(),
            "who": party(client_id),
            "reason": reason.map_or("closed by the client", |r| r.description()),
        }),
        Observation::ConnectRefused {
            channel,
            client_id,
            error,
            ..
        } => json!({
            "type": "refused",
            "channel": channel.channel_name(),
            "who": party(client_id),
            "error": error.error_type.name(),
            "message": error.message,
        }),
        Observation::MessageRefused {
            channel,
            client_id,
            error_type,
            description,
            ..
        } => json!({
            "type": "message-refused",
            "channel": channel.channel_name(),
            "who": party(client_id),
            "error": error_type.name(),
            "message": description,
        }),
        Observation::Relayed {
            channel,
            message_type,
            from,
            to,
            held,
            ..
        } => json!({
            "type": if *held { "held" } else { "relayed" },
            "channel": channel.channel_name(),
            "messageType": message_type.as_str(),
            "from": party(from),
            "to": party(to),
        }),
        Observation::Expired {
            channel, to, count, ..
        } => json!({
            "type": "expired",
            "channel": channel.channel_name(),
            "to": party(to),
            "count": count,
        }),
        _ => return None,
    };
    event["time"] = json!(millis(at));
    Some(event)
}

/// Another node's event for a console stream: pending while there is none, or no cluster.
async fn remote_event(
    remote: &mut Option<broadcast::Receiver<crate::cluster::RemoteEvent>>,
) -> Result<crate::cluster::RemoteEvent, u64> {
    let Some(receiver) = remote else {
        return std::future::pending().await;
    };
    match receiver.recv().await {
        Ok(event) => Ok(event),
        Err(broadcast::error::RecvError::Lagged(skipped)) => Err(skipped),
        Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
    }
}

/// The `lagged` event of a stream that skipped `skipped` events.
fn lagged(skipped: u64) -> String {
    format!(
        "event: lagged\ndata: {}\n\n",
        json!({ "skipped": skipped, "time": millis(SystemTime::now()) })
    )
}

/// The live event stream (Server-Sent Events), bounded per page. In cluster mode it carries
/// every node's events, each naming its node.
fn events(app: &Arc<App>, console: &Console) -> Reply {
    let streams = Arc::clone(&console.streams);
    if streams.fetch_add(1, Ordering::AcqRel) >= MAX_STREAMS {
        streams.fetch_sub(1, Ordering::AcqRel);
        return full(console_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("at most {MAX_STREAMS} console event streams are open at once"),
        ));
    }
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_QUEUE);
    let mut observations = app.telemetry.subscribe();
    let mut stopping = app.stopping.clone();
    let node = app.router.as_ref().map(|router| router.node().to_owned());
    let (watching, mut remote) = match &app.router {
        Some(router) => {
            let (watching, remote) = router.watch_events();
            (Some(watching), Some(remote))
        }
        None => (None, None),
    };
    tokio::spawn(async move {
        // The other nodes send their events while this stream lives.
        let _watching = watching;
        // Releases the stream's place whatever way the task ends.
        struct Release(Arc<AtomicUsize>);
        impl Drop for Release {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _release = Release(streams);
        if tx
            .send(Bytes::from_static(b"retry: 2000\n: events follow\n\n"))
            .await
            .is_err()
        {
            return;
        }
        let mut keepalive = tokio::time::interval(STREAM_KEEPALIVE);
        keepalive.tick().await;
        loop {
            let line = tokio::select! {
                observed = observations.recv() => match observed {
                    None => break,
                    Some(Ok(observation)) => {
                        match observation_json(&observation, SystemTime::now()) {
                            Some(mut event) => {
                                if let Some(node) = &node {
                                    event["node"] = json!(node);
                                }
                                format!("data: {event}\n\n")
                            }
                            None => continue,
                        }
                    }
                    Some(Err(skipped)) => lagged(skipped),
                },
                remote = remote_event(&mut remote) => match remote {
                    Ok(crate::cluster::RemoteEvent::Event(event)) => format!("data: {event}\n\n"),
                    Ok(crate::cluster::RemoteEvent::Skipped(skipped)) | Err(skipped) => {
                        lagged(skipped)
                    }
                },
                _ = keepalive.tick() => ": keepalive\n\n".to_owned(),
                _ = stopping.wait_for(|stop| *stop) => break,
            };
            match tx.try_send(Bytes::from(line)) {
                Ok(()) => {}
                // The page falls behind: it skips what does not fit, and is told.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let note = "event: lagged\ndata: {\"skipped\":1}\n\n";
                    let _ = tx.send(Bytes::from_static(note.as_bytes())).await;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    });
    let mut response = Response::new(http_body_util::Either::Right(EventStream(rx)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A response body of event-stream lines, fed by the stream's task.
#[derive(Debug)]
pub(crate) struct EventStream(mpsc::Receiver<Bytes>);

impl hyper::body::Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// A connect URL for a test call from the page, presigned with a key that may connect in
/// that role, and the channel's ICE servers.
async fn test_call(app: &App, request: Request<Incoming>) -> HttpResponse {
    let body = match body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Ok(asked) = serde_json::from_slice::<Value>(&body) else {
        return console_error(StatusCode::BAD_REQUEST, "the body must be JSON");
    };
    let arn = match asked["ChannelARN"].as_str().map(ChannelArn::new) {
        Some(Ok(arn)) => arn,
        Some(Err(err)) => return console_error(StatusCode::BAD_REQUEST, err.to_string()),
        None => return console_error(StatusCode::BAD_REQUEST, "ChannelARN: is required"),
    };
    let (role, client_id) = match (asked["Role"].as_str(), asked["ClientId"].as_str()) {
        (Some("MASTER"), _) => (Role::Master, None),
        (Some("VIEWER"), Some(id)) => match ClientId::new(id) {
            Ok(id) => (Role::Viewer, Some(id)),
            Err(err) => return console_error(StatusCode::BAD_REQUEST, err.to_string()),
        },
        (Some("VIEWER"), None) => {
            return console_error(StatusCode::BAD_REQUEST, "ClientId: a viewer needs one");
        }
        _ => return console_error(StatusCode::BAD_REQUEST, "Role: MASTER or VIEWER"),
    };
    let exists = match app.channels.by_arn(&arn).await {
        Ok(found) => found.is_some(),
        Err(response) => return response,
    };
    if !exists {
        return console_error(StatusCode::NOT_FOUND, format!("no channel {arn}"));
    }
    let action = match role {
        Role::Master => Action::ConnectAsMaster,
        _ => Action::ConnectAsViewer,
    };
    let name = arn.channel_name();
    let key = app.config.credentials.iter().find(|key| {
        app.config
            .scopes
            .get(&key.access_key_id)
            .is_none_or(|scope| scope.check(&key.access_key_id, action, name).is_ok())
    });
    let fallback = Credentials::new("AKIDCONSOLE", "console");
    let key = match (key, app.config.auth) {
        (Some(key), _) => key,
        (None, crate::AuthMode::DisabledInsecure) => &fallback,
        (None, _) => {
            return console_error(
                StatusCode::CONFLICT,
                format!("no access key of this server may {action} on channel {name}"),
            );
        }
    };
    let https = &app.public_url;
    let wss = match https.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => format!("ws://{https}"),
    };
    let now = SystemTime::now();
    let url =
        match presign_connect_url(key, &app.config.region, &wss, &arn, client_id.as_ref(), now) {
            Ok(url) => url,
            Err(err) => return console_error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        };
    let ice = app.ice().ice_server_config(now, &arn);
    let ice_servers: Vec<Value> = ice
        .ice_server_list
        .unwrap_or_default()
        .into_iter()
        .map(|server| {
            json!({
                "urls": server.uris.unwrap_or_default().iter().map(|u| u.as_str().to_owned()).collect::<Vec<_>>(),
                "username": server.username.as_ref().map(|u| u.as_str().to_owned()),
                "credential": server.password.as_ref().map(|p| p.as_str().to_owned()),
            })
        })
        .collect();
    console_json(
        StatusCode::OK,
        &json!({ "url": url, "iceServers": ice_servers }),
    )
}
