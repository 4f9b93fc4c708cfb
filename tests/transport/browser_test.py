#!/usr/bin/env python3
"""browser_test.py - a real browser speaks MQTT over WebSocket to ringmq.

    RINGMQ_BIN=build/ringmq NODE_PATH=.../node_modules browser_test.py

Starts ringmq (broker.py) and writes a page into a temp dir beside MQTT.js's browser
bundle (mqtt/dist/mqtt.min.js from NODE_PATH, installed by the interop_mqttjs fixture).
The page connects to ws://127.0.0.1:PORT/mqtt, subscribes to a topic named after a
random token, publishes a message carrying the token to it and, when the message comes
back through the broker, writes it into the page. Headless Chromium (Debian's chromium,
installed by tools/deps) loads the page with --dump-dom; the test reads the result from
the dumped DOM, not from the broker's log: it must be exactly the topic and payload with
this run's token. Exit 0 pass, 1 fail, 77 when chromium, openssl or the bundle is missing.
"""
import os
import re
import secrets
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker as broker_mod  # noqa: E402

SKIP = 77
BROWSER_TIMEOUT_S = 60
VIRTUAL_TIME_MS = 8000

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
        page_dir = b.dir
        shutil.copy(bundle, os.path.join(page_dir, "mqtt.min.js"))
        page = os.path.join(page_dir, "page.html")
        with open(page, "w") as f:
            f.write(PAGE.replace("@PORT@", str(b.ports["ws"])).replace("@TOKEN@", token))
        try:
            r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                "--no-first-run",
                                f"--user-data-dir={os.path.join(page_dir, 'profile')}",
                                f"--virtual-time-budget={VIRTUAL_TIME_MS}", "--dump-dom",
                                "file://" + page],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=BROWSER_TIMEOUT_S)
            m = re.search(r'<div id="result">([^<]*)</div>', r.stdout)
            got = m.group(1) if m else None
            want = f"RESULT browser/{token} hello {token}"
            ok = got == want
            print(f"{'PASS' if ok else 'FAIL'} browser: page says {got!r}, want {want!r}")
            if not ok:
                print(f"chromium exit {r.returncode}; stderr tail:\n{r.stderr[-3000:]}")
        except subprocess.TimeoutExpired:
            print(f"FAIL: chromium did not finish in {BROWSER_TIMEOUT_S} s")
        ok = broker_mod.stop_checked(b, ok)
        upgrades = sum(int(n) for n in re.findall(r"WebSocket upgrades (\d+)", b.log_text()))
        if ok and upgrades < 1:
            print("FAIL: the broker counted no WebSocket upgrade")
            ok = False
    print(f"{1 if ok else 0} passed, {0 if ok else 1} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
