#!/usr/bin/env python3
"""The load scenarios of `cargo xtask bench`: our server and the reference relay, measured by
kvs-signaling-loadgen, side by side.

    bench-load.py --server BIN --loadgen BIN --out DIR [--quick]

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
"""

import argparse
import json
import os
import platform
import resource
import shutil
import signal
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


def loadgen(args, kind, endpoint, server_pid, mode, channels, extra, deadline, ca=None):
    argv = [args.loadgen, "run", "--endpoint", endpoint, "--access-key-id", KEY,
            "--secret-access-key", SECRET, "--mode", mode, "--channels", str(channels),
            "--viewers", "1", "--server-pid", str(server_pid), "--threads", "1",
            "--deadline", str(deadline), "--source-ips", "4"] + extra
    if kind == "reference":
        argv.append("--no-create")
    else:
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
        "Ours: `kvs-signaling serve` (one shard, SigV4 verified on every connect, every "
        "validation and rule on, rate limits raised). Reference: a plain tokio-tungstenite "
        "relay of the same frames, no validation, no authentication. Both measured by "
        "`kvs-signaling-loadgen` with the real protocol.",
        "",
        "| Figure | Ours | Reference | Ratio (ours/ref) | Goal |",
        "|---|---|---|---|---|",
    ]
    for f in report["figures"]:
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
    lines += ["", "Each row is one run of a fresh server; `report.json` holds every run's whole "
              "report. ![chart](chart.png)", ""]
    if report.get("errors"):
        lines += ["Runs that failed:", ""] + [f"- {e}" for e in report["errors"]] + [""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="run one server kind: ours or reference")
    parser.add_argument("--scenario", action="append", default=[],
                        help="run only this scenario (repeatable), e.g. tls-hold-full")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    raise_file_limit()
    runs = {"ours": {}, "reference": {}}
    errors = []
    kinds = [args.only] if args.only else ["ours", "reference"]
    with tempfile.TemporaryDirectory() as workdir:
        for name, mode, channels, extra, deadline, which, tls, repeat in scenarios(args.quick):
            if args.scenario and name not in args.scenario:
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
    report = {"machine": machine(), "quick": args.quick, "runs": runs, "errors": errors}
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
    python = subprocess.run(["bash", os.path.join(here, "bench-deps.sh")], capture_output=True,
                            text=True, check=False).stdout.strip()
    if python:
        subprocess.run([python, os.path.join(here, "bench-chart.py"),
                        os.path.join(args.out, "report.json"),
                        os.path.join(args.out, "chart.png")], check=False)
    print(markdown(report))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
