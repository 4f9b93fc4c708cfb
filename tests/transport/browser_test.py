#!/usr/bin/env python3
"""browser_test.py - a real browser speaks MQTT over WebSocket to ringmq.

    RINGMQ_BIN=build/ringmq NODE_PATH=.../node_modules browser_test.py

Starts ringmq (broker.py) and writes a page into its temp dir beside MQTT.js's browser
bundle (mqtt/dist/mqtt.min.js from NODE_PATH, installed by the interop_mqttjs fixture).
The page connects to ws://127.0.0.1:PORT/mqtt, subscribes to a topic named after a
random token, publishes a message carrying the token to it and, when the message comes
back through the broker, writes it into the page. Headless Chromium (Debian's chromium,
installed by tools/deps) opens the page; the test reads the result from the browser
with the DevTools protocol over a pipe (--remote-debugging-pipe: JSON messages ending
in NUL on fds 3 and 4), asking for the result element's text every POLL_S until it
changes or PAGE_WAIT_S have passed, in real time. (--dump-dom with a virtual time budget
does not wait for WebSocket traffic: virtual time runs ahead of it, so a slow broker,
under ASan say, lost the race.) The text must be exactly the topic and payload with this
run's token. Only the chromium process started here is stopped, by its pid.
Exit 0 pass, 1 fail, 77 when chromium, openssl or the bundle is missing.
"""
import json
import os
import re
import secrets
import select
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker as broker_mod  # noqa: E402

SKIP = 77
PAGE_WAIT_S = 15.0
POLL_S = 0.1
CDP_READ_BYTES = 65536
CHROMIUM_STOP_S = 10

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>ringmq ws</title></head>
<body><div id="result">PENDING</div>
<script src="mqtt.min.js"></script>
<script>
function set(s) { document.getElementById('result').textContent = s; }
try {
  const c = mqtt.connect('ws://127.0.0.1:@PORT@/mqtt',
                         { clientId: 'browser-@TOKEN@', reconnectPeriod: 0, protocolVersion: 4 });
  c.on('connect', () => {
    c.subscribe('browser/@TOKEN@', { qos: 1 }, (err) => {
      if (err) { set('ERROR subscribe ' + err.message); return; }
      c.publish('browser/@TOKEN@', 'hello @TOKEN@', { qos: 1 });
    });
  });
  c.on('message', (topic, payload) => { set('RESULT ' + topic + ' ' + payload.toString()); c.end(); });
  c.on('error', (e) => set('ERROR ' + e.message));
} catch (e) { set('ERROR ' + e.message); }
</script></body></html>
"""
RESULT_JS = "(document.getElementById('result') || {}).textContent || null"


class Cdp:
    """Chromium's DevTools protocol over --remote-debugging-pipe (fds 3 and 4 in the child)."""

    def __init__(self, chromium, profile):
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()

        def child_fds():
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4), preexec_fn=child_fds, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=PAGE_WAIT_S):
        """Send one command and return its result (raises on an error or a timeout)."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.from_r], [], [], left)[0]:
                    raise TimeoutError(f"no answer to {method}")
                chunk = os.read(self.from_r, CDP_READ_BYTES)
                if not chunk:
                    raise EOFError("chromium closed the DevTools pipe")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def close(self):
        try:
            self.call("Browser.close", timeout=CHROMIUM_STOP_S)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(CHROMIUM_STOP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_w)
        os.close(self.from_r)


def page_result(chromium, page, profile):
    """The result element's text once it is no longer PENDING (or the last one seen)."""
    cdp = Cdp(chromium, profile)
    text = None
    try:
        target = cdp.call("Target.createTarget", {"url": "file://" + page})["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        deadline = time.monotonic() + PAGE_WAIT_S
        while time.monotonic() < deadline:
            res = cdp.call("Runtime.evaluate", {"expression": RESULT_JS, "returnByValue": True},
                           session=session["sessionId"])
            text = res["result"].get("value")
            if text is not None and text != "PENDING":
                break
            time.sleep(POLL_S)
    finally:
        cdp.close()
    return text


def main():
    chromium = shutil.which("chromium")
    bundle = None
    for d in os.environ.get("NODE_PATH", "").split(os.pathsep):
        cand = os.path.join(d, "mqtt", "dist", "mqtt.min.js")
        if d and os.path.exists(cand):
            bundle = cand
    if chromium is None or shutil.which("openssl") is None:
        print("SKIP: chromium or openssl is not installed (tools/deps installs them)")
        return SKIP
    if bundle is None:
        print("SKIP: MQTT.js's bundle is not in NODE_PATH (the interop_mqttjs fixture)")
        return SKIP
    token = secrets.token_hex(8)
    ok = False
    with broker_mod.started(2) as (b, _certs):
        shutil.copy(bundle, os.path.join(b.dir, "mqtt.min.js"))
        page = os.path.join(b.dir, "page.html")
        with open(page, "w") as f:
            f.write(PAGE.replace("@PORT@", str(b.ports["ws"])).replace("@TOKEN@", token))
        try:
            got = page_result(chromium, page, os.path.join(b.dir, "profile"))
        except (OSError, EOFError, TimeoutError, RuntimeError) as e:
            got = f"(DevTools: {e})"
        want = f"RESULT browser/{token} hello {token}"
        ok = got == want
        print(f"{'PASS' if ok else 'FAIL'} browser: page says {got!r}, want {want!r}")
        ok = broker_mod.stop_checked(b, ok)
        upgrades = sum(int(n) for n in re.findall(r"WebSocket upgrades (\d+)", b.log_text()))
        if ok and upgrades < 1:
            print("FAIL: the broker counted no WebSocket upgrade")
            ok = False
    print(f"{1 if ok else 0} passed, {0 if ok else 1} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
