//! The run: setup, connect, the mode, the report; every phase bounded by the deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use kvs_signaling_proto::{ClientId, PeerId};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::channel::{Channel, Phase, Shared};
use crate::connect::{Connector, Failure, Job, Opened, Target};
use crate::payload::Frames;
use crate::report::{
    ConnectReport, LatencyReport, MessagesReport, ProbeReport, ProbeRound, ProcessReport,
    RateReport, Report,
};
use crate::stats::{self, Latencies, Stats};
use crate::{LoadError, Mode, RunConfig, redis_info, setup, sys};

/// How often the main task looks whether the channel tasks are done with a probe round.
const POLL: Duration = Duration::from_millis(20);

/// `rate`: the longest wait, after the window, for messages still in flight.
const MAX_DRAIN: Duration = Duration::from_secs(2);

/// The longest wait for the channel tasks to close their sockets at the end.
const MAX_STOP: Duration = Duration::from_secs(3);

/// Open files the generator needs besides its connections.
const SPARE_FILES: u64 = 64;

/// Connections above which one source address may run out of ephemeral ports (Linux's
/// default range holds 28,232).
const PORTS_PER_ADDRESS: usize = 25_000;

/// Runs `config` to the end (or to its deadline) and reports what it measured.
///
/// Single failures (a refused connect, a lost message, a closed socket) are counted in the
/// [`Report`]; an error means the run could not take place: bad settings, an unusable
/// endpoint, or no channel could be set up.
pub async fn run(config: RunConfig) -> Result<Report, LoadError> {
    config.validate()?;
    let origin = std::time::Instant::now();
    let deadline = Instant::now() + config.deadline;
    let stats = Arc::new(Stats::default());
    let (label, label_rx) = watch::channel("setup");
    let progress = config
        .progress
        .then(|| tokio::spawn(progress(Arc::clone(&stats), label_rx, config.connections())));
    let result = run_phases(&config, origin, deadline, &stats, &label).await;
    drop(label);
    if let Some(progress) = progress {
        progress.abort();
    }
    result
}

async fn run_phases(
    config: &RunConfig,
    origin: std::time::Instant,
    deadline: Instant,
    stats: &Arc<Stats>,
    label: &watch::Sender<&'static str>,
) -> Result<Report, LoadError> {
    let mut notes = Vec::new();
    let viewer_ids = (0..config.viewers)
        .map(|j| PeerId::new(format!("v{j}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| LoadError::config("--viewers", err.to_string()))?;
    let client_ids = (0..config.viewers)
        .map(|j| ClientId::new(format!("v{j}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| LoadError::config("--viewers", err.to_string()))?;

    let setup = setup::setup(config, deadline).await?;
    let mut deadline_hit = setup.deadline_hit;
    if deadline_hit {
        notes.push("the deadline passed during the setup".to_owned());
    }
    let ws_endpoint = config
        .ws_endpoint
        .clone()
        .unwrap_or_else(|| setup.ws_endpoint.clone());
    let target = Target::resolve(&ws_endpoint, Arc::clone(&setup.tls)).await?;
    let viewer_target = match &config.viewer_ws_endpoint {
        Some(endpoint) => Some(Target::resolve(endpoint, Arc::clone(&setup.tls)).await?),
        None => None,
    };
    let redis_addr = config
        .redis_stats
        .as_deref()
        .and_then(|addr| redis_info::address(addr).ok());

    let open_file_limit = sys::open_file_limit();
    let needed = config.connections() as u64 + SPARE_FILES;
    if let Some(limit) = open_file_limit.filter(|&limit| limit < needed) {
        let note = format!(
            "the open-file limit ({limit}) is below the {needed} files this run needs: raise it \
             with `ulimit -n` (the generator cannot raise it itself without unsafe code)"
        );
        eprintln!("kvs-signaling-loadgen: {note}");
        notes.push(note);
    }
    if config.connections() > PORTS_PER_ADDRESS && config.source_ips == 0 {
        notes.push(format!(
            "{} connections from one source address may exhaust its ephemeral ports: use \
             --source-ips",
            config.connections()
        ));
    }

    let server_pid = config.server_pid;
    let own_pid = std::process::id();
    let server_before = server_pid.map(Sample::take);
    let own_before = Sample::take(own_pid);
    let extra_before: Vec<Sample> = config
        .extra_pids
        .iter()
        .map(|&pid| Sample::take(pid))
        .collect();
    let redis_before = match &redis_addr {
        Some(addr) if config.mode == Mode::Hold => redis_info::sample(addr).await,
        _ => None,
    };

    // Connect.
    label.send_replace("connect");
    let connector = Connector {
        credentials: config.credentials.clone(),
        region: config.region.clone(),
        target: target.clone(),
        viewer_target: viewer_target.clone(),
        source_ips: config.source_ips,
        timeout: config.connect_timeout,
        retries: config.connect_retries,
    };
    let connected = connect_all(config, &setup.arns, &client_ids, connector, stats, deadline).await;
    let mut connect = connected.report;
    let redis_after_connect = match &redis_addr {
        Some(addr) if config.mode == Mode::Hold => redis_info::sample(addr).await,
        _ => None,
    };
    connect.open_file_limit = open_file_limit;
    if connected.deadline_hit {
        deadline_hit = true;
        notes.push("the deadline passed while connecting".to_owned());
    }

    // Start the channels.
    let open_pairs: usize = connected.channels.iter().map(Channel::open_pairs).sum();
    let frames = Frames::new(config.payload, config.correlation_ids, run_id());
    let (payload_len, frame_len) = frames.sizes();
    let master_frames: Vec<Utf8Bytes> = viewer_ids
        .iter()
        .map(|id| Utf8Bytes::from(frames.master(id, 0)))
        .collect();
    let start = origin.elapsed();
    let measure_from = start + config.warmup;
    let measure_until = measure_from + config.duration;
    let as_ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let shared = Arc::new(Shared {
        mode: config.mode,
        kind: config.payload,
        viewer_frame: Utf8Bytes::from(frames.viewer(0)),
        viewer_payload: frames.payload(false, 0).as_str().to_owned(),
        master_payload: frames.payload(true, 0).as_str().to_owned(),
        frames,
        master_frames,
        viewer_ids,
        origin,
        window: config.window,
        probe_timeout: config.probe_timeout,
        pair_rate: if open_pairs == 0 {
            0.0
        } else {
            config.rate as f64 / open_pairs as f64
        },
        measure_from_ns: as_ns(measure_from),
        measure_until_ns: as_ns(measure_until),
        late_threshold_us: u64::try_from(config.late_threshold.as_micros()).unwrap_or(u64::MAX),
        channels: config.channels,
        stats: Arc::clone(stats),
        latencies: Latencies::new(),
    });
    let (phase, phase_rx) = watch::channel(Phase::Run);
    let mut tasks = JoinSet::new();
    let task_count = connected.channels.len() as u64;
    for channel in connected.channels {
        tasks.spawn(channel.run(Arc::clone(&shared), phase_rx.clone()));
    }
    drop(phase_rx);
    // The window's ends on the tokio clock, at the same offsets from `origin` as the send
    // times in the payloads.
    let at = |offset: Duration| Instant::from_std(origin + offset);

    let mut probes = None;
    let mut messages = MessagesReport::default();
    let mut rate = None;
    let mut latency = None;
    let mut server_relay_latency = None;
    let server_after;
    let own_after;
    let extra_after: Vec<Sample>;
    let window_start;
    let mut extra_start = None;
    let mut redis_window = None;
    let measured;
    match config.mode {
        Mode::Hold => {
            label.send_replace("probe");
            let round_started = Instant::now();
            if !wait_for(
                || stats.probes[0].channels_done.get() >= task_count,
                deadline,
            )
            .await
            {
                deadline_hit = true;
                notes.push("the deadline passed during the first probe".to_owned());
            }
            let start_round = probe_round(stats, 0, config.pairs(), round_started);
            label.send_replace("hold");
            let hold_started = Instant::now();
            let hold_until = hold_started + config.duration;
            if !deadline_hit && sleep_until(hold_until, deadline).await {
                deadline_hit = true;
                notes.push("the deadline passed during the hold".to_owned());
            }
            measured = hold_started.elapsed();
            server_after = server_pid.map(Sample::take);
            own_after = Sample::take(own_pid);
            extra_after = config
                .extra_pids
                .iter()
                .map(|&pid| Sample::take(pid))
                .collect();
            window_start = None;
            label.send_replace("probe");
            let round_started = Instant::now();
            phase.send_replace(Phase::EndProbe);
            if !deadline_hit
                && !wait_for(
                    || stats.probes[1].channels_done.get() >= task_count,
                    deadline,
                )
                .await
            {
                deadline_hit = true;
                notes.push("the deadline passed during the last probe".to_owned());
            }
            let end_round = probe_round(stats, 1, config.pairs(), round_started);
            probes = Some(ProbeReport {
                start: start_round,
                end: end_round,
            });
            messages.received = stats.received.get();
            messages.sent = stats.sent.get();
        }
        Mode::Saturate | Mode::Rate => {
            label.send_replace("warmup");
            if sleep_until(at(measure_from), deadline).await {
                deadline_hit = true;
            }
            label.send_replace("measure");
            let from = Instant::now();
            let received_before = stats.received.get();
            let sent_before = stats.sent.get();
            window_start = Some((server_pid.map(Sample::take), Sample::take(own_pid)));
            extra_start = Some(
                config
                    .extra_pids
                    .iter()
                    .map(|&pid| Sample::take(pid))
                    .collect::<Vec<_>>(),
            );
            let redis_start = match &redis_addr {
                Some(addr) => redis_info::sample(addr).await,
                None => None,
            };
            let metrics_before = if config.server_metrics {
                crate::scrape::scrape(&target).await
            } else {
                None
            };
            if !deadline_hit && sleep_until(at(measure_until), deadline).await {
                deadline_hit = true;
            }
            measured = from.elapsed();
            server_after = server_pid.map(Sample::take);
            own_after = Sample::take(own_pid);
            extra_after = config
                .extra_pids
                .iter()
                .map(|&pid| Sample::take(pid))
                .collect();
            if let (Some(addr), Some(start)) = (&redis_addr, redis_start)
                && let Some(end) = redis_info::sample(addr).await
            {
                redis_window = Some((start, end));
            }
            if let Some(before) = &metrics_before
                && let Some(after) = crate::scrape::scrape(&target).await
            {
                server_relay_latency = after.since(before);
            }
            if deadline_hit {
                notes.push("the deadline passed before the measurement ended".to_owned());
            }
            if config.mode == Mode::Saturate {
                messages.received = stats.received.get().saturating_sub(received_before);
                messages.sent = stats.sent.get().saturating_sub(sent_before);
            } else {
                label.send_replace("drain");
                phase.send_replace(Phase::Drain);
                let drain_started = Instant::now();
                let drain_until = (drain_started + MAX_DRAIN).min(deadline);
                wait_for(
                    || stats.received_window.get() >= stats.sent_window.get(),
                    drain_until,
                )
                .await;
                let sent = stats.sent_window.get();
                let received = stats.received_window.get();
                let histogram = shared.latencies.snapshot();
                latency = Some(LatencyReport::from_histogram(&histogram));
                rate = Some(RateReport {
                    target_per_second: config.rate,
                    achieved_per_second: per_second(sent, measured),
                    sent,
                    received,
                    lost: sent.saturating_sub(received),
                    late: stats.late.get(),
                    late_threshold_ms: u64::try_from(config.late_threshold.as_millis())
                        .unwrap_or(u64::MAX),
                    skipped: stats.skipped.get(),
                    drain_seconds: drain_started.elapsed().as_secs_f64(),
                });
                messages.received = received;
                messages.sent = sent;
            }
        }
    }
    connect.held = stats.open.get();
    connect.closed_early = stats.closed_early.get();
    connect.close_codes = stats.close_codes();
    if connect.closed_early > 0 {
        notes.push(format!(
            "{} connections closed before the end, by close code: {:?}",
            connect.closed_early, connect.close_codes
        ));
    }

    // Stop.
    label.send_replace("stop");
    phase.send_replace(Phase::Stop);
    let stop_until = (Instant::now() + MAX_STOP).min(deadline.max(Instant::now()));
    while !tasks.is_empty() {
        match tokio::time::timeout_at(stop_until, tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    tasks.abort_all();

    messages.measured_seconds = measured.as_secs_f64();
    messages.per_second = per_second(messages.received, measured);
    messages.received_total = stats.received.get();
    messages.sent_total = stats.sent.get();
    messages.status_responses = stats.status_responses.get();
    messages.go_away = stats.go_away.get();
    messages.other_events = stats.other_events.get();
    messages.undecodable = stats.undecodable.get();
    messages.stale = stats.stale.get();
    messages.window_refills = stats.window_refills.get();
    if messages.status_responses > 0 {
        notes.push(format!(
            "the server refused {} messages with STATUS_RESPONSE (throttled? raise its [limits])",
            messages.status_responses
        ));
    }
    if messages.stale > 0 {
        notes.push(format!(
            "{} messages of an earlier run on the same channels arrived (buffered by the \
             server) and were ignored",
            messages.stale
        ));
    }
    if messages.window_refills > 0 {
        notes.push(format!(
            "{} times a pair went 2 s without an answer and had its window sent again: \
             messages were dropped (a rate limit without correlation ids drops silently)",
            messages.window_refills
        ));
    }

    let (server_start, own_start) = match window_start {
        Some((server, own)) => (server, own),
        None => (server_before.clone(), own_before.clone()),
    };
    let per_message = config.mode != Mode::Hold;
    let process = |pid: u32, before: &Sample, start: &Sample, after: &Sample| {
        process_report(
            pid,
            before,
            start,
            after,
            (config.mode == Mode::Hold).then_some(connect.held),
            per_message.then_some(messages.received),
            measured,
        )
    };
    let server = match (server_pid, &server_before, &server_start, &server_after) {
        (Some(pid), Some(before), Some(start), Some(after)) => {
            Some(process(pid, before, start, after))
        }
        _ => None,
    };
    let loadgen = process(own_pid, &own_before, &own_start, &own_after);
    let extra_start = extra_start.unwrap_or_else(|| extra_before.clone());
    let extra_processes = config
        .extra_pids
        .iter()
        .zip(&extra_before)
        .zip(&extra_start)
        .zip(&extra_after)
        .map(|(((&pid, before), start), after)| process(pid, before, start, after))
        .collect();
    let redis = match (&redis_addr, redis_window, redis_before, redis_after_connect) {
        (Some(addr), Some((start, end)), _, _) => {
            Some(end.since(&start, addr, Some(messages.received), None))
        }
        (Some(addr), None, Some(before), Some(after)) => {
            Some(after.since(&before, addr, None, Some(connect.connected)))
        }
        (Some(addr), ..) => {
            notes.push(format!(
                "the Redis at {addr} could not be read (--redis-stats)"
            ));
            None
        }
        (None, ..) => None,
    };

    Ok(Report {
        mode: config.mode,
        endpoint: config.endpoint.clone(),
        ws_endpoint: target.ws_endpoint,
        viewer_ws_endpoint: viewer_target.map(|target| target.ws_endpoint),
        payload: config.payload,
        payload_len,
        frame_len,
        channels: config.channels,
        viewers_per_channel: config.viewers,
        pairs: config.pairs(),
        threads: Some(tokio::runtime::Handle::current().metrics().num_workers()),
        elapsed_seconds: origin.elapsed().as_secs_f64(),
        deadline_hit,
        setup: setup.report,
        connect,
        probes,
        messages,
        latency_us: latency,
        rate,
        server,
        extra_processes,
        redis,
        server_relay_latency_us: server_relay_latency,
        loadgen,
        notes,
    })
}

/// An id for this run's payloads, different from an earlier run's: from the wall clock.
fn run_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    // Mixed down to 32 bits; never 0.
    let mixed = (nanos ^ (nanos >> 32) ^ (nanos >> 64)) as u32;
    mixed.max(1)
}

/// What [`connect_all`] opened.
struct Connected {
    channels: Vec<Channel>,
    report: ConnectReport,
    deadline_hit: bool,
}

/// Opens every connection, `connect_concurrency` at a time: the masters first, then the
/// viewers `v0` of every channel, then `v1`, and so on (which spreads each channel's connects
/// out in time, as its connect rate limit wants).
async fn connect_all(
    config: &RunConfig,
    arns: &[Option<kvs_signaling_proto::ChannelArn>],
    client_ids: &[ClientId],
    connector: Connector,
    stats: &Stats,
    deadline: Instant,
) -> Connected {
    let mut channels: Vec<Channel> = (0..arns.len())
        .map(|i| Channel::new(i, config.viewers))
        .collect();
    let mut jobs = Vec::with_capacity(config.connections());
    for viewer in std::iter::once(None).chain((0..config.viewers).map(Some)) {
        for (channel, arn) in arns.iter().enumerate() {
            let Some(arn) = arn else { continue };
            jobs.push(Job {
                seq: jobs.len(),
                channel,
                viewer,
                arn: arn.clone(),
                client_id: viewer.and_then(|j| client_ids.get(j).cloned()),
            });
        }
    }
    let connector = Arc::new(connector);
    let permits = Arc::new(Semaphore::new(config.connect_concurrency));
    let mut set = JoinSet::new();
    let mut latencies = stats::histogram();
    let mut errors = BTreeMap::new();
    let mut deadline_hit = false;
    let started = Instant::now();
    let mut placed = Placer {
        channels: &mut channels,
        latencies: &mut latencies,
        errors: &mut errors,
        stats,
    };
    for job in jobs {
        let permit =
            match tokio::time::timeout_at(deadline, Arc::clone(&permits).acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) | Err(_) => {
                    deadline_hit = true;
                    break;
                }
            };
        stats.connect_attempted.inc();
        let connector = Arc::clone(&connector);
        set.spawn(async move {
            let result = connector.open(&job).await;
            drop(permit);
            (job, result)
        });
        while let Some(done) = set.try_join_next() {
            placed.place(done);
        }
    }
    while !set.is_empty() {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(done)) => placed.place(done),
            Ok(None) => break,
            Err(_) => {
                deadline_hit = true;
                break;
            }
        }
    }
    // Connects still going at the deadline count as failed.
    let unfinished = set.len() as u64;
    set.abort_all();
    if unfinished > 0 {
        stats.connect_failed.add(unfinished);
        *errors.entry("deadline".to_owned()).or_default() += unfinished;
    }
    let seconds = started.elapsed();
    let connected = stats.connected.get();
    Connected {
        channels,
        report: ConnectReport {
            attempted: stats.connect_attempted.get(),
            connected,
            failed: stats.connect_failed.get(),
            retries: stats.connect_retries.get(),
            errors,
            seconds: seconds.as_secs_f64(),
            per_second: per_second(connected, seconds),
            latency_us: LatencyReport::from_histogram(&latencies),
            ..ConnectReport::default()
        },
        deadline_hit,
    }
}

/// A connect task's outcome: the job, and the connection or the failure with the retries.
type ConnectOutcome = Result<(Job, Result<Opened, (Failure, u32)>), JoinError>;

/// Puts finished connects where they belong.
struct Placer<'a> {
    channels: &'a mut [Channel],
    latencies: &'a mut Histogram<u64>,
    errors: &'a mut BTreeMap<String, u64>,
    stats: &'a Stats,
}

impl Placer<'_> {
    fn place(&mut self, done: ConnectOutcome) {
        let stats = self.stats;
        let failed = |errors: &mut BTreeMap<String, u64>, key: String| {
            stats.connect_failed.inc();
            *errors.entry(key).or_default() += 1;
        };
        match done {
            Ok((job, Ok(opened))) => {
                stats.connect_retries.add(u64::from(opened.retries));
                let slot =
                    self.channels
                        .get_mut(job.channel)
                        .and_then(|channel| match job.viewer {
                            None => Some(&mut channel.master),
                            Some(j) => channel.viewers.get_mut(j),
                        });
                if let Some(slot) = slot {
                    stats::record(
                        self.latencies,
                        u64::try_from(opened.latency.as_micros()).unwrap_or(u64::MAX),
                    );
                    *slot = Some(opened.ws);
                    stats.connected.inc();
                    stats.open.inc();
                }
            }
            Ok((_, Err((failure, retries)))) => {
                stats.connect_retries.add(u64::from(retries));
                failed(self.errors, failure.key());
            }
            Err(_) => failed(self.errors, "aborted".to_owned()),
        }
    }
}

/// A process's memory and CPU time at one moment.
#[derive(Debug, Clone)]
struct Sample {
    rss_kib: Option<u64>,
    cpu: Option<sys::CpuTimes>,
}

impl Sample {
    fn take(pid: u32) -> Self {
        Self {
            rss_kib: sys::rss_kib(pid),
            cpu: sys::cpu_times(pid),
        }
    }
}

/// The report of one process: memory from `before` (connecting) to `after`, CPU time from
/// `start` (of the window) to `after`.
fn process_report(
    pid: u32,
    before: &Sample,
    start: &Sample,
    after: &Sample,
    held: Option<u64>,
    messages: Option<u64>,
    measured: Duration,
) -> ProcessReport {
    let spent = match (start.cpu, after.cpu) {
        (Some(start), Some(after)) => Some((after.user - start.user, after.system - start.system)),
        _ => None,
    };
    let cpu_seconds = spent.map(|(user, system)| round(user + system, 2));
    let kernel_share = match spent {
        Some((user, system)) if user + system > 0.0 => Some(round(system / (user + system), 3)),
        _ => None,
    };
    let rss_per_connection_bytes = match (before.rss_kib, after.rss_kib, held) {
        (Some(before), Some(after), Some(held)) if held > 0 => Some(round(
            (after as f64 - before as f64) * 1024.0 / held as f64,
            0,
        )),
        _ => None,
    };
    let cpu_us_per_message = match (cpu_seconds, messages) {
        (Some(cpu), Some(messages)) if messages > 0 => Some(round(cpu * 1e6 / messages as f64, 3)),
        _ => None,
    };
    let cpu_utilization = match cpu_seconds {
        Some(cpu) if !measured.is_zero() => Some(round(cpu / measured.as_secs_f64(), 3)),
        _ => None,
    };
    ProcessReport {
        pid,
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
        rss_per_connection_bytes,
        cpu_seconds,
        cpu_us_per_message,
        kernel_share,
        cpu_utilization,
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10_f64.powi(digits);
    (value * scale).round() / scale
}

fn per_second(count: u64, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        round(count as f64 / over.as_secs_f64(), 1)
    }
}

/// The counters of probe round `round`.
fn probe_round(stats: &Stats, round: usize, pairs: usize, started: Instant) -> ProbeRound {
    let counters = &stats.probes[round.min(1)];
    let ok = counters.ok.get();
    ProbeRound {
        pairs: pairs as u64,
        ok,
        failed: (pairs as u64).saturating_sub(ok),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Sleeps until `until`, or the deadline if sooner; returns whether the deadline cut it short.
async fn sleep_until(until: Instant, deadline: Instant) -> bool {
    tokio::time::sleep_until(until.min(deadline)).await;
    until > deadline
}

/// Waits until `done()` holds, or `until`; returns whether it holds.
async fn wait_for(done: impl Fn() -> bool, until: Instant) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(POLL.min(until.saturating_duration_since(Instant::now()))).await;
    }
}

/// A line to stderr every second: the phase, connections, messages a second.
async fn progress(stats: Arc<Stats>, mut label: watch::Receiver<&'static str>, planned: usize) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut received, mut sent) = (0, 0);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = label.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        let (now_received, now_sent) = (stats.received.get(), stats.sent.get());
        eprintln!(
            "[{:>5.1}s] {:<7} connected {}/{} failed {} open {} | received {}/s sent {}/s | \
             status {} closed {}",
            started.elapsed().as_secs_f64(),
            *label.borrow(),
            stats.connected.get(),
            planned,
            stats.connect_failed.get(),
            stats.open.get(),
            now_received.saturating_sub(received),
            now_sent.saturating_sub(sent),
            stats.status_responses.get(),
            stats.closed_early.get(),
        );
        (received, sent) = (now_received, now_sent);
    }
}
