#!/usr/bin/python3
"""tests/service/deb_test.py - the .deb CPack builds, inspected and run unpacked.

Builds the package from this build tree (cpack -G DEB), checks what
`dpkg-deb -I` and `-c` list (control fields, library dependencies as Debian
names them, the conffile and maintainer scripts; binary, unit, config, man
pages), unpacks it with `dpkg-deb -x` into a scratch directory, starts the
packaged binary there on a free port with the packaged configuration
adjusted to it, passes a message with mosquitto_pub/mosquitto_sub, and
stops it by pid (exit 0). Nothing is installed on the host.
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svc  # noqa: E402

FILES = [
    "./usr/sbin/ringmq",
    "./usr/bin/ringmq-passwd",
    "./lib/systemd/system/ringmq.service",
    "./etc/ringmq/ringmq.ini",
    "./usr/share/man/man8/ringmq.8.gz",
    "./usr/share/man/man5/ringmq.ini.5.gz",
]
FIELDS = ["Package: ringmq", "Version: ", "Architecture: ", "Section: net", "Maintainer: ",
          "Description: "]
DEPENDS = ["adduser", "libc6", "liburing2", "libwolfssl", "libinih1", "libxxhash0"]


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, **kw)
    if r.returncode != 0:
        svc.fail("%s: exit %d:\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r.stdout


def main():
    build = os.environ.get("RINGMQ_BUILD")
    for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps", "mosquitto_pub", "mosquitto_sub"):
        if shutil.which(tool) is None:
            svc.skip("%s is missing (tools/deps test installs it)" % tool)
    if not build or not os.path.exists(os.path.join(build, "CPackConfig.cmake")):
        svc.fail("RINGMQ_BUILD does not name a configured build directory")
    d = svc.tmpdir("deb")
    out = os.path.join(d, "out")
    run(["cpack", "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"), "-B", out],
        cwd=build)
    debs = [f for f in os.listdir(out) if f.endswith(".deb")]
    if len(debs) != 1:
        svc.fail("cpack made %r" % debs)
    deb = os.path.join(out, debs[0])

    info = run(["dpkg-deb", "-I", deb])
    for field in FIELDS:
        if "\n " + field not in info:
            svc.fail("dpkg-deb -I: no '%s':\n%s" % (field, info))
    depends = re.search(r"^ Depends: (.*)$", info, re.M)
    if depends is None:
        svc.fail("dpkg-deb -I: no Depends:\n%s" % info)
    for dep in DEPENDS:
        if dep not in depends.group(1):
            svc.fail("Depends lacks %s: %s" % (dep, depends.group(1)))
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        if not re.search(r"\s%s\s" % script, info):
            svc.fail("dpkg-deb -I: no %s:\n%s" % (script, info))
    if run(["dpkg-deb", "-I", deb, "conffiles"]).split() != ["/etc/ringmq/ringmq.ini"]:
        svc.fail("conffiles is not /etc/ringmq/ringmq.ini")
    postinst = run(["dpkg-deb", "-I", deb, "postinst"])
    for needle in ("adduser --system", "ringmq", "/var/lib/ringmq"):
        if needle not in postinst:
            svc.fail("postinst lacks '%s':\n%s" % (needle, postinst))

    listing = run(["dpkg-deb", "-c", deb])
    names = [line.split()[-1] for line in listing.splitlines() if line.strip()]
    for f in FILES:
        if f not in names:
            svc.fail("dpkg-deb -c: no %s:\n%s" % (f, listing))

    root = os.path.join(d, "root")
    run(["dpkg-deb", "-x", deb, root])
    unit = svc.read(os.path.join(root, "lib/systemd/system/ringmq.service"))
    if "ExecStart=/usr/sbin/ringmq -c /etc/ringmq/ringmq.ini" not in unit:
        svc.fail("the packaged unit does not start /usr/sbin/ringmq:\n%s" % unit)
    port = svc.free_port()
    ini = svc.read(os.path.join(root, "etc/ringmq/ringmq.ini"))
    ini, n = re.subn(r"(?m)^port = 1883$", "port = %d" % port, ini)
    if n != 1:
        svc.fail("the packaged ringmq.ini has no 'port = 1883' line")
    conf = os.path.join(d, "ringmq.ini")
    svc.write(conf, ini)
    b = svc.Broker(["-c", conf], os.path.join(d, "broker.log"),
                   binary_path=os.path.join(root, "usr/sbin/ringmq"))
    try:
        b.wait_log("ready:")
        common = ["-h", "127.0.0.1", "-p", str(port), "-t", "deb/check"]
        run(["mosquitto_pub"] + common + ["-m", "from the package", "-r", "-q", "1"])
        got = run(["mosquitto_sub"] + common + ["-C", "1", "-W", "20"])
        if got.strip() != "from the package":
            svc.fail("mosquitto_sub got %r" % got)
        b.stop()
    finally:
        b.kill()
    shutil.rmtree(d, ignore_errors=True)
    print("ok: %s: control, files, and the unpacked broker serves" % debs[0])


if __name__ == "__main__":
    main()
