//! Scenario tests for [`ClientSession`] on a fake clock, plus property tests over random input
//! sequences.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kvs_signaling_proto::{
    ChannelArn, ChannelInfo, ChannelName, ChannelProtocol, ChannelStatus, ClientId, ErrorType,
    IceServer, IceServerTtl, ResourceEndpointListItem, Role, ServerEvent,
};
use proptest::prelude::*;

use super::*;
use crate::SplitMix64;

const ARN: &str = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1657142193914";
const WSS: &str = "wss://v-1.example";
const HTTPS: &str = "https://r-1.example";

fn id(n: u64) -> SessionRequestId {
    SessionRequestId(n)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn viewer_config() -> ClientSessionConfig {
    ClientSessionConfig::new(ChannelName::new("demo").unwrap(), Role::Viewer)
        .client_id(ClientId::new("viewer-1").unwrap())
}

fn master_config() -> ClientSessionConfig {
    ClientSessionConfig::new(ChannelName::new("demo").unwrap(), Role::Master)
}

fn channel_info() -> ChannelInfo {
    let mut info = ChannelInfo::new();
    info.channel_arn = Some(ChannelArn::new(ARN).unwrap());
    info.channel_status = Some(ChannelStatus::Active);
    info
}

fn ice_servers(ttls: &[u32]) -> Vec<IceServer> {
    ttls.iter()
        .map(|&ttl| {
            let mut server = IceServer::new();
            server.ttl = Some(IceServerTtl::new(ttl).unwrap());
            server
        })
        .collect()
}

fn event(json: &str) -> ServerEvent<'_> {
    ServerEvent::decode(json).unwrap()
}

const GO_AWAY: &str = r#"{"messageType":"GO_AWAY"}"#;
const RECONNECT_ICE_SERVER: &str = r#"{"messageType":"RECONNECT_ICE_SERVER"}"#;
const STATUS_RESPONSE: &str = r#"{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"7","errorType":"InvalidArgumentException","statusCode":"400","success":false}}"#;
const SDP_ANSWER: &str = r#"{"messageType":"SDP_ANSWER","messagePayload":"e30="}"#;

/// A session on a fake clock; outputs are rendered as stable text, times relative to the start.
struct Sim {
    session: ClientSession,
    start: Instant,
    now: Instant,
}

impl Sim {
    fn new(config: ClientSessionConfig) -> Self {
        Self::with_seed(config, 1)
    }

    fn with_seed(config: ClientSessionConfig, seed: u64) -> Self {
        #[expect(clippy::disallowed_methods, reason = "the fake clock's origin")]
        let start = Instant::now();
        let session = ClientSession::new(config, SplitMix64::new(seed), start).unwrap();
        Self {
            session,
            start,
            now: start,
        }
    }

    fn viewer() -> Self {
        Self::new(viewer_config())
    }

    fn elapsed(&self, at: Instant) -> String {
        format!("{:.3}s", at.duration_since(self.start).as_secs_f64())
    }

    fn render(&self, output: &SessionOutput) -> String {
        let client = |id: &Option<ClientId>| id.as_ref().map_or("-", ClientId::as_str).to_owned();
        match output {
            SessionOutput::DescribeChannel { id, name } => format!("describe {id} {name}"),
            SessionOutput::CreateChannel { id, name } => format!("create {id} {name}"),
            SessionOutput::GetEndpoints { id, role, .. } => format!("endpoints {id} {role}"),
            SessionOutput::GetIceConfig {
                id,
                https_endpoint,
                client_id,
                ..
            } => format!("ice {id} {https_endpoint} {}", client(client_id)),
            SessionOutput::Connect {
                id,
                wss_endpoint,
                client_id,
                ..
            } => format!("connect {id} {wss_endpoint} {}", client(client_id)),
            SessionOutput::CloseSocket { id } => format!("close {id}"),
            SessionOutput::Event(event) => match event {
                SessionEvent::StateChanged(state) => format!("state {state:?}"),
                SessionEvent::IceServersUpdated(servers) => {
                    let ttls: Vec<String> = servers
                        .iter()
                        .map(|s| s.ttl.map_or("-".to_owned(), |t| t.to_string()))
                        .collect();
                    format!("ice-servers ttl={}", ttls.join(","))
                }
                SessionEvent::StatusResponse(status) => {
                    format!("status {} {}", status.status_code, status.error_type)
                }
                SessionEvent::GoAway => "go-away".to_owned(),
                SessionEvent::ReconnectIceServer => "reconnect-ice-server".to_owned(),
                SessionEvent::RequestFailed { request, error } => {
                    format!("failed {request:?}: {error}")
                }
                SessionEvent::CredentialsRejected => "credentials-rejected".to_owned(),
                SessionEvent::RetryScheduled { attempt, at } => {
                    format!("retry {attempt} at {}", self.elapsed(*at))
                }
                SessionEvent::Failed(reason) => format!("gave up: {reason}"),
            },
        }
    }

    fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(output) = self.session.poll_output() {
            out.push(self.render(&output));
        }
        out
    }

    /// Moves the clock to the next deadline and fires it.
    fn tick(&mut self) -> Vec<String> {
        let at = self.session.poll_timeout().expect("a pending timer");
        self.now = self.now.max(at);
        self.fire()
    }

    fn advance(&mut self, by: Duration) -> Vec<String> {
        self.now += by;
        self.fire()
    }

    fn fire(&mut self) -> Vec<String> {
        self.session.handle_timeout(self.now);
        let next = self.session.poll_timeout();
        assert!(next.is_none_or(|t| t > self.now), "timers must move");
        self.drain()
    }

    fn describe(&mut self, n: u64, result: Result<ChannelInfo, RequestError>) -> Vec<String> {
        self.session.handle_describe(self.now, id(n), result);
        self.drain()
    }

    fn endpoints(&mut self, n: u64, result: Result<Endpoints, RequestError>) -> Vec<String> {
        self.session.handle_endpoints(self.now, id(n), result);
        self.drain()
    }

    fn ice(&mut self, n: u64, result: Result<Vec<IceServer>, RequestError>) -> Vec<String> {
        self.session.handle_ice_config(self.now, id(n), result);
        self.drain()
    }

    fn connected(&mut self, n: u64) -> Vec<String> {
        self.session.handle_connected(self.now, id(n));
        self.drain()
    }

    fn connect_failed(&mut self, n: u64, error: RequestError) -> Vec<String> {
        self.session.handle_connect_failed(self.now, id(n), error);
        self.drain()
    }

    fn socket_closed(&mut self, n: u64) -> Vec<String> {
        self.session.handle_socket_closed(self.now, id(n));
        self.drain()
    }

    fn event(&mut self, json: &str) -> Vec<String> {
        self.session.handle_event(self.now, &event(json));
        self.drain()
    }

    /// The happy path up to Connected: the socket is `#4`, ICE Ttl 300 s, fetched now.
    fn connect(&mut self) {
        self.tick();
        self.describe(1, Ok(channel_info()));
        self.endpoints(2, Ok(Endpoints::new(WSS, HTTPS)));
        self.ice(3, Ok(ice_servers(&[300])));
        self.connected(4);
        assert_eq!(self.session.state(), SessionState::Connected);
    }

    fn next_timeout(&self) -> String {
        self.session
            .poll_timeout()
            .map_or("none".to_owned(), |t| self.elapsed(t))
    }
}

fn not_found() -> RequestError {
    RequestError::service(ErrorType::ResourceNotFoundException, "not found")
}

#[test]
fn viewer_happy_path() {
    let mut sim = Sim::viewer();
    assert_eq!(sim.session.state(), SessionState::New);
    assert_eq!(sim.next_timeout(), "0.000s");
    assert_eq!(sim.tick(), ["state Describing", "describe #1 demo"]);
    assert_eq!(
        sim.describe(1, Ok(channel_info())),
        ["state GettingEndpoints", "endpoints #2 VIEWER"]
    );
    assert_eq!(
        sim.endpoints(2, Ok(Endpoints::new(WSS, HTTPS))),
        [
            "state GettingIceConfig",
            "ice #3 https://r-1.example viewer-1"
        ]
    );
    assert_eq!(
        sim.ice(3, Ok(ice_servers(&[300]))),
        [
            "ice-servers ttl=300",
            "state Connecting",
            "connect #4 wss://v-1.example viewer-1"
        ]
    );
    assert_eq!(sim.connected(4), ["state Connected"]);
    assert_eq!(sim.session.ice_servers().map(<[_]>::len), Some(1));
    // The next timer is the ICE refresh.
    assert_eq!(sim.next_timeout(), "270.000s");
}

#[test]
fn master_creates_a_missing_channel_then_describes_it() {
    let mut sim = Sim::new(master_config().create_if_missing(true));
    assert_eq!(sim.tick(), ["state Describing", "describe #1 demo"]);
    assert_eq!(
        sim.describe(1, Err(not_found())),
        [
            "failed Describe: not found (HTTP 404, ResourceNotFoundException)",
            "state Creating",
            "create #2 demo"
        ]
    );
    sim.session.handle_create(sim.now, id(2), Ok(()));
    assert_eq!(sim.drain(), ["state Describing", "describe #3 demo"]);
    assert_eq!(
        sim.describe(3, Ok(channel_info())),
        ["state GettingEndpoints", "endpoints #4 MASTER"]
    );
    assert_eq!(
        sim.endpoints(4, Ok(Endpoints::new("wss://m-1.example", HTTPS))),
        ["state GettingIceConfig", "ice #5 https://r-1.example -"]
    );
    assert_eq!(
        sim.ice(5, Ok(ice_servers(&[300]))),
        [
            "ice-servers ttl=300",
            "state Connecting",
            "connect #6 wss://m-1.example -"
        ]
    );
    assert_eq!(sim.connected(6), ["state Connected"]);
}

#[test]
fn a_channel_still_missing_after_create_is_described_again_after_a_backoff() {
    let mut sim = Sim::new(master_config().create_if_missing(true));
    sim.tick();
    sim.describe(1, Err(not_found()));
    sim.session.handle_create(sim.now, id(2), Ok(()));
    sim.drain();
    assert_eq!(
        sim.describe(3, Err(not_found())),
        [
            "failed Describe: not found (HTTP 404, ResourceNotFoundException)",
            "state WaitingToRetry",
            "retry 1 at 0.783s"
        ]
    );
    assert_eq!(sim.tick(), ["state Describing", "describe #4 demo"]);
}

#[test]
fn missing_channel_without_create_fails() {
    let mut sim = Sim::new(master_config());
    sim.tick();
    assert_eq!(
        sim.describe(1, Err(RequestError::http(404, "gone"))),
        [
            "failed Describe: gone (HTTP 404)",
            "state Failed",
            "gave up: channel demo does not exist"
        ]
    );
    assert_eq!(sim.session.poll_timeout(), None);
}

#[test]
fn describe_of_a_deleting_channel_or_without_arn_is_retried() {
    let mut sim = Sim::viewer();
    sim.tick();
    let mut deleting = channel_info();
    deleting.channel_status = Some(ChannelStatus::Deleting);
    assert_eq!(
        sim.describe(1, Ok(deleting)),
        [
            "failed Describe: the channel is being deleted",
            "state WaitingToRetry",
            "retry 1 at 0.783s"
        ]
    );
    assert_eq!(sim.tick(), ["state Describing", "describe #2 demo"]);
    assert_eq!(
        sim.describe(2, Ok(ChannelInfo::new()))[0],
        "failed Describe: DescribeSignalingChannel returned no ChannelARN"
    );
}

#[test]
fn config_is_checked_once_in_new() {
    #[expect(clippy::disallowed_methods, reason = "any instant will do")]
    let now = Instant::now();
    let new = |config: ClientSessionConfig| {
        ClientSession::new(config, SplitMix64::new(1), now)
            .err()
            .map(|e| e.to_string())
    };
    let viewer_without_id =
        ClientSessionConfig::new(ChannelName::new("demo").unwrap(), Role::Viewer);
    let cases = [
        (viewer_config(), None),
        (master_config(), None),
        (
            viewer_without_id,
            Some("client_id: a viewer needs a client id"),
        ),
        (
            master_config().client_id(ClientId::new("m").unwrap()),
            Some("client_id: the master connects without a client id, found m"),
        ),
        (
            viewer_config().backoff_initial(Duration::ZERO),
            Some("backoff_initial: must be 1ms to 24 h, found 0ns"),
        ),
        (
            viewer_config().request_timeout(secs(24 * 3600 + 1)),
            Some("request_timeout: must be 1ms to 24 h, found 86401s"),
        ),
        (
            viewer_config()
                .backoff_initial(secs(10))
                .backoff_max(secs(5)),
            Some("backoff_max: must be at least backoff_initial (10s), found 5s"),
        ),
        (
            viewer_config().backoff_multiplier(0),
            Some("backoff_multiplier: must be at least 1, found 0"),
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(new(config), expected.map(str::to_owned));
    }
}

#[test]
fn go_away_closes_and_reconnects_through_the_endpoint_cache() {
    let mut sim = Sim::viewer();
    sim.connect();
    sim.advance(secs(60));
    assert_eq!(
        sim.event(GO_AWAY),
        [
            "go-away",
            "close #4",
            "state Connecting",
            "connect #5 wss://v-1.example viewer-1"
        ]
    );
    assert_eq!(sim.connected(5), ["state Connected"]);
}

#[test]
fn go_away_without_endpoint_cache_describes_again() {
    let mut sim = Sim::new(viewer_config().endpoint_cache(false));
    sim.connect();
    sim.advance(secs(60));
    assert_eq!(
        sim.event(GO_AWAY),
        [
            "go-away",
            "close #4",
            "state Describing",
            "describe #5 demo"
        ]
    );
    assert_eq!(
        sim.describe(5, Ok(channel_info())),
        ["state GettingEndpoints", "endpoints #6 VIEWER"]
    );
    // The ICE configuration fetched a minute ago is still fresh.
    assert_eq!(
        sim.endpoints(6, Ok(Endpoints::new(WSS, HTTPS))),
        ["state Connecting", "connect #7 wss://v-1.example viewer-1"]
    );
}

#[test]
fn go_away_right_after_connecting_backs_off() {
    let mut sim = Sim::viewer();
    sim.connect();
    sim.advance(secs(1));
    assert_eq!(
        sim.event(GO_AWAY),
        [
            "go-away",
            "close #4",
            "state WaitingToRetry",
            "retry 1 at 1.783s"
        ]
    );
    assert_eq!(
        sim.tick(),
        ["state Connecting", "connect #5 wss://v-1.example viewer-1"]
    );
}

#[test]
fn reconnect_ice_server_refreshes_in_the_background() {
    let mut sim = Sim::viewer();
    sim.connect();
    sim.advance(secs(100));
    assert_eq!(
        sim.event(RECONNECT_ICE_SERVER),
        [
            "reconnect-ice-server",
            "ice #5 https://r-1.example viewer-1"
        ]
    );
    assert_eq!(sim.session.state(), SessionState::Connected);
    assert_eq!(sim.ice(5, Ok(ice_servers(&[600]))), ["ice-servers ttl=600"]);
    assert_eq!(sim.session.state(), SessionState::Connected);
    // Refreshed at 100 s with a 600 s Ttl: due again at 100 + 600 - 30.
    assert_eq!(sim.next_timeout(), "670.000s");
}

#[test]
fn reconnect_ice_server_makes_a_reconnect_fetch_ice_again() {
    let mut sim = Sim::viewer();
    sim.connect();
    sim.advance(secs(100));
    sim.event(RECONNECT_ICE_SERVER);
    // The socket drops before the refresh answers; the late answer is ignored.
    assert_eq!(
        sim.socket_closed(4),
        ["state WaitingToRetry", "retry 1 at 100.783s"]
    );
    assert_eq!(sim.ice(5, Ok(ice_servers(&[300]))), Vec::<String>::new());
    assert_eq!(
        sim.tick(),
        [
            "state GettingIceConfig",
            "ice #6 https://r-1.example viewer-1"
        ]
    );
}

#[test]
fn ice_refresh_at_ttl_minus_grace_keeps_the_socket() {
    let mut sim = Sim::viewer();
    sim.connect();
    assert_eq!(sim.next_timeout(), "270.000s");
    assert_eq!(sim.tick(), ["ice #5 https://r-1.example viewer-1"]);
    assert_eq!(sim.elapsed(sim.now), "270.000s");
    assert_eq!(sim.session.state(), SessionState::Connected);
    // The request has its own deadline.
    assert_eq!(sim.next_timeout(), "285.000s");
    assert_eq!(sim.ice(5, Ok(ice_servers(&[300]))), ["ice-servers ttl=300"]);
    assert_eq!(sim.next_timeout(), "540.000s");
    assert_eq!(sim.session.state(), SessionState::Connected);
}

#[test]
fn ice_refresh_uses_the_smallest_ttl_and_at_least_half_of_it() {
    let mut sim = Sim::viewer();
    sim.connect();
    sim.tick();
    sim.ice(5, Ok(ice_servers(&[600, 120])));
    // Refreshed at 270 s: min Ttl 120 → 90 s later.
    assert_eq!(sim.next_timeout(), "360.000s");
    sim.tick();
    sim.ice(6, Ok(ice_servers(&[30])));
    // A 30 s Ttl leaves nothing after the grace: refresh at half the Ttl.
    assert_eq!(sim.next_timeout(), "375.000s");
}

#[test]
fn failed_background_refresh_is_retried_and_keeps_the_socket() {
    let mut sim = Sim::viewer();
    sim.connect();
    sim.tick();
    assert_eq!(
        sim.ice(5, Err(RequestError::http(500, "oops"))),
        ["failed GetIceConfig: oops (HTTP 500)"]
    );
    assert_eq!(sim.session.state(), SessionState::Connected);
    assert_eq!(sim.next_timeout(), "270.783s");
    assert_eq!(sim.tick(), ["ice #6 https://r-1.example viewer-1"]);
    // No answer: it times out and is retried, still connected.
    assert_eq!(sim.tick(), ["failed GetIceConfig: no answer within 15s"]);
    assert_eq!(sim.session.state(), SessionState::Connected);
    assert_eq!(sim.tick(), ["ice #7 https://r-1.example viewer-1"]);
    assert_eq!(
        sim.ice(7, Err(RequestError::http(403, "expired"))),
        [
            "failed GetIceConfig: expired (HTTP 403)",
            "credentials-rejected"
        ]
    );
    assert_eq!(sim.session.state(), SessionState::Connected);
}

/// Closes the socket right after each connect and returns the retry delays.
fn close_loop(sim: &mut Sim, rounds: usize) -> Vec<Duration> {
    let mut socket = 4;
    let mut delays = Vec::new();
    for _ in 0..rounds {
        let closed_at = sim.now;
        sim.socket_closed(socket);
        let at = sim.session.poll_timeout().unwrap();
        delays.push(at - closed_at);
        assert_eq!(
            sim.tick(),
            [
                "state Connecting".to_owned(),
                format!("connect #{} wss://v-1.example viewer-1", socket + 1)
            ]
        );
        socket += 1;
        sim.connected(socket);
    }
    delays
}

#[test]
fn unexpected_close_backs_off_exponentially_up_to_the_cap() {
    let mut sim = Sim::new(viewer_config().jitter(BackoffJitter::None));
    sim.connect();
    assert_eq!(
        sim.socket_closed(4),
        ["state WaitingToRetry", "retry 1 at 1.000s"]
    );
    assert_eq!(
        sim.tick(),
        ["state Connecting", "connect #5 wss://v-1.example viewer-1"]
    );
    sim.connected(5);
    let delays: Vec<u64> = close_loop_from(&mut sim, 5, 7)
        .iter()
        .map(Duration::as_secs)
        .collect();
    assert_eq!(delays, [2, 4, 8, 16, 30, 30, 30]);
}

/// Like [`close_loop`], starting from socket `first`.
fn close_loop_from(sim: &mut Sim, first: u64, rounds: usize) -> Vec<Duration> {
    let mut socket = first;
    let mut delays = Vec::new();
    for _ in 0..rounds {
        let closed_at = sim.now;
        sim.socket_closed(socket);
        delays.push(sim.session.poll_timeout().unwrap() - closed_at);
        sim.tick();
        socket += 1;
        sim.connected(socket);
    }
    delays
}

#[test]
fn unexpected_close_backoff_uses_the_seeded_equal_jitter() {
    let mut sim = Sim::viewer();
    sim.connect();
    let delays: Vec<u128> = close_loop(&mut sim, 8)
        .iter()
        .map(Duration::as_millis)
        .collect();
    // Each delay lies between half and all of 1, 2, 4, 8, 16, 30, 30, 30 s.
    assert_eq!(
        delays,
        [783, 1_746, 3_942, 5_777, 11_554, 26_444, 28_161, 22_846]
    );
}

#[test]
fn full_jitter_stays_within_the_delay() {
    let mut sim = Sim::new(viewer_config().jitter(BackoffJitter::Full));
    sim.connect();
    let delays = close_loop(&mut sim, 8);
    for (delay, cap) in delays.iter().zip([1, 2, 4, 8, 16, 30, 30, 30]) {
        assert!(*delay <= secs(cap), "{delay:?} > {cap}s");
    }
}

#[test]
fn a_stable_connection_resets_the_backoff() {
    let mut sim = Sim::new(viewer_config().jitter(BackoffJitter::None));
    sim.connect();
    close_loop(&mut sim, 3);
    assert_eq!(sim.session.failures, 3);
    sim.advance(secs(10));
    assert_eq!(
        sim.socket_closed(7),
        ["state WaitingToRetry", "retry 1 at 18.000s"]
    );
}

#[test]
fn forbidden_restarts_from_describe_without_caches() {
    let mut sim = Sim::viewer();
    sim.connect();
    sim.advance(secs(60));
    sim.event(GO_AWAY);
    assert_eq!(
        sim.connect_failed(5, RequestError::http(403, "forbidden")),
        [
            "failed Connect: forbidden (HTTP 403)",
            "credentials-rejected",
            "state WaitingToRetry",
            "retry 1 at 60.783s"
        ]
    );
    assert_eq!(sim.tick(), ["state Describing", "describe #6 demo"]);
    sim.describe(6, Ok(channel_info()));
    // The ICE configuration was dropped with the rest.
    assert_eq!(
        sim.endpoints(7, Ok(Endpoints::new(WSS, HTTPS))),
        [
            "state GettingIceConfig",
            "ice #8 https://r-1.example viewer-1"
        ]
    );
}

#[test]
fn credentials_are_recognized_by_error_type_without_a_status() {
    let mut sim = Sim::viewer();
    sim.tick();
    let mut error = RequestError::new("denied");
    error.error_type = Some(ErrorType::AccessDeniedException);
    assert_eq!(
        sim.describe(1, Err(error)),
        [
            "failed Describe: denied (AccessDeniedException)",
            "credentials-rejected",
            "state WaitingToRetry",
            "retry 1 at 0.783s"
        ]
    );
}

#[test]
fn not_found_after_describe_restarts_from_describe() {
    let mut sim = Sim::viewer();
    sim.tick();
    sim.describe(1, Ok(channel_info()));
    sim.endpoints(2, Ok(Endpoints::new(WSS, HTTPS)));
    assert_eq!(
        sim.ice(3, Err(not_found())),
        [
            "failed GetIceConfig: not found (HTTP 404, ResourceNotFoundException)",
            "state WaitingToRetry",
            "retry 1 at 0.783s"
        ]
    );
    assert_eq!(sim.tick(), ["state Describing", "describe #4 demo"]);
}

#[test]
fn server_errors_retry_from_get_endpoints() {
    let mut sim = Sim::viewer();
    sim.connect();
    sim.advance(secs(60));
    sim.event(GO_AWAY);
    assert_eq!(
        sim.connect_failed(5, RequestError::http(500, "boom")),
        [
            "failed Connect: boom (HTTP 500)",
            "state WaitingToRetry",
            "retry 1 at 60.783s"
        ]
    );
    assert_eq!(
        sim.tick(),
        ["state GettingEndpoints", "endpoints #6 VIEWER"]
    );
    // Consecutive failures grow the backoff.
    assert_eq!(
        sim.endpoints(
            6,
            Err(RequestError::service(
                ErrorType::ClientLimitExceededException,
                "slow down"
            ))
        ),
        [
            "failed GetEndpoints: slow down (HTTP 400, ClientLimitExceededException)",
            "state WaitingToRetry",
            "retry 2 at 62.529s"
        ]
    );
    assert_eq!(
        sim.tick(),
        ["state GettingEndpoints", "endpoints #7 VIEWER"]
    );
    assert_eq!(
        sim.endpoints(7, Ok(Endpoints::new(WSS, HTTPS))),
        ["state Connecting", "connect #8 wss://v-1.example viewer-1"]
    );
}

#[test]
fn request_timeout_retries_and_the_late_result_is_ignored() {
    let mut sim = Sim::viewer();
    sim.tick();
    assert_eq!(sim.next_timeout(), "15.000s");
    assert_eq!(sim.advance(secs(14)), Vec::<String>::new());
    assert_eq!(
        sim.advance(secs(1)),
        [
            "failed Describe: no answer within 15s",
            "state WaitingToRetry",
            "retry 1 at 15.783s"
        ]
    );
    // Stale: the session no longer waits for #1.
    assert_eq!(sim.describe(1, Ok(channel_info())), Vec::<String>::new());
    assert_eq!(sim.session.state(), SessionState::WaitingToRetry);
    assert_eq!(sim.tick(), ["state Describing", "describe #2 demo"]);
    assert_eq!(sim.describe(1, Ok(channel_info())), Vec::<String>::new());
    assert_eq!(
        sim.describe(2, Ok(channel_info())),
        ["state GettingEndpoints", "endpoints #3 VIEWER"]
    );
    // A result of the wrong kind for the current id is ignored as well.
    assert_eq!(sim.ice(3, Ok(ice_servers(&[300]))), Vec::<String>::new());
}

#[test]
fn connect_timeout_abandons_the_socket_and_a_late_open_is_closed() {
    let mut sim = Sim::viewer();
    sim.tick();
    sim.describe(1, Ok(channel_info()));
    sim.endpoints(2, Ok(Endpoints::new(WSS, HTTPS)));
    sim.ice(3, Ok(ice_servers(&[300])));
    assert_eq!(sim.next_timeout(), "5.000s");
    assert_eq!(
        sim.tick(),
        [
            "close #4",
            "failed Connect: no answer within 5s",
            "state WaitingToRetry",
            "retry 1 at 5.783s"
        ]
    );
    assert_eq!(sim.connected(4), ["close #4"]);
    assert_eq!(sim.session.state(), SessionState::WaitingToRetry);
    assert_eq!(
        sim.tick(),
        ["state GettingEndpoints", "endpoints #5 VIEWER"]
    );
}

#[test]
fn close_stops_everything() {
    let mut sim = Sim::viewer();
    sim.connect();
    sim.session.close(sim.now);
    assert_eq!(sim.drain(), ["close #4", "state Closed"]);
    assert_eq!(sim.session.poll_timeout(), None);
    sim.session.close(sim.now);
    sim.session.handle_timeout(sim.now + secs(1000));
    assert_eq!(sim.event(GO_AWAY), Vec::<String>::new());
    assert_eq!(sim.socket_closed(4), Vec::<String>::new());
    assert_eq!(sim.ice(5, Ok(ice_servers(&[300]))), Vec::<String>::new());
    assert_eq!(sim.session.state(), SessionState::Closed);
    // A socket that opens after the close is closed at once.
    assert_eq!(sim.connected(9), ["close #9"]);
}

#[test]
fn close_while_requesting_or_connecting() {
    let mut sim = Sim::viewer();
    sim.tick();
    sim.session.close(sim.now);
    assert_eq!(sim.drain(), ["state Closed"]);
    assert_eq!(sim.describe(1, Ok(channel_info())), Vec::<String>::new());

    let mut sim = Sim::viewer();
    sim.tick();
    sim.describe(1, Ok(channel_info()));
    sim.endpoints(2, Ok(Endpoints::new(WSS, HTTPS)));
    sim.ice(3, Ok(ice_servers(&[300])));
    sim.session.close(sim.now);
    assert_eq!(sim.drain(), ["close #4", "state Closed"]);
}

#[test]
fn status_response_is_surfaced_and_relayed_messages_ignored() {
    let mut sim = Sim::viewer();
    sim.tick();
    // Not connected yet: nothing to act on.
    assert_eq!(sim.event(STATUS_RESPONSE), Vec::<String>::new());
    sim.describe(1, Ok(channel_info()));
    sim.endpoints(2, Ok(Endpoints::new(WSS, HTTPS)));
    sim.ice(3, Ok(ice_servers(&[300])));
    sim.connected(4);
    assert_eq!(
        sim.event(STATUS_RESPONSE),
        ["status 400 InvalidArgumentException"]
    );
    assert_eq!(sim.event(SDP_ANSWER), Vec::<String>::new());
    assert_eq!(sim.session.state(), SessionState::Connected);
}

#[test]
fn gives_up_after_max_reconnect_attempts() {
    let mut sim = Sim::new(viewer_config().max_reconnect_attempts(Some(2)));
    sim.tick();
    sim.tick(); // describe #1 times out: retry 1
    sim.tick();
    sim.tick(); // describe #2 times out: retry 2
    sim.tick();
    assert_eq!(
        sim.tick(),
        [
            "failed Describe: no answer within 15s",
            "state Failed",
            "gave up: gave up after 3 consecutive failures; the last: no answer within 15s"
        ]
    );
    assert_eq!(sim.session.poll_timeout(), None);
    assert_eq!(sim.describe(3, Ok(channel_info())), Vec::<String>::new());
}

#[test]
fn a_socket_closed_while_connecting_counts_as_a_connect_failure() {
    let mut sim = Sim::viewer();
    sim.tick();
    sim.describe(1, Ok(channel_info()));
    sim.endpoints(2, Ok(Endpoints::new(WSS, HTTPS)));
    sim.ice(3, Ok(ice_servers(&[300])));
    assert_eq!(
        sim.socket_closed(4),
        [
            "failed Connect: the socket closed while connecting",
            "state WaitingToRetry",
            "retry 1 at 0.783s"
        ]
    );
}

#[test]
fn endpoints_from_a_resource_endpoint_list() {
    let item = |protocol, url: &str| {
        let mut item = ResourceEndpointListItem::new();
        item.protocol = Some(protocol);
        item.resource_endpoint = Some(url.to_owned());
        item
    };
    let list = [
        item(ChannelProtocol::Https, HTTPS),
        item(ChannelProtocol::Webrtc, "https://w.example"),
        item(ChannelProtocol::Wss, WSS),
    ];
    assert_eq!(
        Endpoints::from_resource_list(&list),
        Some(Endpoints::new(WSS, HTTPS))
    );
    assert_eq!(Endpoints::from_resource_list(&list[..2]), None);
}

#[test]
fn timers_always_move_when_nothing_answers() {
    let mut sim = Sim::viewer();
    let mut last = sim.now;
    for _ in 0..200 {
        let at = sim.session.poll_timeout().unwrap();
        assert!(at >= last);
        sim.now = at;
        sim.session.handle_timeout(at);
        assert!(sim.session.poll_timeout().unwrap() > at);
        sim.drain();
        last = at;
    }
    // 200 timers: starts, 15 s timeouts and backoffs of at most 30 s.
    assert!(last.duration_since(sim.start) > secs(1000));
}

/// A script with failures, jitter and refreshes, rendered.
fn scripted_run(seed: u64) -> Vec<String> {
    let mut sim = Sim::with_seed(viewer_config(), seed);
    let mut log = Vec::new();
    sim.connect();
    log.extend(sim.socket_closed(4));
    log.extend(sim.tick());
    log.extend(sim.connect_failed(5, RequestError::http(500, "x")));
    log.extend(sim.tick());
    log.extend(sim.endpoints(6, Err(RequestError::new("reset"))));
    log.extend(sim.tick());
    log.extend(sim.tick());
    log.extend(sim.tick());
    log
}

#[test]
fn same_inputs_give_same_outputs() {
    assert_eq!(scripted_run(1), scripted_run(1));
    assert_ne!(scripted_run(1), scripted_run(2));
}

/// One random input.
#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    FireTimer,
    Answer { pick: usize, status: Option<u16> },
    SocketClosed(usize),
    Event(usize),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop_oneof![
        6 => Just(None),
        1 => prop::sample::select(vec![400_u16, 401, 403, 404, 408, 500, 503]).prop_map(Some),
    ];
    // Mostly the request the session waits for; sometimes an older, stale one.
    let pick = prop_oneof![8 => Just(0_usize), 1 => 1_usize..4];
    prop_oneof![
        10 => (0_u64..40_000).prop_map(Op::Advance),
        20 => Just(Op::FireTimer),
        40 => (pick.clone(), status).prop_map(|(pick, status)| Op::Answer { pick, status }),
        3 => pick.prop_map(Op::SocketClosed),
        6 => (0_usize..4).prop_map(Op::Event),
        1 => Just(Op::Close),
    ]
}

/// Runs `ops` and checks the invariants after each step; returns the rendered outputs.
fn run(config: ClientSessionConfig, ops: &[Op]) -> Vec<String> {
    let mut sim = Sim::new(config);
    let mut requests: Vec<(SessionRequestId, RequestKind)> = Vec::new();
    let mut open: BTreeSet<SessionRequestId> = BTreeSet::new();
    let mut log = Vec::new();
    for op in ops {
        let was_terminal = matches!(
            sim.session.state(),
            SessionState::Closed | SessionState::Failed
        );
        match *op {
            Op::Advance(ms) => {
                sim.now += Duration::from_millis(ms);
                sim.session.handle_timeout(sim.now);
            }
            Op::FireTimer => {
                if let Some(at) = sim.session.poll_timeout() {
                    sim.now = sim.now.max(at);
                }
                sim.session.handle_timeout(sim.now);
            }
            Op::Answer { pick, status } => {
                let Some(&(id, kind)) = requests.iter().rev().nth(pick) else {
                    continue;
                };
                let now = sim.now;
                let error = status.map(|s| RequestError::http(s, "injected"));
                let session = &mut sim.session;
                match (kind, error) {
                    (RequestKind::Describe, None) => {
                        session.handle_describe(now, id, Ok(channel_info()))
                    }
                    (RequestKind::Describe, Some(e)) => session.handle_describe(now, id, Err(e)),
                    (RequestKind::Create, e) => {
                        session.handle_create(now, id, e.map_or(Ok(()), Err))
                    }
                    (RequestKind::GetEndpoints, None) => {
                        session.handle_endpoints(now, id, Ok(Endpoints::new(WSS, HTTPS)));
                    }
                    (RequestKind::GetEndpoints, Some(e)) => {
                        session.handle_endpoints(now, id, Err(e))
                    }
                    (RequestKind::GetIceConfig, None) => {
                        session.handle_ice_config(now, id, Ok(ice_servers(&[60, 300])));
                    }
                    (RequestKind::GetIceConfig, Some(e)) => {
                        session.handle_ice_config(now, id, Err(e))
                    }
                    (RequestKind::Connect, None) => {
                        open.insert(id);
                        session.handle_connected(now, id);
                    }
                    (RequestKind::Connect, Some(e)) => session.handle_connect_failed(now, id, e),
                }
            }
            Op::SocketClosed(pick) => {
                if let Some(&(id, _)) = requests.iter().rev().nth(pick) {
                    open.remove(&id);
                    sim.session.handle_socket_closed(sim.now, id);
                }
            }
            Op::Event(which) => {
                let json = [GO_AWAY, RECONNECT_ICE_SERVER, STATUS_RESPONSE, SDP_ANSWER];
                sim.session.handle_event(sim.now, &event(json[which]));
            }
            Op::Close => sim.session.close(sim.now),
        }
        let terminal = matches!(
            sim.session.state(),
            SessionState::Closed | SessionState::Failed
        );
        let mut outputs = 0;
        while let Some(output) = sim.session.poll_output() {
            outputs += 1;
            match &output {
                SessionOutput::DescribeChannel { id, .. } => {
                    requests.push((*id, RequestKind::Describe))
                }
                SessionOutput::CreateChannel { id, .. } => {
                    requests.push((*id, RequestKind::Create))
                }
                SessionOutput::GetEndpoints { id, .. } => {
                    requests.push((*id, RequestKind::GetEndpoints))
                }
                SessionOutput::GetIceConfig { id, .. } => {
                    requests.push((*id, RequestKind::GetIceConfig))
                }
                SessionOutput::Connect { id, .. } => requests.push((*id, RequestKind::Connect)),
                SessionOutput::CloseSocket { id } => {
                    open.remove(id);
                }
                _ => {}
            }
            // Once closed or failed, the session only closes sockets that open late.
            assert!(
                !was_terminal || matches!(output, SessionOutput::CloseSocket { .. }),
                "{output:?} after the end"
            );
            log.push(sim.render(&output));
        }
        assert!(outputs <= ClientSession::MAX_QUEUED_OUTPUTS);
        // Timers move.
        assert!(
            sim.session.poll_timeout().is_none_or(|t| t > sim.now)
                || !matches!(op, Op::Advance(_) | Op::FireTimer)
        );
        // The session never leaves a socket it does not use open.
        match sim.session.phase {
            Phase::Connected { socket, .. } => assert_eq!(open, BTreeSet::from([socket])),
            _ => assert!(
                open.is_empty(),
                "{open:?} open in {:?}",
                sim.session.state()
            ),
        }
        if terminal {
            assert_eq!(sim.session.poll_timeout(), None);
        }
    }
    log
}

proptest! {
    #[test]
    fn random_inputs_keep_the_invariants_and_are_deterministic(
        ops in prop::collection::vec(op(), 0..120),
        create in any::<bool>(),
        cache in any::<bool>(),
        jitter in prop::sample::select(vec![BackoffJitter::None, BackoffJitter::Full, BackoffJitter::Equal]),
        max in prop::option::of(0_u32..4),
    ) {
        let config = viewer_config()
            .create_if_missing(create)
            .endpoint_cache(cache)
            .jitter(jitter)
            .max_reconnect_attempts(max);
        let first = run(config.clone(), &ops);
        prop_assert_eq!(first, run(config, &ops));
    }
}
