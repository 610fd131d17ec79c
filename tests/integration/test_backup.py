"""coop backup, backup verify and restore, with real clients: a backup taken while an SMTP
client (smtplib) and a Matrix client keep sending; the restored shard holds every message
and event acknowledged before the backup began, IMAP (imaplib), CalDAV (python3-caldav), the
map's TileJSON and a tile, and a document (coop docs pull) answer as the original did, a second backup copies no blob again, and a damaged backup is
named file by file and restores nothing."""
import imaplib
import json
import math
import os
import smtplib
import ssl
import subprocess
import threading
import time
import urllib.request
import uuid
from email.message import EmailMessage

import caldav

from coopshard import Shard, bin_dir_from_args, listener, matrix, run_tests

BIN = bin_dir_from_args()
DOMAIN = "backup.test"
STRONG = "correct horse battery staple"
EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//coop tests//EN
BEGIN:VEVENT
UID:assembly@backup.test
DTSTAMP:20260101T000000Z
DTSTART:20270115T180000Z
DTEND:20270115T200000Z
SUMMARY:General assembly
END:VEVENT
END:VCALENDAR
"""


def tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def imap_message_ids(port):
    with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=tls()) as imap:
        imap.login(f"alice@{DOMAIN}", STRONG)
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        ids = {}
        for item in data:
            if isinstance(item, tuple):
                uid = int(item[0].split(b"UID ")[1].split()[0])
                ids[item[1].decode().split(":", 1)[1].strip()] = uid
        _, status = imap.status("INBOX", "(UIDVALIDITY)")
        return ids, status[0].decode()


def small_town(directory):
    """A few streets as OPL, made a .osm.pbf by osmium-tool."""
    lines = [f"n{1 + i * 4 + j} v1 x{7.41 + 0.003 * j:.7f} y{43.73 + 0.0022 * i:.7f}" for i in range(4) for j in range(4)]
    lines += [f"w{100 + i} v1 Thighway=residential,name=Row%20%{i} N" + ",".join(f"n{1 + i * 4 + j}" for j in range(4))
              for i in range(4)]
    opl, pbf = os.path.join(directory, "town.opl"), os.path.join(directory, "town.osm.pbf")
    with open(opl, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["osmium", "cat", "-O", "-o", pbf, opl], check=True, capture_output=True)
    return pbf


def http_get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def test_backup_under_load_restores_what_was_acknowledged():
    with Shard(BIN, domain=DOMAIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("mail", "domain", "add", DOMAIN)
        shard.coop("member", "add", "alice", "--email", f"alice@{DOMAIN}", "--password-stdin", input=STRONG)
        smtp_port = int(listener(shard, "mail", "smtp").rsplit(":", 1)[1])
        imaps = int(listener(shard, "mail", "imaps").rsplit(":", 1)[1])
        room_url = listener(shard, "room", "client")
        dav_url = listener(shard, "dav", "http")
        token = matrix(room_url, "POST", "/login", {"type": "m.login.password", "user": "alice", "password": STRONG})["access_token"]
        room_id = matrix(room_url, "POST", "/createRoom", {"name": "ops"}, token)["room_id"]
        calendar = caldav.DAVClient(url=dav_url + "/dav/", username="alice", password=STRONG).principal().make_calendar(name="Assemblies")
        calendar.save_event(EVENT)
        # A map and a document, to compare the restored shard's answers with these.
        shard.coop("tiles", "import", small_town(shard.dir), "--name", "town")
        tiles_url = listener(shard, "tiles", "http")
        tilejson = json.loads(http_get(tiles_url + "/tiles/town.json"))
        z = tilejson["maxzoom"]
        x = int((7.415 + 180) / 360 * 2 ** z)
        y = int((1 - math.asinh(math.tan(math.radians(43.733))) / math.pi) / 2 * 2 ** z)
        tile_url = f"{tiles_url}/tiles/town/{z}/{x}/{y}.pbf"
        tile = http_get(tile_url)
        assert len(tile) > 0
        agenda = os.path.join(shard.dir, "agenda.txt")
        with open(agenda, "w") as f:
            f.write("Agenda of the general assembly\n")
        doc_link = shard.coop("docs", "new", "--from", agenda).stdout.strip()

        acked_mail, acked_events, stop = [], [], threading.Event()

        def smtp_burst():
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
                n = 0
                while not stop.is_set():
                    msg = EmailMessage()
                    msg["From"], msg["To"], msg["Subject"] = "carol@example.org", f"alice@{DOMAIN}", f"burst {n}"
                    msg["Message-ID"] = f"<{uuid.uuid4()}@example.org>"
                    msg.set_content("x" * 2000 + f" {n}\n")
                    smtp.send_message(msg)  # returns once the server said 250: acknowledged
                    acked_mail.append((time.monotonic(), msg["Message-ID"]))
                    n += 1

        def matrix_loop():
            n = 0
            while not stop.is_set():
                event_id = matrix(room_url, "PUT", f"/rooms/{room_id}/send/m.room.message/t{n}",
                                  {"msgtype": "m.text", "body": f"loop {n}"}, token)["event_id"]
                acked_events.append((time.monotonic(), event_id))
                n += 1

        threads = [threading.Thread(target=smtp_burst), threading.Thread(target=matrix_loop)]
        for t in threads:
            t.start()
        try:
            while len(acked_mail) < 20 or len(acked_events) < 20:
                time.sleep(0.05)
            began = time.monotonic()
            out = os.path.join(shard.dir, "backup")
            summary = shard.json("backup", "--out", out)
        finally:
            stop.set()
            for t in threads:
                t.join()
        before_mail = [m for at, m in acked_mail if at < began]
        before_events = [e for at, e in acked_events if at < began]
        assert summary["databases"] >= 8 and summary["blobs"] >= len(before_mail), summary
        original_ids, original_validity = imap_message_ids(imaps)

        # A second run copies only the blobs that arrived since (the loops ran on a little); a
        # third, of a shard that did not change, copies none.
        again = shard.json("backup", "--out", out)
        assert again["new_blobs"] == again["blobs"] - summary["blobs"], (summary, again)
        third = shard.json("backup", "--out", out)
        assert third["new_blobs"] == 0 and third["copied_files"] == 0, third
        verified = json.loads(shard.coop("backup", "verify", out, "--json").stdout)
        assert verified["ok"] and verified["files"] > 10, verified
        shard.coop("down")

        restored = Shard(BIN, domain=DOMAIN)
        restored.home = os.path.join(shard.dir, "restored")
        restored.base_port = shard.base_port
        try:
            result = restored.coop("restore", out)
            assert "Start it with: coop up --home" in result.stdout, result.stdout
            # Sizes as people read them: powers of 1024, named so ("restored 93 files (12.3 MiB)").
            import re
            assert re.search(r"restored \d+ files \(\d+\.\d (KiB|MiB|GiB)\)", result.stdout), result.stdout
            assert oct(os.stat(os.path.join(restored.home, "keys", "tls.key")).st_mode & 0o777) == "0o600"
            restored.coop("up")
            ids, validity = imap_message_ids(imaps)
            missing = [m for m in before_mail if m not in ids]
            assert not missing, f"{len(missing)} acknowledged messages lost: {missing[:3]}"
            assert validity == original_validity and all(ids[m] == original_ids[m] for m in before_mail), (validity, original_validity)
            token2 = matrix(room_url, "POST", "/login", {"type": "m.login.password", "user": "alice", "password": STRONG})["access_token"]
            for event_id in before_events:
                event = matrix(room_url, "GET", f"/rooms/{room_id}/event/{event_id}", None, token2)
                assert event["content"]["body"].startswith("loop "), event
            calendars = caldav.DAVClient(url=dav_url + "/dav/", username="alice", password=STRONG).principal().calendars()
            events = next(c for c in calendars if c.name == "Assemblies").events()
            assert len(events) == 1 and "General assembly" in events[0].data
            assert json.loads(http_get(tiles_url + "/tiles/town.json")) == tilejson
            assert http_get(tile_url) == tile
            assert restored.coop("docs", "pull", doc_link).stdout == "Agenda of the general assembly\n"
            restored.coop("down")
        finally:
            restored.cleanup()


def test_a_damaged_backup_is_named_and_restores_nothing():
    with Shard(BIN, domain=DOMAIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("member", "add", "alice", "--password-stdin", input=STRONG)
        out = os.path.join(shard.dir, "backup")
        shard.coop("backup", "--out", out)
        shard.coop("down")
        with open(os.path.join(out, "member.db"), "r+b") as f:
            f.seek(5000)
            f.write(b"\xff" * 64)
        os.remove(os.path.join(out, "keys", "tls.key"))
        result = shard.coop("backup", "verify", out, expect=1)
        assert "member.db: content differs" in result.stderr and "keys/tls.key: missing" in result.stderr, result.stderr
        target = os.path.join(shard.dir, "restored")
        result = subprocess.run([shard.coop_bin, "--home", target, "restore", out], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and "nothing was restored" in result.stderr, result.stderr
        assert not os.path.exists(target) and not os.path.exists(target + ".restoring")
        # Into a shard that exists: refused, and it is left alone.
        fresh = os.path.join(shard.dir, "fresh-backup")
        shard.coop("backup", "--out", fresh)
        result = shard.coop("restore", fresh, expect=1)
        assert "is not empty" in result.stderr, result.stderr
        assert os.path.exists(os.path.join(shard.home, "coop.toml"))


if __name__ == "__main__":
    run_tests([test_backup_under_load_restores_what_was_acknowledged, test_a_damaged_backup_is_named_and_restores_nothing])
