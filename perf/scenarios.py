"""perf/scenarios.py - the benchmark scenarios of issue 4 and their targets.

One list, used by perf/compare (runs each against ringmq and mosquitto) and
perf/flamegraph (records ringmq under one of them). Each scenario is one
ringmq-loadgen command line (without port, broker pid and timing flags, which
the scripts add) and the figures read from its JSON line.

A scenario with "tls_only" runs only with perf/compare --transport tls or wss
(select() leaves it out of "all" otherwise).

A metric's target is either
  ("ratio", X)    ringmq/mosquitto of a higher-is-better figure >= X, or
                  mosquitto/ringmq of a lower-is-better one >= X
  ("max", B)      ringmq's figure <= B (an absolute bound)
  None            shown for information only
"""

# key: JSON key of ringmq-loadgen; better: "higher" or "lower"
SCENARIOS = [
    {
        "name": "p2p-q0-w10",
        "title": "p2p QoS 0, 100 pairs, 64 B",
        "window": 10,
        "args": ["p2p", "--pairs", 100, "--qos", 0, "--payload", 64, "--window", 10],
        "metrics": [{"key": "msgs_per_broker_cpu_s", "label": "msgs/broker CPU s",
                     "better": "higher", "target": ("ratio", 8.7)}],
    },
    {
        "name": "p2p-q0-w1",
        "title": "p2p QoS 0, 100 pairs, 64 B",
        "window": 1,
        "args": ["p2p", "--pairs", 100, "--qos", 0, "--payload", 64, "--window", 1],
        "metrics": [{"key": "msgs_per_broker_cpu_s", "label": "msgs/broker CPU s",
                     "better": "higher", "target": ("ratio", 2.0)}],
    },
    {
        "name": "fanout-q0-w10",
        "title": "fan-out 1 -> 1000 QoS 0, 64 B",
        "window": 10,
        "args": ["fanout", "--pubs", 1, "--subs", 1000, "--qos", 0, "--payload", 64,
                 "--window", 10],
        "metrics": [{"key": "msgs_per_broker_cpu_s", "label": "msgs/broker CPU s",
                     "better": "higher", "target": ("ratio", 4.7)}],
    },
    {
        "name": "fanin-q0-w2",
        "title": "fan-in 1000 -> 1 QoS 0, 64 B",
        "window": 2,
        "args": ["fanin", "--pubs", 1000, "--subs", 1, "--qos", 0, "--payload", 64,
                 "--window", 2],
        "metrics": [{"key": "msgs_per_broker_cpu_s", "label": "msgs/broker CPU s",
                     "better": "higher", "target": ("ratio", 2.6)}],
    },
    {
        "name": "p2p-q1-w10",
        "title": "p2p QoS 1, 100 pairs, 64 B",
        "window": 10,
        "args": ["p2p", "--pairs", 100, "--qos", 1, "--payload", 64, "--window", 10],
        "metrics": [{"key": "msgs_per_broker_cpu_s", "label": "msgs/broker CPU s",
                     "better": "higher", "target": ("ratio", 10.0)}],
    },
    {
        # Issue 15: QoS 2's four packets (and, with --wal always and persistent
        # sessions, its tagged crossings and commit). No issue-4 target: information.
        "name": "p2p-q2-w10",
        "title": "p2p QoS 2, 100 pairs, 64 B",
        "window": 10,
        "args": ["p2p", "--pairs", 100, "--qos", 2, "--payload", 64, "--window", 10],
        "metrics": [{"key": "msgs_per_broker_cpu_s", "label": "msgs/broker CPU s",
                     "better": "higher", "target": None}],
    },
    {
        "name": "lat-50k",
        "title": "p2p QoS 0, 100 pairs x 500 msg/s = 50k msg/s, 64 B",
        "window": 10,
        "args": ["p2p", "--pairs", 100, "--qos", 0, "--payload", 64, "--rate", 500,
                 "--window", 10],
        "metrics": [{"key": "lat_p99_us", "label": "p99 latency us",
                     "better": "lower", "target": ("ratio", 1.0)}],
    },
    {
        "name": "conn",
        "title": "10,000 idle TCP connections, unpaced, fresh broker",
        "window": None,
        "fresh": True,
        "args": ["conn", "--conns", 10000, "--connect-rate", 0, "--keepalive", 60,
                 "--src-range", "127.0.3.1-127.0.3.250"],
        "metrics": [{"key": "connects_per_broker_cpu_s", "label": "connects/broker CPU s",
                     "better": "higher", "target": ("ratio", 3.0)},
                    {"key": "bytes_per_conn", "label": "broker bytes/conn",
                     "better": "lower", "target": ("max", 512)},
                    # Added by perf/compare: RSS slope over open files while connecting.
                    {"key": "marginal_bytes_per_conn", "label": "marginal bytes/conn",
                     "better": "lower", "target": None}],
    },
]

# Issue 11: TLS handshakes per broker CPU-second, full and resumed (session tickets).
# Few connections at a time, so later handshakes can resume the first one's ticket.
for _name, _title, _extra in (
        ("handshake", "2,000 TLS connects, full handshakes, 8 at a time", []),
        ("handshake-resumed", "2,000 TLS connects, resumed from a ticket, 8 at a time",
         ["--tls-resume"])):
    SCENARIOS.append({
        "name": _name,
        "title": _title,
        "window": None,
        "fresh": True,
        "tls_only": True,
        "args": ["conn", "--conns", 2000, "--connect-rate", 0, "--connect-concurrency", 8,
                 "--keepalive", 60] + _extra,
        "metrics": [{"key": "connects_per_broker_cpu_s", "label": "handshakes/broker CPU s",
                     "better": "higher", "target": ("ratio", 1.5)},
                    {"key": "bytes_per_conn", "label": "broker bytes/conn",
                     "better": "lower", "target": None}],
    })

BY_NAME = {s["name"]: s for s in SCENARIOS}


def select(names, tls=False):
    """Scenarios named in the comma-separated @names ('all' or None: every one that fits
    the transport, @tls or not), in list order."""
    if not names or names == "all":
        return [s for s in SCENARIOS if tls or not s.get("tls_only")]
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}; "
                         f"known: {', '.join(BY_NAME)}")
    no_tls = [n for n in wanted if BY_NAME[n].get("tls_only") and not tls]
    if no_tls:
        raise ValueError(f"scenario(s) {', '.join(no_tls)} measure TLS handshakes: "
                         "add --transport tls or wss")
    return [s for s in SCENARIOS if s["name"] in wanted]


def timing_args(scn, warmup, duration, drain):
    """The timing flags for @scn: conn holds for @duration; the others warm up and drain."""
    if scn["args"][0] == "conn":
        return ["--duration", duration]
    return ["--warmup", warmup, "--duration", duration, "--drain", drain]
