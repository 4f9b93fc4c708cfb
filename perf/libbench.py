"""perf/libbench.py - shared helpers for perf/compare, perf/flamegraph and perf/soak.

Starts brokers on this machine only (loopback, ephemeral or free ports, private
temporary configs; mosquitto is always run by hand, never as a service), runs
ringmq-loadgen and parses its JSON line, samples a process from /proc, and
makes sure every process it started is stopped again - by its own pid, never by
name. Standard library only (Python 3.9+).

Threads: none; every helper runs in the caller's thread.
"""

import atexit
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PERF_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(PERF_DIR)
RESULTS_DIR = os.path.join(PERF_DIR, "results")
MOSQUITTO = "/usr/sbin/mosquitto"

# Seconds a broker may take to start listening, and to stop after SIGTERM.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

_started = []  # every Popen this module started and has not reaped yet


def log(*args):
    """Progress for people, on stderr."""
    print(*args, file=sys.stderr, flush=True)


def raise_fd_limit():
    """Raise our soft RLIMIT_NOFILE to the hard limit (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timestamp():
    return time.strftime("%Y%m%d-%H%M%S")


def results_dir():
    os.makedirs(RESULTS_DIR, exist_ok=True)
    return RESULTS_DIR


def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


# ------------------------------------------------------------------ processes


def _track(proc):
    _started.append(proc)
    return proc


def stop_process(proc, timeout=STOP_TIMEOUT_S):
    """SIGTERM the process we started, wait, SIGKILL if it will not stop; return its status."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    if proc in _started:
        _started.remove(proc)
    return proc.returncode


def _stop_all():
    for proc in list(_started):
        try:
            stop_process(proc, timeout=3)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _on_signal(signum, frame):
    _stop_all()
    sys.exit(128 + signum)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def proc_rss_bytes(pid):
    """VmRSS of @pid in bytes, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def proc_cpu_s(pid):
    """utime + stime of @pid (all threads) in seconds, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def proc_fd_limit(pid):
    """The soft 'Max open files' of @pid, or None."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def marginal_bytes_per_conn(points, lo, hi):
    """Least-squares slope of RSS over open files, from (files, rss) @points in [lo, hi].

    The marginal cost of one more connection, free of fixed costs a broker
    touches only once traffic starts (buffer rings, pools, first-use pages)
    that (RSS_end - RSS_start) / N spreads over the connections. None when fewer
    than 3 points or too narrow a spread of files.
    """
    pts = [(f, r) for f, r in points if f is not None and r is not None and lo <= f <= hi]
    if len(pts) < 3:
        return None
    mx = sum(f for f, _ in pts) / len(pts)
    my = sum(r for _, r in pts) / len(pts)
    sxx = sum((f - mx) ** 2 for f, _ in pts)
    if sxx <= 0 or max(f for f, _ in pts) - min(f for f, _ in pts) < (hi - lo) / 4:
        return None
    return sum((f - mx) * (r - my) for f, r in pts) / sxx



_ACCEPT_RATE_KNOWN = {}


def _no_accept_rate(binary):
    """'accept_rate_max = 0' for a ringmq that knows the key, else nothing.

    The connect scenarios measure the raw connect path, so no admission
    rate; a baseline built before the key existed refuses it, and has no
    rate anyway. Asked once per binary with --test-config.
    """
    if binary not in _ACCEPT_RATE_KNOWN:
        with tempfile.NamedTemporaryFile("w", suffix=".ini") as f:
            f.write("[limits]\naccept_rate_max = 0\n")
            f.flush()
            r = subprocess.run([binary, "--test-config", "-c", f.name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _ACCEPT_RATE_KNOWN[binary] = r.returncode == 0
    return "accept_rate_max = 0\n" if _ACCEPT_RATE_KNOWN[binary] else ""


class Sampler:
    """Samples a process's open files, RSS and CPU every @period s on a thread until stop()."""

    def __init__(self, pid, period=0.05):
        self.pid = pid
        self.period = period
        self.points = []  # (monotonic s, files, rss bytes, cpu s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.points.append((time.monotonic(), proc_fd_count(self.pid),
                                proc_rss_bytes(self.pid), proc_cpu_s(self.pid)))
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        return self.points


# -------------------------------------------------------------------- brokers


class Broker:
    """One broker process started by us on 127.0.0.1; stop() it when done."""

    def __init__(self, kind, binary, workdir, shards="auto", conns_max=100000,
                 log_level="info", extra_ini="", transport="tcp", certs=None, wal="none"):
        """@transport: tcp, tls, ws or wss; tls and wss need @certs (make_certs()).
        @wal: none, or ringmq's write-ahead log with fsync always, interval or off in the
        broker's own directory; any but none gives mosquitto its persistence (autosave)."""
        self.kind = kind
        self.transport = transport
        self.certs = certs
        self.binary = binary
        self.shards = shards
        self.conns_max = conns_max
        self.log_level = log_level
        self.extra_ini = extra_ini
        self.wal = wal
        self.dir = tempfile.mkdtemp(prefix=f"{kind}-", dir=workdir)
        self.log_path = os.path.join(self.dir, f"{kind}.log")
        self.proc = None
        self.port = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        if self.kind == "ringmq":
            self._start_ringmq()
        elif self.kind == "mosquitto":
            self._start_mosquitto()
        else:
            raise ValueError(f"unknown broker {self.kind}")
        return self

    def _popen(self, argv):
        self._logf = open(self.log_path, "w")
        self.proc = _track(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._logf,
                                            stderr=subprocess.STDOUT, cwd=self.dir))

    def _start_ringmq(self):
        ini = os.path.join(self.dir, "ringmq.ini")
        with open(ini, "w") as f:
            f.write(f"[broker]\nlog_level = {self.log_level}\nshards = {self.shards}\n\n"
                    f"[limits]\nconnections_max = {self.conns_max}\n"
                    f"{_no_accept_rate(self.binary)}\n"
                    "[listener.default]\nbind = 127.0.0.1\nport = 0\nbacklog = 4096\n"
                    f"{self._ringmq_transport()}{self._ringmq_wal()}{self.extra_ini}")
        self._popen([self.binary, "-c", ini])
        pattern = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                m = pattern.search(f.read())
            if m:
                self.port = int(m.group(1))
                return
            if not self.alive():
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ringmq did not start listening; log: {self.log_path}\n"
                           + self.log_tail())

    def _ringmq_wal(self):
        if self.wal == "none":
            return ""
        return (f"\n[persistence]\nenabled = true\ndir = {os.path.join(self.dir, 'wal')}\n"
                f"fsync = {self.wal}\n")

    def _start_mosquitto(self):
        self.port = free_port()
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            transport = self._mosquitto_transport()
            f.write((transport if self.transport in ("ws", "wss")
                     else f"listener {self.port} 127.0.0.1\n{transport}") +
                    "allow_anonymous true\n"
                    + (f"persistence true\npersistence_location {self.dir}/\n"
                       if self.wal != "none" else "persistence false\n") +
                    "set_tcp_nodelay true\n"
                    "max_queued_messages 1000000\n"
                    "max_inflight_messages 20\n"
                    f"max_connections {self.conns_max}\n"
                    "log_dest stderr\n"
                    "log_type error\nlog_type warning\n"
                    f"{self.extra_ini}")
        self._popen([self.binary, "-c", conf])
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive():
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start on port {self.port}; log: {self.log_path}\n"
                           + self.log_tail())

    def _tls(self):
        if self.transport in ("tls", "wss") and self.certs is None:
            raise ValueError(f"transport {self.transport} needs certificates")
        return self.transport in ("tls", "wss")

    def _ringmq_transport(self):
        lines = "protocol = websockets\n" if self.transport in ("ws", "wss") else ""
        if self._tls():
            lines += f"certfile = {self.certs['server_crt']}\nkeyfile = {self.certs['server_key']}\n"
        return lines

    def _mosquitto_transport(self):
        lines = ""
        if self.transport in ("ws", "wss"):
            # mosquitto 2.0.11's libwebsockets listener ignores its bind address (it
            # listens on every interface, mosquitto#3045) and will not start as the only
            # listener (#2284): only inside a private network namespace, where loopback
            # is the only interface, and beside a plain listener on another port.
            if [name for _, name in socket.if_nameindex()] != ["lo"]:
                raise RuntimeError(
                    "mosquitto over ws/wss listens on every interface: run inside a private "
                    "network namespace, e.g. unshare -n sh -c 'ip link set lo up && "
                    "perf/compare --transport ws ...'")
            lines = f"listener {free_port()} 127.0.0.1\nlistener {self.port}\nprotocol websockets\n"
        if self._tls():
            lines += f"certfile {self.certs['server_crt']}\nkeyfile {self.certs['server_key']}\n"
        return lines

    def log_tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        rc = stop_process(self.proc)
        if getattr(self, "_logf", None):
            self._logf.close()
            self._logf = None
        return rc


def make_certs(workdir):
    """Throwaway CA and server certificate for tls/wss runs (tests/transport/certs.py).

    The key is made world-readable inside the private @workdir: mosquitto started as
    root drops to its own user before it reads it."""
    sys.path.insert(0, os.path.join(REPO_DIR, "tests", "transport"))
    import certs  # noqa: E402  (the test suite's helper: one way to make certificates)

    d = tempfile.mkdtemp(prefix="certs-", dir=workdir)
    os.chmod(workdir, 0o711)  # mosquitto's user may pass through, not list
    os.chmod(d, 0o755)
    made = certs.make(d)
    os.chmod(made["server_key"], 0o644)
    return made


def transport_args(transport, certs):
    """ringmq-loadgen flags for @transport (tcp adds none)."""
    if transport == "tcp":
        return []
    args = ["--transport", transport]
    if transport in ("tls", "wss"):
        args += ["--tls-ca", certs["ca"]]
    return args


def default_ringmq():
    """The broker binary: $RINGMQ, else the first of build-perf/, build/ that exists."""
    env = os.environ.get("RINGMQ")
    if env:
        return env
    for d in ("build-perf", "build"):
        p = os.path.join(REPO_DIR, d, "ringmq")
        if os.access(p, os.X_OK):
            return p
    return os.path.join(REPO_DIR, "build", "ringmq")


def default_loadgen(ringmq_bin):
    """ringmq-loadgen next to the broker (BUILD/perf/), else $RINGMQ_LOADGEN."""
    env = os.environ.get("RINGMQ_LOADGEN")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(ringmq_bin)), "perf", "ringmq-loadgen")


def check_executable(path, what, hint):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        log(f"{what} not found at {path}; {hint}")
        sys.exit(1)


# ------------------------------------------------------------------- loadgen


def loadgen_cmd(loadgen, scenario, args, broker, quiet=True):
    cmd = [loadgen, scenario] + [str(a) for a in args]
    cmd += ["--port", str(broker.port), "--broker-pid", str(broker.pid)]
    if quiet:
        cmd.append("--quiet")
    return cmd


def loadgen_bound_s(args):
    """A generous wall-clock bound for one generator run with these arguments."""
    def num(flag, default):
        if flag in args:
            try:
                return float(args[args.index(flag) + 1])
            except (ValueError, IndexError):
                return default
        return default
    return (num("--warmup", 2) + num("--duration", 10) + num("--drain", 2)
            + num("--connect-timeout", 10) * num("--connect-attempts", 3) + 60)


def run_loadgen(cmd, timeout, stderr_path=None):
    """Run one generator; return (json dict or None, exit status, stderr text).

    Exit statuses: 0 done, 1 setup, 2 run incomplete, 3 --check failed; 124 our
    timeout (the generator was stopped with SIGTERM, then SIGKILL).
    """
    proc = _track(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True))
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        rc = 124
    if proc in _started:
        _started.remove(proc)
    if stderr_path:
        with open(stderr_path, "a") as f:
            f.write(err)
    result = None
    for line in reversed(out.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                pass
            break
    return result, rc, err


class LoadgenProc:
    """One ringmq-loadgen started in the background (without --quiet).

    stdout (the JSON line) goes to a file; a thread reads the progress lines on
    stderr, so the caller can wait for a phase ("connect", "run", "drain") and
    see the latest counts. finish() waits (bounded), stops it if needed, and
    returns (json dict or None, exit status).
    """

    def __init__(self, cmd, workdir, name):
        self.cmd = [str(x) for x in cmd]
        self.name = name
        self.out_path = os.path.join(workdir, f"{name}.json")
        self.err_path = os.path.join(workdir, f"{name}.stderr")
        self._out = open(self.out_path, "w")
        self._err = open(self.err_path, "w")
        self.phase = None
        self.last_line = ""
        self._phase_seen = set()
        self._cond = threading.Condition()
        self.proc = _track(subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                            stderr=subprocess.PIPE, text=True))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        pattern = re.compile(r"^lg \[\s*[\d.]+s\] (\w+)")
        for line in self.proc.stderr:
            self._err.write(line)
            m = pattern.match(line)
            with self._cond:
                if m:
                    self.phase = m.group(1)
                    self._phase_seen.add(self.phase)
                    self.last_line = line.strip()
                self._cond.notify_all()
        with self._cond:
            self.phase = "exited"
            self._phase_seen.add("exited")
            self._cond.notify_all()

    def wait_phase(self, phase, timeout):
        """True once the generator reported @phase (False: timed out or it exited first)."""
        with self._cond:
            self._cond.wait_for(lambda: phase in self._phase_seen or
                                "exited" in self._phase_seen, timeout)
            return phase in self._phase_seen

    def running(self):
        return self.proc.poll() is None

    def interrupt(self):
        """SIGINT: the generator ends its measured interval early, drains and reports."""
        if self.running():
            self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout):
        rc = None
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.proc, timeout=15)
            rc = 124
        if self.proc in _started:
            _started.remove(self.proc)
        self._reader.join(timeout=5)
        self._out.close()
        self._err.close()
        result = None
        with open(self.out_path) as f:
            for line in reversed(f.read().splitlines()):
                if line.startswith("{"):
                    try:
                        result = json.loads(line)
                    except json.JSONDecodeError:
                        pass
                    break
        return result, rc

    def stderr_tail(self, n=10):
        try:
            with open(self.err_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def fmt_num(v, unit=""):
    """Human-friendly number: 1234567 -> '1.23M'."""
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e6:
        s = f"{v / 1e6:.2f}M"
    elif a >= 1e4:
        s = f"{v / 1e3:.1f}k"
    elif a >= 100 or float(v).is_integer():
        s = f"{v:.0f}"
    else:
        s = f"{v:.2f}"
    return s + unit
