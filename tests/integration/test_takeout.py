"""`coop member takeout`: a member with mail, a calendar, contacts, chat, a map marker, a
document, an app password and logins gets one folder of standard files, read back here by
Python's mailbox, icalendar and vobject modules and by jq; private (0700/0600); nothing of
another member's in it; an unknown member or a used folder is refused."""
import json
import mailbox
import os
import smtplib
import stat
import subprocess
import urllib.request
from email.message import EmailMessage

import icalendar
import vobject

from coopshard import Shard, bin_dir_from_args, listener, matrix, run_tests, wait_for
from test_backup import EVENT as CALENDAR

BIN = bin_dir_from_args()
DOMAIN = "takeout.test"
STRONG = "correct horse battery staple"

CARDS = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:farm-1\r\nFN:Green Farm\r\nEMAIL:hello@farm.example\r\nEND:VCARD\r\n"


def jq(filter_, path):
    return subprocess.run(["jq", "-r", filter_, path], check=True, capture_output=True, text=True).stdout.strip()


def populate(shard):
    """alice gets something of every kind; bob some too, which must not reach alice's takeout."""
    shard.coop("mail", "domain", "add", DOMAIN)
    for handle in ("alice", "bob"):
        shard.coop("member", "add", handle, "--email", f"{handle}@{DOMAIN}", "--password-stdin", input=STRONG)
    smtp_port = int(listener(shard, "mail", "smtp").rsplit(":", 1)[1])
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
        for to, n in (("alice", 0), ("alice", 1), ("bob", 2)):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "carol@example.org", f"{to}@{DOMAIN}", f"note {n}"
            msg.set_content(f"From the start of a line\nbody {n}\n")
            smtp.send_message(msg)
    shard.coop("dav", "calendar", "create", "assemblies", "--owner", "alice")
    path = os.path.join(shard.dir, "cal.ics")
    with open(path, "w") as f:
        f.write(CALENDAR)
    shard.coop("dav", "calendar", "import", "assemblies", "--owner", "alice", path)
    shard.coop("dav", "addressbook", "create", "suppliers", "--owner", "alice")
    path = os.path.join(shard.dir, "cards.vcf")
    with open(path, "w") as f:
        f.write(CARDS)
    shard.coop("dav", "addressbook", "import", "suppliers", "--owner", "alice", path)
    shard.coop("dav", "calendar", "create", "bobs", "--owner", "bob")
    room_url = listener(shard, "room", "client")
    token = matrix(room_url, "POST", "/login", {"type": "m.login.password", "user": "alice", "password": STRONG})["access_token"]
    room_id = matrix(room_url, "POST", "/createRoom", {"name": "ops"}, token)["room_id"]
    matrix(room_url, "PUT", f"/rooms/{room_id}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hello ops"}, token)
    shard.coop("tiles", "marker", "add", "--lat", "43.73", "--lon", "7.42", "--title", "Tool library", "--by", "alice")
    shard.coop("tiles", "marker", "add", "--lat", "43.74", "--lon", "7.43", "--title", "Bob's bench", "--by", "bob")
    shard.coop("member", "app-password", "add", "alice", "--label", "phone", "--scope", "mail,dav")
    shard.coop("member", "verify", "alice", "--protocol", "mail", "--source", "192.0.2.7", input=STRONG)
    source = os.path.join(shard.dir, "agenda.txt")
    with open(source, "w") as f:
        f.write("Agenda\n")
    made = json.loads(shard.coop("docs", "new", "--from", source, "--as", "alice", "--password-stdin", "--json",
                                 input=STRONG).stdout)
    wait_for(lambda: len(json.loads(shard.coop("mail", "mailboxes", "alice", "--json").stdout)[0:1]) == 1
             and json.loads(shard.coop("mail", "mailboxes", "alice", "--json").stdout)[0]["messages"] == 2,
             what="alice's two messages")
    return room_id, made


def test_takeout_holds_everything_in_standard_formats():
    with Shard(BIN, domain=DOMAIN) as shard:
        shard.init()
        shard.coop("up")
        room_id, made = populate(shard)
        out = os.path.join(shard.dir, "alice-takeout")
        old = os.umask(0o022)
        try:
            summary = shard.json("member", "takeout", "alice", "-o", out)
        finally:
            os.umask(old)
        assert summary["messages"] == 2 and summary["calendars"] == 1 and summary["addressbooks"] == 1, summary
        assert summary["rooms"] >= 1 and summary["markers"] == 1 and summary["documents"] == 1, summary
        assert summary["not_included"] == []

        # Private: the folder 0700, every file 0600, whatever the umask.
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
        for root, _, files in os.walk(out):
            for name in files:
                assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o600, (root, name)

        # Mail, by Python's mailbox module, both ways.
        maildir = mailbox.Maildir(os.path.join(out, "mail", "maildir"), create=False)
        assert sorted(m["Subject"] for m in maildir) == ["note 0", "note 1"]
        mbox = mailbox.mbox(os.path.join(out, "mail", "mbox", "INBOX"), create=False)
        assert sorted(m["Subject"] for m in mbox) == ["note 0", "note 1"]
        assert all("From the start of a line" in m.get_payload() for m in mbox)

        # The calendar by icalendar, the address book by vobject; bob's calendar is not here.
        with open(os.path.join(out, "calendars", "assemblies.ics"), "rb") as f:
            cal = icalendar.Calendar.from_ical(f.read())
        assert [str(e["SUMMARY"]) for e in cal.walk("VEVENT")] == ["General assembly"]
        assert os.listdir(os.path.join(out, "calendars")) == ["assemblies.ics"]
        with open(os.path.join(out, "contacts", "suppliers.vcf")) as f:
            cards = list(vobject.readComponents(f.read()))
        assert [c.fn.value for c in cards] == ["Green Farm"]

        # JSON files by jq: chat, markers (hers only), app passwords (no secret), logins, profile.
        chat = os.path.join(out, "chat.json")
        assert room_id in jq(".rooms[].room_id", chat).split()
        assert "hello ops" in jq("[.rooms[].events[] | .content.body? // empty] | join(\"\\n\")", chat)
        assert jq(".features | length", os.path.join(out, "markers.geojson")) == "1"
        assert jq(".features[0].properties.title", os.path.join(out, "markers.geojson")) == "Tool library"
        assert jq(".[0].label", os.path.join(out, "app-passwords.json")) == "phone"
        with open(os.path.join(out, "app-passwords.json")) as f:
            assert "password" not in f.read().replace("app-passwords", "")
        assert jq("[.[] | select(.protocol == \"mail\")] | length", os.path.join(out, "logins.json")) != "0"
        assert jq(".handle", os.path.join(out, "profile.json")) == "alice"

        # The document as the server has it: its log, ciphertext only.
        documents = os.path.join(out, "documents")
        assert jq(".[0].channel", os.path.join(documents, "index.json")) == made["channel"]
        with open(os.path.join(documents, made["channel"] + ".ndjson")) as f:
            log = f.read()
        assert log and "Agenda" not in log

        with open(os.path.join(out, "README.txt")) as f:
            readme = f.read()
        for name in ("mail/maildir/", "calendars/NAME.ics", "chat.json", "markers.geojson", "logins.json"):
            assert name in readme, name
        shard.coop("down")


def test_takeout_refuses_an_unknown_member_and_a_used_folder():
    with Shard(BIN, domain=DOMAIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("member", "add", "alice", "--password-stdin", input=STRONG)
        out = os.path.join(shard.dir, "t")
        result = shard.coop("member", "takeout", "nobody", "-o", out, expect=1)
        assert result.stderr == "coop: no member 'nobody'\n" and not os.path.exists(out), result.stderr
        os.makedirs(out)
        with open(os.path.join(out, "keep"), "w") as f:
            f.write("mine")
        result = shard.coop("member", "takeout", "alice", "-o", out, expect=1)
        assert "refusing to overwrite" in result.stderr
        with open(os.path.join(out, "keep")) as f:
            assert f.read() == "mine"
        shard.coop("down")
        # A worker the shard does not run: its part is left out, and the README says so.
        config = os.path.join(shard.home, "coop.toml")
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(text.replace("[workers.tiles]\nenabled = true", "[workers.tiles]\nenabled = false"))
        shard.coop("up")
        partial = os.path.join(shard.dir, "partial")
        summary = shard.json("member", "takeout", "alice", "-o", partial)
        assert summary["not_included"] == ["tiles"] and not os.path.exists(os.path.join(partial, "markers.geojson"))
        with open(os.path.join(partial, "README.txt")) as f:
            assert "Not included: what the tiles worker(s) keep" in f.read()
        shard.coop("down")


def test_settings_are_what_clients_connect_with():
    import caldav
    import imaplib
    import ssl
    with Shard(BIN, domain=DOMAIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("mail", "domain", "add", DOMAIN)
        shard.coop("member", "add", "alice", "--email", f"alice@{DOMAIN}", "--password-stdin", input=STRONG)
        settings = shard.json("member", "settings", "alice")
        # IMAP over TLS at the port and with the login it names (the host is the shard's
        # domain, which this machine does not resolve: the test dials loopback).
        imap = settings["mail"]["imap"]
        assert imap["security"] == "TLS" and imap["login"] == f"alice@{DOMAIN}" and imap["host"] == DOMAIN, imap
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        session = imaplib.IMAP4_SSL("127.0.0.1", imap["port"], ssl_context=ctx)
        assert session.login(imap["login"], STRONG)[0] == "OK"
        session.logout()
        assert settings["mail"]["submission_starttls"]["security"] == "STARTTLS"
        # CalDAV at the URL it names.
        principal = caldav.DAVClient(url=settings["calendars"]["url"], username="alice", password=STRONG).principal()
        principal.make_calendar(name="From settings")
        # Matrix at the homeserver it names.
        chat = settings["chat"]
        assert chat["user_id"] == f"@alice:{DOMAIN}"
        login = matrix(chat["homeserver"], "POST", "/login", {"type": "m.login.password", "user": "alice", "password": STRONG})
        assert login["user_id"] == chat["user_id"]
        # The documents editor answers; no map yet, so no embed snippet.
        with urllib.request.urlopen(settings["documents"]["editor"], timeout=10) as r:
            assert r.status == 200
        assert settings["map"]["maps"] == [] and "embed" not in settings["map"]
        text = shard.coop("member", "settings", "alice").stdout
        assert f"port {imap['port']}, TLS, login alice@{DOMAIN}" in text and settings["calendars"]["url"] in text
        assert shard.coop("member", "settings", "nobody", expect=1).stderr == "coop: no member 'nobody'\n"
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_takeout_holds_everything_in_standard_formats,
        test_takeout_refuses_an_unknown_member_and_a_used_folder,
        test_settings_are_what_clients_connect_with,
    ])
