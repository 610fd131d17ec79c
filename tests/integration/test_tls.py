"""The shard's TLS certificate: `coop tls status` and `coop tls install`, and a certificate
replaced under running workers (by install, or by hand and SIGHUP) served from the next
handshake on IMAPS, SMTP STARTTLS and HTTPS, while a session opened before goes on. A pair
that does not fit is refused and leaves the shard's own as it was; a half-written file at
reload keeps the old one served."""
import hashlib
import imaplib
import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for

BIN = bin_dir_from_args()
DOMAIN = "tls.test"
STRONG = "correct horse battery staple"


def context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # these are self-signed; what matters is which one is served
    return ctx


def served_sha256(port, starttls=None):
    """SHA-256 of the certificate a new TLS handshake on 127.0.0.1:port gets."""
    if starttls == "smtp":
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.starttls(context=context())
            return hashlib.sha256(smtp.sock.getpeercert(binary_form=True)).hexdigest()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context().wrap_socket(raw) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def make_pair(directory, name, days=90, cn="mail.tls.test"):
    key, cert = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", str(days), "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=DNS:{cn},DNS:{DOMAIN}"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True, capture_output=True).stdout
    return cert, key, hashlib.sha256(der).hexdigest()


def make_expired_pair(directory):
    """A certificate that ran out yesterday (openssl req cannot date one in the past)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.tls.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "expired.crt"), os.path.join(directory, "expired.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def ports(shard):
    listeners = {l["name"]: l["url"] for w in shard.json("status")["workers"] for l in w.get("listeners", [])}
    port = lambda name: int(next(url for n, url in listeners.items() if n == name).rsplit(":", 1)[1])  # noqa: E731
    return port("imaps"), port("submission")


def start(shard, https=False):
    shard.init()
    if https:  # coop-dav over TLS with the shard's certificate
        path = os.path.join(shard.home, "coop.toml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace(f'port = {shard.base_port + 8}, scheme = "http"', f'port = {shard.base_port + 8}, scheme = "https"'))
    shard.coop("up")
    shard.coop("mail", "domain", "add", DOMAIN)
    shard.coop("member", "add", "alice", "--email", f"alice@{DOMAIN}", "--password-stdin", input=STRONG)


def test_install_is_served_at_once_and_a_session_goes_on():
    with Shard(BIN, domain=DOMAIN) as shard, tempfile.TemporaryDirectory() as tmp:
        start(shard, https=True)
        imaps, submission = ports(shard)
        https = shard.base_port + 8
        status = shard.json("tls", "status")
        assert DOMAIN in status["names"] and status["days_left"] > 700, status
        assert status["served_by"]["mail"] == status["sha256"] and status["served_by"]["dav"] == status["sha256"], status
        assert served_sha256(imaps) == status["sha256"]

        session = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=context())
        session.login(f"alice@{DOMAIN}", STRONG)
        session.select("INBOX")
        cert, key, sha = make_pair(tmp, "new")
        installed = shard.json("tls", "install", "--cert", cert, "--key", key)
        assert installed["sha256"] == sha and installed["served_by"] == {"mail": sha, "dav": sha, "federate": sha}, installed
        assert oct(os.stat(os.path.join(shard.home, "keys", "tls.key")).st_mode & 0o777) == "0o600"
        assert served_sha256(imaps) == sha
        assert served_sha256(submission, starttls="smtp") == sha
        assert served_sha256(https) == sha
        assert session.noop()[0] == "OK", "the session opened before the new certificate was cut"
        session.logout()
        text = shard.coop("tls", "status").stdout
        assert "mail.tls.test" in text and "(self-signed)" in text, text
        assert "89 days left" in text or "90 days left" in text, text
        shard.coop("down")


def test_a_pair_that_does_not_fit_is_refused_and_the_old_one_stays():
    with Shard(BIN, domain=DOMAIN) as shard, tempfile.TemporaryDirectory() as tmp:
        start(shard)
        imaps, _ = ports(shard)
        before = shard.json("tls", "status")["sha256"]
        with open(os.path.join(shard.home, "keys", "tls.crt"), "rb") as f:
            cert_bytes = f.read()
        one, _, _ = make_pair(tmp, "one")
        _, other_key, _ = make_pair(tmp, "other")
        result = shard.coop("tls", "install", "--cert", one, "--key", other_key, expect=1)
        assert "does not match" in result.stderr, result.stderr
        expired, expired_key = make_expired_pair(tmp)
        result = shard.coop("tls", "install", "--cert", expired, "--key", expired_key, expect=1)
        assert "expired" in result.stderr, result.stderr
        garbage = os.path.join(tmp, "garbage.crt")
        with open(garbage, "w") as f:
            f.write("not a certificate\n")
        result = shard.coop("tls", "install", "--cert", garbage, "--key", expired_key, expect=1)
        assert "no PEM certificate" in result.stderr, result.stderr
        with open(os.path.join(shard.home, "keys", "tls.crt"), "rb") as f:
            assert f.read() == cert_bytes
        assert served_sha256(imaps) == before
        shard.coop("down")


def test_a_file_replaced_by_hand_is_served_after_sighup_and_a_broken_one_is_not():
    with Shard(BIN, domain=DOMAIN) as shard, tempfile.TemporaryDirectory() as tmp:
        start(shard)
        imaps, submission = ports(shard)
        supervisor = shard.json("status")["pid"]
        cert, key, sha = make_pair(tmp, "hand")
        shutil.copy(key, os.path.join(shard.home, "keys", "tls.key"))
        shutil.copy(cert, os.path.join(shard.home, "keys", "tls.crt"))
        os.kill(supervisor, signal.SIGHUP)  # what `systemctl reload coop` sends
        wait_for(lambda: served_sha256(imaps) == sha, what="the new certificate on IMAPS after SIGHUP")
        assert served_sha256(submission, starttls="smtp") == sha
        # A certificate file caught half-written: the reload keeps serving the one before.
        with open(os.path.join(shard.home, "keys", "tls.crt"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nMIIB\n")
        os.kill(supervisor, signal.SIGHUP)
        wait_for(lambda: "kept the certificate served so far" in shard.log("mail"), what="the failed reload logged")
        assert served_sha256(imaps) == sha
        assert shard.json("status")["workers"], "a worker died of a broken certificate file"
        shard.coop("down")


class FakeNtp:
    """An NTP server on 127.0.0.1 whose clock runs `skew` seconds ahead (RFC 4330 replies)."""

    def __init__(self, skew):
        import threading
        self.skew = skew
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        import struct
        import time
        while True:
            try:
                data, peer = self.sock.recvfrom(48)
            except OSError:
                return
            now = time.time() + self.skew + 2208988800
            stamp = struct.pack("!II", int(now), int((now % 1) * 2 ** 32))
            reply = bytes([0x24, 1, 0, 0]) + bytes(20) + data[40:48] + stamp + stamp
            self.sock.sendto(reply, peer)

    def close(self):
        self.sock.close()


def test_doctor_measures_the_clock_against_the_ntp_servers_named():
    with Shard(BIN, domain=DOMAIN) as shard:
        shard.init()
        skewed, right = FakeNtp(600), FakeNtp(0)
        try:
            path = os.path.join(shard.home, "coop.toml")
            # The offset measured: about +600 s from the skewed server, about 0 (either sign, a
            # few ms on a busy machine) from the right one.
            # (+599.999 as often as +600.0: the figure is checked as a number below.)
            for server, status, text in [(skewed, "FAIL", " s from "), (right, "OK", " s from ")]:
                with open(path) as f:
                    config = f.read().split("\n[doctor]\n")[0]
                with open(path, "w") as f:
                    f.write(config + f'\n[doctor]\nntp_servers = ["127.0.0.1:{server.port}"]\n')
                checks = {c["check"]: c for c in json.loads(shard.coop("doctor", "--json", expect=None).stdout)["checks"]}
                assert checks["clock"]["status"] == status and text in checks["clock"]["detail"], checks["clock"]
                assert abs(float(checks["clock"]["detail"].split()[0]) - (600 if server is skewed else 0)) < 1, checks["clock"]
        finally:
            skewed.close()
            right.close()


def test_doctor_names_what_to_fix():
    """coop doctor: FAIL with what to do when coop is down or the certificate has expired,
    WARN for a self-signed certificate and a missing backup, OK once a backup was taken."""
    with Shard(BIN, domain=DOMAIN) as shard, tempfile.TemporaryDirectory() as tmp:
        shard.init()
        down = shard.coop("doctor", expect=1)
        assert "coop is not running" in down.stdout and "workers: coop up" in down.stdout, down.stdout
        shard.coop("up")
        report = json.loads(shard.coop("doctor", "--json").stdout)
        status = {c["check"]: c for c in report["checks"]}
        assert report["ok"] and status["worker mail"]["status"] == "OK", report
        assert status["certificate issuer"]["status"] == "WARN" and "coop tls install" in status["certificate issuer"]["fix"]
        assert status["backup"]["status"] == "WARN" and status["ports"]["status"] == "WARN", status["ports"]
        shard.coop("backup", "--out", os.path.join(tmp, "backup"))
        status = {c["check"]: c for c in json.loads(shard.coop("doctor", "--json").stdout)["checks"]}
        assert status["backup"]["status"] == "OK", status["backup"]
        expired, expired_key = make_expired_pair(tmp)
        shutil.copy(expired, os.path.join(shard.home, "keys", "tls.crt"))
        shutil.copy(expired_key, os.path.join(shard.home, "keys", "tls.key"))
        failed = shard.coop("doctor", expect=1)
        assert "certificate expiry" in failed.stdout and "FAIL" in failed.stdout and "expired" in failed.stdout, failed.stdout
        shard.coop("down")


if __name__ == "__main__":
    run_tests([test_install_is_served_at_once_and_a_session_goes_on,
               test_a_pair_that_does_not_fit_is_refused_and_the_old_one_stays,
               test_a_file_replaced_by_hand_is_served_after_sighup_and_a_broken_one_is_not,
               test_doctor_names_what_to_fix, test_doctor_measures_the_clock_against_the_ntp_servers_named])
