"""CalDAV and CardDAV with real clients: python3-caldav (discovery, calendars, events, a weekly
recurring one found by time-range queries) and raw WebDAV for the error cases and sync."""
import datetime
import os
import re
import subprocess
import urllib.error
import urllib.request
import base64

import caldav

from coopshard import Shard, bin_dir_from_args, run_tests

BIN = bin_dir_from_args()
DOMAIN = "dav.test"
STRONG = "correct horse battery staple"

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//coop tests//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:{summary}
{extra}END:VEVENT
END:VCALENDAR
"""


def start(shard):
    shard.domain = DOMAIN
    shard.init()
    shard.coop("up")
    shard.coop("member", "add", "alice", "--name", "Alice Liddell", "--email", f"alice@{DOMAIN}", "--password-stdin", input=STRONG)
    shard.coop("member", "add", "bob", "--password-stdin", input=STRONG)
    status = shard.json("status")
    dav = next(w for w in status["workers"] if w["name"] == "dav")
    return next(l["url"] for l in dav["listeners"] if l["name"] == "http")


def request(url, method, path, body=None, user="alice", password=STRONG, headers=None):
    req = urllib.request.Request(url + path, method=method, data=body.encode() if isinstance(body, str) else body)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def test_caldav_client_creates_and_finds_events():
    with Shard(BIN) as shard:
        url = start(shard)
        client = caldav.DAVClient(url=url + "/.well-known/caldav", username="alice", password=STRONG)
        principal = client.principal()
        calendar = principal.make_calendar(name="Cooking", cal_id="cooking")
        assert [c.name for c in principal.calendars()] == ["Cooking"]

        calendar.save_event(EVENT.format(uid="once@test", start="20260310T180000Z", end="20260310T190000Z",
                                         summary="Tasting", extra=""))
        calendar.save_event(EVENT.format(uid="weekly@test", start="20260302T090000Z", end="20260302T100000Z",
                                         summary="Team meeting", extra="RRULE:FREQ=WEEKLY;COUNT=10\n"))
        assert len(calendar.events()) == 2

        def found(start, end):
            return sorted(e.vobject_instance.vevent.uid.value for e in
                          calendar.date_search(start=start, end=end, expand=False))

        utc = datetime.timezone.utc
        # Five weeks after the first meeting only the recurring event has an instance.
        assert found(datetime.datetime(2026, 4, 6, tzinfo=utc), datetime.datetime(2026, 4, 7, tzinfo=utc)) == ["weekly@test"]
        # 10 March is a Tuesday: the tasting, no meeting (those are on Mondays).
        assert found(datetime.datetime(2026, 3, 10, tzinfo=utc), datetime.datetime(2026, 3, 11, tzinfo=utc)) == ["once@test"]
        assert found(datetime.datetime(2026, 3, 9, tzinfo=utc), datetime.datetime(2026, 3, 11, tzinfo=utc)) == ["once@test", "weekly@test"]
        # Before the first and after the tenth (COUNT=10) there is nothing.
        assert found(datetime.datetime(2026, 2, 1, tzinfo=utc), datetime.datetime(2026, 3, 1, tzinfo=utc)) == []
        assert found(datetime.datetime(2026, 6, 1, tzinfo=utc), datetime.datetime(2026, 7, 1, tzinfo=utc)) == []

        # Edit, then delete, through the client.
        event = calendar.event_by_uid("once@test")
        event.vobject_instance.vevent.summary.value = "Tasting (moved)"
        event.save()
        assert calendar.event_by_uid("once@test").vobject_instance.vevent.summary.value == "Tasting (moved)"
        event.delete()
        assert [e.vobject_instance.vevent.uid.value for e in calendar.events()] == ["weekly@test"]

        # bob sees nothing of alice's.
        bob = caldav.DAVClient(url=url + "/dav/", username="bob", password=STRONG).principal()
        assert bob.calendars() == []
        status, _, _ = request(url, "GET", "/dav/calendars/alice/cooking/", user="bob")
        assert status in (404, 405)
        shard.coop("down")


def test_dav_refuses_bad_input_with_preconditions():
    with Shard(BIN) as shard:
        url = start(shard)
        assert request(url, "MKCALENDAR", "/dav/calendars/alice/work/")[0] == 201
        path = "/dav/calendars/alice/work/"
        good = EVENT.format(uid="a@test", start="20260101T100000Z", end="20260101T110000Z", summary="x", extra="")
        status, _, headers = request(url, "PUT", path + "a.ics", good, headers={"If-None-Match": "*"})
        assert status == 201 and headers["ETag"].startswith('"')
        etag = headers["ETag"]
        assert request(url, "PUT", path + "a.ics", good, headers={"If-None-Match": "*"})[0] == 412
        assert request(url, "PUT", path + "a.ics", good, headers={"If-Match": '"stale"'})[0] == 412
        assert request(url, "PUT", path + "a.ics", good, headers={"If-Match": etag})[0] == 204

        status, body, _ = request(url, "PUT", path + "b.ics", "BEGIN:VCALENDAR\nnonsense\n")
        assert status == 403 and "valid-calendar-data" in body
        status, body, _ = request(url, "PUT", path + "c.ics", good)  # same UID, other name
        assert status == 409 and "no-uid-conflict" in body
        status, body, _ = request(url, "PUT", path + "d.ics", good.replace("a@test", "d@test") + "X" * (1 << 20))
        assert status == 403 and "max-resource-size" in body
        assert request(url, "PROPFIND", path, "<D:propfind xmlns:D='DAV:'><D:prop>")[0] == 400
        assert request(url, "PROPFIND", path, None, headers={"Depth": "infinity"})[0] == 403
        assert request(url, "PROPFIND", path, None, password="wrong")[0] == 401
        # The stored event is untouched by all of that.
        status, body, _ = request(url, "GET", path + "a.ics")
        assert status == 200 and body == good

        # sync-collection: a token, then only what changed after it.
        sync = "<D:sync-collection xmlns:D='DAV:'><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
        status, body, _ = request(url, "REPORT", path, sync.format(""))
        token = re.search(r"<D:sync-token>([^<]+)</D:sync-token>", body).group(1)
        request(url, "PUT", path + "e.ics", good.replace("a@test", "e@test"))
        request(url, "DELETE", path + "a.ics")
        status, body, _ = request(url, "REPORT", path, sync.format(token))
        assert status == 207 and "e.ics" in body and "a.ics" in body and "404" in body
        status, body, _ = request(url, "REPORT", path, sync.format("https://elsewhere/1"))
        assert status == 403 and "valid-sync-token" in body

        # A name with a percent sign is decoded once, not twice (it used to fail), in the
        # calendars and in the file tree; a bad escape is a client error.
        offer = good.replace("a@test", "offer@test")
        assert request(url, "PUT", path + "50%25off.ics", offer)[0] == 201
        status, body, _ = request(url, "GET", path + "50%25off.ics")
        assert status == 200 and body == offer
        assert request(url, "PUT", "/dav/files/alice/50%25off.txt", "cheap")[0] == 201
        assert request(url, "GET", "/dav/files/alice/50%25off.txt")[1] == "cheap"
        assert 400 <= request(url, "GET", path + "50%zzoff.ics")[0] < 500

        # MOVE or COPY over an ancestor of the source would delete the source with it: refused.
        assert request(url, "MKCOL", "/dav/files/alice/a/")[0] == 201
        assert request(url, "PUT", "/dav/files/alice/a/b", "keep")[0] == 201
        for method in ("MOVE", "COPY"):
            status, _, _ = request(url, method, "/dav/files/alice/a/b", None,
                                   headers={"Destination": url + "/dav/files/alice/a", "Overwrite": "T"})
            assert status == 403, (method, status)
        assert request(url, "GET", "/dav/files/alice/a/b")[1] == "keep"
        shard.coop("down")


def test_members_directory_address_book():
    with Shard(BIN) as shard:
        url = start(shard)
        query = ("<C:addressbook-query xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:carddav'><D:prop><D:getetag/>"
                 "<C:address-data/></D:prop><C:filter><C:prop-filter name='FN'><C:text-match match-type='contains'>"
                 "liddell</C:text-match></C:prop-filter></C:filter></C:addressbook-query>")
        status, body, _ = request(url, "REPORT", "/dav/addressbooks/coop/directory/", query, user="bob")
        assert status == 207 and "Alice Liddell" in body and f"@alice:{DOMAIN}" in body
        # Read-only for members; suspension takes a member out of it.
        status, _, _ = request(url, "PUT", "/dav/addressbooks/coop/directory/x.vcf",
                               "BEGIN:VCARD\nVERSION:4.0\nUID:x\nFN:X\nEND:VCARD\n", user="bob")
        assert status == 403
        shard.coop("member", "suspend", "alice")
        import time
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            status, body, _ = request(url, "REPORT", "/dav/addressbooks/coop/directory/", query, user="bob")
            if "Alice Liddell" not in body:
                break
            time.sleep(0.1)
        assert "Alice Liddell" not in body
        shard.coop("down")


BUNDLE = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//coop tests//EN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:market@test
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20260307T090000
DTEND;TZID=Europe/Berlin:20260307T130000
RRULE:FREQ=WEEKLY
SUMMARY:Market stall
END:VEVENT
BEGIN:VEVENT
UID:assembly@test
DTSTAMP:20260101T000000Z
DTSTART:20260401T170000Z
DTEND:20260401T190000Z
SUMMARY:General assembly
END:VEVENT
BEGIN:VTODO
UID:todo@test
DTSTAMP:20260101T000000Z
SUMMARY:Order seeds
END:VTODO
END:VCALENDAR
"""


def test_coop_dav_cli_shares_imports_and_exports():
    with Shard(BIN) as shard:
        url = start(shard)
        shard.coop("member", "group", "add", "kitchen")
        shard.coop("member", "set", "bob", "--add-group", "kitchen")
        created = shard.json("dav", "calendar", "create", "events", "--owner", "alice", "--displayname", "Coop events")
        assert created["path"] == "/dav/calendars/alice/events/"
        path = os.path.join(shard.dir, "bundle.ics")
        with open(path, "w") as f:
            f.write(BUNDLE)
        assert shard.json("dav", "calendar", "import", "events", "--owner", "alice", path)["imported"] == 3
        exported = shard.coop("dav", "calendar", "export", "events", "--owner", "alice").stdout
        for uid in ("market@test", "assembly@test", "todo@test"):
            assert f"UID:{uid}" in exported
        assert exported.count("BEGIN:VTIMEZONE") == 1

        bad = os.path.join(shard.dir, "bad.ics")
        with open(bad, "w") as f:
            f.write(BUNDLE.replace("UID:assembly@test\n", ""))
        r = shard.coop("dav", "calendar", "import", "events", "--owner", "alice", bad, expect=1)
        assert r.stderr.startswith("coop: ") and r.stderr.count("\n") == 1
        assert shard.coop("dav", "calendar", "export", "events", "--owner", "alice").stdout == exported

        # Shared read-only with bob: he finds and reads it, and cannot change it.
        shard.coop("dav", "calendar", "share", "events", "--owner", "alice", "--with", "member:bob")
        bob = caldav.DAVClient(url=url + "/dav/", username="bob", password=STRONG).principal()
        shared = [c for c in bob.calendars() if c.name == "Coop events"]
        assert len(shared) == 1 and len(shared[0].events()) == 2
        status, _, _ = request(url, "PUT", "/dav/calendars/alice/events/x.ics",
                               EVENT.format(uid="x@test", start="20260101T100000Z", end="20260101T110000Z", summary="x", extra=""),
                               user="bob")
        assert status == 403
        shard.coop("dav", "calendar", "unshare", "events", "--owner", "alice", "--with", "member:bob")
        time_left = [c for c in caldav.DAVClient(url=url + "/dav/", username="bob", password=STRONG).principal().calendars()]
        assert all(c.name != "Coop events" for c in time_left)

        # A group or member the registry does not know is refused, and nothing is created or shared.
        for command, said in ((["calendar", "create", "x", "--group", "nonexist"], "no group 'nonexist'"),
                              (["calendar", "create", "x", "--owner", "nobody"], "no member 'nobody'"),
                              (["calendar", "share", "events", "--owner", "alice", "--with", "member:nobody"], "no member"),
                              (["addressbook", "share", "x", "--owner", "alice", "--with", "group:nope"], "no group")):
            result = shard.coop("dav", *command, expect=1)
            assert said in result.stderr, (command, result.stderr)
        assert all(c["name"] != "x" for c in shard.json("dav", "calendar", "list"))

        # A working group's calendar: bob (in kitchen) writes to it.
        group_cal = shard.json("dav", "calendar", "create", "kitchen", "--group", "kitchen")
        assert group_cal["owner"] == "coop" and group_cal["shares"] == [{"with": "group:kitchen", "access": "read-write"}]
        status, _, _ = request(url, "PUT", "/dav/calendars/coop/kitchen/shift.ics",
                               EVENT.format(uid="shift@test", start="20260101T100000Z", end="20260101T110000Z", summary="Shift", extra=""),
                               user="bob")
        assert status == 201
        assert request(url, "PROPFIND", "/dav/calendars/coop/kitchen/", None, user="alice", headers={"Depth": "0"})[0] == 404

        # Address books the same way.
        shard.coop("dav", "addressbook", "create", "suppliers", "--owner", "alice")
        cards = os.path.join(shard.dir, "cards.vcf")
        with open(cards, "w") as f:
            f.write("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:farm-1\r\nFN:Green Farm\r\nEMAIL:hello@farm.example\r\nEND:VCARD\r\n"
                    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:mill-2\r\nFN:Old Mill\r\nN:Mill;Old;;;\r\nEND:VCARD\r\n")
        assert shard.json("dav", "addressbook", "import", "suppliers", "--owner", "alice", cards)["imported"] == 2
        listed = shard.json("dav", "addressbook", "list", "--owner", "alice")
        assert listed[0]["objects"] == 2
        assert "FN:Old Mill" in shard.coop("dav", "addressbook", "export", "suppliers", "--owner", "alice").stdout
        shard.coop("down")


CLIENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients")


def test_tsdav_discovers_the_account():
    with Shard(BIN) as shard:
        url = start(shard)
        assert request(url, "MKCALENDAR", "/dav/calendars/alice/cooking/",
                       "<C:mkcalendar xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'><D:set><D:prop>"
                       "<D:displayname>Cooking</D:displayname></D:prop></D:set></C:mkcalendar>")[0] == 201
        result = subprocess.run(["node", os.path.join(CLIENTS, "dav_scenario.mjs"), url, "alice", STRONG],
                                capture_output=True, text=True, timeout=120, cwd=CLIENTS)
        assert result.returncode == 0 and "ALL OK" in result.stdout, result.stdout + result.stderr
        shard.coop("down")


def test_vdirsyncer_syncs_both_ways():
    with Shard(BIN) as shard:
        url = start(shard)
        assert request(url, "MKCALENDAR", "/dav/calendars/alice/garden/")[0] == 201
        local = os.path.join(shard.dir, "local")
        status_dir = os.path.join(shard.dir, "status")
        os.makedirs(os.path.join(local, "garden"))
        config = os.path.join(shard.dir, "vdirsyncer.conf")
        with open(config, "w") as f:
            f.write(f"""[general]
status_path = "{status_dir}"

[pair cal]
a = "cal_local"
b = "cal_remote"
collections = ["garden"]
conflict_resolution = "b wins"

[storage cal_local]
type = "filesystem"
path = "{local}"
fileext = ".ics"

[storage cal_remote]
type = "caldav"
url = "{url}/dav/"
username = "alice"
password = "{STRONG}"

[pair cards]
a = "cards_local"
b = "cards_remote"
collections = ["people"]
conflict_resolution = "b wins"

[storage cards_local]
type = "filesystem"
path = "{local}"
fileext = ".vcf"

[storage cards_remote]
type = "carddav"
url = "{url}/dav/"
username = "alice"
password = "{STRONG}"
""")
        env = dict(os.environ, VDIRSYNCER_CONFIG=config)
        run = lambda *args: subprocess.run(["vdirsyncer", *args], capture_output=True, text=True, env=env, input="y\n" * 5, timeout=120)
        assert run("discover", "cal").returncode == 0
        shard.coop("dav", "addressbook", "create", "people", "--owner", "alice")
        os.makedirs(os.path.join(local, "people"))
        assert run("discover", "cards").returncode == 0
        with open(os.path.join(local, "people", "ada.vcf"), "w") as f:
            f.write("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada@test\r\nFN:Ada\r\nEND:VCARD\r\n")
        request(url, "PUT", "/dav/addressbooks/alice/people/bea.vcf",
                "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:bea@test\r\nFN:Bea\r\nEND:VCARD\r\n")
        with open(os.path.join(local, "garden", "seed.ics"), "w") as f:
            f.write(EVENT.format(uid="seed@test", start="20260401T100000Z", end="20260401T110000Z", summary="Sow", extra=""))
        request(url, "PUT", "/dav/calendars/alice/garden/harvest.ics",
                EVENT.format(uid="harvest@test", start="20260901T100000Z", end="20260901T110000Z", summary="Harvest", extra=""))
        synced = run("sync")  # both pairs
        assert synced.returncode == 0, synced.stdout + synced.stderr
        status, body, _ = request(url, "PROPFIND", "/dav/calendars/alice/garden/", None, headers={"Depth": "1"})
        assert body.count(".ics") >= 2  # the local event went up
        local_files = os.listdir(os.path.join(local, "garden"))
        texts = "".join(open(os.path.join(local, "garden", n)).read() for n in local_files)
        assert "harvest@test" in texts and "seed@test" in texts  # the server's came down
        status, body, _ = request(url, "PROPFIND", "/dav/addressbooks/alice/people/", None, headers={"Depth": "1"})
        assert body.count(".vcf") >= 2  # ada went up
        cards = "".join(open(os.path.join(local, "people", n)).read() for n in os.listdir(os.path.join(local, "people")))
        assert "bea@test" in cards  # bea came down
        shard.coop("down")


def test_litmus_passes_basic_copymove_props_locks_and_http():
    with Shard(BIN) as shard:
        url = start(shard)
        # litmus writes debug.log and child.log where it runs: the shard's temp dir, not the tree.
        result = subprocess.run(["litmus", url + "/dav/files/alice/", "alice", STRONG], capture_output=True, text=True,
                                timeout=300, cwd=shard.dir, env=dict(os.environ, TESTS="basic copymove props locks http"))
        summary = {m.group(1): (int(m.group(3)), int(m.group(2)))
                   for m in re.finditer(r"summary for `(\w+)': of (\d+) tests run: (\d+) passed", result.stdout)}
        print("litmus:", ", ".join(f"{suite} {passed}/{run}" for suite, (passed, run) in summary.items()))
        for suite in ("basic", "copymove", "props", "locks", "http"):
            passed, run = summary[suite]
            assert run > (2 if suite == "http" else 10) and passed == run, (suite, result.stdout[-3000:])
        # bob cannot reach alice's tree.
        assert request(url, "PROPFIND", "/dav/files/alice/", None, user="bob", headers={"Depth": "0"})[0] in (403, 404)
        shard.coop("down")


def test_https_listener_with_the_shards_certificate():
    with Shard(BIN) as shard:
        shard.domain = DOMAIN
        shard.init()
        path = os.path.join(shard.home, "coop.toml")
        with open(path) as f:
            text = f.read()
        port = shard.base_port + 8
        with open(path, "w") as f:
            f.write(text.replace(f'http = {{ address = "127.0.0.1", port = {port}, scheme = "http" }}',
                                 f'http = {{ address = "127.0.0.1", port = {port}, scheme = "https" }}'))
        shard.coop("up")
        shard.coop("member", "add", "alice", "--password-stdin", input=STRONG)
        status = shard.json("status")
        url = next(w for w in status["workers"] if w["name"] == "dav")["listeners"][0]["url"]
        assert url == f"https://127.0.0.1:{port}"
        # Basic credentials travel inside TLS; the client checks against the shard's own certificate.
        client = caldav.DAVClient(url=url + "/.well-known/caldav", username="alice", password=STRONG,
                                  ssl_verify_cert=os.path.join(shard.home, "keys", "tls.crt"))
        calendar = client.principal().make_calendar(name="Secure", cal_id="secure")
        calendar.save_event(EVENT.format(uid="tls@test", start="20260101T100000Z", end="20260101T110000Z", summary="x", extra=""))
        assert len(calendar.events()) == 1
        # Plain HTTP to the TLS port gets nowhere.
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/dav/", timeout=5)
            raise AssertionError("plain HTTP was answered on the TLS listener")
        except (urllib.error.URLError, ConnectionError, http_client_errors()):
            pass
        shard.coop("down")


def http_client_errors():
    import http.client
    return http.client.HTTPException


def test_app_passwords_open_calendars_contacts_and_files_separately():
    with Shard(BIN) as shard:
        url = start(shard)
        secrets = {}
        for scope in ("calendars", "contacts", "files", "dav"):
            made = shard.json("member", "app-password", "add", "alice", "--label", scope, "--scope", scope)
            secrets[scope] = made["password"]
        depth = {"Depth": "0"}
        paths = {"calendars": "/dav/calendars/alice/", "contacts": "/dav/addressbooks/alice/", "files": "/dav/files/alice/"}
        for scope, secret in secrets.items():
            # Discovery (the principal) works with any of them: clients start there.
            assert request(url, "PROPFIND", "/dav/", None, password=secret, headers=depth)[0] == 207, scope
            for part, path in paths.items():
                status = request(url, "PROPFIND", path, None, password=secret, headers=depth)[0]
                allowed = scope in (part, "dav")
                assert (status == 207) == allowed and (status == 401) == (not allowed), (scope, part, status)
        # A real CalDAV client with the calendars-only password makes a calendar; the
        # contacts-only one cannot.
        principal = caldav.DAVClient(url=url + "/dav/", username="alice", password=secrets["calendars"]).principal()
        principal.make_calendar(name="Shifts")
        try:
            caldav.DAVClient(url=url + "/dav/", username="alice", password=secrets["contacts"]).principal().make_calendar(name="X")
            raise AssertionError("a contacts-only app password made a calendar")
        except caldav.lib.error.DAVError:
            pass
        # Nor does it open mail.
        result = shard.coop("member", "verify", "alice", "--protocol", "mail", "--source", "192.0.2.9",
                            input=secrets["calendars"], expect=1)
        assert "not valid for mail" in result.stderr, result.stderr
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_caldav_client_creates_and_finds_events,
        test_dav_refuses_bad_input_with_preconditions,
        test_members_directory_address_book,
        test_coop_dav_cli_shares_imports_and_exports,
        test_tsdav_discovers_the_account,
        test_vdirsyncer_syncs_both_ways,
        test_litmus_passes_basic_copymove_props_locks_and_http,
        test_https_listener_with_the_shards_certificate,
        test_app_passwords_open_calendars_contacts_and_files_separately,
    ])
