#!/usr/bin/env python3
"""npm_ci.py - install the pinned MQTT.js for mqttjs.js into a build directory.

    npm_ci.py SRC_DIR DEST_DIR

Copies SRC_DIR/package.json and package-lock.json into DEST_DIR and runs
`npm ci` there (the lock file pins mqtt and everything under it, with
integrity hashes), unless DEST_DIR/node_modules was already installed from
the same lock file (a stamp holds its SHA-256). node_modules therefore lives
in the build directory, never in the source tree. Exit status: 0 installed
or already there, 77 (CTest's skip) when npm is not installed (tools/deps
installs Node.js and npm), 1 when npm ci fails.
"""
import hashlib
import os
import shutil
import subprocess
import sys

FILES = ("package.json", "package-lock.json")
NPM_TIMEOUT_S = 280


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, dest = sys.argv[1], sys.argv[2]
    npm = shutil.which("npm")
    if npm is None:
        print("SKIP: npm is not installed (tools/deps installs nodejs and npm)")
        return 77
    os.makedirs(dest, exist_ok=True)
    digest = hashlib.sha256()
    for name in FILES:
        with open(os.path.join(src, name), "rb") as f:
            data = f.read()
        digest.update(data)
        with open(os.path.join(dest, name), "wb") as f:
            f.write(data)
    want = digest.hexdigest()
    stamp = os.path.join(dest, "node_modules", ".ringmq-lock-sha256")
    try:
        with open(stamp) as f:
            if f.read().strip() == want:
                print("npm_ci: node_modules already installed from this package-lock.json")
                return 0
    except OSError:
        pass
    cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    print("npm_ci: %s in %s" % (" ".join(cmd), dest), flush=True)
    try:
        r = subprocess.run(cmd, cwd=dest, stdin=subprocess.DEVNULL, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print("npm_ci: npm ci ran past %d s" % NPM_TIMEOUT_S)
        return 1
    if r.returncode != 0:
        print("npm_ci: npm ci failed with status %d" % r.returncode)
        return 1
    with open(stamp, "w") as f:
        f.write(want + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
