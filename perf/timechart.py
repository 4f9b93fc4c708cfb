#!/usr/bin/env python3
"""perf/timechart.py - line charts over time of what perf/scrape.py recorded, as one SVG.

One row per run (a scenario, broker and repeat), three panels each:
messages/s (received and sent: the counters' rise between two scrapes over
the time between them), queue depths (messages in session queues, inflight
windows and cross-shard links) and the broker's RSS in MiB. Plain SVG text,
no plotting library.

    perf/timechart.py compare-TS-scrape.jsonl [-o compare-TS-scrape.svg]

reads the JSON lines perf/compare --scrape writes ({"scenario", "broker",
"repeat", "samples": [...]}) and writes the chart next to them.
"""

import argparse
import json
import sys

PANEL_W, PANEL_H, GAP, LEFT, TOP, ROW_HEAD = 300, 150, 70, 70, 40, 34
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")

PANELS = (
    ("messages/s", "rate", (("ringmq_messages_received_total", "received"),
                           ("ringmq_messages_sent_total", "sent"))),
    ("queued messages", "gauge", (("ringmq_session_queued_messages", "session queues"),
                                  ("ringmq_session_inflight_messages", "inflight"),
                                  ("ringmq_shard_link_waiting_messages", "shard links"))),
    ("RSS MiB", "rss", (("rss", "RSS"),)),
)


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def series(samples, key, how):
    """[(t, value)] of @key in @samples: a gauge as is, a counter as a rate, RSS in MiB."""
    out = []
    prev = None
    for s in samples:
        v = s.get(key)
        if v is None:
            continue
        if how == "rate":
            if prev is not None and s["t"] > prev[0]:
                out.append((s["t"], max(0.0, v - prev[1]) / (s["t"] - prev[0])))
            prev = (s["t"], v)
        elif how == "rss":
            out.append((s["t"], v / 1048576.0))
        else:
            out.append((s["t"], v))
    return out


def fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 100 or v == int(v):
        return f"{v:.0f}"
    return f"{v:.1f}"


def panel(x0, y0, title, lines):
    """SVG elements of one panel at (@x0, @y0): axes, 0 and max labels, @lines [(label, pts)]."""
    pts_all = [p for _, pts in lines for p in pts]
    tmax = max([p[0] for p in pts_all] + [1.0])
    vmax = max([p[1] for p in pts_all] + [0.0]) * 1.1 or 1.0
    out = [f'<text x="{x0}" y="{y0 - 8}" font-weight="bold">{esc(title)}</text>',
           f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" '
           f'stroke="#999"/>',
           f'<text x="{x0 - 4}" y="{y0 + 10}" text-anchor="end">{fmt(vmax)}</text>',
           f'<text x="{x0 - 4}" y="{y0 + PANEL_H}" text-anchor="end">0</text>',
           f'<text x="{x0 + PANEL_W}" y="{y0 + PANEL_H + 14}" text-anchor="end">'
           f'{tmax:.0f} s</text>']
    for i, (label, pts) in enumerate(lines):
        color = COLORS[i % len(COLORS)]
        if pts:
            path = " ".join(f"{x0 + PANEL_W * t / tmax:.1f},{y0 + PANEL_H - PANEL_H * v / vmax:.1f}"
                            for t, v in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                       f'stroke-width="1.5"/>')
        out.append(f'<text x="{x0 + 6 + 110 * i}" y="{y0 + PANEL_H + 28}" fill="{color}">'
                   f'{esc(label)}</text>')
    return out


def svg(runs, title):
    """The whole chart for @runs [{"scenario", "broker", "repeat", "samples"}] as a string."""
    row_h = ROW_HEAD + PANEL_H + 50
    width = LEFT + len(PANELS) * (PANEL_W + GAP)
    height = TOP + row_h * max(len(runs), 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{esc(title)}</text>']
    for r, run in enumerate(runs):
        y = TOP + r * row_h
        out.append(f'<text x="{LEFT}" y="{y + 16}" font-size="13">'
                   f'{esc(run["scenario"])} / {esc(run["broker"])} / run {run["repeat"] + 1} '
                   f'({len(run["samples"])} scrapes)</text>')
        for p, (ptitle, how, keys) in enumerate(PANELS):
            lines = [(label, series(run["samples"], key, how)) for key, label in keys]
            out += panel(LEFT + p * (PANEL_W + GAP), y + ROW_HEAD + 14, ptitle, lines)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    p = argparse.ArgumentParser(prog="perf/timechart.py", description=__doc__.split("\n")[0])
    p.add_argument("jsonl", help="what perf/compare --scrape wrote (compare-TS-scrape.jsonl)")
    p.add_argument("-o", "--out", default=None, help="SVG to write (default: .jsonl -> .svg)")
    a = p.parse_args(argv)
    runs = []
    with open(a.jsonl) as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))
    out = a.out or (a.jsonl[:-len(".jsonl")] if a.jsonl.endswith(".jsonl") else a.jsonl) + ".svg"
    with open(out, "w") as f:
        f.write(svg(runs, f"ringmq /metrics over time ({len(runs)} runs)"))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
