"""Certificates by ACME (RFC 8555) from Debian's pebble, Let's Encrypt's test server, with
its challenge test server as the names' DNS: the supervisor orders a certificate for the
shard's names by HTTP-01 (on an HTTP listener) or TLS-ALPN-01 (RFC 8737, on IMAPS), installs
it, and every worker serves it from the next handshake; `coop tls renew` replaces it while an
IMAP session goes on; a failing order backs off and says why in `coop status`. Skips when
pebble is not installed."""
import contextlib
import hashlib
import imaplib
import json
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

from coopshard import Shard, bin_dir_from_args, free_port_block, run_tests, wait_for

BIN = bin_dir_from_args()
DOMAIN = "acme.test"
STRONG = "correct horse battery staple"


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def served_der(port, server_name="mail." + DOMAIN, alpn=None):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        ctx = no_verify()
        if alpn:
            ctx.set_alpn_protocols(alpn)
        with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def sha256(der):
    return hashlib.sha256(der).hexdigest()


class Pebble:
    """pebble on free loopback ports, validating HTTP-01 at http_port and TLS-ALPN-01 at
    tls_port, and pebble-challtestsrv answering every name with 127.0.0.1."""

    def __init__(self, http_port, tls_port, avoid=range(0)):
        self.dir = tempfile.mkdtemp(prefix="coop-pebble-")
        self.procs = []
        base = free_port_block(4)
        while any(port in avoid for port in range(base, base + 4)):  # the shard's, free until it is up
            base = free_port_block(4)
        self.port, management, dns, dns_management = base, base + 1, base + 2, base + 3
        # pebble's own HTTPS: a CA of the test's and a certificate for localhost from it.
        self.ca = os.path.join(self.dir, "ca.crt")
        ca_key, key, csr, cert = (os.path.join(self.dir, n) for n in ("ca.key", "server.key", "server.csr", "server.crt"))
        run = lambda *args: subprocess.run(args, check=True, capture_output=True)  # noqa: E731
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=coop test ACME CA")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
            csr, "-subj", "/CN=localhost")
        extensions = os.path.join(self.dir, "ext.cnf")
        with open(extensions, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
            "-days", "2", "-extfile", extensions)
        config = os.path.join(self.dir, "pebble.json")
        with open(config, "w") as f:
            json.dump({"pebble": {"listenAddress": f"127.0.0.1:{self.port}",
                                  "managementListenAddress": f"127.0.0.1:{management}",
                                  "certificate": cert, "privateKey": key, "httpPort": http_port, "tlsPort": tls_port,
                                  "ocspResponderURL": "", "externalAccountBindingRequired": False}}, f)
        log = open(os.path.join(self.dir, "log"), "w")
        self.procs.append(subprocess.Popen(
            ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", f"127.0.0.1:{dns}",
             "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_management}"],
            stdout=log, stderr=subprocess.STDOUT))
        # No artificial sleeps; one good nonce in five refused, so the client must retry badNonce.
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="20")
        self.procs.append(subprocess.Popen(["pebble", "-config", config, "-dnsserver", f"127.0.0.1:{dns}"],
                                           stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.dir))
        self.directory = f"https://localhost:{self.port}/dir"
        self.management = f"https://localhost:{management}"
        wait_for(self.answers, what="pebble's directory")

    def answers(self):
        try:
            self.get(self.directory)
            return True
        except OSError:
            return False

    def get(self, url):
        ctx = ssl.create_default_context(cafile=self.ca)
        with urllib.request.urlopen(url, context=ctx, timeout=5) as response:
            return response.read()

    def root(self):
        """The root pebble issues under (made afresh at each start)."""
        path = os.path.join(self.dir, "root.pem")
        with open(path, "wb") as f:
            f.write(self.get(self.management + "/roots/0"))
        return path

    def log(self):
        with open(os.path.join(self.dir, "log")) as f:
            return f.read()

    def close(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def listener_ports(shard):
    import tomllib
    with open(os.path.join(shard.home, "coop.toml"), "rb") as f:
        config = tomllib.load(f)
    return {name: listener["port"] for worker in config["workers"].values()
            for name, listener in worker.get("listen", {}).items()}


def configure(shard, directory, ca, challenge, extra=""):
    with open(os.path.join(shard.home, "coop.toml"), "a") as f:
        f.write(f'\n[tls]\nacme = "{directory}"\nacme_contact = ["admin@{DOMAIN}"]\nacme_challenge = "{challenge}"\n'
                f'acme_ca_file = "{ca}"\nnames = ["{DOMAIN}", "mail.{DOMAIN}"]\n{extra}')


@contextlib.contextmanager
def acme_shard(challenge, http_port=None, extra=""):
    """A shard whose ACME server is a fresh pebble validating at its room listener (HTTP-01)
    and IMAPS (TLS-ALPN-01), or at http_port; coop-dav serves HTTPS. Yields (shard, ports, pebble)."""
    with Shard(BIN, domain=DOMAIN) as shard:
        shard.init()
        ports = listener_ports(shard)
        path = os.path.join(shard.home, "coop.toml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace(f'http = {{ address = "127.0.0.1", port = {shard.base_port + 8}, scheme = "http" }}',
                                 f'http = {{ address = "127.0.0.1", port = {shard.base_port + 8}, scheme = "https" }}'))
        pebble = Pebble(http_port=http_port or ports["client"], tls_port=ports["imaps"],
                        avoid=range(shard.base_port, shard.base_port + 13))
        try:
            configure(shard, pebble.directory, pebble.ca, challenge, extra)
            shard.coop("up")
            yield shard, ports, pebble
        finally:
            pebble.close()


def issued(shard):
    status = shard.json("tls", "status")
    return status if not status["self_signed"] and "Pebble" in status["issuer"] else None


def test_http01_certifies_the_shard_and_every_worker_serves_it():
    with acme_shard("http-01") as (shard, ports, pebble):
        status = wait_for(lambda: issued(shard), timeout=120, what="a certificate from pebble")
        assert set(status["names"]) == {DOMAIN, "mail." + DOMAIN}, status
        assert status["acme"]["state"] == "ok" and status["acme"]["challenge"] == "http-01", status
        wait_for(lambda: sha256(served_der(ports["imaps"])) == status["sha256"], what="IMAPS serving it")
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as smtp:
            smtp.starttls(context=no_verify())
            assert sha256(smtp.sock.getpeercert(binary_form=True)) == status["sha256"], "STARTTLS on submission"
        assert oct(os.stat(os.path.join(shard.home, "keys", "tls.key")).st_mode & 0o777) == "0o600"
        # Issued by pebble's CA for the name: `openssl s_client` verifies it against pebble's root.
        root = pebble.root()
        # The chain pebble sent is in keys/tls.crt; s_client checks name and chain.
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{ports['imaps']}", "-servername",
                              "mail." + DOMAIN, "-verify_hostname", "mail." + DOMAIN, "-CAfile", root,
                              "-verify_return_error"], input=b"", capture_output=True, timeout=30)
        assert b"Verify return code: 0 (ok)" in out.stdout, out.stdout.decode(errors="replace")[-2000:]
        # The challenge files are gone once the order is done; a path through the token is not one.
        for bad in ("/.well-known/acme-challenge/..%2F..%2Fkeys%2Ftls.key",
                    "/.well-known/acme-challenge/x%00y", "/.well-known/acme-challenge/"):
            request = urllib.request.Request(f"http://127.0.0.1:{ports['client']}{bad}")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert b"PRIVATE KEY" not in response.read()
            except urllib.error.HTTPError as e:
                assert e.code in (400, 404), (bad, e.code)
        assert not os.path.exists(os.path.join(shard.home, "run", "acme", "http-01")), "challenges left behind"
        text = shard.coop("status").stdout
        assert "Certificate by ACME" in text and "ok" in text and "renews" in text, text
        shard.coop("down")


def test_tls_alpn01_renewal_is_served_without_a_restart_while_imap_goes_on():
    with acme_shard("tls-alpn-01") as (shard, ports, pebble):
        first = wait_for(lambda: issued(shard), timeout=120, what="a certificate from pebble")
        wait_for(lambda: sha256(served_der(ports["imaps"])) == first["sha256"], what="IMAPS serving it")
        pids = {w["name"]: w["pid"] for w in shard.json("status")["workers"]}
        shard.coop("mail", "domain", "add", DOMAIN)
        shard.coop("member", "add", "alice", "--email", f"alice@{DOMAIN}", "--password-stdin", input=STRONG)
        session = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=no_verify())
        session.login(f"alice@{DOMAIN}", STRONG)
        session.select("INBOX")

        renewed = shard.json("tls", "renew", "--force")
        second = renewed["certificate"]
        assert renewed["acme"]["state"] == "ok", renewed
        assert second["sha256"] != first["sha256"] and "Pebble" in second["issuer"], renewed
        assert sha256(served_der(ports["imaps"])) == second["sha256"]
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{ports['imaps']}", "-servername",
                              "mail." + DOMAIN], input=b"", capture_output=True, timeout=30)
        der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=out.stdout, capture_output=True).stdout
        assert sha256(der) == second["sha256"], "openssl s_client sees the renewed certificate"
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{shard.base_port + 8}", "-servername",
                              DOMAIN], input=b"", capture_output=True, timeout=30)
        der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=out.stdout, capture_output=True).stdout
        assert sha256(der) == second["sha256"], "openssl s_client sees the renewed certificate on HTTPS (coop-dav)"
        assert session.noop()[0] == "OK", "the IMAP session opened before the renewal was cut"
        session.logout()
        assert {w["name"]: w["pid"] for w in shard.json("status")["workers"]} == pids, "a worker was restarted"
        # acme-tls/1 with no challenge published is refused; a plain client is not affected.
        try:
            served_der(ports["imaps"], alpn=["acme-tls/1"])
            raise AssertionError("an acme-tls/1 handshake without a challenge succeeded")
        except ssl.SSLError:
            pass
        assert sha256(served_der(ports["imaps"], alpn=["imap"])) == second["sha256"]
        shard.coop("down")


def test_a_failing_order_backs_off_and_says_why():
    # pebble validates HTTP-01 on a port that is bound but not listening: refused, and
    # nobody else can take it meanwhile.
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    closed = holder.getsockname()[1]
    with holder, acme_shard("http-01", http_port=closed, extra="acme_retry_first_s = 3600\n") as (shard, ports, pebble):
        acme = wait_for(lambda: (lambda a: a if a.get("state") == "failed" else None)(
            shard.json("status").get("acme", {})), timeout=120, what="the order to fail")
        assert "did not validate" in acme["last_error"], acme
        assert acme["next_attempt"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3000)), acme
        with open(os.path.join(shard.home, "keys", "acme-state.json")) as f:
            saved = json.load(f)
        assert saved["failures"] == 1 and saved["last_error"] == acme["last_error"], saved
        text = shard.coop("status").stdout
        assert "failed" in text and "next try" in text, text
        # The self-signed certificate stays served; no new attempt until the backoff ends...
        assert shard.json("tls", "status")["self_signed"]
        time.sleep(2)
        assert shard.json("status")["acme"]["attempts"] == 1
        # ...unless asked, which fails the same way and says so with exit 1.
        result = shard.coop("tls", "renew", expect=1)
        assert "did not validate" in result.stderr, result.stderr
        assert shard.json("status")["acme"]["failures"] == 2
        shard.coop("down")
        # An ACME server that cannot be reached is a clear reason too, and survives a restart.
        with open(os.path.join(shard.home, "coop.toml")) as f:
            text = f.read()
        with open(os.path.join(shard.home, "coop.toml"), "w") as f:
            f.write(text.replace(pebble.directory, f"https://127.0.0.1:{closed}/dir"))
        shard.coop("up")
        assert shard.json("status")["acme"]["failures"] == 2, "the backoff was forgotten over a restart"
        result = shard.coop("tls", "renew", expect=1)
        assert "cannot reach the ACME server" in result.stderr, result.stderr
        shard.coop("down")


if __name__ == "__main__":
    if not shutil.which("pebble") or not shutil.which("pebble-challtestsrv"):
        print("skip: pebble is not installed (scripts/install-deps installs it)")
        raise SystemExit(0)
    run_tests([
        test_http01_certifies_the_shard_and_every_worker_serves_it,
        test_tls_alpn01_renewal_is_served_without_a_restart_while_imap_goes_on,
        test_a_failing_order_backs_off_and_says_why,
    ])
