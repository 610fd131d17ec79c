"""Inbound SMTP with real clients (Python's smtplib, swaks): extensions, recipients, relaying,
limits, quotas, and no acknowledged message lost to a kill -9."""
import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import uuid
from email.message import EmailMessage

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for

BIN = bin_dir_from_args()
DOMAIN = "mail.test"
STRONG = "correct horse battery staple"


def control(shard, worker, path, body=None, method=None):
    cmd = ["curl", "-s", "--unix-socket", os.path.join(shard.home, "run", f"{worker}.sock"), f"http://coop{path}"]
    if method:
        cmd += ["-X", method]
    if body is not None:
        cmd += ["-d", body if isinstance(body, str) else json.dumps(body)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def blob(shard, sha):
    return subprocess.run(["curl", "-s", "--unix-socket", os.path.join(shard.home, "run", "mail.sock"),
                           f"http://coop/v1/blobs/{sha}"], capture_output=True, check=True).stdout


def inbox(shard, handle):
    return control(shard, "mail", f"/v1/messages/{handle}/INBOX?limit=10000")


def configure(shard, **settings):
    """Adds [workers.mail] settings to coop.toml before `coop up`."""
    path = os.path.join(shard.home, "coop.toml")
    with open(path) as f:
        text = f.read()
    lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
    text = text.replace("[workers.mail]\nenabled = true\n", "[workers.mail]\nenabled = true\n" + lines)
    with open(path, "w") as f:
        f.write(text)


def start(shard, **settings):
    shard.init()
    configure(shard, **settings)
    shard.coop("up")
    shard.coop("mail", "domain", "add", DOMAIN)
    shard.coop("member", "add", "alice", "--email", f"alice@{DOMAIN}", "--email", f"a.liddell@{DOMAIN}")
    shard.coop("member", "add", "bob", "--email", f"bob@{DOMAIN}")
    shard.coop("member", "group", "add", "ops")
    shard.coop("member", "set", "alice", "--add-group", "ops")
    shard.coop("member", "set", "bob", "--add-group", "ops")
    status = shard.json("status")
    mail = next(w for w in status["workers"] if w["name"] == "mail")
    url = next(l["url"] for l in mail["listeners"] if l["name"] == "smtp")
    return int(url.rsplit(":", 1)[1])


def message(subject, body="Hello from the test.\n", to=f"alice@{DOMAIN}", sender="carol@example.org"):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4()}@example.org>"
    msg.set_content(body)
    return msg


def raw_session(port, data, read_until=None, timeout=10):
    """Sends bytes at once (pipelined) and returns what the server answered until it closes
    or `read_until` appears."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        greeting = s.recv(4096)
        assert greeting.startswith(b"220 ")
        s.sendall(data)
        out = b""
        while read_until is None or read_until not in out:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out.decode("utf-8", "replace")


def test_ehlo_features_and_a_plain_delivery():
    with Shard(BIN) as shard:
        port = start(shard)
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org") as smtp:
            code, _ = smtp.ehlo()
            assert code == 250
            for feature in ["pipelining", "8bitmime", "smtputf8", "size", "enhancedstatuscodes", "starttls", "chunking"]:
                assert smtp.has_extn(feature), feature
            refused = smtp.send_message(message("first"))
            assert refused == {}
        stored = inbox(shard, "alice")
        assert len(stored) == 1 and stored[0]["uid"] == 1
        content = blob(shard, stored[0]["blob"])
        # Return-Path, then what DKIM, SPF and DMARC said (none here: example.org publishes
        # nothing in the test's DNS), then the trace line.
        assert content.startswith(b"Return-Path: <carol@example.org>\r\nAuthentication-Results: coop.test;\r\n\tdkim=none;"), content[:300]
        assert b"\r\n\tspf=none (no SPF record for example.org) smtp.mailfrom=carol@example.org;\r\n\tdmarc=none" in content
        assert b"\r\nReceived: from client.example.org ([127.0.0.1])" in content
        assert b"for <alice@mail.test>" in content and b"with ESMTP id" in content
        assert b"Subject: first\r\n" in content and content.endswith(b"Hello from the test.\r\n")
        boxes = {b["name"]: b for b in control(shard, "mail", "/v1/mailboxes/alice")}
        assert set(boxes) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
        assert boxes["INBOX"]["messages"] == 1 and boxes["Junk"]["special_use"] == "\\Junk"
        shard.coop("down")


def test_eight_bit_utf8_starttls_and_one_copy_for_many_recipients():
    with Shard(BIN) as shard:
        port = start(shard)
        shard.coop("mail", "alias", "add", f"info@{DOMAIN}", "alice", f"bob@{DOMAIN}")
        body = "Grüße, ½ café — 8-bit body\n"
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.ehlo()
            smtp.starttls(context=ssl._create_unverified_context())
            smtp.ehlo()
            msg = message("utf8 ✓", body, to=f"info@{DOMAIN}", sender="rené@exämple.org")
            refused = smtp.sendmail("rené@exämple.org",
                                    [f"info@{DOMAIN}", f"ops@{DOMAIN}", f"A.Liddell@{DOMAIN.upper()}"],
                                    msg.as_bytes(policy=msg.policy.clone(utf8=True, cte_type="8bit")),
                                    mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            assert refused == {}
        a, b = inbox(shard, "alice"), inbox(shard, "bob")
        assert len(a) == 1 and len(b) == 1, (a, b)
        assert a[0]["blob"] == b[0]["blob"]  # stored once
        content = blob(shard, a[0]["blob"])
        assert "Grüße, ½ café".encode() in content
        assert b"with UTF8SMTPS id" in content and "Return-Path: <rené@exämple.org>".encode() in content
        shard.coop("down")


def test_swaks_pipelines_and_uses_starttls():
    with Shard(BIN) as shard:
        port = start(shard)
        result = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--to", f"bob@{DOMAIN}", "--from",
                                 "dave@example.org", "--pipeline", "--tls", "--body", "via swaks\n"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "250 2.0.0 Ok: delivered" in result.stdout
        assert len(inbox(shard, "bob")) == 1
        shard.coop("down")


def test_unknown_recipients_relaying_and_bad_commands():
    with Shard(BIN) as shard:
        port = start(shard)
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.ehlo()
            assert smtp.mail("carol@example.org")[0] == 250
            assert smtp.rcpt(f"nobody@{DOMAIN}") == (550, b"5.1.1 No such user here")
            code, text = smtp.rcpt("someone@gmail.com")
            assert code == 554 and text.startswith(b"5.7.1 Relay access denied")
            assert smtp.rcpt("not an address")[0] == 501
            assert smtp.docmd("DATA")[0] == 554  # no valid recipient
            smtp.rset()
            assert smtp.docmd("RCPT TO:<alice@mail.test>")[0] == 503  # no MAIL
            assert smtp.docmd("FROB")[0] == 500
            assert smtp.mail("carol@example.org", ["SIZE=999999999999"])[0] == 552
            assert smtp.mail("carol@example.org", ["FOO=BAR"])[0] == 555
        # A pipelined burst is answered in order.
        answers = raw_session(port, b"EHLO x\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<alice@mail.test>\r\n"
                                    b"RCPT TO:<nobody@mail.test>\r\nDATA\r\nSubject: p\r\n\r\npipelined\r\n.\r\nQUIT\r\n")
        codes = [line[:3] for line in answers.split("\r\n") if line and line[3:4] == " "]
        assert codes == ["250", "250", "250", "550", "354", "250", "221"], answers
        assert len(inbox(shard, "alice")) == 1
        shard.coop("down")


def test_bdat_chunks_are_stored_exactly():
    with Shard(BIN) as shard:
        port = start(shard)
        part1 = b"Subject: chunked\r\n\r\n.leading dot stays\r\n"
        part2 = b"binary \x00\xff ok\r\n"
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.ehlo()
            smtp.mail("carol@example.org", ["BODY=BINARYMIME"])
            smtp.rcpt(f"alice@{DOMAIN}")
            smtp.send(f"BDAT {len(part1)}\r\n".encode() + part1)
            assert smtp.getreply()[0] == 250
            smtp.send(f"BDAT {len(part2)} LAST\r\n".encode() + part2)
            code, text = smtp.getreply()
            assert code == 250 and b"delivered" in text
        content = blob(shard, inbox(shard, "alice")[0]["blob"])
        assert content.endswith(part1 + part2)
        shard.coop("down")


def test_limits_have_the_right_reply_codes():
    with Shard(BIN) as shard:
        port = start(shard, max_message_bytes=20000, max_recipients=3, max_bad_commands=4,
                     max_connections_per_address=3, command_timeout_ms=1000, idle_timeout_ms=2000,
                     session_timeout_ms=4000)
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.ehlo()
            assert b"SIZE 20000" in smtp.ehlo_resp
            smtp.mail("carol@example.org")
            for _ in range(3):
                assert smtp.rcpt(f"alice@{DOMAIN}")[0] == 250
            assert smtp.rcpt(f"bob@{DOMAIN}")[0] == 452
            smtp.rset()
            # Oversized without SIZE (sendmail would declare it): read to the end, then 552.
            assert smtp.mail("carol@example.org")[0] == 250
            assert smtp.rcpt(f"alice@{DOMAIN}")[0] == 250
            assert smtp.data(b"Subject: big\r\n\r\n" + b"x" * 30000)[0] == 552
            assert smtp.noop()[0] == 250  # the session goes on
        assert inbox(shard, "alice") == []

        assert "500 5.5.2 Line too long" in raw_session(port, b"EHLO " + b"a" * 5000 + b"\r\nQUIT\r\n")
        bad = raw_session(port, b"FROB\r\nFROB\r\nFROB\r\nFROB\r\nNOOP\r\n")
        assert bad.count("500 5.5.2") == 4 and "421 4.7.0" in bad and "250" not in bad

        # The sessions above may still be closing on the server's side: wait until they have,
        # so that the three taken now are the only ones from this address.
        def smtp_connections():
            answer = subprocess.run(["curl", "-s", "--unix-socket", os.path.join(shard.home, "run", "mail.sock"),
                                     "http://coop/v1/status"], capture_output=True, text=True, timeout=10)
            return json.loads(answer.stdout).get("smtp_connections")
        wait_for(lambda: smtp_connections() == 0, timeout=10, what="earlier sessions to close")

        def hold_three():
            sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
            if all(s.recv(100).startswith(b"220") for s in sockets):
                return sockets
            for s in sockets:
                s.close()
            return None
        held = wait_for(hold_three, timeout=10, what="three free connection slots")
        try:
            # A fourth client from the same address is greeted: the one of the three that has
            # waited longest without a transaction is let go to make room (as Dovecot does).
            extra = socket.create_connection(("127.0.0.1", port), timeout=10)
            assert extra.recv(100).startswith(b"220")
            held[0].settimeout(10)
            assert held[0].recv(100) == b""
            extra.close()
        finally:
            for s in held:
                s.close()

        # A silent client is dropped after the idle timeout; a slow one at the session limit.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.recv(100)
            assert s.recv(100) == b""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.recv(100)
            answer = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                s.sendall(b"NOOP\r\n")
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
                if b"421" in answer:
                    break
                time.sleep(0.5)
            assert b"421 4.4.2" in answer
        shard.coop("down")


def test_quota_is_enforced_at_rcpt_and_after_data():
    with Shard(BIN) as shard:
        port = start(shard)
        shard.coop("member", "set", "bob", "--quota", "3000")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.ehlo()
            smtp.mail("carol@example.org", ["SIZE=5000"])
            assert smtp.rcpt(f"bob@{DOMAIN}")[0] == 552
            smtp.rset()
            assert smtp.mail("carol@example.org")[0] == 250  # no SIZE: found out after DATA
            assert smtp.rcpt(f"bob@{DOMAIN}")[0] == 250
            assert smtp.data(b"Subject: q\r\n\r\n" + b"y" * 4000)[0] == 552
            smtp.sendmail("carol@example.org", [f"bob@{DOMAIN}"], b"Subject: small\r\n\r\n" + b"y" * 2000)
            smtp.mail("carol@example.org")
            assert smtp.rcpt(f"bob@{DOMAIN}")[0] == 250  # 2 KB of 3 used: room left
        assert len(inbox(shard, "bob")) == 1
        shard.coop("down")


def test_kill_9_loses_no_acknowledged_message():
    with Shard(BIN) as shard:
        port = start(shard)
        acknowledged, lock = [], threading.Lock()
        stop = threading.Event()

        def sender(n):
            i = 0
            while not stop.is_set():
                subject = f"burst-{n}-{i}"
                i += 1
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                        smtp.sendmail("carol@example.org", [f"alice@{DOMAIN}"],
                                      f"Subject: {subject}\r\n\r\nbody {subject}\r\n".encode())
                    with lock:
                        acknowledged.append(subject)
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.02)  # the worker is down or restarting

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(acknowledged) >= 30, what="some deliveries")
            pid = next(w for w in shard.json("status")["workers"] if w["name"] == "mail")["pid"]
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: next(w for w in shard.json("status")["workers"] if w["name"] == "mail")["state"] == "running"
                     and next(w for w in shard.json("status")["workers"] if w["name"] == "mail")["pid"] != pid,
                     what="mail restarted")
            count = len(acknowledged)
            wait_for(lambda: len(acknowledged) >= count + 20, what="deliveries after the restart")
        finally:
            stop.set()
            for t in threads:
                t.join()
        stored = set()
        for m in inbox(shard, "alice"):
            content = blob(shard, m["blob"])
            stored.add(content.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode())
        lost = [s for s in acknowledged if s not in stored]
        assert not lost, f"{len(lost)} acknowledged messages lost: {lost[:5]}"
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_ehlo_features_and_a_plain_delivery,
        test_eight_bit_utf8_starttls_and_one_copy_for_many_recipients,
        test_swaks_pipelines_and_uses_starttls,
        test_unknown_recipients_relaying_and_bad_commands,
        test_bdat_chunks_are_stored_exactly,
        test_limits_have_the_right_reply_codes,
        test_quota_is_enforced_at_rcpt_and_after_data,
        test_kill_9_loses_no_acknowledged_message,
    ])
