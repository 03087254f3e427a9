#!/usr/bin/env python3
"""The load scenarios of `cargo xtask bench`: our server and the reference relay, measured by
kvs-signaling-loadgen, side by side.

    bench-load.py --server BIN --loadgen BIN --out DIR [--quick] [--filter TEXT]...

For each scenario it starts a fresh server (ours: `kvs-signaling serve`, in memory, plain
HTTP, one shard, SigV4 on; or the loadgen's reference relay), pinned to CPU 0, and runs the
generator pinned to CPU 1 (when the machine has two). It writes DIR/report.json (every
figure, the machine, the versions, each run's whole loadgen report), DIR/report.md (the
tables) and DIR/chart.png (latency percentiles and memory per connection).

Scenarios (--quick divides the sizes by 20 and the times by 5, for a smoke run):
- hold, 9,950 and 19,900 connections (a master and a viewer per channel): memory per idle
  connection at both sizes (linearity), connect rate with SigV4 verified;
- saturate: 500 master-viewer pairs, ~1 KB offers, a window of 8 per pair: relayed msgs/s
  and CPU per message; again with ~9.5 KB offers (`--payload large`);
- rate: 5,000 msgs/s over 19,900 connections, five runs: one-way latency percentiles (the
  median of the runs), beside the server's own relay-latency histogram over the same window
  (read from its /metrics), which tells the server's share of the tail from the rest;
- saturate at 250 pairs, for the linearity of throughput cost;
- TLS (ours only; the reference relay has none): hold 19,900 connections over wss:// (memory
  per idle TLS connection, connects per second with TLS handshakes) and saturate 500 pairs
  over wss:// (CPU per message).
- cluster (ours only; needs redis-server): two `serve --cluster` nodes on a redis-server of
  their own, beside one node with the same flags, three interleaved rounds of each:
  - cluster-saturate: 500 pairs with every client on the owner node (CPU per message against
    the single node's), then split, masters on the owner A and viewers on B (CPU per message
    on each node and in Redis, Redis commands per message);
  - cluster-rate: 5,000 msgs/s over 2,000 connections, split and all on the owner: one-way
    latency added to the single node's, Redis commands per message at that rate;
  - cluster-connect: 4,000 connects a run through the owner and through the other node
    (connects per second, Redis commands per connect), the claims of first connects, and
    what an idle cluster asks of Redis.

--filter TEXT runs only the scenarios whose name holds TEXT (`cluster`, `tls`, `saturate`);
the report then holds those alone.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

KEY = "AKIDBENCH"
SECRET = "bench-secret-not-for-production"

# Our limits raised so that the rate limits (5 SDP/s per connection) do not cap the
# benchmark; validation, SigV4 and every other rule stay on.
BENCH_TOML = """\
[limits]
sdp_per_second = 1000000
ice_candidates_per_second = 1000000
connects_per_second = 1000
max_pending_per_recipient = 1024
"""


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pinned(cpu, argv):
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)] + argv
    return argv


def start_server(kind, args, workdir, tls=False):
    """Starts a server; returns (process, endpoint). With `tls`, ours serves its development
    certificate from `workdir` (the CA is `workdir/tls/ca.pem`)."""
    if kind == "ours":
        config = os.path.join(workdir, "bench.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(BENCH_TOML)
        argv = [args.server, "serve", "--in-memory", "--listen", "127.0.0.1:0",
                "--shards", "1", "--access-key-id", KEY, "--secret-access-key", SECRET,
                "--config", config]
        argv += ["--data-dir", workdir] if tls else ["--no-tls"]
    else:
        argv = [args.loadgen, "reference-relay", "--listen", "127.0.0.1:0", "--threads", "1"]
    env = dict(os.environ, RUST_LOG="warn")
    process = subprocess.Popen(pinned(0, argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env, preexec_fn=raise_file_limit)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        words = line.split()
        if kind == "ours" and "is serving on" in line:
            return process, words[-1]
        if kind == "reference" and words:
            address = words[-1].split("://")[-1].rstrip("/")
            return process, "ws://" + address
    process.kill()
    raise RuntimeError(f"{kind} server did not start")


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def loadgen(args, kind, endpoint, server_pid, mode, channels, extra, deadline, ca=None,
            server_metrics=True):
    argv = [args.loadgen, "run", "--endpoint", endpoint, "--access-key-id", KEY,
            "--secret-access-key", SECRET, "--mode", mode, "--channels", str(channels),
            "--viewers", "1", "--server-pid", str(server_pid), "--threads", "1",
            "--deadline", str(deadline), "--source-ips", "4"] + extra
    if kind == "reference":
        argv.append("--no-create")
    elif server_metrics:
        argv.append("--server-metrics")
    if ca:
        argv += ["--ca-file", ca]
    started = time.time()
    done = subprocess.run(pinned(1, argv), capture_output=True, text=True,
                          preexec_fn=raise_file_limit, timeout=deadline + 60)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-5:]
        raise RuntimeError(f"loadgen {mode} against {kind} failed ({done.returncode}): "
                           + " | ".join(tail))
    report = json.loads(done.stdout)
    report["wall_seconds"] = round(time.time() - started, 2)
    return report


def scenarios(quick):
    scale = 20 if quick else 1
    short = 5 if quick else 1
    full = 9950 // scale
    pairs = 500 // scale * (1 if not quick else 4)
    saturate = ["--window", "8", "--duration", str(10 // short), "--warmup", "2"]
    hold = ["--duration", str(5 // short or 1)]
    rate = ["--rate", str(5000 // short), "--duration", str(10 // short), "--warmup", "2"]
    both, ours = ("ours", "reference"), ("ours",)
    # (name, mode, channels, loadgen flags, deadline, kinds, TLS, runs)
    return [
        ("hold-half", "hold", full // 2, hold, 240, both, False, 1),
        ("hold-full", "hold", full, hold, 300, both, False, 1),
        ("saturate", "saturate", pairs, saturate, 240, both, False, 1),
        ("saturate-large", "saturate", pairs, saturate + ["--payload", "large"], 240, both,
         False, 1),
        ("saturate-half", "saturate", pairs // 2, saturate, 240, both, False, 1),
        ("rate", "rate", full, rate, 300, both, False, 1 if quick else 5),
        ("tls-hold-full", "hold", full, hold, 300, ours, True, 1),
        ("tls-saturate", "saturate", pairs, saturate, 240, ours, True, 1),
    ]


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def median_run(reports):
    """One report standing for several runs: each latency figure the median of the runs'."""
    if len(reports) == 1:
        return reports[0]
    merged = dict(reports[len(reports) // 2])
    for key in ("latency_us", "server_relay_latency_us"):
        parts = [r.get(key) or {} for r in reports]
        names = set().union(*parts)
        merged[key] = {name: median([p.get(name) for p in parts]) for name in names}
    merged["rate"] = dict(merged.get("rate") or {})
    merged["rate"]["lost"] = sum((r.get("rate") or {}).get("lost", 0) for r in reports)
    merged["rate"]["achieved_per_second"] = median(
        [(r.get("rate") or {}).get("achieved_per_second") for r in reports])
    merged["runs"] = len(reports)
    return merged


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass

    def output(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "open_file_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "rustc": output(["rustc", "--version"]),
        "commit": output(["git", "rev-parse", "--short", "HEAD"]),
        "pinning": "server on CPU 0, generator on CPU 1" if shutil.which("taskset")
        and (os.cpu_count() or 1) >= 2 else "none",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def ratio(ours, reference):
    if ours is None or reference in (None, 0):
        return None
    return round(ours / reference, 2)


def summarize(runs):
    def get(kind, name, *path):
        value = runs.get(kind, {}).get(name)
        for key in path:
            if value is None:
                return None
            value = value.get(key)
        return value

    figures = []

    def add(label, unit, path, goal=None, better="higher"):
        ours, ref = get("ours", *path), get("reference", *path)
        if isinstance(ours, float):
            ours = round(ours, 2)
        if isinstance(ref, float):
            ref = round(ref, 2)
        met = None
        if goal is not None and ours is not None:
            met = goal(ours, ref)
        figures.append({"figure": label, "unit": unit, "ours": ours, "reference": ref,
                        "ratio": ratio(ours, ref), "goal_met": met, "better": better})

    add("connections held", "", ("hold-full", "connect", "held"))
    add("connect rate (ours: SigV4 verified)", "connects/s", ("hold-full", "connect", "per_second"),
        goal=lambda o, r: o >= 5000)
    half_conns = get("ours", "hold-half", "connect", "held")
    full_conns = get("ours", "hold-full", "connect", "held")
    add(f"server memory per idle connection, {half_conns} conns", "bytes",
        ("hold-half", "server", "rss_per_connection_bytes"), better="lower")
    add(f"server memory per idle connection, {full_conns} conns", "bytes",
        ("hold-full", "server", "rss_per_connection_bytes"),
        goal=lambda o, r: o <= 4096, better="lower")
    pairs = get("ours", "saturate", "pairs")
    half = get("ours", "saturate-half", "pairs")
    add(f"relayed msgs/s at saturation, 1 KB offers, {pairs} pairs", "msgs/s",
        ("saturate", "messages", "per_second"), goal=lambda o, r: r is not None and o >= r)
    add(f"relayed msgs/s at saturation, {half} pairs", "msgs/s",
        ("saturate-half", "messages", "per_second"))
    add(f"server CPU per message at saturation, {pairs} pairs", "µs",
        ("saturate", "server", "cpu_us_per_message"), better="lower")
    add(f"server CPU per message, {half} pairs", "µs",
        ("saturate-half", "server", "cpu_us_per_message"), better="lower")
    add("server CPU per message, ratio to the reference relay's", "",
        ("saturate", "server", "cpu_us_per_message"), better="lower")
    figures[-1]["ours"] = figures[-1]["ratio"]
    figures[-1]["reference"] = None
    if figures[-1]["ours"] is not None:
        figures[-1]["goal_met"] = figures[-1]["ours"] <= 0.55
    add("server CPU per message at saturation: share spent in the kernel", "",
        ("saturate", "server", "kernel_share"))
    # The kernel's share alone, against the reference's whole: how low the ratio could go
    # if our own code cost nothing.
    share = get("ours", "saturate", "server", "kernel_share")
    ours_cpu = get("ours", "saturate", "server", "cpu_us_per_message")
    ref_cpu = get("reference", "saturate", "server", "cpu_us_per_message")
    if None not in (share, ours_cpu, ref_cpu) and ref_cpu:
        figures.append({"figure": "server CPU per message, our kernel time alone as a ratio "
                        "to the reference's whole", "unit": "", "ours": round(
                            share * ours_cpu / ref_cpu, 2), "reference": None, "ratio": None,
                        "goal_met": None, "better": "lower"})
    large = get("ours", "saturate-large", "payload_len")
    add(f"relayed msgs/s at saturation, {large} B payloads, {pairs} pairs", "msgs/s",
        ("saturate-large", "messages", "per_second"))
    add(f"server CPU per message, {large} B payloads", "µs",
        ("saturate-large", "server", "cpu_us_per_message"), better="lower")
    runs_note = get("ours", "rate", "runs")
    for p in ("p50", "p90", "p99", "p999", "max"):
        goal = {"p99": (lambda o, r: o <= 500), "p999": (lambda o, r: o <= 2000)}.get(p)
        label = f"latency {p} at the fixed rate" + (f" (median of {runs_note} runs)"
                                                       if runs_note else "")
        add(label, "µs", ("rate", "latency_us", p), goal=goal, better="lower")
    for p in ("p50", "p99", "p999"):
        add(f"server's own relay latency {p} at the fixed rate (its /metrics)", "µs",
            ("rate", "server_relay_latency_us", p), better="lower")
    tls_conns = get("ours", "tls-hold-full", "connect", "held")
    add(f"TLS: server memory per idle connection, {tls_conns} conns", "bytes",
        ("tls-hold-full", "server", "rss_per_connection_bytes"),
        goal=lambda o, r: o <= 8192, better="lower")
    add("TLS: connects per second, TLS handshake and SigV4 verified", "connects/s",
        ("tls-hold-full", "connect", "per_second"))
    add(f"TLS: relayed msgs/s at saturation, {pairs} pairs", "msgs/s",
        ("tls-saturate", "messages", "per_second"))
    add("TLS: server CPU per message at saturation", "µs",
        ("tls-saturate", "server", "cpu_us_per_message"), better="lower")
    add(f"achieved rate, over {get('ours', 'rate', 'connect', 'held')} connections", "msgs/s",
        ("rate", "rate", "achieved_per_second"))
    add("lost messages at the fixed rate", "", ("rate", "rate", "lost"), better="lower")
    add("throttled (STATUS_RESPONSE) during saturation", "", ("saturate", "messages",
                                                               "status_responses"), better="lower")
    return figures


def markdown(report):
    m = report["machine"]
    lines = [
        "# Load benchmark",
        "",
        f"{m['date']}, commit {m['commit']}, {m['rustc']}.",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"open-file limit {m['open_file_limit']}; {m['pinning']}.",
        "",
    ]
    single_node = any(report["runs"].values())
    if single_node:
        lines += [
            "Ours: `kvs-signaling serve` (one shard, SigV4 verified on every connect, every "
            "validation and rule on, rate limits raised). Reference: a plain tokio-tungstenite "
            "relay of the same frames, no validation, no authentication. Both measured by "
            "`kvs-signaling-loadgen` with the real protocol.",
            "",
            "| Figure | Ours | Reference | Ratio (ours/ref) | Goal |",
            "|---|---|---|---|---|",
        ]
    for f in report["figures"] if single_node else []:
        def show(v):
            if v is None:
                return "n/a"
            if isinstance(v, float):
                return f"{v:,.2f}"
            return f"{v:,}"
        goal = {True: "met", False: "NOT met", None: ""}[f["goal_met"]]
        unit = f" {f['unit']}" if f["unit"] else ""
        lines.append(f"| {f['figure']} | {show(f['ours'])}{unit} | {show(f['reference'])}{unit} "
                     f"| {show(f['ratio'])} | {goal} |")
    if single_node:
        lines += ["", "Each row is one run of a fresh server; `report.json` holds every run's "
                  "whole report. ![chart](chart.png)", ""]
    if report.get("cluster"):
        lines += cluster_markdown(report["cluster"])
    if report.get("errors"):
        lines += ["Runs that failed:", ""] + [f"- {e}" for e in report["errors"]] + [""]
    return "\n".join(lines)


# The cluster scenarios ---------------------------------------------------------------------
#
# `kvs-signaling serve --cluster`: node A on 127.0.0.2 and node B on 127.0.0.3, on one
# redis-server of the benchmark's own, beside a single node started with the same flags less
# the cluster ones, all driven by the same generator. A channel's owner is the node its first
# connect lands on; the generator connects every master before any viewer, so with the masters
# on A, A owns every channel. Both nodes run on CPU 0 (the server's CPU of the single-node
# runs); Redis and the generator on CPU 1.

CLUSTER_PUBLIC_URL = "http://127.0.0.1:1"
NODE_A, NODE_B = "127.0.0.2", "127.0.0.3"
CLUSTER_PINNING = ("single node and both cluster nodes on CPU 0; redis-server and the "
                   "generator on CPU 1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_counters(addr):
    """Calls by command (`INFO commandstats`) and CPU seconds of the Redis at `addr`."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise RuntimeError(f"Redis at {addr} closed the connection")
            data += chunk
        header, body = data.split(b"\r\n", 1)
        length = int(header[1:])
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    calls, cpu = {}, 0.0
    for line in body[:length].decode().splitlines():
        key, _, value = line.partition(":")
        if key.startswith("cmdstat_"):
            calls[key[len("cmdstat_"):]] = int(value.split(",")[0].split("=")[1])
        elif key in ("used_cpu_user", "used_cpu_sys"):
            cpu += float(value)
    return calls, cpu


class RedisServer:
    """A redis-server on a free loopback port, its files in a temporary directory."""

    def __init__(self, workdir, cpu):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.url = f"redis://{self.addr}"
        directory = tempfile.mkdtemp(prefix="redis-", dir=workdir)
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                "--maxmemory-policy", "noeviction", "--dir", directory]
        self.process = subprocess.Popen(pinned(cpu, argv), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    stop(self.process)
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def idle(self, seconds):
        """What Redis does in `seconds` with nothing but the nodes' own upkeep."""
        calls_before, cpu_before = redis_counters(self.addr)
        started = time.time()
        time.sleep(seconds)
        calls_after, cpu_after = redis_counters(self.addr)
        elapsed = time.time() - started
        commands = {name: calls - calls_before.get(name, 0) for name, calls in
                    calls_after.items() if name != "info" and calls > calls_before.get(name, 0)}
        return {"seconds": round(elapsed, 2), "commands": commands,
                "calls_per_second": round(sum(commands.values()) / elapsed, 1),
                "cpu_share": round((cpu_after - cpu_before) / elapsed, 4)}


def start_node(args, workdir, ip, cpu, cluster_url=None, limits=""):
    """`kvs-signaling serve` on `ip`, a cluster node when `cluster_url` is given, with
    `limits` added to the `[limits]` of its config file; returns the process and its
    `host:port`."""
    config = os.path.join(workdir, "bench.toml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(BENCH_TOML + limits)
    argv = [args.server, "serve", "--no-tls", "--in-memory", "--no-console",
            "--listen", f"{ip}:0", "--shards", "1", "--access-key-id", KEY,
            "--secret-access-key", SECRET, "--config", config]
    if cluster_url:
        argv += ["--cluster", cluster_url, "--public-url", CLUSTER_PUBLIC_URL]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVS_")}
    env["RUST_LOG"] = "warn"
    process = subprocess.Popen(pinned(cpu, argv), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env,
                               preexec_fn=raise_file_limit)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.strip().startswith("listening on "):
            return process, line.split()[-1]
    stop(process)
    raise RuntimeError(f"node on {ip} did not start")


class Cluster:
    """redis-server and nodes A and B; everything stopped on exit."""

    def __init__(self, args, workdir, limits=""):
        self.redis = RedisServer(workdir, cpu=1)
        self.nodes = []
        try:
            for ip in (NODE_A, NODE_B):
                self.nodes.append(start_node(args, workdir, ip, 0, self.redis.url, limits))
        except RuntimeError:
            self.stop()
            raise
        (self.a, self.a_addr), (self.b, self.b_addr) = self.nodes

    def stop(self):
        for process, _ in self.nodes:
            stop(process)
        stop(self.redis.process)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


class Single:
    """One node, not in a cluster, with the cluster nodes' flags."""

    def __init__(self, args, workdir):
        self.process, self.addr = start_node(args, workdir, NODE_A, 0)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        stop(self.process)


def cluster_sizes(quick):
    """Rounds, sizes and generator flags of the cluster scenarios; each round runs every
    variant once."""
    if quick:
        return {"saturate_runs": 1, "rate_runs": 1, "connect_runs": 1, "pairs": 100,
                "rate_channels": 100, "connect_channels": 200,
                "saturate": ["--window", "8", "--duration", "1", "--warmup", "1"],
                "rate": ["--rate", "1000", "--duration", "1", "--warmup", "1"],
                "idle_seconds": 1}
    return {"saturate_runs": 5, "rate_runs": 3, "connect_runs": 3, "pairs": 500,
            "rate_channels": 1000, "connect_channels": 2000,
            "saturate": ["--window", "8", "--duration", "3", "--warmup", "1"],
            "rate": ["--rate", "5000", "--duration", "4", "--warmup", "2"],
            "idle_seconds": 3}


def run_on(args, control, pid, mode, channels, extra, masters=None, viewers=None,
           extra_pids=(), redis=None, deadline=180):
    """One generator run: the control plane at `control`, the masters connecting to
    `masters` and the viewers to `viewers` (both `host:port`; by default where the service
    says), the server `pid` measured, and `extra_pids` and `redis` beside it."""
    flags = list(extra) + ["--quiet"]
    if masters:
        flags += ["--ws-endpoint", "ws://" + masters]
    if viewers:
        flags += ["--viewer-ws-endpoint", "ws://" + viewers]
    for extra_pid in extra_pids:
        flags += ["--extra-pid", str(extra_pid)]
    if redis:
        flags += ["--redis-stats", redis]
    return loadgen(args, "ours", "http://" + control, pid, mode, channels, flags, deadline,
                   server_metrics=False)


# The batch linger of the `split-linger` variant: what an operator who prefers fewer Redis
# commands to latency would set.
LINGER_MS = 1


def cluster_variant(args, workdir, variant, mode, channels, extra):
    """One run of `variant` on fresh servers: `single` (one node), `local` (a cluster, every
    client on the owner A), `split` (masters on A, the owner; viewers on B) or `split-linger`
    (the same, the nodes with `cluster_batch_linger_ms` = `LINGER_MS`)."""
    if variant == "single":
        with Single(args, workdir) as single:
            return run_on(args, single.addr, single.process.pid, mode, channels, extra)
    limits = f"cluster_batch_linger_ms = {LINGER_MS}\n" if variant == "split-linger" else ""
    with Cluster(args, workdir, limits) as cluster:
        return run_on(args, cluster.a_addr, cluster.a.pid, mode, channels, extra,
                      masters=cluster.a_addr,
                      viewers=cluster.b_addr if variant.startswith("split") else None,
                      extra_pids=[cluster.b.pid], redis=cluster.redis.addr)


def cluster_rounds(args, workdir, name, mode, channels, extra, runs, errors,
                   variants=("single", "local", "split")):
    """`runs` rounds of `variants`, interleaved so that the host's drift falls on all alike;
    the reports by variant (None for a failed run, so rounds pair)."""
    out = {variant: [] for variant in variants}
    for round_ in range(runs):
        for variant in out:
            print(f"bench: {name}, {variant} ({channels} channels, round {round_ + 1} of "
                  f"{runs})", file=sys.stderr, flush=True)
            try:
                out[variant].append(cluster_variant(args, workdir, variant, mode, channels,
                                                    extra))
            except (RuntimeError, subprocess.SubprocessError, json.JSONDecodeError) as err:
                errors.append(f"{name} {variant}: {err}")
                print(f"bench: {errors[-1]}", file=sys.stderr, flush=True)
                out[variant].append(None)
    return out


def cluster_connect(args, workdir, sizes, errors):
    """Connects per second: on a single node, and on a cluster through the owner A (first
    connects, which claim the channels, then again) and through B, which owns nothing (first
    while it does not know the owners, then again); all connections of a run (masters and
    viewers) go to one node."""
    channels, runs = sizes["connect_channels"], sizes["connect_runs"]
    hold = ["--duration", "0"]
    out = {"single_first": None, "single": [], "owner_first": None, "non_owner_first": None,
           "owner": [], "non_owner": [], "idle_empty": None, "idle_owned": None}

    def attempt(key, label, run):
        print(f"bench: cluster-connect, {label} ({channels * 2} connects)", file=sys.stderr,
              flush=True)
        try:
            report = run()
        except (RuntimeError, subprocess.SubprocessError, json.JSONDecodeError) as err:
            errors.append(f"cluster-connect {label}: {err}")
            print(f"bench: {errors[-1]}", file=sys.stderr, flush=True)
            report = None
        if isinstance(out[key], list):
            out[key].append(report)
        else:
            out[key] = report

    try:
        with Single(args, workdir) as single:
            def on_single():
                return run_on(args, single.addr, single.process.pid, "hold", channels, hold)
            attempt("single_first", "single node, first connects", on_single)
            for i in range(runs):
                attempt("single", f"single node, again ({i + 1} of {runs})", on_single)
        with Cluster(args, workdir) as cluster:
            out["idle_empty"] = cluster.redis.idle(sizes["idle_seconds"])

            def on(node):
                return lambda: run_on(args, cluster.a_addr, cluster.a.pid, "hold", channels,
                                      hold, masters=node, extra_pids=[cluster.b.pid],
                                      redis=cluster.redis.addr)
            attempt("owner_first", "through A, first connects (claims)", on(cluster.a_addr))
            attempt("non_owner_first", "through B, which looks the owner up",
                    on(cluster.b_addr))
            for i in range(runs):
                attempt("owner", f"through the owner A ({i + 1} of {runs})", on(cluster.a_addr))
                attempt("non_owner", f"through B, not the owner ({i + 1} of {runs})",
                        on(cluster.b_addr))
            # The closes of the last run's sockets reach the owner within a second.
            time.sleep(2)
            out["idle_owned"] = cluster.redis.idle(sizes["idle_seconds"])
    except (RuntimeError, OSError) as err:
        errors.append(f"cluster-connect: {err}")
    return out


CLUSTER_SCENARIOS = ("cluster-saturate", "cluster-rate", "cluster-connect")


def run_cluster(args, workdir, selected, errors):
    """The cluster scenarios that `selected(name)` picks; None when none is."""
    names = [name for name in CLUSTER_SCENARIOS if selected(name)]
    if not names:
        return None
    if not shutil.which("redis-server"):
        errors.append("cluster scenarios skipped: no redis-server (scripts/install-test-deps.sh "
                      "installs it)")
        return None
    sizes = cluster_sizes(args.quick)
    load_before = os.getloadavg()
    runs = {}
    if "cluster-saturate" in names:
        runs["saturate"] = cluster_rounds(args, workdir, "cluster-saturate", "saturate",
                                          sizes["pairs"], sizes["saturate"],
                                          sizes["saturate_runs"], errors)
    if "cluster-rate" in names:
        runs["rate"] = cluster_rounds(args, workdir, "cluster-rate", "rate",
                                      sizes["rate_channels"], sizes["rate"], sizes["rate_runs"],
                                      errors, ("single", "local", "split", "split-linger"))
    if "cluster-connect" in names:
        runs["connect"] = cluster_connect(args, workdir, sizes, errors)
    return {"sizes": sizes, "pinning": CLUSTER_PINNING, "runs": runs,
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "figures": cluster_figures(runs, sizes)}


def pick(report, path):
    """The value at `path` (keys, and indexes into lists) in `report`; None if absent."""
    value = report
    for key in path:
        if value is None:
            return None
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and len(value) > key else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
    return value


def values(reports, *path):
    return [pick(r, path) for r in reports or [] if r is not None]


def cluster_figures(runs, sizes):
    """The cluster table: each row a figure with its baseline, the cluster's value, their
    ratio or difference, and every run's values."""
    figures = []

    def add(label, unit, base, value, compare="ratio", goal=None, met=None, per_run=None):
        """`base` and `value` are lists of run values (or one value); the row shows their
        medians."""
        def mid(v):
            return median(v) if isinstance(v, list) else v
        b, c = mid(base), mid(value)
        versus = None
        if b is not None and c is not None:
            if compare == "ratio" and b:
                versus = round(c / b, 3)
            elif compare == "added":
                versus = round(c - b, 1)
        # A goal on the comparison needs it; a goal on the cluster's value alone needs that.
        judged = versus if compare is not None else c
        figures.append({"figure": label, "unit": unit, "baseline": b, "cluster": c,
                        "compare": compare if versus is not None else None, "versus": versus,
                        "goal": goal,
                        "goal_met": met(versus, c) if met and judged is not None else None,
                        "runs": per_run or {"baseline": base if isinstance(base, list) else None,
                                            "cluster": value if isinstance(value, list)
                                            else None}})

    def paired(a, b, path_a, path_b=None):
        """Run-by-run ratios b/a of rounds where both ran."""
        out = []
        for ra, rb in zip(a, b):
            x, y = pick(ra, path_a), pick(rb, path_b or path_a)
            if ra is not None and rb is not None and x and y is not None:
                out.append(round(y / x, 3))
        return out

    sat = runs.get("saturate")
    if sat:
        single, local, split = sat["single"], sat["local"], sat["split"]
        cpu = ("server", "cpu_us_per_message")
        pairs = sizes["pairs"]
        add(f"server CPU per relayed message, saturate {pairs} pairs: all clients on the owner "
            "(cluster: node A)", "µs", values(single, *cpu), values(local, *cpu), goal="≤ 1.1×",
            met=lambda v, c: v <= 1.1)
        ratios = paired(single, local, cpu)
        add("  the same, ratio run by run (rounds interleaved)", "", None, ratios or None,
            compare=None, per_run={"cluster": ratios})
        add("relayed msgs/s at saturation, all clients on the owner", "msgs/s",
            values(single, "messages", "per_second"), values(local, "messages", "per_second"))
        add("Redis commands per relayed message, all clients on the owner", "", None,
            values(local, "redis", "calls_per_message"), compare=None)
        add("relayed msgs/s at saturation, split (masters on A = owner, viewers on B)",
            "msgs/s", values(single, "messages", "per_second"),
            values(split, "messages", "per_second"))
        add("server CPU per relayed message, split: node A (owner, masters)", "µs",
            values(single, *cpu), values(split, *cpu))
        add("server CPU per relayed message, split: node B (viewers)", "µs",
            values(single, *cpu), values(split, "extra_processes", 0, "cpu_us_per_message"))
        both = [round(pick(r, cpu) + pick(r, ("extra_processes", 0, "cpu_us_per_message")), 3)
                for r in split if r is not None and pick(r, cpu) is not None
                and pick(r, ("extra_processes", 0, "cpu_us_per_message")) is not None]
        add("server CPU per relayed message, split: A and B together", "µs",
            values(single, *cpu), both)
        add("Redis CPU per relayed message, split", "µs", None,
            values(split, "redis", "cpu_us_per_message"), compare=None)
        add("Redis commands per relayed message, split at saturation", "", None,
            values(split, "redis", "calls_per_message"), compare=None, goal="well under 1",
            met=lambda v, c: c < 0.5)
        add("Redis commands a second, split at saturation", "calls/s", None,
            values(split, "redis", "calls_per_second"), compare=None)
    rate = runs.get("rate")
    if rate:
        single, local, split = rate["single"], rate["local"], rate["split"]
        target = pick(next((r for r in split + single if r), None), ("rate", "target_per_second"))
        for p in ("p50", "p99", "p999"):
            add(f"one-way latency {p} at {target} msgs/s, split (masters on A, viewers on B); "
                "cluster minus single", "µs", values(single, "latency_us", p),
                values(split, "latency_us", p), compare="added",
                goal="p99 added ≤ 1,000 µs" if p == "p99" else None,
                met=(lambda v, c: v <= 1000) if p == "p99" else None)
        for p in ("p50", "p99"):
            add(f"one-way latency {p} at {target} msgs/s, all clients on the owner A", "µs",
                values(single, "latency_us", p), values(local, "latency_us", p),
                compare="added")
        add(f"Redis commands per relayed message at {target} msgs/s, split", "", None,
            values(split, "redis", "calls_per_message"), compare=None, goal="well under 1",
            met=lambda v, c: c < 0.5)
        lingered = rate.get("split-linger", [])
        if lingered:
            add(f"Redis commands per relayed message at {target} msgs/s, split, batch linger "
                f"{LINGER_MS} ms", "", None, values(lingered, "redis", "calls_per_message"),
                compare=None, goal="well under 1", met=lambda v, c: c < 0.5)
            # The linger spends the latency on purpose: no latency goal here.
            for p in ("p50", "p99"):
                add(f"one-way latency {p} at {target} msgs/s, split, batch linger {LINGER_MS} "
                    "ms; cluster minus single", "µs", values(single, "latency_us", p),
                    values(lingered, "latency_us", p), compare="added")
            add(f"Redis CPU per relayed message at {target} msgs/s, split, batch linger "
                f"{LINGER_MS} ms", "µs", None, values(lingered, "redis", "cpu_us_per_message"),
                compare=None)
        add(f"Redis CPU per relayed message at {target} msgs/s, split", "µs", None,
            values(split, "redis", "cpu_us_per_message"), compare=None)
        add(f"server CPU per relayed message at {target} msgs/s, split: node A", "µs",
            values(single, "server", "cpu_us_per_message"),
            values(split, "server", "cpu_us_per_message"))
        add(f"server CPU per relayed message at {target} msgs/s, split: node B", "µs",
            values(single, "server", "cpu_us_per_message"),
            values(split, "extra_processes", 0, "cpu_us_per_message"))
        add("messages lost at the fixed rate (sum of runs), split", "",
            sum(values(single, "rate", "lost")), sum(values(split, "rate", "lost")),
            compare=None)
        if rate.get("split-linger"):
            add(f"messages lost at the fixed rate (sum of runs), split, batch linger {LINGER_MS} "
                "ms", "", sum(values(single, "rate", "lost")),
                sum(values(rate["split-linger"], "rate", "lost")), compare=None)
    connect = runs.get("connect")
    if connect:
        per_second = ("connect", "per_second")
        first_single = [connect["single_first"]] if connect["single_first"] else []
        first_owner = [connect["owner_first"]] if connect["owner_first"] else []
        add("connects/s, first connect to each channel (cluster: through A, claiming it)",
            "connects/s", values(first_single, *per_second), values(first_owner, *per_second))
        add("connects/s, channels already live (cluster: through the owner A)", "connects/s",
            values(connect["single"], *per_second), values(connect["owner"], *per_second))
        first_b = [connect["non_owner_first"]] if connect["non_owner_first"] else []
        add("connects/s through B, which does not own the channels and looks each owner up "
            "(baseline: single node, again)", "connects/s",
            values(connect["single"], *per_second), values(first_b, *per_second))
        add("connects/s through B, which does not own the channels", "connects/s",
            values(connect["single"], *per_second), values(connect["non_owner"], *per_second))
        add("  the same, baseline the owner A", "connects/s",
            values(connect["owner"], *per_second), values(connect["non_owner"], *per_second))
        for p in ("p50", "p99"):
            add(f"connect latency {p} (TCP to 101), through B; baseline through the owner A",
                "µs", values(connect["owner"], "connect", "latency_us", p),
                values(connect["non_owner"], "connect", "latency_us", p))
        for key, label in (("owner_first", "first connect (claim) through A"),
                           ("owner", "through the owner A"),
                           ("non_owner_first", "through B, owner looked up"),
                           ("non_owner", "through B")):
            reports = connect[key] if isinstance(connect[key], list) else (
                [connect[key]] if connect[key] else [])
            add(f"Redis commands per connect, {label}", "", None,
                values(reports, "redis", "calls_per_connect"), compare=None)
            add(f"Redis CPU per connect, {label}", "µs", None,
                values(reports, "redis", "cpu_us_per_connect"), compare=None)
        for key, label in (("idle_empty", "no channels"),
                           ("idle_owned", f"{sizes['connect_channels']} channels owned, "
                                          "no connections")):
            idle = connect.get(key)
            if idle:
                add(f"Redis commands/s of the idle two-node cluster, {label}", "calls/s", None,
                    idle["calls_per_second"], compare=None)
    return figures


def cluster_markdown(cluster):
    def show(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        return f"{v:,}"

    sizes = cluster["sizes"]
    lines = [
        "## Cluster",
        "",
        f"Two nodes (`serve --cluster`, A on {NODE_A}, B on {NODE_B}) on one redis-server "
        "(AOF everysec), against one node with the same flags less the cluster ones; "
        f"{cluster['pinning']}. Each run on fresh servers (the connect runs share one "
        "cluster); medians of interleaved rounds ("
        + ", ".join(f"{sizes[name + '_runs']} {name}" for name in ("saturate", "rate", "connect")
                    if name in cluster["runs"])
        + "). A channel's owner is "
        "the node its first connect lands on: the masters connect first, to A. The host's "
        "load average (1 min) was {:.2f} before and {:.2f} after.".format(
            cluster["load_average"]["before"][0], cluster["load_average"]["after"][0]),
        "",
        "| Figure | Baseline (single node unless said) | Cluster | Cluster vs baseline | Goal |",
        "|---|---|---|---|---|",
    ]
    for f in cluster["figures"]:
        unit = f" {f['unit']}" if f["unit"] else ""
        versus = ""
        if f["compare"] == "ratio":
            versus = f"{f['versus']:.2f}×"
        elif f["compare"] == "added":
            versus = f"{f['versus']:+,.0f}{unit}"
        goal = f["goal"] or ""
        if f["goal_met"] is not None:
            goal += ": met" if f["goal_met"] else ": NOT met"
        base = show(f["baseline"])
        lines.append(f"| {f['figure']} | {base}{unit if base else ''} | "
                     f"{show(f['cluster'])}{unit if f['cluster'] is not None else ''} | "
                     f"{versus} | {goal} |")
    def listed(values):
        return ", ".join(show(v) for v in values) if values else "n/a"

    lines += ["", "Every run's values, in round order (baseline; cluster):", ""]
    for f in cluster["figures"]:
        r = f["runs"] or {}
        if r.get("cluster") and len(r["cluster"]) > 1:
            lines.append(f"- {f['figure'].strip()}: {listed(r.get('baseline'))}; "
                         f"{listed(r['cluster'])}")
    lines.append("")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="run one server kind: ours or reference")
    parser.add_argument("--scenario", action="append", default=[],
                        help="run only this scenario (repeatable), e.g. tls-hold-full")
    parser.add_argument("--filter", action="append", default=[],
                        help="run only the scenarios whose name holds this text (repeatable), "
                        "e.g. cluster, tls, saturate")
    args = parser.parse_args()

    def selected(name):
        return ((not args.scenario or name in args.scenario)
                and (not args.filter or any(f in name for f in args.filter)))

    os.makedirs(args.out, exist_ok=True)
    raise_file_limit()
    runs = {"ours": {}, "reference": {}}
    errors = []
    kinds = [args.only] if args.only else ["ours", "reference"]
    with tempfile.TemporaryDirectory() as workdir:
        for name, mode, channels, extra, deadline, which, tls, repeat in scenarios(args.quick):
            if not selected(name):
                continue
            for kind in [k for k in kinds if k in which]:
                reports = []
                for attempt in range(repeat):
                    print(f"bench: {name} against {kind} ({channels} channels, run "
                          f"{attempt + 1} of {repeat})", file=sys.stderr, flush=True)
                    with tempfile.TemporaryDirectory() as serverdir:
                        process, endpoint = start_server(kind, args, serverdir, tls)
                        ca = os.path.join(serverdir, "tls", "ca.pem") if tls else None
                        try:
                            reports.append(loadgen(args, kind, endpoint, process.pid, mode,
                                                   channels, extra + ["--quiet"], deadline, ca))
                        except (RuntimeError, subprocess.SubprocessError,
                                json.JSONDecodeError) as err:
                            errors.append(f"{name} against {kind}: {err}")
                            print(f"bench: {errors[-1]}", file=sys.stderr, flush=True)
                        finally:
                            stop(process)
                if reports:
                    runs[kind][name] = median_run(reports)
                    if repeat > 1:
                        runs[kind][name + "-runs"] = reports
        cluster = (run_cluster(args, workdir, selected, errors) if args.only != "reference"
                   else None)
    report = {"machine": machine(), "quick": args.quick, "runs": runs, "errors": errors}
    if cluster:
        report["cluster"] = cluster
    report["figures"] = summarize(runs)

    def latency(kind):
        values = runs.get(kind, {}).get("rate", {}).get("latency_us") or {}
        return {"p50": values.get("p50"), "p90": values.get("p90"), "p99": values.get("p99"),
                "p99.9": values.get("p999")}

    def memory(kind):
        value = (runs.get(kind, {}).get("hold-full", {}).get("server") or {}).get(
            "rss_per_connection_bytes")
        return None if value is None else value / 1024

    report["chart"] = {
        "latency_title": "One-way latency at the fixed rate",
        "latency_us": {k: latency(k) for k in kinds},
        "memory_kib_per_connection": {k: memory(k) for k in kinds},
    }
    with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as f:
        f.write(markdown(report))
    here = os.path.dirname(os.path.abspath(__file__))
    single_node = any(runs.values())
    if not single_node and os.path.exists(os.path.join(args.out, "chart.png")):
        # The chart shows single-node runs only: one left by an earlier run would mislead.
        os.remove(os.path.join(args.out, "chart.png"))
    python = single_node and subprocess.run(
        ["bash", os.path.join(here, "bench-deps.sh")], capture_output=True, text=True,
        check=False).stdout.strip()
    if python:
        subprocess.run([python, os.path.join(here, "bench-chart.py"),
                        os.path.join(args.out, "report.json"),
                        os.path.join(args.out, "chart.png")], check=False)
    print(markdown(report))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
