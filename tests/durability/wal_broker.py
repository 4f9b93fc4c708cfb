"""wal_broker.py - the ringmq built here with persistence on, restarted on one directory.

WalBroker(fsync, persistence) owns a temp dir: the log's directory (data/) and the config it writes
before every start (shards may change between starts; the log must re-home sessions).
The listener's port is picked once (a free loopback port) and kept across restarts, so
clients reconnect to the same address. start() waits for "ready: N shards running";
kill9() is the crash (SIGKILL, the log's only durability is what it synced); stop()
sends SIGTERM and returns the exit status; close() kills it and removes the directory.
It signals only the pid it started. wait_for() polls a condition for the tests; client()
connects a paho client; subscribe_and_leave() leaves a persistent subscriber behind;
skip_without_paho() exits 77 (ctest's skip) without paho; Verdict gathers a test's failures.
RINGMQ_WAL_TMPDIR (environment) is where the temp dir goes (default: the system's);
check_io_mode() says whether the log writes the way its file system allows.
"""
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

START_WAIT_S = 20.0
STOP_WAIT_S = 20.0
PR_SET_PDEATHSIG = 1


def skip_without_paho():
    """Exit 77 (ctest's skip) when python3-paho-mqtt is missing: every test's clients are paho."""
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        print("SKIP: python3-paho-mqtt is missing")
        sys.exit(77)


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def wait_for(pred, timeout=10.0):
    """True once @pred() is (polled every 20 ms), or its last answer after @timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(cid, port, clean, on_message=None):
    """A paho client connected to 127.0.0.1:@port, its loop started; returns it, the list
    its messages go to ((topic, payload, retain) tuples) and that list's lock."""
    import paho.mqtt.client as mqtt
    c = mqtt.Client(client_id=cid, clean_session=clean)
    got = []
    lock = threading.Lock()

    def on_msg(_c, _u, m):
        with lock:
            got.append((m.topic, m.payload, m.retain))

    c.on_message = on_message or on_msg
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got, lock


def subscribe_and_leave(port, cid, topic_filter, timeout=10.0):
    """A persistent session (clean session 0) @cid subscribes to @topic_filter at QoS 1
    and disconnects; True once its SUBACK came."""
    c, _, _ = client(cid, port, False)
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.subscribe(topic_filter, 1)
    ok = done.wait(timeout)
    c.disconnect()
    c.loop_stop()
    return ok


class Verdict:
    """What a test found wrong: each failure printed as it is found; ok while none is."""

    def __init__(self):
        self.ok = True

    def fail(self, what):
        self.ok = False
        print("FAIL: " + what)


def _kernel():
    """Linux's (major, minor), from a release such as 6.1.0-18-amd64 or 6.10-rc1."""
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _mount_options(path):
    """The mount options of the file system holding @path (the longest mount point)."""
    best, opts = "", set()
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            # /proc/mounts escapes a space, tab, newline or backslash as \ooo (octal).
            mnt = re.sub(r"\\([0-7]{3})", lambda e: chr(int(e.group(1), 8)), fields[1])
            inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best):
                best, opts = mnt, set(fields[3].split(","))
    return opts


class WalBroker:
    def __init__(self, fsync="always", persistence=""):
        self.dir = tempfile.mkdtemp(prefix="ringmq-wal-",
                                    dir=os.environ.get("RINGMQ_WAL_TMPDIR") or None)
        self.data = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "ringmq.ini")
        self.port = free_port()
        self.fsync = fsync
        self.persistence = persistence  # more [persistence] lines
        self.proc = None
        self.starts = 0

    def check_io_mode(self):
        """None, or what is wrong: with fsync = always the last start's log must say
        "direct I/O" on ext4 or xfs (Linux 6.1+ reports their direct I/O alignment; not
        when mounted data=journal or dax), "buffered writes" on tmpfs (no alignment)."""
        fs = subprocess.run(["stat", "-f", "-c", "%T", self.dir], capture_output=True,
                            text=True).stdout.strip()
        log = self.log_text()
        mode = ("direct" if "persistence: direct I/O" in log else
                "buffered" if "persistence: buffered writes" in log else None)
        want = {"ext2/ext3": "direct", "xfs": "direct", "tmpfs": "buffered"}.get(fs)
        if self.fsync != "always":
            want = "buffered"
        elif want == "direct" and (_kernel() < (6, 1) or
                                   _mount_options(self.dir) & {"data=journal", "dax"}):
            want = None
        print(f"the log's file system: {fs}; its writes: {mode}")
        if mode is None or (want is not None and mode != want):
            return f"on {fs} the log should write {want or 'direct or buffered'}, not {mode}"
        return None

    def log_path(self, n=None):
        return os.path.join(self.dir, f"ringmq.{self.starts if n is None else n}.log")

    def log_text(self, n=None):
        with open(self.log_path(n), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def start(self, shards):
        """Start on @shards shards; True once ready, False when it exited or timed out."""
        self.starts += 1
        with open(self.conf, "w") as f:
            f.write(f"""[broker]
log_level = info
shards = {shards}
[limits]
queued_max = 100000
[persistence]
enabled = true
dir = {self.data}
fsync = {self.fsync}
{self.persistence}
[listener.default]
bind = 127.0.0.1
port = {self.port}
""")
        log = open(self.log_path(), "wb")
        self.proc = subprocess.Popen([os.environ["RINGMQ_BIN"], "-c", self.conf], stdout=log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            if f"ready: {shards} shards running" in self.log_text():
                return True
            time.sleep(0.02)
        return False

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def close(self):
        """Kill what still runs and remove the directory (logs and segments)."""
        self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self):
        """SIGTERM; the exit status (None when it had to be killed)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None
