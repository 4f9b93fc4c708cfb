"""certs.py - throwaway certificates for the transport tests, made by the openssl CLI.

make(dir) writes into @dir (a fresh temp dir of the caller's) and returns a dict of paths:

  ca            CA that signs everything below (P-256, valid 2 days)
  other_ca      an unrelated CA (a client trusting it must refuse the server)
  server_crt    server certificate for localhost / 127.0.0.1, signed by ca
  server_key    its key
  server_pem    server_crt + server_key in one file (the ejabberd habit)
  server2_crt   another server certificate for the same names (a renewal), signed by ca
  server2_pem   server2_crt + its key in one file
  client_crt    client certificate CN=alice, signed by ca
  client_key    its key
  expired_crt   client certificate CN=mallory, signed by ca, expired yesterday
  expired_key   its key
  rogue_crt     client certificate CN=eve, signed by other_ca
  rogue_key     its key

No private key is ever committed: everything is made at test time and removed with @dir.
"""
import os
import subprocess

DAYS = "2"
CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _run(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def _ca(d, name):
    _run(["req", "-x509"] + CURVE + ["-keyout", name + ".key", "-out", name + ".crt",
                                     "-days", DAYS, "-subj", "/CN=" + name], d)


def _leaf(d, name, cn, ca, ext=None, expired=False):
    _run(["req"] + CURVE + ["-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn],
         d)
    args = ["x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt"]
    if expired:
        # A validity window that ended yesterday (openssl 3's x509 -not_before/-not_after
        # are newer than Debian 12's; `ca` with explicit dates works everywhere).
        args = ["ca", "-batch", "-config", _ca_config(d, ca), "-in", name + ".csr",
                "-out", name + ".crt", "-startdate", "20200101000000Z",
                "-enddate", "20200102000000Z", "-notext"]
    else:
        args += ["-days", DAYS]
    if ext is not None:
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        args += ["-extfile", name + ".ext"]
    _run(args, d)


def _ca_config(d, ca):
    """A minimal `openssl ca` configuration for @ca (used for the expired certificate)."""
    db = os.path.join(d, ca + ".db")
    open(db + ".index", "a").close()
    path = os.path.join(d, ca + ".cnf")
    with open(path, "w") as f:
        f.write(f"""[ca]
default_ca = c
[c]
database = {db}.index
new_certs_dir = {d}
certificate = {os.path.join(d, ca + '.crt')}
private_key = {os.path.join(d, ca + '.key')}
serial = {db}.serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
""")
    with open(db + ".serial", "w") as f:
        f.write("1000\n")
    return path


def make(d):
    _ca(d, "ca")
    _ca(d, "other_ca")
    _leaf(d, "server", "localhost", "ca", ext="subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _leaf(d, "server2", "localhost", "ca", ext="subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _leaf(d, "client", "alice", "ca")
    _leaf(d, "expired", "mallory", "ca", expired=True)
    _leaf(d, "rogue", "eve", "other_ca")
    for name in ("server", "server2"):
        with open(os.path.join(d, name + ".pem"), "w") as out:
            for part in (name + ".crt", name + ".key"):
                with open(os.path.join(d, part)) as f:
                    out.write(f.read())
    p = lambda name: os.path.join(d, name)  # noqa: E731
    return {
        "ca": p("ca.crt"), "other_ca": p("other_ca.crt"),
        "server_crt": p("server.crt"), "server_key": p("server.key"),
        "server_pem": p("server.pem"),
        "server2_crt": p("server2.crt"), "server2_pem": p("server2.pem"),
        "client_crt": p("client.crt"), "client_key": p("client.key"),
        "expired_crt": p("expired.crt"), "expired_key": p("expired.key"),
        "rogue_crt": p("rogue.crt"), "rogue_key": p("rogue.key"),
    }
