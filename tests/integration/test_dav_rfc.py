"""CalDAV and WebDAV to the letter of RFC 4918, 4791, 6638 and 9110, over raw HTTP so every
status and header is seen: MOVE that renames inside a calendar, no-uid-conflict naming the
resource, UTF-8 only, If-Match and If-None-Match with lists and weak tags, PROPFIND without
Depth, dead properties on collections, recurrences from long ago in time-range queries, every
address in calendar-user-address-set, and a group change felt at once."""
import datetime
import hashlib
import os
import socket
import subprocess
import time

import caldav

from coopshard import Shard, bin_dir_from_args, run_tests
from test_dav import DOMAIN, EVENT, STRONG, request, start

BIN = bin_dir_from_args()
CAL = "/dav/calendars/alice/work/"


def event(uid, start="20260101T100000Z", end="20260101T110000Z", summary="x", extra=""):
    return EVENT.format(uid=uid, start=start, end=end, summary=summary, extra=extra)


def test_move_rename_uid_conflict_utf8_and_conditional_requests():
    with Shard(BIN) as shard:
        url = start(shard)
        assert request(url, "MKCALENDAR", CAL)[0] == 201
        assert request(url, "PUT", CAL + "a.ics", event("a@test"))[0] == 201
        # RFC 4918 9.9: MOVE renames a resource inside its calendar (its UID is its own).
        status, _, _ = request(url, "MOVE", CAL + "a.ics", headers={"Destination": url + CAL + "renamed.ics"})
        assert status == 201, status
        assert request(url, "GET", CAL + "a.ics")[0] == 404
        assert "UID:a@test" in request(url, "GET", CAL + "renamed.ics")[1]
        # RFC 4791 5.3.2.1: no-uid-conflict names the resource that has the UID.
        status, body, _ = request(url, "PUT", CAL + "other.ics", event("a@test"))
        assert status == 409 and "no-uid-conflict" in body and "<D:href>/dav/calendars/alice/work/renamed.ics</D:href>" in body, body
        assert request(url, "MOVE", CAL + "renamed.ics", headers={"Destination": url + CAL + "renamed.ics"})[0] == 403
        # RFC 5545 3.1.4: iCalendar is UTF-8; Latin-1 is refused and nothing is stored.
        latin1 = event("l@test", summary="caf\xe9").encode("latin-1")
        status, body, _ = request(url, "PUT", CAL + "l.ics", latin1)
        assert status == 403 and "supported-calendar-data" in body, (status, body)
        assert request(url, "GET", CAL + "l.ics")[0] == 404
        assert request(url, "PUT", CAL + "u.ics", event("u@test", summary="café").encode())[0] == 201
        # RFC 9110 13.1: lists of tags; If-None-Match compares weakly, If-Match strongly.
        etag = request(url, "GET", CAL + "u.ics")[2]["ETag"]
        assert request(url, "GET", CAL + "u.ics", headers={"If-None-Match": f'"nope", W/{etag}'})[0] == 304
        assert request(url, "GET", CAL + "u.ics", headers={"If-None-Match": '"nope", "other"'})[0] == 200
        assert request(url, "PUT", CAL + "u.ics", event("u@test"), headers={"If-None-Match": f'"nope", {etag}'})[0] == 412
        assert request(url, "PUT", CAL + "u.ics", event("u@test"), headers={"If-Match": f"W/{etag}"})[0] == 412
        status, _, headers = request(url, "PUT", CAL + "u.ics", event("u@test"), headers={"If-Match": f'"stale", {etag}'})
        assert status == 204
        assert request(url, "DELETE", CAL + "u.ics", headers={"If-Match": '"stale", W/' + headers["ETag"]})[0] == 412
        assert request(url, "DELETE", CAL + "u.ics", headers={"If-Match": f'"stale", {headers["ETag"]}'})[0] == 204
        # RFC 4918 9.1: no Depth is infinity, which a collection refuses; a resource answers.
        status, body, _ = request(url, "PROPFIND", CAL)
        assert status == 403 and "propfind-finite-depth" in body, (status, body)
        assert request(url, "PROPFIND", CAL + "renamed.ics")[0] == 207
        assert request(url, "PROPFIND", CAL, headers={"Depth": "2"})[0] == 400
        shard.coop("down")


def test_dead_properties_are_kept_on_collections():
    with Shard(BIN) as shard:
        url = start(shard)
        assert request(url, "MKCALENDAR", CAL)[0] == 201
        patch = ("<D:propertyupdate xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav' xmlns:A='http://apple.com/ns/ical/'>"
                 "<D:set><D:prop><A:calendar-order>3</A:calendar-order><A:calendar-color>#ff0000</A:calendar-color>"
                 "<C:calendar-timezone>BEGIN:VCALENDAR&#13;\nEND:VCALENDAR</C:calendar-timezone>"
                 "<X:anything xmlns:X='urn:example'><X:inner a='1'>v &amp; w</X:inner></X:anything></D:prop></D:set>"
                 "</D:propertyupdate>")
        status, body, _ = request(url, "PROPPATCH", CAL, patch)
        assert status == 207 and "403" not in body, body
        find = ("<D:propfind xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav' xmlns:A='http://apple.com/ns/ical/'>"
                "<D:prop><A:calendar-order/><A:calendar-color/><C:calendar-timezone/><X:anything xmlns:X='urn:example'/></D:prop></D:propfind>")
        status, body, _ = request(url, "PROPFIND", CAL, find, headers={"Depth": "0"})
        assert status == 207 and ">3</" in body and "#ff0000" in body and "BEGIN:VCALENDAR" in body, body
        assert "v &amp; w" in body and "404" not in body, body
        # allprop carries the dead ones too (RFC 4918 9.1).
        status, body, _ = request(url, "PROPFIND", CAL, "<D:propfind xmlns:D='DAV:'><D:allprop/></D:propfind>", headers={"Depth": "0"})
        assert "calendar-order" in body and "urn:example" in body, body
        # A protected property fails the whole PROPPATCH (RFC 4918 9.2): nothing changes.
        bad = ("<D:propertyupdate xmlns:D='DAV:' xmlns:A='http://apple.com/ns/ical/'><D:set><D:prop>"
               "<A:calendar-order>9</A:calendar-order><D:getetag>\"x\"</D:getetag></D:prop></D:set></D:propertyupdate>")
        status, body, _ = request(url, "PROPPATCH", CAL, bad)
        assert status == 207 and "403" in body and "424" in body, body
        assert ">3</" in request(url, "PROPFIND", CAL, find, headers={"Depth": "0"})[1]
        # Removed, it is gone.
        remove = ("<D:propertyupdate xmlns:D='DAV:' xmlns:A='http://apple.com/ns/ical/'><D:remove><D:prop>"
                  "<A:calendar-order/></D:prop></D:remove></D:propertyupdate>")
        assert request(url, "PROPPATCH", CAL, remove)[0] == 207
        assert "404" in request(url, "PROPFIND", CAL, find, headers={"Depth": "0"})[1]
        shard.coop("down")


def test_old_recurrences_addresses_and_group_changes():
    with Shard(BIN) as shard:
        url = start(shard)
        assert request(url, "MKCALENDAR", CAL)[0] == 201
        # A daily series since 1990 (more than 13,000 instances before 2026) still answers.
        daily = event("daily@test", start="19900101T080000Z", end="19900101T083000Z", summary="Standup", extra="RRULE:FREQ=DAILY\n")
        assert request(url, "PUT", CAL + "daily.ics", daily)[0] == 201
        query = ("<C:calendar-query xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'><D:prop><D:getetag/></D:prop>"
                 "<C:filter><C:comp-filter name='VCALENDAR'><C:comp-filter name='VEVENT'>"
                 "<C:time-range start='20261207T000000Z' end='20261208T000000Z'/></C:comp-filter></C:comp-filter></C:filter>"
                 "</C:calendar-query>")
        status, body, _ = request(url, "REPORT", CAL, query, headers={"Depth": "1"})
        assert status == 207 and "daily.ics" in body, body
        # Between two instances (08:30 to 09:00) it is not there.
        status, body, _ = request(url, "REPORT", CAL, query.replace("20261207T000000Z", "20261207T083000Z").replace("20261208T000000Z", "20261207T090000Z"),
                                  headers={"Depth": "1"})
        assert status == 207 and "daily.ics" not in body, body
        # RFC 6638 2.4.1: every address of the member.
        shard.coop("member", "set", "alice", "--add-email", "alice@example.org")
        find = "<D:propfind xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'><D:prop><C:calendar-user-address-set/></D:prop></D:propfind>"
        deadline = time.monotonic() + 5
        while True:
            body = request(url, "PROPFIND", "/dav/principals/alice/", find, headers={"Depth": "0"})[1]
            if "mailto:alice@example.org" in body or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert f"mailto:alice@{DOMAIN}" in body and "mailto:alice@example.org" in body, body
        # A member taken out of a group loses its calendar at once (not after a minute).
        shard.coop("member", "group", "add", "kitchen")
        shard.coop("member", "set", "bob", "--add-group", "kitchen")
        shard.coop("dav", "calendar", "create", "kitchen", "--group", "kitchen")
        bob = caldav.DAVClient(url=url + "/dav/", username="bob", password=STRONG)
        assert any(c.url.path.endswith("/kitchen/") for c in bob.principal().calendars())
        shard.coop("member", "set", "bob", "--remove-group", "kitchen")
        deadline = time.monotonic() + 1.0
        while any(c.url.path.endswith("/kitchen/") for c in bob.principal().calendars()):
            assert time.monotonic() < deadline, "bob still sees the kitchen calendar a second later"
            time.sleep(0.05)
        status, _, _ = request(url, "PUT", "/dav/calendars/coop/kitchen/s.ics", event("s@test"), user="bob")
        assert status == 404, status
        shard.coop("down")


def report(url, body):
    status, text, _ = request(url, "REPORT", CAL, "<C:calendar-query xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'>"
                              "<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name='VCALENDAR'>" + body +
                              "</C:comp-filter></C:filter></C:calendar-query>", headers={"Depth": "1"})
    return status, text


def test_calendar_query_applies_every_filter_and_expands():
    with Shard(BIN) as shard:
        url = start(shard)
        assert request(url, "MKCALENDAR", CAL)[0] == 201
        alarm = "BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:soon\nTRIGGER:-PT30M\nEND:VALARM\n"
        assert request(url, "PUT", CAL + "budget.ics", event("budget@test", summary="Budget review", extra=(
            "ATTENDEE;PARTSTAT=DECLINED:mailto:carol@example.org\nATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.org\n" + alarm)))[0] == 201
        assert request(url, "PUT", CAL + "picnic.ics", event("picnic@test", summary="Picnic", extra="CATEGORIES:FUN\n"))[0] == 201
        weekly = event("weekly@test", start="20260105T100000Z", end="20260105T110000Z", summary="Weekly", extra="RRULE:FREQ=WEEKLY;COUNT=8\n")
        assert request(url, "PUT", CAL + "weekly.ics", weekly)[0] == 201
        # text-match (i;ascii-casemap by default), negated, and i;octet.
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:prop-filter name='SUMMARY'><C:text-match>budget</C:text-match>"
                                   "</C:prop-filter></C:comp-filter>")
        assert status == 207 and "budget.ics" in body and "picnic.ics" not in body and "weekly.ics" not in body, body
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:prop-filter name='SUMMARY'>"
                                   "<C:text-match collation='i;octet'>budget</C:text-match></C:prop-filter></C:comp-filter>")
        assert "budget.ics" not in body
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:prop-filter name='SUMMARY'>"
                                   "<C:text-match negate-condition='yes'>budget</C:text-match></C:prop-filter></C:comp-filter>")
        assert "budget.ics" not in body and "picnic.ics" in body and "weekly.ics" in body, body
        # is-not-defined and a param-filter on one and the same ATTENDEE.
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:prop-filter name='CATEGORIES'><C:is-not-defined/>"
                                   "</C:prop-filter></C:comp-filter>")
        assert "picnic.ics" not in body and "budget.ics" in body, body
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:prop-filter name='ATTENDEE'><C:text-match>bob</C:text-match>"
                                   "<C:param-filter name='PARTSTAT'><C:text-match>ACCEPTED</C:text-match></C:param-filter>"
                                   "</C:prop-filter></C:comp-filter>")
        assert "budget.ics" in body, body
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:prop-filter name='ATTENDEE'><C:text-match>bob</C:text-match>"
                                   "<C:param-filter name='PARTSTAT'><C:text-match>DECLINED</C:text-match></C:param-filter>"
                                   "</C:prop-filter></C:comp-filter>")
        assert "budget.ics" not in body, body
        # A VALARM in a time-range: the alarm fires at 09:30, the event is at 10:00.
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:comp-filter name='VALARM'>"
                                   "<C:time-range start='20260101T092000Z' end='20260101T094000Z'/></C:comp-filter></C:comp-filter>")
        assert status == 207 and "budget.ics" in body and "picnic.ics" not in body, body
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:comp-filter name='VALARM'>"
                                   "<C:time-range start='20260101T100000Z' end='20260101T110000Z'/></C:comp-filter></C:comp-filter>")
        assert "budget.ics" not in body, body
        # What coop cannot evaluate is refused by name, never answered with everything.
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:prop-filter name='SUMMARY'>"
                                   "<C:text-match collation='i;unicode-casemap'>x</C:text-match></C:prop-filter></C:comp-filter>")
        assert status == 403 and "supported-collation" in body, (status, body)
        status, body = report(url, "<C:comp-filter name='VEVENT'><C:unknown-test/></C:comp-filter>")
        assert status == 403 and "supported-filter" in body, (status, body)
        # <C:expand>: each instance in the range with its RECURRENCE-ID, no RRULE.
        expand = ("<C:calendar-query xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'><D:prop><C:calendar-data>"
                  "<C:expand start='20260110T000000Z' end='20260125T000000Z'/></C:calendar-data></D:prop>"
                  "<C:filter><C:comp-filter name='VCALENDAR'><C:comp-filter name='VEVENT'>"
                  "<C:time-range start='20260110T000000Z' end='20260125T000000Z'/></C:comp-filter></C:comp-filter></C:filter>"
                  "</C:calendar-query>")
        status, body, _ = request(url, "REPORT", CAL, expand, headers={"Depth": "1"})
        assert status == 207 and "weekly.ics" in body and "RRULE" not in body, body
        assert body.count("RECURRENCE-ID:20260112T100000Z") == 1 and "RECURRENCE-ID:20260119T100000Z" in body, body
        # python3-caldav asks for the same and reads two events.
        calendar = caldav.DAVClient(url=url + "/dav/", username="alice", password=STRONG).principal().calendar(cal_id="work")
        found = calendar.date_search(start=datetime.datetime(2026, 1, 10, tzinfo=datetime.timezone.utc),
                                     end=datetime.datetime(2026, 1, 25, tzinfo=datetime.timezone.utc), expand=True)
        starts = sorted(str(v.dtstart.value) for e in found for v in e.vobject_instance.vevent_list)
        assert starts == ["2026-01-12 10:00:00+00:00", "2026-01-19 10:00:00+00:00"], starts
        shard.coop("down")


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))


def curl(url, *args, user="alice"):
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}", "-u", f"{user}:{STRONG}", *args, url]
    code, uploaded = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout.split()
    return int(code), int(float(uploaded))


def test_files_of_any_size_are_streamed_to_disk_within_the_quota():
    with Shard(BIN) as shard:
        url = start(shard)
        dav_pid = next(w["pid"] for w in shard.json("status")["workers"] if w["name"] == "dav")
        spool = os.path.join(shard.home, "blobs", "dav-files", "incoming")
        big = os.path.join(shard.home, "..", "big.bin")
        size = 200 << 20
        with open(big, "wb") as f:
            for _ in range(size >> 20):
                f.write(os.urandom(1 << 20))
        with open(big, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        before = peak_rss_kib(dav_pid)
        # 200 MiB in, over the 8 MiB of a calendar request, and memory stays flat.
        code, sent = curl(url + "/dav/files/alice/big.bin", "-T", big)
        assert code == 201 and sent == size, (code, sent)
        assert peak_rss_kib(dav_pid) - before < 64 << 10, (before, peak_rss_kib(dav_pid))
        out = os.path.join(shard.home, "..", "back.bin")
        subprocess.run(["curl", "-s", "-u", f"alice:{STRONG}", "-o", out, url + "/dav/files/alice/big.bin"], check=True, timeout=300)
        with open(out, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest
        assert peak_rss_kib(dav_pid) - before < 64 << 10, "the download went through memory"
        status, body, _ = request(url, "PROPFIND", "/dav/files/alice/big.bin", headers={"Depth": "0"})
        assert f"<D:getcontentlength>{size}</D:getcontentlength>" in body, body
        # Nobody's upload is refused before its body is read (Expect: 100-continue).
        code, sent = curl(url + "/dav/files/alice/x.bin", "-T", big, user="nobody")
        assert code == 401 and sent < 1 << 20, (code, sent)
        # Without Expect the body is on its way already: the 401 still reaches a client that sent
        # part of it and then reads (a close with its bytes unread would reset the connection
        # and lose the answer).
        host, port = url.split("//")[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(b"PUT /dav/files/alice/x.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n")
            raw.sendall(b"\0" * (4 << 20))
            time.sleep(0.5)
            answer = raw.recv(4096)
        assert answer.startswith(b"HTTP/1.1 401"), answer
        # The member's quota bounds what they store (RFC 4331: 507 Insufficient Storage).
        shard.coop("member", "set", "bob", "--quota", str(size + (1 << 20)))
        code, _ = curl(url + "/dav/files/bob/one.bin", "-T", big, user="bob")
        assert code == 201, code
        code, sent = curl(url + "/dav/files/bob/two.bin", "-T", big, user="bob")
        assert code == 507 and sent < 1 << 20, (code, sent)
        # A body sent without Content-Length (chunked) is cut off at the quota too.
        code, _ = curl(url + "/dav/files/bob/three.bin", "-T", big, "-H", "Transfer-Encoding: chunked", user="bob")
        assert code in (413, 507), code
        assert request(url, "GET", "/dav/files/bob/three.bin", user="bob")[0] == 404
        # A client gone half way leaves nothing behind; the spool is empty.
        proc = subprocess.Popen(["curl", "-s", "-u", f"alice:{STRONG}", "--limit-rate", "2M", "-T", big,
                                 url + "/dav/files/alice/half.bin"])
        time.sleep(1.5)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while os.listdir(spool) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert os.listdir(spool) == [], os.listdir(spool)
        assert request(url, "GET", "/dav/files/alice/half.bin")[0] == 404
        # Deleting the file frees its blob; a copy keeps it alive until both are gone.
        assert request(url, "COPY", "/dav/files/alice/big.bin", headers={"Destination": url + "/dav/files/alice/copy.bin"})[0] == 201
        assert request(url, "DELETE", "/dav/files/alice/big.bin")[0] == 204
        blob = os.path.join(shard.home, "blobs", "dav-files", digest[:2], digest[2:])
        assert os.path.exists(blob), os.listdir(os.path.join(shard.home, "blobs", "dav-files"))
        assert request(url, "DELETE", "/dav/files/alice/copy.bin")[0] == 204
        assert os.path.exists(blob), "bob's one.bin has the same bytes"
        assert request(url, "DELETE", "/dav/files/bob/one.bin", user="bob")[0] == 204
        assert not os.path.exists(blob)
        # [workers.dav] max_file_bytes caps a file whatever the quota.
        shard.coop("down")
        toml = os.path.join(shard.home, "coop.toml")
        with open(toml) as f:
            text = f.read()
        with open(toml, "w") as f:
            f.write(text.replace("[workers.dav]\n", "[workers.dav]\nmax_file_bytes = 1048576\n", 1))
        shard.coop("up")
        code, sent = curl(url + "/dav/files/alice/big.bin", "-T", big)
        assert code == 413 and sent < 1 << 20, (code, sent)
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_move_rename_uid_conflict_utf8_and_conditional_requests,
        test_dead_properties_are_kept_on_collections,
        test_old_recurrences_addresses_and_group_changes,
        test_calendar_query_applies_every_filter_and_expands,
        test_files_of_any_size_are_streamed_to_disk_within_the_quota,
    ])
