"""perf/scrape.py - samples a running ringmq's GET /metrics and RSS during a benchmark.

A Scraper thread fetches http://127.0.0.1:PORT/metrics every period seconds
(one HTTP/1.1 connection, kept alive, reopened after an error), sums each
sample of the families in FAMILIES over its labels (every shard, QoS and
protocol) and records, per scrape, the seconds since start, those sums, the
broker's VmRSS from /proc and how long the request took. Used by
perf/compare --scrape; perf/timechart.py draws what it recorded.

Only the standard library (the pyenv python first on PATH has no
prometheus_client); the text format 0.0.4 lines it reads are
"name{labels} value" and "name value", comments skipped.
"""

import http.client
import re
import threading
import time

import libbench as lb

# The families summed per scrape (counters become rates in the chart).
FAMILIES = (
    "ringmq_messages_received_total",
    "ringmq_messages_sent_total",
    "ringmq_session_queued_messages",
    "ringmq_session_inflight_messages",
    "ringmq_shard_link_waiting_messages",
    "ringmq_clients_connected",
)

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
TIMEOUT_S = 5.0
SCRAPES_MAX = 100000  # a bound on one run's samples (a day at 1 s)


def sum_families(text, families=FAMILIES):
    """{family: sum of its samples' values} for the @families found in exposition @text."""
    sums = {}
    wanted = set(families)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = SAMPLE_RE.match(line)
        if m is None or m.group(1) not in wanted:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        sums[m.group(1)] = sums.get(m.group(1), 0.0) + v
    return sums


def metrics_port(log_path):
    """The port ringmq's log says its /metrics endpoint listens on, or None."""
    try:
        with open(log_path) as f:
            m = re.search(r"metrics listening on http://[0-9.]+:(\d+)/metrics", f.read())
    except OSError:
        return None
    return int(m.group(1)) if m else None


class Scraper:
    """Scrapes 127.0.0.1:@port/metrics and samples @pid's RSS every @period s until stop()."""

    def __init__(self, port, pid, period):
        self.port = port
        self.pid = pid
        self.period = period
        self.samples = []  # {"t": s, "rss": bytes, "ms": request ms, family: value...}
        self.errors = 0
        self._stop = threading.Event()
        self._conn = None
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _get(self):
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        self._conn.request("GET", "/metrics")
        r = self._conn.getresponse()
        body = r.read().decode()
        if r.status != 200:
            raise OSError(f"GET /metrics: HTTP {r.status}")
        return body

    def _loop(self):
        next_at = time.monotonic()
        while not self._stop.is_set() and len(self.samples) < SCRAPES_MAX:
            t = time.monotonic()
            try:
                body = self._get()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
            else:
                s = sum_families(body)
                s["t"] = t - self._t0
                s["ms"] = (time.monotonic() - t) * 1000.0
                s["rss"] = lb.proc_rss_bytes(self.pid)
                self.samples.append(s)
            next_at += self.period
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        if self._conn is not None:
            self._conn.close()

    def stop(self):
        """Stop the thread; returns the samples."""
        self._stop.set()
        self._thread.join(TIMEOUT_S * 2)
        return self.samples


def summary(samples):
    """Scrapes, median and largest request ms of @samples (for the log and the report)."""
    ms = [s["ms"] for s in samples]
    if not ms:
        return {"scrapes": 0}
    return {"scrapes": len(ms), "scrape_ms_p50": lb.median(ms), "scrape_ms_max": max(ms)}
