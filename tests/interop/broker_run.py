#!/usr/bin/env python3
"""broker_run.py - start one broker, run one interop driver against it, stop it.

    broker_run.py [--shards N] [--timeout S] [--needs PROG]... -- DRIVER [ARGS...]

The broker is the ringmq binary named by $RINGMQ_BIN, or Debian's
/usr/sbin/mosquitto when RINGMQ_E2E_MOSQUITTO=1 (the same switch as
tests/e2e/harness.c; used to validate the drivers against a reference
broker). Like the e2e harness it writes the broker's config to a fresh temp
dir (ringmq: port 0, the port read back from "listening on ADDR:PORT" in the
log; mosquitto: a free port picked here, retried if the race is lost),
tracks the one pid it started (killed with this process via
PR_SET_PDEATHSIG), and at the end sends that pid SIGTERM and requires exit
status 0 within 10 s. It never signals any other process.

The driver runs in its own process group with INTEROP_HOST, INTEROP_PORT and
INTEROP_BROKER (ringmq or mosquitto), INTEROP_TOPIC_ALIAS_MAX (the
Topic Alias Maximum configured) and INTEROP_KEEPALIVE_MAX (the longest keep
alive allowed: ringmq keepalive_max, mosquitto max_keepalive) in its environment, under --timeout
(default 60 s; on expiry its group is killed). Exit status: 0 when the driver
and the broker both ended well; 77 (CTest's skip) when a --needs program is
missing or the driver itself exits 77; 1 otherwise, after printing why and
the broker log's tail.
"""
import argparse
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MOSQUITTO_BIN = "/usr/sbin/mosquitto"
START_WAIT_S = 10.0
STOP_WAIT_S = 10.0
START_TRIES = 3
LOG_TAIL_BYTES = 64 * 1024
SKIP = 77
PR_SET_PDEATHSIG = 1
# Not either broker's default (10), so a driver's exact check of CONNACK's
# Topic Alias Maximum shows the configured value is the one advertised.
TOPIC_ALIAS_MAX = 7
# 60 s, as the Paho test suite's server keep-alive test expects (a client
# asking 120 s is told Server Keep Alive 60); every driver asks 60 s or less.
KEEPALIVE_MAX = 60  # as tests/interop/ringmq-interop.ini says
# ringmq's configuration (keepalive_max, the ACL denying test/nosubscribe).
FIXTURE_INI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ringmq-interop.ini")
# mosquitto's equivalent of the fixture's [acl] (anonymous clients' lines).
MOSQUITTO_ACL = "topic deny test/nosubscribe\ntopic readwrite #\ntopic readwrite $SYS/#\n"


def log(msg):
    print("broker_run: " + msg, file=sys.stderr, flush=True)


def mosquitto_mode():
    return os.environ.get("RINGMQ_E2E_MOSQUITTO") == "1"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def die_with_parent():
    """preexec_fn for the broker: SIGKILL it if this process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Broker:
    def __init__(self, shards, topic_alias_max):
        self.mosquitto = mosquitto_mode()
        self.shards = shards
        self.topic_alias_max = topic_alias_max
        self.dir = tempfile.mkdtemp(prefix="ringmq-interop-")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.conf_path = os.path.join(self.dir,
                                      "mosquitto.conf" if self.mosquitto else "ringmq.ini")
        self.proc = None
        self.port = 0

    def bin(self):
        if self.mosquitto:
            return MOSQUITTO_BIN
        return os.environ.get("RINGMQ_BIN", "")

    def write_config(self):
        if self.mosquitto:
            acl_path = os.path.join(self.dir, "acl")
            with open(acl_path, "w") as f:
                f.write(MOSQUITTO_ACL)
            # Started as root, mosquitto reads it after dropping to its own user.
            os.chmod(self.dir, 0o755)
            os.chmod(acl_path, 0o644)
            text = ("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type all\nconnection_messages true\n"
                    "max_topic_alias %d\nmax_keepalive %d\nacl_file %s\n"
                    % (self.port, self.topic_alias_max, KEEPALIVE_MAX, acl_path))
        else:
            with open(FIXTURE_INI) as f:
                fixture = f.read()
            if "keepalive_max = %d\n" % KEEPALIVE_MAX not in fixture:
                raise RuntimeError("%s: expected keepalive_max = %d" % (FIXTURE_INI,
                                                                        KEEPALIVE_MAX))
            fixture = fixture.replace("\n[mqtt]\n", "\n[mqtt]\ntopic_alias_max = %d\n"
                                      % self.topic_alias_max, 1)
            text = ("[broker]\nlog_level = debug\nshards = %d\n\n%s\n"
                    "[listener.default]\nbind = 127.0.0.1\nport = 0\n"
                    % (self.shards, fixture))
        with open(self.conf_path, "w") as f:
            f.write(text)

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def dump_log(self):
        text = self.read_log()
        if len(text) > LOG_TAIL_BYTES:
            text = "(tail)\n" + text[-LOG_TAIL_BYTES:]
        print("---- broker log %s:\n%s\n---- end of broker log" % (self.log_path, text),
              file=sys.stderr, flush=True)

    def parse_port(self):
        for line in self.read_log().splitlines(keepends=True):
            # The text log puts "| shard=N ..." after the message.
            m = re.search(r"listening on \S*:(\d+)", line)
            if m is not None and line.endswith("\n"):
                port = int(m.group(1))
                if 0 < port < 65536:
                    self.port = port
                    return True
        return False

    def spawn(self):
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen([self.bin(), "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         preexec_fn=die_with_parent, close_fds=True)

    def wait_listening(self):
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if port_accepts(self.port) if self.mosquitto else self.parse_port():
                return True
            time.sleep(0.01)
        raise RuntimeError("broker did not start listening within %.0f s" % START_WAIT_S)

    def start(self):
        b = self.bin()
        if not b or not os.access(b, os.X_OK):
            raise RuntimeError("broker binary %r is not executable (set RINGMQ_BIN, or "
                               "RINGMQ_E2E_MOSQUITTO=1)" % b)
        for _ in range(START_TRIES):
            if self.mosquitto:
                self.port = free_port()
            self.write_config()
            self.spawn()
            if self.wait_listening():
                return
            log("broker exited during start-up with status %s" % self.proc.returncode)
            if not self.mosquitto:
                break
        raise RuntimeError("broker exited during start-up")

    def stop(self):
        """SIGTERM our broker; None if it exited 0 in time, else what went wrong."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is not None:
            return "broker died during the test (status %d)" % rc
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "broker did not exit within %.0f s of SIGTERM" % STOP_WAIT_S
        if rc < 0:
            return "broker killed by signal %d" % -rc
        if rc != 0:
            return "broker exit status %d (leak under ASan?)" % rc
        return None

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def run_driver(cmd, env, timeout):
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we created for it
        proc.wait()
        log("driver ran past %d s: killed" % timeout)
        return 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--topic-alias-max", type=int, default=TOPIC_ALIAS_MAX,
                    help="the broker's Topic Alias Maximum (ringmq [mqtt] topic_alias_max, "
                    "mosquitto max_topic_alias); the driver gets it as INTEROP_TOPIC_ALIAS_MAX")
    ap.add_argument("--needs", action="append", default=[],
                    help="program (name or path) the driver needs; skip (77) if absent")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no driver command")

    for prog in args.needs:
        if shutil.which(prog) is None:
            print("SKIP: %s is not installed (tools/deps installs it)" % prog, flush=True)
            return SKIP
    if mosquitto_mode() and not os.access(MOSQUITTO_BIN, os.X_OK):
        print("SKIP: RINGMQ_E2E_MOSQUITTO=1 but %s is missing" % MOSQUITTO_BIN, flush=True)
        return SKIP

    broker = Broker(args.shards, args.topic_alias_max)
    rc = 1
    try:
        broker.start()
        env = dict(os.environ)
        env["INTEROP_HOST"] = "127.0.0.1"
        env["INTEROP_PORT"] = str(broker.port)
        env["INTEROP_BROKER"] = "mosquitto" if broker.mosquitto else "ringmq"
        env["INTEROP_TOPIC_ALIAS_MAX"] = str(args.topic_alias_max)
        env["INTEROP_KEEPALIVE_MAX"] = str(KEEPALIVE_MAX)
        log("%s on 127.0.0.1:%d (%s), running %s" % (
            env["INTEROP_BROKER"], broker.port, broker.dir, " ".join(cmd)))
        drc = run_driver(cmd, env, args.timeout)
        why = broker.stop()
        if drc == SKIP and why is None:
            rc = SKIP
        elif drc != 0:
            log("driver failed (exit status %d)" % drc)
            if why is not None:
                log(why)
            broker.dump_log()
        elif why is not None:
            log(why)
            broker.dump_log()
        else:
            rc = 0
    except (RuntimeError, OSError) as e:
        log("error: %s" % e)
        broker.stop()
        broker.dump_log()
    finally:
        if broker.proc is not None and broker.proc.poll() is None:
            broker.proc.kill()
            broker.proc.wait()
        broker.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
