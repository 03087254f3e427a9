#!/usr/bin/env python3
"""Draws the load benchmark's chart: latency percentiles and memory per connection, ours
beside the reference relay.

    bench-chart.py REPORT.json OUT.png

REPORT.json is the report `kvs-signaling-loadgen bench` writes; the chart reads its "chart"
object: {"latency_us": {"ours": {"p50": .., "p90": .., "p99": .., "p99.9": ..},
"reference": {...}}, "memory_kib_per_connection": {"ours": .., "reference": ..}}.
matplotlib comes from scripts/bench-deps.sh (a virtual environment under target/).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        chart = json.load(f)["chart"]
    latency = chart.get("latency_us", {})
    memory = chart.get("memory_kib_per_connection", {})
    servers = [s for s in ("ours", "reference") if s in latency or s in memory]
    colors = {"ours": "#1f77b4", "reference": "#999999"}

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    percentiles = ["p50", "p90", "p99", "p99.9"]
    width = 0.8 / max(len(servers), 1)
    for i, server in enumerate(servers):
        values = [latency.get(server, {}).get(p) or 0 for p in percentiles]
        xs = [x + i * width for x in range(len(percentiles))]
        bars = left.bar(xs, values, width, label=server, color=colors.get(server))
        left.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=8)
    left.set_xticks([x + width * (len(servers) - 1) / 2 for x in range(len(percentiles))])
    left.set_xticklabels(percentiles)
    left.set_ylabel("one-way latency (µs)")
    left.set_title(chart.get("latency_title", "Latency at a fixed rate"))
    left.legend()

    values = [memory.get(s) or 0 for s in servers]
    bars = right.bar(servers, values, color=[colors.get(s) for s in servers])
    right.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=8)
    right.set_ylabel("KiB per idle connection")
    right.set_title(chart.get("memory_title", "Server memory"))

    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
