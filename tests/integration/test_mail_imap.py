"""IMAP with Python's imaplib (and raw sockets where imaplib has no verb), mbsync and mutt: STARTTLS and
implicit TLS, LOGIN and AUTHENTICATE PLAIN against the registry, LIST/STATUS/SELECT,
FETCH items and sections, SEARCH and ESEARCH, STORE, COPY/MOVE with UIDPLUS, EXPUNGE,
APPEND, two sessions seeing each other's changes, IDLE hearing an SMTP delivery, and bad
input answered with BAD while the session goes on."""
import imaplib
import json
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time
import uuid
from email.message import EmailMessage

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for

BIN = bin_dir_from_args()
DOMAIN = "mail.test"
STRONG = "correct horse battery staple"


def tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the shard's self-signed certificate
    return context


def start(shard):
    shard.init()
    shard.coop("up")
    shard.coop("mail", "domain", "add", DOMAIN)
    shard.coop("member", "add", "alice", "--email", f"alice@{DOMAIN}", "--password-stdin", input=STRONG)
    status = shard.json("status")
    mail = next(w for w in status["workers"] if w["name"] == "mail")
    ports = {l["name"]: int(l["url"].rsplit(":", 1)[1]) for l in mail["listeners"]}
    return ports


def deliver(port, subject, body="Hello from the test.\n"):
    msg = EmailMessage()
    msg["From"] = "Carol <carol@example.org>"
    msg["To"] = f"alice@{DOMAIN}"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4()}@example.org>"
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.send_message(msg)
    return msg


def login(ports):
    imap = imaplib.IMAP4("127.0.0.1", ports["imap"])
    imap.starttls(tls_context())
    imap.login("alice", STRONG)
    return imap


def raw_login(ports):
    """A logged-in implicit-TLS socket for what imaplib cannot say, and a line reader on it."""
    raw = tls_context().wrap_socket(socket.create_connection(("127.0.0.1", ports["imaps"]), timeout=10))
    reader = raw.makefile("rb")
    reader.readline()
    raw.sendall(f'a LOGIN alice "{STRONG}"\r\n'.encode())
    assert reader.readline().startswith(b"a OK")
    return raw, reader


def test_tls_and_authentication():
    with Shard(BIN) as shard:
        ports = start(shard)
        plain = imaplib.IMAP4("127.0.0.1", ports["imap"])
        assert "STARTTLS" in plain.capabilities and "LOGINDISABLED" in plain.capabilities
        assert "IMAP4REV2" in plain.capabilities and "AUTH=PLAIN" not in plain.capabilities
        try:
            plain.login("alice", STRONG)
            raise AssertionError("a password was taken in the clear")
        except imaplib.IMAP4.error as e:
            assert "PRIVACYREQUIRED" in str(e)
        plain.starttls(tls_context())
        assert "AUTH=PLAIN" in plain.capabilities and "STARTTLS" not in plain.capabilities
        try:
            plain.login("alice", "wrong")
            raise AssertionError("a wrong password was taken")
        except imaplib.IMAP4.error as e:
            assert "AUTHENTICATIONFAILED" in str(e)
        assert plain.login("alice", STRONG)[0] == "OK"
        assert plain.logout()[0] == "BYE"
        # Implicit TLS on imaps, AUTHENTICATE PLAIN (imaplib sends it with a continuation).
        secure = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls_context())
        typ, _ = secure.authenticate("PLAIN", lambda _: b"\0alice\0" + STRONG.encode())
        assert typ == "OK"
        secure.logout()
        # An app password scoped to mail works; a suspended member is refused.
        app = shard.json("member", "app-password", "add", "alice", "--label", "phone", "--scope", "mail")
        secure = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls_context())
        assert secure.login("alice", app["password"])[0] == "OK"
        secure.logout()
        shard.coop("member", "suspend", "alice")
        secure = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls_context())
        try:
            secure.login("alice", STRONG)
            raise AssertionError("a suspended member logged in")
        except imaplib.IMAP4.error as e:
            assert "AUTHENTICATIONFAILED" in str(e)
        shard.coop("down")


def test_mailboxes_fetch_search_store_copy_move_expunge_append():
    with Shard(BIN) as shard:
        ports = start(shard)
        sent = [deliver(ports["smtp"], subject, f"Body number {i}.\n") for i, subject in enumerate(["one", "two", "three"])]
        imap = login(ports)
        typ, boxes = imap.list()
        names = {re.search(rb'"/" "?([^"]*)"?$', b).group(1).decode(): b for b in boxes}
        assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= set(names), boxes
        assert b"\\Sent" in names["Sent"] and b"\\HasNoChildren" in names["INBOX"]
        # LIST-EXTENDED and LIST-STATUS: special-use mailboxes only, with their STATUS.
        typ, data = imap._simple_command("LIST", '(SPECIAL-USE) "" "*" RETURN (SUBSCRIBED STATUS (MESSAGES UNSEEN))')
        listed = imap.untagged_responses.pop("LIST")
        statuses = imap.untagged_responses.pop("STATUS")
        assert typ == "OK" and len(listed) == 5 and all(b"\\Subscribed" in l for l in listed), listed
        assert b"INBOX" not in b" ".join(listed) and b'"Sent" (MESSAGES 0 UNSEEN 0)' in statuses, statuses
        typ, data = imap._simple_command("LIST", '"" ("INBOX" "Arch*")')
        assert [l.rsplit(b" ", 1)[1] for l in imap.untagged_responses.pop("LIST")] == [b'"INBOX"', b'"Archive"']
        typ, status = imap.status("INBOX", "(MESSAGES UIDNEXT UNSEEN UIDVALIDITY)")
        assert b"MESSAGES 3" in status[0] and b"UNSEEN 3" in status[0] and b"UIDNEXT 4" in status[0], status
        typ, data = imap.select("INBOX")
        assert typ == "OK" and data == [b"3"]
        assert imap.untagged_responses.get("UIDVALIDITY")
        # IMAP4rev1 \Recent (RFC 3501 2.3.2): this session is the first to see all three.
        assert imap.untagged_responses.get("RECENT") == [b"3"], imap.untagged_responses
        # FETCH: items, the whole message, a header field, a partial, the structure.
        typ, data = imap.fetch("1:3", "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)")
        assert typ == "OK" and len(data) == 3
        assert b"UID 1 " in data[0] and b"FLAGS (\\Recent)" in data[0] and b'"one"' in data[0], data[0]
        assert b'(("Carol" NIL "carol" "example.org"))' in data[0], data[0]
        typ, data = imap.fetch("2", "(BODY.PEEK[])")
        whole = data[0][1]
        assert b"Subject: two" in whole and b"Body number 1." in whole
        size = int(re.search(rb"RFC822.SIZE (\d+)", imap.fetch("2", "(RFC822.SIZE)")[1][0]).group(1))
        assert size == len(whole)
        typ, data = imap.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
        assert data[0][1] == b"From: Carol <carol@example.org>\r\nSubject: two\r\n\r\n", data[0][1]
        typ, data = imap.fetch("2", "(BODY.PEEK[TEXT]<0.11>)")
        assert data[0][1] == b"Body number" and b"BODY[TEXT]<0>" in data[0][0]
        typ, data = imap.fetch("2", "(BODYSTRUCTURE)")
        assert b'BODYSTRUCTURE ("text" "plain"' in data[0], data
        typ, data = imap.fetch("2", "(BODY.PEEK[1])")
        assert data[0][1] == b"Body number 1.\r\n", data
        assert imap.fetch("2", "(FLAGS)")[1][0] == b"2 (FLAGS (\\Recent))"  # PEEK left \Seen alone
        typ, data = imap.fetch("2", "(BODY[TEXT])")
        assert b"\\Seen" in data[0][0] or b"\\Seen" in b"".join(x if isinstance(x, bytes) else x[0] for x in data)
        # SEARCH, UID SEARCH, ESEARCH.
        assert imap.search(None, "ALL")[1] == [b"1 2 3"]
        assert imap.search(None, "UNSEEN")[1] == [b"1 3"]
        assert imap.search(None, 'SUBJECT "thr"')[1] == [b"3"]
        imap.literal = b"thr"  # the search text as a literal, as clients send non-ASCII text
        assert imap.search("UTF-8", "SUBJECT")[1] == [b"3"]
        assert imap.search(None, 'FROM "carol" NOT SEEN')[1] == [b"1 3"]
        assert imap.search(None, 'OR SUBJECT one SUBJECT two')[1] == [b"1 2"]
        assert imap.search(None, 'BODY "number 2"')[1] == [b"3"]
        assert imap.uid("SEARCH", "UID 2:*")[1] == [b"2 3"]
        typ, data = imap._simple_command("SEARCH", "RETURN (MIN MAX COUNT) ALL")
        assert typ == "OK" and b"MIN 1 MAX 3 COUNT 3" in imap.untagged_responses.pop("ESEARCH")[0]
        # STORE.
        typ, data = imap.store("1", "+FLAGS", "(\\Flagged \\Seen)")
        assert b"\\Flagged" in data[0] and b"\\Seen" in data[0]
        typ, data = imap.uid("STORE", "1", "-FLAGS.SILENT", "(\\Flagged)")
        assert typ == "OK" and data == [None]
        assert imap.search(None, "FLAGGED")[1] == [b""]
        assert imap.search(None, "SEEN")[1] == [b"1 2"]
        # COPY and MOVE with UIDPLUS.
        typ, data = imap.copy("1", "Archive")
        assert typ == "OK" and b"COPYUID" in data[0], data
        typ, data = imap.uid("MOVE", "3", "Archive")
        assert typ == "OK" and imap.untagged_responses.pop("EXPUNGE") == [b"3"]
        assert imap.search(None, "ALL")[1] == [b"1 2"]
        assert b"MESSAGES 2" in imap.status("Archive", "(MESSAGES)")[1][0]
        assert imap.copy("1", "Nowhere")[0] == "NO"
        # EXPUNGE.
        imap.store("1", "+FLAGS", "(\\Deleted)")
        typ, data = imap.expunge()
        assert typ == "OK" and data == [b"1"]
        assert imap.search(None, "ALL")[1] == [b"1"]
        # APPEND with flags and a date; CREATE.
        raw = b"From: alice@mail.test\r\nSubject: draft\r\n\r\nWritten offline.\r\n"
        typ, data = imap.append("Drafts", "(\\Draft \\Seen)", '"05-Dec-2026 18:00:00 +0100"', raw)
        assert typ == "OK" and b"APPENDUID" in data[0], data
        imap.select("Drafts")
        typ, data = imap.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])")
        assert data[0][1] == raw and b"\\Draft" in data[0][0] and b'"05-Dec-2026 17:00:00 +0000"' in data[0][0], data
        assert imap.create("Projects/2027")[0] == "OK"
        assert imap.create("Projects/2027")[0] == "NO"
        assert b"Projects/2027" in imap.list('""', "Projects/%")[1][0]
        assert imap.select("Nowhere")[0] == "NO"
        # RENAME takes the children along; DELETE refuses INBOX and a mailbox with children.
        assert imap.create("Projects")[0] == "OK"
        assert imap.rename("Projects", "Work")[0] == "OK"
        names = b" ".join(imap.list('""', "*")[1])
        assert b'"Work/2027"' in names and b"Projects" not in names
        assert imap.rename("Work", "Archive")[0] == "NO"
        assert imap.delete("Work")[0] == "NO"
        assert imap.delete("Work/2027")[0] == "OK" and imap.delete("Work")[0] == "OK"
        assert imap.delete("INBOX")[0] == "NO" and imap.delete("Nowhere")[0] == "NO"
        # RENAME INBOX (RFC 9051 6.3.6): its messages move, INBOX stays, empty, with its children;
        # a second session with INBOX selected sees them expunged.
        other = login(ports)
        other.select("INBOX")
        inbox_count = int(imap.status("INBOX", "(MESSAGES)")[1][0].split()[-1].rstrip(b")"))
        assert inbox_count > 0
        assert imap.create("INBOX/Kept")[0] == "OK"
        assert imap.rename("INBOX", '"Old mail"')[0] == "OK"
        assert imap.status("INBOX", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 0)")
        assert imap.status('"Old mail"', "(MESSAGES)")[1][0].endswith(f"(MESSAGES {inbox_count})".encode())
        assert b"INBOX/Kept" in b" ".join(imap.list('""', "*")[1])
        other.noop()
        assert len(other.untagged_responses.get("EXPUNGE", [])) == inbox_count, other.untagged_responses
        assert other.search(None, "ALL")[1] == [b""]
        other.logout()
        imap.select('"Old mail"')
        assert imap.search(None, "ALL")[1][0].split()[-1] == str(inbox_count).encode()
        # Subscriptions: LSUB lists the subscribed ones.
        assert imap.unsubscribe("Junk")[0] == "OK"
        subscribed = b" ".join(imap.lsub('""', "*")[1])
        assert b"Junk" not in subscribed and b"INBOX" in subscribed
        assert imap.subscribe("Junk")[0] == "OK" and b"Junk" in b" ".join(imap.lsub('""', "*")[1])
        imap.logout()
        shard.coop("down")


def test_two_sessions_and_idle_see_changes():
    with Shard(BIN) as shard:
        ports = start(shard)
        deliver(ports["smtp"], "first")
        deliver(ports["smtp"], "second")
        a, b = login(ports), login(ports)
        a.select("INBOX")
        b.select("INBOX")
        # b flags message 2, then a changes message 1: a's own, newer change must not hide b's.
        b.store("2", "+FLAGS", "(\\Answered)")
        a.store("1", "+FLAGS", "(\\Flagged)")
        typ, _ = a.noop()
        fetched = a.untagged_responses.pop("FETCH", [])
        assert any(x.startswith(b"2 (") and b"\\Answered" in x for x in fetched), fetched
        deliver(ports["smtp"], "third")
        a.noop()
        assert a.untagged_responses.get("EXISTS") and a.untagged_responses["EXISTS"][-1] == b"3"
        b.store("1", "+FLAGS", "(\\Deleted)")
        b.expunge()
        a.noop()
        assert a.untagged_responses.pop("EXPUNGE", None) == [b"1"]
        b.logout()
        a.logout()
        # IDLE over TLS with a raw socket (imaplib has no IDLE): a delivery shows up at once.
        raw = tls_context().wrap_socket(socket.create_connection(("127.0.0.1", ports["imaps"]), timeout=10))
        reader = raw.makefile("rb")
        reader.readline()
        raw.sendall(f"a LOGIN alice \"{STRONG}\"\r\nb SELECT INBOX\r\nc IDLE\r\n".encode())
        while not reader.readline().startswith(b"+ idling"):
            pass
        started = time.monotonic()
        deliver(ports["smtp"], "fourth")
        line = reader.readline()
        heard = time.monotonic() - started
        assert line == b"* 3 EXISTS\r\n", line
        assert reader.readline() == b"* 1 RECENT\r\n"
        raw.sendall(b"DONE\r\n")
        assert reader.readline().startswith(b"c OK")
        print(f"IDLE heard a delivery {heard * 1000:.0f} ms after SMTP accepted it")
        raw.close()
        shard.coop("down")


def test_condstore():
    with Shard(BIN) as shard:
        ports = start(shard)
        for subject in ("one", "two", "three"):
            deliver(ports["smtp"], subject)
        imap = login(ports)
        assert "CONDSTORE" in imap.capabilities
        typ, _ = imap._simple_command("SELECT", "INBOX (CONDSTORE)")
        assert typ == "OK"
        imap.state = "SELECTED"  # imaplib tracks state only through its own select()
        highest = int(imap.untagged_responses["HIGHESTMODSEQ"][-1])
        typ, data = imap.fetch("1:*", "(FLAGS)")
        modseqs = [int(re.search(rb"MODSEQ \((\d+)\)", d).group(1)) for d in data]
        assert len(modseqs) == 3 and max(modseqs) == highest, (data, highest)
        # A change gets a new MODSEQ; CHANGEDSINCE returns just what changed.
        typ, data = imap.store("2", "+FLAGS", "(\\Seen)")
        changed = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
        assert changed > highest
        typ, data = imap._simple_command("FETCH", f"1:* (FLAGS) (CHANGEDSINCE {highest})")
        fetched = imap.untagged_responses.pop("FETCH")
        assert typ == "OK" and len(fetched) == 1 and fetched[0].startswith(b"2 ("), fetched
        # A conditional STORE leaves alone what changed since the client looked.
        typ, data = imap._simple_command("UID", "STORE", "1:3", f"(UNCHANGEDSINCE {highest})", "+FLAGS", "(\\Flagged)")
        assert typ == "OK" and b"[MODIFIED 2]" in data[0], data
        imap.untagged_responses.pop("FETCH", None)
        flagged = imap.search(None, "FLAGGED")[1][0]
        assert flagged == b"1 3", flagged
        # SEARCH MODSEQ, with the highest MODSEQ of the result.
        typ, data = imap.search(None, f"MODSEQ {changed}")
        assert data[0].startswith(b"1 2 3 (MODSEQ ") or data[0].startswith(b"1 3 (MODSEQ "), data
        imap.logout()
        shard.coop("down")


def test_sort_and_thread():
    with Shard(BIN) as shard:
        ports = start(shard)
        imap = login(ports)
        for subject, date, sender in [("Budget", "Mon, 02 Nov 2026 10:00:00 +0000", "zoe"),
                                      ("Re: Budget", "Tue, 03 Nov 2026 09:00:00 +0000", "adam"),
                                      ("Picnic", "Sun, 01 Nov 2026 12:00:00 +0100", "mia"),
                                      ("Fwd: [coop] Re: budget (fwd)", "Wed, 04 Nov 2026 08:00:00 +0000", "bob")]:
            raw = (f"From: {sender}@example.org\r\nTo: alice@{DOMAIN}\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n"
                   f"{subject}\r\n").encode()
            assert imap.append("INBOX", None, None, raw)[0] == "OK"
        imap.select("INBOX")
        assert "SORT" in imap.capabilities and "THREAD=ORDEREDSUBJECT" in imap.capabilities
        assert imap.sort("(DATE)", "UTF-8", "ALL")[1] == [b"3 1 2 4"]
        assert imap.sort("(REVERSE DATE)", "UTF-8", "ALL")[1] == [b"4 2 1 3"]
        assert imap.sort("(FROM)", "UTF-8", "ALL")[1] == [b"2 4 3 1"]
        assert imap.sort("(SUBJECT DATE)", "UTF-8", "ALL")[1] == [b"1 2 4 3"]  # base subjects: budget x3, picnic
        assert imap.uid("SORT", "(REVERSE SIZE)", "UTF-8", "FROM", "adam")[1] == [b"2"]
        typ, data = imap.thread("ORDEREDSUBJECT", "UTF-8", "ALL")
        assert typ == "OK" and data == [b"(3)(1 (2)(4))"], data
        assert imap.thread("BOGUS", "UTF-8", "ALL")[0] == "NO"
        # THREAD=REFERENCES: replies by References/In-Reply-To, a missing parent pruned.
        imap.select("Drafts")
        for mid, refs, subject, day in [("a", "", "Plan", 1), ("b", "<a>", "Re: Plan", 2), ("c", "<a> <b>", "Re: Plan", 3),
                                        ("d", "<a>", "Re: Plan", 4), ("e", "<gone> <lost>", "Orphan", 5), ("f", "", "Other", 6)]:
            headers = f"Message-ID: <{mid}>\r\nSubject: {subject}\r\nDate: Mon, {day:02d} Nov 2026 10:00:00 +0000\r\n"
            if refs:
                headers += f"References: {refs}\r\n"
            assert imap.append("Drafts", None, None, (headers + "\r\nbody\r\n").encode())[0] == "OK"
        imap.select("Drafts")
        typ, data = imap.thread("REFERENCES", "UTF-8", "ALL")
        assert typ == "OK" and data == [b"(1 (2 3)(4))(5)(6)"], data
        # Step 5 (RFC 5256 3): same base subject, no references. A reply joins the original; two
        # originals go under a dummy; a thread whose root is a dummy takes the others in.
        imap.select("Archive")
        for mid, refs, subject, day in [("g", "", "Party", 1), ("h", "", "Re: Party", 2), ("i", "", "Cake", 3),
                                        ("j", "", "Cake", 4), ("k", "", "[Fwd: Cake]", 5),
                                        ("m", "<missing>", "Tea", 6), ("n", "<missing>", "Re: Tea", 7), ("o", "", "Re: Tea", 8)]:
            headers = f"Message-ID: <{mid}>\r\nSubject: {subject}\r\nDate: Mon, {day:02d} Nov 2026 10:00:00 +0000\r\n"
            if refs:
                headers += f"References: {refs}\r\n"
            assert imap.append("Archive", None, None, (headers + "\r\nbody\r\n").encode())[0] == "OK"
        imap.select("Archive")
        typ, data = imap.thread("REFERENCES", "UTF-8", "ALL")
        assert typ == "OK" and data == [b"(1 2)((3)(4)(5))((6)(7)(8))"], data
        imap.logout()
        shard.coop("down")


def test_qresync():
    with Shard(BIN) as shard:
        ports = start(shard)
        for subject in ("one", "two", "three", "four"):
            deliver(ports["smtp"], subject)
        a, b = login(ports), login(ports)
        assert "QRESYNC" in a.capabilities
        assert a._simple_command("ENABLE", "QRESYNC")[0] == "OK"
        a.select("INBOX")
        uidvalidity = int(a.untagged_responses["UIDVALIDITY"][-1])
        before = int(a.untagged_responses["HIGHESTMODSEQ"][-1])
        b.select("INBOX")
        b.store("2", "+FLAGS", "(\\Seen)")
        b.store("3", "+FLAGS", "(\\Deleted)")
        b.expunge()
        # a hears of the expunge as VANISHED, not EXPUNGE (RFC 7162 3.2.10).
        a.untagged_responses.clear()
        a.noop()
        assert a.untagged_responses.get("VANISHED") == [b"3"] and "EXPUNGE" not in a.untagged_responses, a.untagged_responses
        # UID FETCH ... (CHANGEDSINCE n VANISHED): what went since, then what changed.
        a.untagged_responses.clear()
        typ, _ = a._simple_command("UID", "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {before} VANISHED)")
        assert typ == "OK" and a.untagged_responses.pop("VANISHED") == [b"(EARLIER) 3"]
        fetched = a.untagged_responses.pop("FETCH")
        assert len(fetched) == 1 and b"UID 2" in fetched[0] and b"\\Seen" in fetched[0], fetched
        # A new session resynchronizes at SELECT.
        c = login(ports)
        c._simple_command("ENABLE", "QRESYNC")
        typ, _ = c._simple_command("SELECT", f"INBOX (QRESYNC ({uidvalidity} {before} 1:4))")
        assert typ == "OK" and c.untagged_responses.pop("VANISHED") == [b"(EARLIER) 3"]
        assert any(b"UID 2" in x and b"MODSEQ" in x for x in c.untagged_responses.pop("FETCH")), c.untagged_responses
        typ, data = c._simple_command("SELECT", f"INBOX (QRESYNC ({uidvalidity + 1} {before}))")
        assert typ == "OK" and "VANISHED" not in c.untagged_responses  # another UIDVALIDITY: a full resync
        for s_ in (a, b, c):
            s_.logout()
        shard.coop("down")


def test_binary():
    with Shard(BIN) as shard:
        ports = start(shard)
        imap = login(ports)
        attachment = bytes(range(256)) * 8
        msg = EmailMessage()
        msg["From"] = "carol@example.org"
        msg["Subject"] = "with an attachment"
        msg.set_content("Café au lait = 2 €\n", cte="quoted-printable")
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="data.bin")
        assert imap.append("INBOX", None, None, msg.as_bytes().replace(b"\n", b"\r\n"))[0] == "OK"
        imap.select("INBOX")
        assert "BINARY" in imap.capabilities
        typ, data = imap.fetch("1", "(BINARY.SIZE[2] BINARY.PEEK[2])")
        assert typ == "OK" and f"BINARY.SIZE[2] {len(attachment)}".encode() in data[0][0], data[0][0]
        assert data[0][1] == attachment  # base64 undone, NULs and all (a literal8)
        typ, data = imap.fetch("1", "(BINARY.PEEK[1])")
        assert data[0][1].replace(b"\r\n", b"\n") == "Café au lait = 2 €\n".encode(), data  # quoted-printable undone
        try:
            imap.fetch("1", "(BINARY.PEEK[HEADER])")
            raise AssertionError("BINARY of a header was taken")
        except imaplib.IMAP4.error as e:
            assert "BAD" in str(e) or "FETCH items" in str(e), e
        # BINARY[] is the whole message as stored.
        typ, data = imap.fetch("1", "(BINARY.PEEK[])")
        assert data[0][1] == msg.as_bytes().replace(b"\n", b"\r\n"), data[0][0]
        # RFC 2045 6.7: "=" and blanks before a line break is a soft break; blanks that end a
        # line were added in transport. BINARY.SIZE counts the decoded bytes.
        qp = (b"Subject: qp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
              b"Content-Transfer-Encoding: quoted-printable\r\n\r\nsoft= \t\r\nbreak   \r\n=C3=A9\r\n")
        assert imap.append("INBOX", None, None, qp)[0] == "OK"
        imap.noop()
        typ, data = imap.fetch("2", "(BINARY.SIZE[1] BINARY.PEEK[1])")
        expected = "softbreak\r\né\r\n".encode()
        assert data[0][1] == expected and f"BINARY.SIZE[1] {len(expected)}".encode() in data[0][0], data
        imap.logout()
        # RFC 3516 4.4: APPEND takes a literal8, 8-bit bytes and all.
        raw, reader = raw_login(ports)
        eight_bit = "Subject: octets\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße, ½ € \r\n".encode()
        raw.sendall(b"b APPEND INBOX ~{%d}\r\n" % len(eight_bit))
        assert reader.readline().startswith(b"+")
        raw.sendall(eight_bit + b"\r\n")
        assert reader.readline().startswith(b"b OK [APPENDUID"), "literal8 APPEND refused"
        raw.sendall(b"c SELECT INBOX\r\nd FETCH 3 (BINARY.PEEK[1])\r\n")
        while not (line := reader.readline()).startswith(b"* 3 FETCH"):
            assert not line.startswith(b"d "), line
        size = int(re.search(rb"\{(\d+)\}", line).group(1))
        assert reader.read(size) == "Grüße, ½ € \r\n".encode()
        raw.close()
        shard.coop("down")


def test_header_search_and_part_sections():
    with Shard(BIN) as shard:
        ports = start(shard)
        imap = login(ports)
        folded = (b"From: Dora <dora@example.org>\r\nTo: alice@mail.test\r\nSubject: folded\r\n"
                  b"X-Project: the long\r\n winter bakery\r\nMIME-Version: 1.0\r\n"
                  b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
                  b"--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
                  b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
                  b"From: eve@example.org\r\nSubject: inner\r\n\r\ninner body\r\n--b1--\r\n")
        assert imap.append("INBOX", None, None, folded)[0] == "OK"
        assert imap.append("INBOX", None, None, b"From: frank@example.org\r\nSubject: plain\r\n\r\nwinter\r\n")[0] == "OK"
        imap.select("INBOX")
        # A folded field is one field (RFC 5322 2.2.3); HEADER with "" matches any message with it.
        assert imap.search(None, "HEADER", "X-Project", '"long winter"')[1] == [b"1"]
        assert imap.search(None, "HEADER", "x-project", '""')[1] == [b"1"]
        assert imap.search(None, "HEADER", "X-Missing", '""')[1] == [b""]
        assert imap.search(None, "FROM", "frank")[1] == [b"2"]
        assert imap.search(None, "TO", "alice", "NOT", "FROM", "eve")[1] == [b"1"]  # eve is in the attached message only
        assert imap.search(None, "TEXT", "winter")[1] == [b"1 2"]
        assert imap.search(None, "BODY", "winter")[1] == [b"2"]
        # A message with bare LF line ends (imaplib would make them CRLF): its header ends at
        # the first empty line too.
        raw, reader = raw_login(ports)
        lf_only = b"From: gina@example.org\nSubject: lf\n\nFrom: body-line@example.org\n"
        raw.sendall(b"b APPEND INBOX {%d+}\r\n" % len(lf_only) + lf_only + b"\r\n")
        assert reader.readline().startswith(b"b OK"), "bare-LF APPEND refused"
        raw.close()
        imap.noop()
        assert imap.search(None, "FROM", "gina")[1] == [b"3"]
        assert imap.search(None, "FROM", "body-line")[1] == [b""]
        # RFC 9051 6.4.5: MIME of a part, HEADER and TEXT of an attached message.
        typ, data = imap.fetch("1", "(BODY.PEEK[1.MIME] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.HEADER.FIELDS (SUBJECT)])")
        parts = {re.search(rb"BODY\[([^\]]*)", d[0]).group(1): d[1] for d in data if isinstance(d, tuple)}
        assert parts[b"1.MIME"] == b"Content-Type: text/plain\r\n\r\n", parts
        assert parts[b"2.HEADER"] == b"From: eve@example.org\r\nSubject: inner\r\n\r\n", parts
        assert parts[b"2.TEXT"] == b"inner body", parts
        assert parts[b"2.HEADER.FIELDS (SUBJECT)"] == b"Subject: inner\r\n\r\n", parts
        typ, data = imap.fetch("2", "(BODY.PEEK[1.HEADER])")  # a text part has no header of its own
        assert b"NIL" in data[0], data
        # SENTBEFORE, SENTON, SENTSINCE (RFC 9051 6.4.4): the Date: header's day, time and zone
        # disregarded (23:30 -0800 on the 2nd is the 3rd in UTC, and still the 2nd here).
        for day, subject in (("Mon, 01 Feb 2027 10:00:00 +0100", "first"), ("Tue, 02 Feb 2027 23:30:00 -0800", "second"),
                             ("3 Feb 2027 08:00 +0000", "third")):
            msg = f"Date: {day}\r\nFrom: hana@example.org\r\nSubject: {subject}\r\n\r\ndated\r\n".encode()
            assert imap.append("INBOX", None, None, msg)[0] == "OK"
        imap.noop()
        assert imap.search(None, "SENTON", "2-Feb-2027")[1] == [b"5"]
        assert imap.search(None, "SENTBEFORE", "2-Feb-2027")[1] == [b"4"]
        assert imap.search(None, "SENTSINCE", "2-Feb-2027")[1] == [b"5 6"]
        assert imap.search(None, "SENTSINCE", "1-Feb-2027", "SENTBEFORE", "3-Feb-2027", "FROM", "hana")[1] == [b"4 5"]
        uids = imap.uid("SEARCH", "SENTON", "3-Feb-2027")[1][0].split()
        assert len(uids) == 1
        assert imap.search(None, "SENTON", "1-Feb-2027", "NOT", "FROM", "hana")[1] == [b""]  # no Date: matches none
        try:
            imap.search(None, "SENTON", "yesterday")
            raise AssertionError("SENTON with a word for a date was answered OK")
        except imaplib.IMAP4.error as e:
            assert "BAD" in str(e), e
        imap.logout()
        shard.coop("down")


def test_keywords():
    with Shard(BIN) as shard:
        ports = start(shard)
        deliver(ports["smtp"], "one")
        deliver(ports["smtp"], "two")
        a, b = login(ports), login(ports)
        typ, data = a.select("INBOX")
        assert any(b"PERMANENTFLAGS" in r and b"\\*" in r for r in a.untagged_responses.get("OK", [])), a.untagged_responses
        b.select("INBOX")
        # A new keyword comes with a new FLAGS list first (RFC 9051 7.3.5); case is kept, not doubled.
        typ, data = a.store("1", "+FLAGS", "($Forwarded Work)")
        assert typ == "OK" and data[0] == b"1 (FLAGS (\\Recent $Forwarded Work))", data
        assert any(b"$Forwarded Work" in f for f in a.untagged_responses.get("FLAGS", [])), a.untagged_responses
        assert a.store("1", "+FLAGS", "(work \\Seen)")[1][0] == b"1 (FLAGS (\\Seen \\Recent $Forwarded Work))"
        # The other session hears of it, keywords and all.
        b.noop()
        fetched = [r for r in b.untagged_responses.get("FETCH", []) if b"$Forwarded" in r]
        assert fetched and b"Work" in fetched[-1], b.untagged_responses
        # \Recent is for the session that selected first only.
        assert b"\\Recent" not in b" ".join(fetched) and b"\\Recent" not in b.fetch("1:2", "(FLAGS)")[1][0]
        assert b.search(None, "RECENT")[1] == [b""] and a.search(None, "NEW")[1] == [b"2"]
        assert a.search(None, "OLD")[1] == [b""] and b.search(None, "OLD")[1] == [b"1 2"]
        assert b.search(None, "KEYWORD", "$forwarded")[1] == [b"1"]
        assert b.search(None, "UNKEYWORD", "Work")[1] == [b"2"]
        assert a.store("1", "-FLAGS", "(WORK)")[1][0] == b"1 (FLAGS (\\Seen \\Recent $Forwarded))"
        assert a.store("2", "FLAGS", "($Junk)")[1][0] == b"2 (FLAGS (\\Recent $Junk))"
        # APPEND with keywords; they survive COPY.
        typ, data = a.append("INBOX", "(\\Flagged $Label1)", None, b"Subject: kept\r\n\r\nbody\r\n")
        assert typ == "OK", data
        a.noop()
        assert a.fetch("3", "(FLAGS)")[1][0] == b"3 (FLAGS (\\Flagged \\Recent $Label1))"
        assert a.copy("3", "Archive")[0] == "OK"
        a.select("Archive")
        assert a.fetch("1", "(FLAGS)")[1][0] == b"1 (FLAGS (\\Flagged \\Recent $Label1))"
        flags_line = a.untagged_responses.get("FLAGS", [b""])[-1]
        assert b"$Label1" in flags_line, a.untagged_responses
        # Not a keyword: BAD, nothing changed.
        try:
            a.store("1", "+FLAGS", "(bad]word)")
            raise AssertionError("a bad keyword was taken")
        except imaplib.IMAP4.error as e:
            assert "not a flag" in str(e), e
        assert a.fetch("1", "(FLAGS)")[1][0] == b"1 (FLAGS (\\Flagged \\Recent $Label1))"
        a.logout()
        b.logout()
        shard.coop("down")


def test_mailbox_names_in_utf7_and_utf8():
    with Shard(BIN) as shard:
        ports = start(shard)
        # imaplib speaks IMAP4rev1 without ENABLE: modified UTF-7 both ways (RFC 3501 5.1.3).
        imap = login(ports)
        assert "UTF8=ACCEPT" in imap.capabilities
        assert imap.create("Caf&AOk-/&ZeVnLIqe-")[0] == "OK"
        names = b" ".join(imap.list('""', "Caf*")[1])
        assert b'"Caf&AOk-"' in names and b'"Caf&AOk-/&ZeVnLIqe-"' in names, names
        # The parent does not exist: listed as \\Noselect so clients can show the hierarchy.
        assert b'(\\Noselect \\HasChildren) "/" "Caf&AOk-"' in names, names
        assert imap.select("Caf&AOk-/&ZeVnLIqe-")[0] == "OK"
        assert imap.create("Caf&AOk-")[0] == "OK"
        assert imap.status("Caf&AOk-", "(MESSAGES)")[1][0].startswith(b'"Caf&AOk-"')
        # After ENABLE UTF8=ACCEPT (RFC 6855) the same mailboxes have UTF-8 names.
        raw, reader = raw_login(ports)
        raw.sendall(b'b ENABLE UTF8=ACCEPT\r\nc LIST "" "Caf*"\r\n')
        seen = b""
        while not (line := reader.readline()).startswith(b"c "):
            seen += line
            if line.rstrip().endswith(b"}"):  # a literal (8-bit text)
                seen += reader.read(int(line.rstrip()[line.rindex(b"{") + 1:-1]))
        assert b"* ENABLED UTF8=ACCEPT" in seen, seen
        assert "Café/日本語".encode() in seen and b"&AOk-" not in seen, seen
        # IDLE before any SELECT: nothing to report, DONE still heard.
        raw.sendall(b"i IDLE\r\n")
        assert reader.readline().startswith(b"+")
        raw.sendall(b"DONE\r\n")
        assert reader.readline().startswith(b"i OK"), "IDLE without a mailbox hung"
        # RFC 6855 4: APPEND ... UTF8 (literal8) for a message with UTF-8 headers.
        utf8_message = "Subject: Grüße aus Köln\r\nFrom: jürgen@example.org\r\n\r\nHallo\r\n".encode()
        raw.sendall(b"u APPEND INBOX UTF8 (~{%d}\r\n" % len(utf8_message))
        assert reader.readline().startswith(b"+")
        raw.sendall(utf8_message + b")\r\n")
        assert reader.readline().startswith(b"u OK [APPENDUID"), "APPEND UTF8 refused"
        raw.sendall('d SELECT "Café/日本語"\r\n'.encode())
        while not (line := reader.readline()).startswith(b"d "):
            pass
        assert line.startswith(b"d OK"), line
        raw.close()
        imap.logout()
        shard.coop("down")


def test_quota():
    with Shard(BIN) as shard:
        ports = start(shard)
        deliver(ports["smtp"], "small", "x" * 2000)
        imap = login(ports)
        assert "QUOTA" in imap.capabilities
        typ, data = imap.getquotaroot("INBOX")
        assert typ == "OK" and data[0] == [b'"INBOX"'], data  # no quota yet: no root
        shard.coop("member", "set", "alice", "--quota", "10240")
        typ, data = imap.getquotaroot("INBOX")
        assert typ == "OK" and data[1][0].startswith(b'"" (STORAGE 3 10)'), data
        assert imap.getquota('""')[1][0].startswith(b'"" (STORAGE 3 10)')
        assert imap.setquota('""', "(STORAGE 100)")[0] == "NO"
        # APPEND past the quota: OVERQUOTA, and nothing is stored.
        typ, data = imap.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"y" * 20000 + b"\r\n")
        assert typ == "NO" and b"OVERQUOTA" in data[0], data
        assert b"MESSAGES 1" in imap.status("INBOX", "(MESSAGES)")[1][0]
        imap.logout()
        shard.coop("down")


def test_a_big_fetch_comes_in_pieces_and_whole():
    with Shard(BIN) as shard:
        ports = start(shard)
        mbox = os.path.join(shard.dir, "many.mbox")
        with open(mbox, "wb") as f:
            for i in range(600):
                f.write(f"From carol@example.org Mon Nov 23 10:00:00 2026\nFrom: carol@example.org\n"
                        f"Subject: message {i}\nMessage-ID: <m{i}@example.org>\n\n".encode() + f"number {i} ".encode() * 200 + b"\n\n")
        shard.coop("mail", "import", "alice", "--format", "mbox", "--mailbox", "INBOX", mbox)
        imap = login(ports)
        assert imap.select("INBOX")[1] == [b"600"]
        typ, data = imap.fetch("1:*", "(UID BODY.PEEK[])")
        bodies = [part[1] for part in data if isinstance(part, tuple)]
        heads = [part[0][:40] for part in data if isinstance(part, tuple)]
        assert typ == "OK" and len(bodies) == 600, (typ, len(bodies), heads[:3], heads[-3:],
                                                    [d[:80] for d in data if not isinstance(d, tuple) and d != b")"][:5])
        assert all(f"number {i} ".encode() in body for i, body in enumerate(bodies))
        assert sum(len(b) for b in bodies) > 1_000_000  # several of the 256 KiB pieces
        imap.logout()
        shard.coop("down")


def test_a_client_that_stops_reading_holds_no_more_than_a_piece():
    with Shard(BIN) as shard:
        ports = start(shard)
        mbox = os.path.join(shard.dir, "wide.mbox")
        with open(mbox, "wb") as f:
            for i in range(200):
                f.write(f"From carol@example.org Mon Nov 23 10:00:00 2026\nSubject: wide {i}\n\n".encode() +
                        (f"{i:04d}" + "x" * 75 + "\n").encode() * 640 + b"\n")
        shard.coop("mail", "import", "alice", "--format", "mbox", "--mailbox", "INBOX", mbox)
        mail = next(w for w in shard.json("status")["workers"] if w["name"] == "mail")

        def rss_kb():
            with open(f"/proc/{mail['pid']}/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        sock.connect(("127.0.0.1", ports["imaps"]))
        raw = tls_context().wrap_socket(sock)
        reader = raw.makefile("rb")
        reader.readline()
        raw.sendall(f'a LOGIN alice "{STRONG}"\r\nb SELECT INBOX\r\n'.encode())
        while not reader.readline().startswith(b"b OK"):
            pass
        before = rss_kb()
        raw.sendall(b"c FETCH 1:* (BODY.PEEK[])\r\n")  # about 10 MB of answer, and nobody reading
        time.sleep(1.5)
        grown = rss_kb() - before
        # The server makes the next 256 KiB piece only when the last one is written.
        assert grown < 4096, f"the server grew by {grown} KiB for a client that does not read"
        bodies = 0
        while not (line := reader.readline()).startswith(b"c "):
            if line.rstrip().endswith(b"}"):
                size = int(line.rstrip()[line.rindex(b"{") + 1:-1])
                assert len(reader.read(size)) == size
                bodies += 1
        assert line.startswith(b"c OK") and bodies == 200, (line, bodies)
        print(f"a stalled FETCH of 10 MB grew the worker by {grown} KiB")
        raw.close()
        shard.coop("down")


def maildir_files(root, folder):
    found = {}
    for sub in ("cur", "new"):
        path = os.path.join(root, folder, sub)
        for name in os.listdir(path) if os.path.isdir(path) else []:
            found[name] = open(os.path.join(path, name), "rb").read()
    return found


def test_mbsync_syncs_both_ways():
    with Shard(BIN) as shard:
        ports = start(shard)
        for subject in ("alpha", "beta"):
            deliver(ports["smtp"], subject)
        local = os.path.join(shard.dir, "maildir")
        os.makedirs(local)
        config = os.path.join(shard.dir, "mbsyncrc")
        with open(config, "w") as f:
            f.write(f"""IMAPAccount coop
Host localhost
Port {ports["imaps"]}
User alice
Pass "{STRONG}"
SSLType IMAPS
CertificateFile {os.path.join(shard.home, "keys", "tls.crt")}

IMAPStore coop-remote
Account coop

MaildirStore coop-local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel coop
Far :coop-remote:
Near :coop-local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
""")

        def sync():
            result = subprocess.run(["mbsync", "-c", config, "-a"], capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stdout + result.stderr

        sync()
        inbox = maildir_files(local, "INBOX")
        assert len(inbox) == 2 and all(b"Subject: " in body for body in inbox.values()), inbox.keys()
        for folder in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
            assert os.path.isdir(os.path.join(local, folder, "cur")), folder
        # Flags and new messages go up: a message read here, one written here.
        path = os.path.join(local, "INBOX", "cur" if os.listdir(os.path.join(local, "INBOX", "cur")) else "new")
        name = sorted(os.listdir(path))[0]
        os.rename(os.path.join(path, name), os.path.join(local, "INBOX", "cur", name.split(":2,")[0] + ":2,S"))
        with open(os.path.join(local, "Drafts", "new", "1700000000.1.draft"), "wb") as f:
            f.write(b"From: alice@mail.test\r\nSubject: written offline\r\n\r\nSynced up by mbsync.\r\n")
        sync()
        imap = login(ports)
        imap.select("INBOX")
        assert imap.search(None, "SEEN")[1] == [b"1"] or imap.search(None, "SEEN")[1] == [b"2"]
        imap.select("Drafts")
        typ, data = imap.fetch("1", "(BODY.PEEK[])")
        assert b"Synced up by mbsync." in data[0][1]
        # Deletions come down: expunged on the server, gone here after the next sync.
        imap.select("INBOX")
        imap.store("1:*", "+FLAGS", "(\\Deleted)")
        imap.expunge()
        imap.logout()
        sync()
        assert maildir_files(local, "INBOX") == {}
        shard.coop("down")


def test_mutt_opens_the_account():
    with Shard(BIN) as shard:
        ports = start(shard)
        deliver(ports["smtp"], "hello from the shard")
        rc = os.path.join(shard.dir, "muttrc")
        with open(rc, "w") as f:
            f.write(f"""set folder="imaps://alice@localhost:{ports['imaps']}/"
set spoolfile="+INBOX"
set imap_pass="{STRONG}"
set certificate_file="{shard.dir}/mutt-certificates"
set header_cache=""
""")
        # mutt draws on a terminal: `script` gives it one. It asks about the self-signed
        # certificate ("a" accepts it), opens INBOX, lists the message, and quits.
        result = subprocess.run(["script", "-qec", f"mutt -n -F {rc} -e 'push <quit>'", "/dev/null"], input="a\n",
                                capture_output=True, text=True, timeout=60, env={**os.environ, "TERM": "xterm"})
        screen = result.stdout
        # mutt picks the strongest mechanism offered: SCRAM-SHA-256 (RFC 7677).
        assert "Authenticating (SCRAM-SHA-256)" in screen and "Selecting INBOX" in screen, screen[-2000:]
        assert "hello from the shard" in screen and "Msgs:1" in screen, screen[-2000:]
        shard.coop("down")


def test_imapflow_lists_fetches_idles_and_moves():
    clients = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients")
    if not os.path.isdir(os.path.join(clients, "node_modules", "imapflow")):
        raise AssertionError("imapflow is not installed: run scripts/install-deps")
    with Shard(BIN) as shard:
        ports = start(shard)
        deliver(ports["smtp"], "first")
        deliver(ports["smtp"], "second")
        node = subprocess.Popen(["node", os.path.join(clients, "imap_flow.cjs"), str(ports["imaps"]), "alice", STRONG],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=clients)
        try:
            assert node.stdout.readline().strip() == "IDLING"
            time.sleep(0.3)
            deliver(ports["smtp"], "third")
            out, err = node.communicate(timeout=60)
        finally:
            if node.poll() is None:
                node.kill()
        assert node.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        paths = dict(result["mailboxes"])
        assert paths["INBOX"] is None or paths["INBOX"] == "\\Inbox"
        assert paths["Sent"] == "\\Sent" and paths["Trash"] == "\\Trash", paths
        assert result["subjects"] == ["first", "second"] and result["firstBytes"] > 100
        assert result["idle"] is True and result["existsAfter"] == 3
        assert result["inboxAfterMove"] == 2 and result["archive"] == 1, result
        shard.coop("down")


def test_bad_input_gets_bad_and_the_session_goes_on():
    with Shard(BIN) as shard:
        ports = start(shard)
        raw = tls_context().wrap_socket(socket.create_connection(("127.0.0.1", ports["imaps"]), timeout=10))
        reader = raw.makefile("rb")
        assert reader.readline().startswith(b"* OK [CAPABILITY")

        def send(data):
            raw.sendall(data)
            return reader.readline()

        # Before login a client cannot make the server hold more than a login needs.
        assert send(b"a0 LOGIN alice {100000}\r\n").startswith(b"a0 NO [TOOBIG]")
        assert send(b"a1 FROBNICATE\r\n").startswith(b"a1 BAD")
        assert send(b"a2 SELECT INBOX\r\n").startswith(b"a2 BAD")  # not logged in yet
        # One command table decides: every command a logged-in session has says "log in
        # first" before login; UID goes only before the commands that take it.
        for n, command in enumerate((b"CREATE x", b"DELETE x", b"RENAME a b", b"APPEND INBOX \"x\"", b"EXPUNGE",
                                     b"UID FETCH 1 FLAGS", b"ENABLE IMAP4rev2", b"IDLE", b"CLOSE")):
            assert send(b"p%d " % n + command + b"\r\n") == b"p%d BAD log in first\r\n" % n, command
        assert send(b"p9 UID LIST\r\n") == b"p9 BAD UID LIST is not a command\r\n"
        assert send(b"p10 UID FROB\r\n") == b"p10 BAD UID FROB is not a command\r\n"
        assert send(b"no-space\r\n").startswith(b"* BAD")
        assert send(b"a3 LOGIN {5}\r\n") == b"+ Ready for literal data\r\n"
        assert send(f"alice \"{STRONG}\"\r\n".encode()).startswith(b"a3 OK")
        assert send(b"a4 APPEND INBOX {999999999}\r\n").startswith(b"a4 NO [TOOBIG]")
        # UTF-8 names (IMAP4rev2): children move with their parent, and renaming a parent of
        # the selected mailbox keeps the session on it.
        assert send('u1 CREATE "Café/2027"\r\n'.encode()).startswith(b"u1 OK")
        assert send('u2 CREATE "Café"\r\n'.encode()).startswith(b"u2 OK")
        raw.sendall('u3 SELECT "Café/2027"\r\n'.encode())
        while not (line := reader.readline()).startswith(b"u3"):
            pass
        assert line.startswith(b"u3 OK")
        assert send('u4 RENAME "Café" "Bistro"\r\n'.encode()).startswith(b"u4 OK")
        raw.sendall(b'u5 LIST "" "*"\r\n')
        listing = b""
        while not (line := reader.readline()).startswith(b"u5"):
            listing += line
        assert b'"Bistro/2027"' in listing and "Café".encode() not in listing, listing
        assert send(b"u6 NOOP\r\n").startswith(b"u6 OK")
        assert send(b'u7 DELETE "Bistro"\r\n').startswith(b"u7 NO [INUSE]")
        assert send(b"u8 UNSELECT\r\n").startswith(b"u8 OK")
        assert send(b"a5 FETCH 1 (FLAGS)\r\n").startswith(b"a5 BAD")  # nothing selected
        for n, command in enumerate((b"EXPUNGE", b"UID STORE 1 +FLAGS (\\Seen)", b"CLOSE", b"MOVE 1 x", b"SORT (DATE) UTF-8 ALL")):
            assert send(b"s%d " % n + command + b"\r\n") == b"s%d BAD select a mailbox first\r\n" % n, command
        assert send(b"s9 LOGIN alice x\r\n") == b"s9 BAD already authenticated\r\n"
        raw.sendall(b"a6 SELECT INBOX\r\n")
        while not (line := reader.readline()).startswith(b"a6"):
            pass
        assert line.startswith(b"a6 OK [READ-WRITE]")
        assert send(b"a7 FETCH 1:x (FLAGS)\r\n").startswith(b"a7 BAD")
        assert send(b"a8 SEARCH NONSENSE\r\n").startswith(b"a8 BAD")
        assert send(b"a9 " + b"x" * 70000 + b"\r\n").startswith(b"a9 BAD")
        assert send(b"a10 NOOP\r\n").startswith(b"a10 OK")
        # RFC 9051 2.3.1.1: a mailbox deleted and made again (here within the same second) has
        # another UIDVALIDITY, or clients would keep the old mailbox's UIDs for the new one.
        seen = []
        for n in range(3):
            assert send(b"v%d CREATE Again\r\n" % n).startswith(b"v%d OK" % n)
            raw.sendall(b"w%d STATUS Again (UIDVALIDITY)\r\n" % n)
            status = reader.readline()
            assert reader.readline().startswith(b"w%d OK" % n)
            seen.append(int(re.search(rb"UIDVALIDITY (\d+)", status).group(1)))
            assert send(b"x%d DELETE Again\r\n" % n).startswith(b"x%d OK" % n)
        assert seen == sorted(set(seen)) and len(seen) == 3, seen
        raw.close()
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_tls_and_authentication,
        test_mailboxes_fetch_search_store_copy_move_expunge_append,
        test_two_sessions_and_idle_see_changes,
        test_condstore,
        test_header_search_and_part_sections,
        test_keywords,
        test_mailbox_names_in_utf7_and_utf8,
        test_quota,
        test_qresync,
        test_binary,
        test_sort_and_thread,
        test_a_big_fetch_comes_in_pieces_and_whole,
        test_a_client_that_stops_reading_holds_no_more_than_a_piece,
        test_mbsync_syncs_both_ways,
        test_mutt_opens_the_account,
        test_imapflow_lists_fetches_idles_and_moves,
        test_bad_input_gets_bad_and_the_session_goes_on,
    ])
