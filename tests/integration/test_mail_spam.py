"""The spam filter on a running shard: scores and X-Spam fields on port 25 (the sender's own
stripped), Junk and 550 by the thresholds of coop.toml, members teaching it by moving mail
into and out of Junk with imaplib, `coop mail spam train|score|status`, greylisting against
a second coop shard's real queue, and hostile messages that must not hurt the worker."""
import email
import email.policy
import imaplib
import json
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import time
import uuid

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for

BIN = bin_dir_from_args()
DOMAIN = "mail.test"
STRONG = "correct horse battery staple"


def control(shard, path):
    out = subprocess.run(["curl", "-s", "--unix-socket", os.path.join(shard.home, "run", "mail.sock"), f"http://coop{path}"],
                         capture_output=True, check=True).stdout
    return json.loads(out) if path.startswith("/v1/messages") else out


def mailbox(shard, handle, name="INBOX"):
    return control(shard, f"/v1/messages/{handle}/{name}?limit=10000")


def stored(shard, handle, name="INBOX"):
    """The bytes of every message in a mailbox, oldest first."""
    return [control(shard, f"/v1/blobs/{m['blob']}") for m in mailbox(shard, handle, name)]


def ports(shard):
    mail = next(w for w in shard.json("status")["workers"] if w["name"] == "mail")
    return {l["name"]: int(l["url"].rsplit(":", 1)[1]) for l in mail["listeners"]}


def start(shard, spam_toml="", mail_toml="", domain=DOMAIN):
    """A shard hosting domain, with alice (password) and bob; 127.0.0.1 is not a trusted
    network, so the test's mail is scored as mail from outside."""
    shard.init()
    path = os.path.join(shard.home, "coop.toml")
    with open(path) as f:
        text = f.read()
    # Keys of [workers.mail] go in that table, right after its header.
    text = text.replace("[workers.mail]\n", "[workers.mail]\ntrusted_networks = []\n" + mail_toml, 1)
    with open(path, "w") as f:
        f.write(text + "\n[workers.mail.spam]\n" + spam_toml)
    shard.coop("up")
    shard.coop("mail", "domain", "add", domain)
    for who in ("alice", "bob"):
        shard.coop("member", "add", who, "--email", f"{who}@{domain}", "--password-stdin", input=STRONG)
    return ports(shard)


def send(port, raw, sender="carol@example.org", to=(f"alice@{DOMAIN}",)):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        return s.sendmail(sender, list(to), raw)


def plain(subject, body="Hello Alice, the seedlings are in. See you on Tuesday.\r\n", extra=""):
    return (f"From: Carol <carol@example.org>\r\nTo: alice@{DOMAIN}\r\nSubject: {subject}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{uuid.uuid4()}@example.org>\r\n{extra}"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


def header(raw, name):
    return email.message_from_bytes(raw, policy=email.policy.compat32).get_all(name) or []


def score_of(raw):
    return float(header(raw, "X-Spam-Score")[0])


def tests_of(raw):
    status = " ".join(header(raw, "X-Spam-Status")[0].split())
    return set(re.findall(r"([A-Z_]+)(?:\([0-9.]+\))?=", status.split("tests=", 1)[1])) if "tests=" in status else set()


def test_scores_headers_junk_and_reject():
    with Shard(BIN) as shard:
        p = start(shard, "junk = 3.0\nreject = 8.0\n")
        # A clean message: INBOX, our two fields once, the sender's own claims gone.
        forged = "X-Spam-Status: No, score=-50.0 tests=WHITELISTED\r\nX-Spam-Score: -50\r\nX-Spam-Flag: NO\r\n"
        assert send(p["smtp"], plain("Seedlings", extra=forged)) == {}
        [clean] = stored(shard, "alice")
        assert header(clean, "X-Spam-Score") == ["0.0"], header(clean, "X-Spam-Score")
        assert len(header(clean, "X-Spam-Status")) == 1 and header(clean, "X-Spam-Status")[0].startswith("No, score=0.0 required=3.0")
        assert header(clean, "X-Spam-Flag") == [] and b"WHITELISTED" not in clean
        # The fields sit under our Authentication-Results, above the trace.
        head = clean.split(b"\r\n\r\n", 1)[0].decode()
        assert head.index("Authentication-Results:") < head.index("X-Spam-Score:") < head.index("Received:")

        # HTML only, no Message-ID, a shouting subject: 3.0, into Junk, with its reasons.
        shouty = (f"From: Offers <deals@example.org>\r\nTo: alice@{DOMAIN}\r\nSubject: LIMITED OFFER TODAY\r\n"
                  f"Date: {email.utils.formatdate()}\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
                  "<p>Our <b>best</b> prices</p>\r\n").encode()
        assert send(p["smtp"], shouty) == {}
        [junk] = stored(shard, "alice", "Junk")
        assert tests_of(junk) == {"HTML_ONLY", "MISSING_MESSAGE_ID", "SUBJECT_ALL_CAPS"}, header(junk, "X-Spam-Status")
        assert score_of(junk) == 3.0 and header(junk, "X-Spam-Status")[0].startswith("Yes, score=3.0")
        assert len(mailbox(shard, "alice")) == 1

        # Past reject: 550 at the end of DATA, nothing stored, nothing dropped silently.
        phish = (f"From: \"security@bank.example\" <x@phish.example>\r\nTo: alice@{DOMAIN}\r\nSubject: Verify now!!\r\n"
                 "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                 "--b\r\nContent-Type: text/html\r\n\r\n<a href=\"http://198.51.100.9/x\">https://www.bank.example/</a>\r\n"
                 "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"form.pdf.exe\"\r\n"
                 "Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n").encode()
        try:
            send(p["smtp"], phish)
            raise AssertionError("a message past reject was accepted")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 550 and b"spam" in e.smtp_error, e
        assert len(mailbox(shard, "alice")) == 1 and len(mailbox(shard, "alice", "Junk")) == 1
        log = shard.log("mail")
        assert "spam score" in log and "DANGEROUS_ATTACHMENT" in log

        # What the rules say is in `coop mail spam score` too, and in status --json.
        tmp = tempfile.mkdtemp()
        try:
            with open(os.path.join(tmp, "phish.eml"), "wb") as f:
                f.write(phish)
            [scored] = shard.json("mail", "spam", "score", os.path.join(tmp, "phish.eml"))
            assert scored["verdict"] == "reject" and "LINK_MISMATCH" in scored["tests"] and "LINK_TO_ADDRESS" in scored["tests"]
            assert "FROM_NAME_OTHER_ADDRESS" in scored["tests"] and "MISSING_DATE" in scored["tests"]
        finally:
            shutil.rmtree(tmp)
        status = shard.json("mail", "spam", "status")
        assert status["enabled"] and status["junk"] == 3.0 and status["reject"] == 8.0 and status["dnsbl"] == []
        assert {r["name"] for r in status["rules"]} >= {"HTML_ONLY", "BAYES", "DMARC_PASS", "DNSBL"}

        # Members' own mail through submission is not scored.
        with smtplib.SMTP("127.0.0.1", p["submission"], timeout=30) as s:
            s.starttls(context=ssl._create_unverified_context())
            s.login("bob", STRONG)
            s.sendmail(f"bob@{DOMAIN}", [f"alice@{DOMAIN}"], shouty.replace(b"deals@example.org", f"bob@{DOMAIN}".encode()))
        wait_for(lambda: len(mailbox(shard, "alice")) == 2, what="bob's message")
        assert header(stored(shard, "alice")[1], "X-Spam-Score") == []
        shard.coop("down")


def maildir(root, messages):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for i, raw in enumerate(messages):
        with open(os.path.join(root, "cur", f"{1700000000 + i}.{i}.test:2,S"), "wb") as f:
            f.write(raw)
    return root


def garden(i):
    return plain(f"Allotment news {i}", f"The seedlings, compost and watering rota for plot {i}; minutes of the meeting.\r\n")


def offer(i, words="discount watches replica luxury"):
    return plain(f"Deal {i}", f"Best {words} shipped free, order number {i} today.\r\n")


def imap_login(port, who="alice"):
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.starttls(ssl._create_unverified_context())
    imap.login(who, STRONG)
    return imap


def test_members_teach_it_by_moving_mail_over_imap():
    tmp = tempfile.mkdtemp()
    try:
        with Shard(BIN) as shard:
            p = start(shard)
            # An admin's first lesson from sorted mail, Maildir and mbox, then again: once.
            ham = maildir(os.path.join(tmp, "ham"), [garden(i) for i in range(12)])
            with open(os.path.join(tmp, "spam.mbox"), "wb") as f:
                for i in range(12):
                    f.write(b"From x@example.org Sat Jan  3 01:05:34 2026\n" + offer(i).replace(b"\r\n", b"\n") + b"\n")
            got = shard.json("mail", "spam", "train", "--spam", os.path.join(tmp, "spam.mbox"), "--ham", ham)
            assert got == {"spam": {"learnt": 12, "already": 0}, "ham": {"learnt": 12, "already": 0}}, got
            again = shard.json("mail", "spam", "train", "--ham", ham)
            assert again["ham"] == {"learnt": 0, "already": 12}
            status = shard.json("mail", "spam", "status")["classifier"]
            assert status["spam_messages"] == 12 and status["ham_messages"] == 12 and status["tokens"] > 20
            # Spam came first: with no ham known yet it had no opinion on the spam (wrong for
            # either kind), and from the second ham on it judged the ham right.
            assert status["recent_trainings"] == 24 and 10 <= status["recent_right"] <= 12, status

            # A kind of spam it has not seen (no word of it known) lands in INBOX; alice moves it
            # into Junk.
            novel = "porcelain gnome statues, glazed figurines, wholesale crates"
            assert send(p["smtp"], plain("Gnomes", f"{novel}\r\n"),
                        to=(f"alice@{DOMAIN}", f"bob@{DOMAIN}")) == {}
            before = score_of(stored(shard, "alice")[0])
            imap = imap_login(p["imap"])
            imap.select("INBOX")
            assert imap.uid("MOVE", "1", "Junk")[0] == "OK"
            assert shard.json("mail", "spam", "status")["classifier"]["spam_messages"] == 13
            # Bob moving his copy of the same delivery teaches nothing more: once per message.
            bob = imap_login(p["imap"], "bob")
            bob.select("INBOX")
            assert bob.uid("MOVE", "1", "Junk")[0] == "OK"
            bob.logout()
            assert shard.json("mail", "spam", "status")["classifier"]["spam_messages"] == 13
            # A similar message now scores higher.
            assert send(p["smtp"], plain("Gnomes again", f"{novel}\r\n")) == {}
            similar = [m for m in stored(shard, "alice") + stored(shard, "alice", "Junk") if b"Gnomes again" in m][0]
            after = score_of(similar)
            assert after > before, (before, after)
            # Out of Junk again: unlearnt as spam and learnt as ham; the next similar scores lower.
            imap.select("Junk")
            assert imap.uid("MOVE", "1", "INBOX")[0] == "OK"
            counts = shard.json("mail", "spam", "status")["classifier"]
            assert counts["spam_messages"] == 12 and counts["ham_messages"] == 13, counts
            assert send(p["smtp"], plain("Gnomes thrice", f"{novel}\r\n")) == {}
            third = [m for m in stored(shard, "alice") + stored(shard, "alice", "Junk") if b"Gnomes thrice" in m][0]
            assert score_of(third) < after, (after, score_of(third))
            # Deleting from Junk (to Trash) teaches nothing.
            imap.select("INBOX")
            typ, data = imap.uid("SEARCH", None, "SUBJECT", "Gnomes")
            uids = data[0].split()
            imap.uid("MOVE", b",".join(uids), "Junk")
            imap.select("Junk")
            spam_now = shard.json("mail", "spam", "status")["classifier"]["spam_messages"]
            typ, data = imap.uid("SEARCH", None, "ALL")
            imap.uid("MOVE", b",".join(data[0].split()), "Trash")
            assert shard.json("mail", "spam", "status")["classifier"]["spam_messages"] == spam_now
            imap.logout()
            assert "taught as spam" in shard.log("mail") and "taught as ham" in shard.log("mail")
            shard.coop("down")
    finally:
        shutil.rmtree(tmp)


def test_greylisting_with_a_second_shards_queue_delivers_once():
    with Shard(BIN) as a, Shard(BIN, domain="other.test") as b:
        pa = start(a, "greylist = true\ngreylist_delay_s = 2\n")
        b.init()
        with open(os.path.join(b.home, "coop.toml"), "a") as f:
            f.write(f'\n[workers.mail.queue]\nretry_first_ms = 300\nretry_max_ms = 600\n'
                    f'\n[workers.mail.routes]\n"{DOMAIN}" = "127.0.0.1:{pa["smtp"]}"\n')
        b.coop("up")
        b.coop("mail", "domain", "add", "other.test")
        b.coop("member", "add", "dora", "--email", "dora@other.test", "--password-stdin", input=STRONG)
        pb = ports(b)

        def submit(subject):
            raw = plain(subject).replace(b"carol@example.org", b"dora@other.test")
            with smtplib.SMTP("127.0.0.1", pb["submission"], timeout=30) as s:
                s.starttls(context=ssl._create_unverified_context())
                s.login("dora", STRONG)
                return s.sendmail("dora@other.test", [f"alice@{DOMAIN}"], raw)

        assert submit("first contact") == {}
        # The first attempt is told to come back (451); b's queue retries until it passes.
        wait_for(lambda: "Greylisted" in json.dumps(b.json("mail", "queue", "list")), what="a greylisted attempt")
        wait_for(lambda: len(mailbox(a, "alice")) == 1, timeout=60, what="delivery after the delay")
        wait_for(lambda: b.json("mail", "queue", "list") == [], what="b's queue empty")
        time.sleep(1.5)
        assert len(mailbox(a, "alice")) == 1  # exactly once
        assert a.log("mail").count("greylisted <dora@other.test>") >= 1
        # The triplet passed: the next message from dora comes straight in.
        greylisted = a.log("mail").count("greylisted <dora@other.test>")
        assert submit("second") == {}
        wait_for(lambda: len(mailbox(a, "alice")) == 2, timeout=10, what="the second message at once")
        assert a.log("mail").count("greylisted <dora@other.test>") == greylisted
        # A stranger straight to port 25 is greylisted per recipient.
        try:
            send(pa["smtp"], plain("stranger"), sender="eve@example.org")
            raise AssertionError("an unknown triplet was let through")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients[f"alice@{DOMAIN}"]
            assert code == 451 and b"Greylisted" in text
        a.coop("down")
        b.coop("down")


def test_blocklists_named_in_coop_toml():
    with Shard(BIN) as shard:
        p = start(shard, 'junk = 3.0\nreject = 100.0\ndnsbl = ["bl.test", "quiet.test"]\nuribl = ["uri.test"]\n')
        zone = shard.dns
        zone.a("1.0.0.127.bl.test", "127.0.0.2")             # the test's client, listed (RFC 5782 2.1)
        zone.a("1.0.0.127.quiet.test", "127.255.255.254")    # a list refusing the question: no listing
        zone.a("badsite.example.uri.test", "127.0.0.4")
        zone.a("goodsite.example.uri.test", "127.0.0.1")      # a URIBL's refusal, no listing
        html = ("<p>see <a href=\"http://www.badsite.example/offer\">our offer</a> and "
                "<a href=\"https://goodsite.example/\">the news</a></p>")
        raw = plain("links").replace(b"Content-Type: text/plain; charset=utf-8\r\n\r\n",
                                     b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
                                     b"see our offer\r\n--b\r\nContent-Type: text/html\r\n\r\n" + html.encode() + b"\r\n--b--\r\n")
        raw = raw.split(b"Hello Alice")[0]
        assert send(p["smtp"], raw) == {}
        [junk] = stored(shard, "alice", "Junk")
        assert tests_of(junk) == {"DNSBL_BL_TEST", "URIBL_URI_TEST"}, header(junk, "X-Spam-Status")
        assert score_of(junk) == 6.0
        # Without a listed link only the address counts: 3.0, still Junk at 3.
        assert send(p["smtp"], plain("no links")) == {}
        assert len(mailbox(shard, "alice", "Junk")) == 2
        assert tests_of(stored(shard, "alice", "Junk")[1]) == {"DNSBL_BL_TEST"}
        assert shard.json("mail", "spam", "status")["dnsbl"] == ["bl.test", "quiet.test"]
        shard.coop("down")
    with Shard(BIN) as shard:  # a zone that is not a DNS name stops coop-mail with the key's name
        shard.init()
        with open(os.path.join(shard.home, "coop.toml"), "a") as f:
            f.write('\n[workers.mail.spam]\ndnsbl = ["../etc"]\n')
        out = shard.coop("up", expect=None)
        assert out.returncode != 0 and "is not a DNS zone" in out.stdout + out.stderr + shard.log("mail"), out


def test_hostile_messages_do_not_hurt_the_worker():
    with Shard(BIN) as shard:
        p = start(shard)
        pid = next(w for w in shard.json("status")["workers"] if w["name"] == "mail")["pid"]
        links = "".join(f'<a href="http://h{i}.example/">www.x{i}.example</a>' for i in range(20000))
        deep = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(200))
        hostile = [
            plain("links", extra="", body="").replace(b"text/plain", b"text/html") + links.encode(),
            plain("deep").replace(b"Content-Type: text/plain; charset=utf-8\r\n\r\n", deep.encode()) + b"x\r\n",
            plain("bad bytes").replace(b"Hello Alice", b"\xff\xfe\xc0\xaf invalid \xed\xa0\x80 bytes").replace(b"Subject: bad", b"Subject: \xff\xfe bad"),
            plain("names", extra='Content-Disposition: attachment; filename="../../../etc/passwd.exe"\r\n'),
            b"no header at all, no blank line, just text" * 2000,
            plain("anchors", body="<a href=" * 5000).replace(b"text/plain", b"text/html"),
            # Markup whose naive scan is quadratic: a megabyte of tags without href, of "<a "
            # with one '>' at the very end, of '&' without ';', of "http://" without an end.
            plain("tags", body="<a x>" * 200000).replace(b"text/plain", b"text/html"),
            plain("open tags", body="<a " * 300000 + ">").replace(b"text/plain", b"text/html"),
            plain("ampersands", body="&" * 1000000).replace(b"text/plain", b"text/html"),
            plain("schemes", body="http://" * 150000).replace(b"text/plain", b"text/html"),
        ]
        refused = 0
        for raw in hostile:
            raw = raw if isinstance(raw, bytes) else raw.encode()
            try:
                send(p["smtp"], raw)
            except smtplib.SMTPDataError as e:
                assert e.smtp_code == 550, e  # refused as spam is an answer too
                refused += 1
        assert next(w for w in shard.json("status")["workers"] if w["name"] == "mail")["pid"] == pid
        assert len(mailbox(shard, "alice")) + len(mailbox(shard, "alice", "Junk")) + refused == len(hostile)
        shard.coop("down")


if __name__ == "__main__":
    run_tests([test_scores_headers_junk_and_reject, test_members_teach_it_by_moving_mail_over_imap,
               test_greylisting_with_a_second_shards_queue_delivers_once, test_blocklists_named_in_coop_toml,
               test_hostile_messages_do_not_hurt_the_worker])
