"""CalDAV scheduling (RFC 6638) with python3-caldav and raw HTTP: three members, an invitation
delivered to inboxes and calendars, accept, decline, a change of time that asks everyone
again, Schedule-Tag, an attendee taken off, the organizer cancelling, free-busy over the
outbox; then an external attendee on a second shard who receives a DKIM-signed iMIP mail
(RFC 6047), accepts in their own calendar, and whose answer comes back by mail. Forged
calendar mail changes nothing."""
import os
import smtplib
import subprocess
import time

import caldav

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for
from test_dav import EVENT, STRONG, request
from test_mail_out import control

BIN = bin_dir_from_args()

# test_dav's event, without anything extra: the invitations add their own ORGANIZER and ATTENDEEs.
INVITE = EVENT.replace("{extra}", "")


def dav_url(shard):
    dav = next(w for w in shard.json("status")["workers"] if w["name"] == "dav")
    return next(l["url"] for l in dav["listeners"] if l["name"] == "http")


def mail_ports(shard):
    mail = next(w for w in shard.json("status")["workers"] if w["name"] == "mail")
    return {l["name"]: int(l["url"].rsplit(":", 1)[1]) for l in mail["listeners"]}


def start(shard, domain, members, toml=""):
    shard.domain = domain
    shard.init()
    if toml:
        with open(os.path.join(shard.home, "coop.toml"), "a") as f:
            f.write(toml)
    shard.coop("up")
    for m in members:
        shard.coop("member", "add", m, "--email", f"{m}@{domain}", "--password-stdin", input=STRONG)
    return dav_url(shard)


def client(url, user):
    return caldav.DAVClient(url=url + "/dav/", username=user, password=STRONG)


def attendee_line(ics, address):
    unfolded = ics.replace("\r\n ", "").replace("\n ", "")
    return next((l for l in unfolded.splitlines() if l.startswith("ATTENDEE") and address in l.lower()), "")


def partstat(ics, address):
    line = attendee_line(ics, address)
    for part in line.split(":", 1)[0].split(";"):
        if part.upper().startswith("PARTSTAT="):
            return part.split("=", 1)[1]
    return "NEEDS-ACTION" if line else None


def only_event(calendar):
    events = calendar.events()
    assert len(events) == 1, [e.data for e in events]
    return events[0]


def test_three_members_invite_accept_decline_reschedule_cancel():
    d = "sched.test"
    with Shard(BIN) as shard:
        url = start(shard, d, ["alice", "bob", "carol"])
        alice, bob, carol = client(url, "alice"), client(url, "bob"), client(url, "carol")
        assert alice.check_scheduling_support(), "calendar-auto-schedule not advertised"
        work = alice.principal().make_calendar(name="Work", cal_id="work")
        bob.principal().make_calendar(name="Bob's", cal_id="mine")
        # carol has no calendar: the invitation makes her one (schedule-default-calendar-URL).
        find = ("<D:propfind xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'><D:prop><C:schedule-inbox-URL/>"
                "<C:schedule-outbox-URL/><C:calendar-user-address-set/><C:calendar-user-type/></D:prop></D:propfind>")
        status, body, _ = request(url, "PROPFIND", "/dav/principals/alice/", find, headers={"Depth": "0"})
        assert status == 207 and "/dav/calendars/alice/inbox/" in body and "/dav/calendars/alice/outbox/" in body, body
        assert f"mailto:alice@{d}" in body and "INDIVIDUAL" in body and "404" not in body, body

        # The invitation: python-caldav adds alice as ORGANIZER and the attendees.
        work.save_with_invites(INVITE.format(uid="plan@sched.test", start="20270105T100000Z", end="20270105T110000Z",
                                             summary="Planning"), [f"bob@{d}", f"carol@{d}"], schedule_agent="SERVER")
        stored = only_event(work).data
        assert "SCHEDULE-STATUS=1.2" in attendee_line(stored, f"bob@{d}"), stored
        bob_inbox = bob.principal().schedule_inbox()
        items = list(bob_inbox.get_items())
        assert len(items) == 1 and items[0].is_invite_request(), [i.data for i in items]
        bob_calendar = bob.principal().calendars()[0]
        copy = only_event(bob_calendar)
        assert "Planning" in copy.data and partstat(copy.data, f"bob@{d}") == "NEEDS-ACTION", copy.data
        status, _, headers = request(url, "GET", copy.url.path, user="bob")
        tag = headers.get("Schedule-Tag")
        assert status == 200 and tag, headers

        # bob accepts from his inbox, as python-caldav does it (PUT of his copy).
        items[0].accept_invite()
        wait_for(lambda: partstat(only_event(work).data, f"bob@{d}") == "ACCEPTED", what="bob's answer at alice")
        status, _, headers = request(url, "GET", copy.url.path, user="bob")
        assert headers.get("Schedule-Tag") == tag, "an attendee's own change keeps the Schedule-Tag (RFC 6638 3.2.10)"
        alice_inbox = [i.data for i in list(alice.principal().schedule_inbox().get_items())]
        assert any("METHOD:REPLY" in i and "ACCEPTED" in i for i in alice_inbox), alice_inbox

        # carol declines; her calendar was made for the invitation.
        carol_items = list(carol.principal().schedule_inbox().get_items())
        assert len(carol_items) == 1
        carol_items[0].decline_invite()
        wait_for(lambda: partstat(only_event(work).data, f"carol@{d}") == "DECLINED", what="carol's answer at alice")

        # A change of time: every attendee's copy moves and everyone is asked again.
        event = only_event(work)
        event.data = event.data.replace("20270105T100000Z", "20270106T140000Z").replace("20270105T110000Z", "20270106T150000Z")
        event.save()
        moved = only_event(bob_calendar).data
        assert "20270106T140000Z" in moved and partstat(moved, f"bob@{d}") == "NEEDS-ACTION", moved
        assert partstat(only_event(work).data, f"bob@{d}") == "NEEDS-ACTION"
        status, _, headers = request(url, "GET", copy.url.path, user="bob")
        assert headers.get("Schedule-Tag") not in (None, tag), "the organizer's change gives a new Schedule-Tag"
        # A client that has not seen the change is stopped (If-Schedule-Tag-Match, RFC 6638 8.3).
        status, _, _ = request(url, "PUT", copy.url.path, moved.replace("NEEDS-ACTION", "ACCEPTED"), user="bob",
                               headers={"If-Schedule-Tag-Match": tag})
        assert status == 412, status
        status, _, _ = request(url, "PUT", copy.url.path, moved, user="bob", headers={"If-Schedule-Tag-Match": headers["Schedule-Tag"]})
        assert status in (201, 204), status

        # carol is taken off the list: her copy is cancelled.
        event = only_event(work)
        lines = event.data.replace("\r\n ", "").replace("\n ", "").splitlines()
        event.data = "\r\n".join(l for l in lines if not (l.startswith("ATTENDEE") and "carol@" in l.lower())) + "\r\n"
        event.save()
        carol_copy = only_event(carol.principal().calendars()[0]).data
        assert "STATUS:CANCELLED" in carol_copy, carol_copy

        # The organizer deletes the event: bob's copy is cancelled; nothing reaches carol again.
        carol_inbox_before = len(list(carol.principal().schedule_inbox().get_items()))
        only_event(work).delete()
        assert "STATUS:CANCELLED" in only_event(bob_calendar).data
        assert len(list(caldav.DAVClient(url=url + "/dav/", username="carol", password=STRONG).principal().schedule_inbox().get_items())) == carol_inbox_before

        # Every attendee taken off at once: the event is no longer scheduled, and bob's copy of it
        # is cancelled.
        work.save_with_invites(INVITE.format(uid="solo@sched.test", start="20270111T120000Z", end="20270111T130000Z",
                                             summary="Solo"), [f"bob@{d}"], schedule_agent="SERVER")
        solo = next(e for e in work.events() if "Solo" in e.data)
        lines = solo.data.replace("\r\n ", "").replace("\n ", "").splitlines()
        solo.data = "\r\n".join(l for l in lines if not l.startswith("ATTENDEE")) + "\r\n"
        solo.save()
        assert "STATUS:CANCELLED" in next(e for e in bob_calendar.events() if "Solo" in e.data).data
        # bob deletes a copy of an event he was invited to: that declines it.
        work.save_with_invites(INVITE.format(uid="lunch@sched.test", start="20270110T120000Z", end="20270110T130000Z",
                                             summary="Lunch"), [f"bob@{d}"], schedule_agent="SERVER")
        lunch = next(e for e in bob_calendar.events() if "Lunch" in e.data)
        lunch.delete()
        wait_for(lambda: partstat(next(e for e in work.events() if "Lunch" in e.data).data, f"bob@{d}") == "DECLINED",
                 what="a deletion as a decline")
        shard.coop("down")


def test_free_busy_over_the_outbox_and_what_members_may_not_do():
    d = "sched.test"
    with Shard(BIN) as shard:
        url = start(shard, d, ["alice", "bob"])
        # RFC 6638 2.4.1: aliases that reach the member are among their addresses.
        shard.coop("mail", "alias", "add", f"events@{d}", "alice")
        find = "<D:propfind xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'><D:prop><C:calendar-user-address-set/></D:prop></D:propfind>"
        body = request(url, "PROPFIND", "/dav/principals/alice/", find, headers={"Depth": "0"})[1]
        assert f"mailto:alice@{d}" in body and f"mailto:events@{d}" in body, body
        assert request(url, "MKCALENDAR", "/dav/calendars/bob/mine/", user="bob")[0] == 201
        busy = INVITE.format(uid="busy@sched.test", start="20270105T090000Z", end="20270105T100000Z", summary="Busy")
        assert request(url, "PUT", "/dav/calendars/bob/mine/busy.ics", busy, user="bob")[0] == 201
        ask = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//coop tests//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n"
               "UID:fb-1\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:20270105T000000Z\r\nDTEND:20270106T000000Z\r\n"
               f"ORGANIZER:mailto:alice@{d}\r\nATTENDEE:mailto:bob@{d}\r\nATTENDEE:mailto:nobody@{d}\r\n"
               "END:VFREEBUSY\r\nEND:VCALENDAR\r\n")
        status, body, _ = request(url, "POST", "/dav/calendars/alice/outbox/", ask, headers={"Content-Type": "text/calendar"})
        assert status == 200 and "schedule-response" in body, (status, body)
        assert "FREEBUSY:20270105T090000Z/20270105T100000Z" in body and "2.0;Success" in body, body
        assert "3.7;" in body, body  # nobody@ is no calendar user
        # Someone else's outbox, someone else's name, a message that is not a free-busy request.
        assert request(url, "POST", "/dav/calendars/alice/outbox/", ask, user="bob")[0] == 404
        status, body, _ = request(url, "POST", "/dav/calendars/bob/outbox/", ask, user="bob")
        assert status == 403 and "organizer-allowed" in body, (status, body)
        status, body, _ = request(url, "POST", "/dav/calendars/alice/outbox/", busy)
        assert status == 403 and "valid-scheduling-message" in body, (status, body)
        assert request(url, "POST", "/dav/calendars/alice/outbox/", b"\xff\xfe")[0] == 403
        # RFC 4791 5.2.9: one PUT does not invite without end.
        many = "".join(f"ATTENDEE:mailto:m{i}@{d}\r\n" for i in range(1001))
        crowd = busy.replace("UID:busy@sched.test", "UID:crowd@sched.test").replace(
            "END:VEVENT", f"ORGANIZER:mailto:bob@{d}\r\n{many}END:VEVENT")
        status, body, _ = request(url, "PUT", "/dav/calendars/bob/mine/crowd.ics", crowd, user="bob")
        assert status == 403 and "max-attendees-per-instance" in body, (status, body)
        # The inbox takes deliveries only; neither box can be made, changed or written to.
        assert request(url, "PUT", "/dav/calendars/alice/inbox/x.ics", busy)[0] == 403
        assert request(url, "PUT", "/dav/calendars/alice/outbox/x.ics", busy)[0] == 403
        assert request(url, "MKCALENDAR", "/dav/calendars/alice/inbox/")[0] == 405
        assert request(url, "PROPFIND", "/dav/calendars/alice/inbox/", user="bob", headers={"Depth": "0"})[0] == 404
        status, body, _ = request(url, "PROPFIND", "/dav/calendars/alice/", headers={"Depth": "1"})
        assert "schedule-inbox" in body and "schedule-outbox" in body, body
        # Calendar mail that DMARC did not vouch for is not applied, and a REQUEST not from its
        # organizer neither.
        invite = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:forged@x\r\n"
                  "DTSTAMP:20270101T000000Z\r\nDTSTART:20270105T090000Z\r\nDTEND:20270105T100000Z\r\n"
                  f"ORGANIZER:mailto:boss@elsewhere.test\r\nATTENDEE:mailto:alice@{d}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        out = control(shard, "dav", "/v1/itip/alice", {"from": "boss@elsewhere.test", "authenticated": False, "calendar": invite})
        assert out["applied"] is False, out
        out = control(shard, "dav", "/v1/itip/alice", {"from": "mallory@elsewhere.test", "authenticated": True, "calendar": invite})
        assert out["applied"] is False, out
        assert "forged@x" not in request(url, "PROPFIND", "/dav/calendars/alice/", headers={"Depth": "1"})[1]
        shard.coop("down")


def publish_keys(sender, receiver, domain):
    """The sender's DKIM keys and a DMARC record, in the receiver's DNS."""
    for k in sender.json("mail", "dkim", "list"):
        if k["active"]:
            receiver.dns.txt(k["dns_name"].rstrip("."), k["dns_record"])
    receiver.dns.txt(f"_dmarc.{domain}", "v=DMARC1; p=none")


def test_an_attendee_on_another_shard_gets_imip_and_answers_by_mail():
    with Shard(BIN) as a, Shard(BIN) as b:
        b_smtp = b.base_port + 2
        queue = "\n[workers.mail.queue]\nretry_first_ms = 200\nretry_max_ms = 400\n"
        url_a = start(a, "a.test", ["alice"], f'{queue}[workers.mail.routes]\n"b.test" = "127.0.0.1:{b_smtp}"\n')
        a_smtp = mail_ports(a)["smtp"]
        url_b = start(b, "b.test", ["dave"], f'{queue}[workers.mail.routes]\n"a.test" = "127.0.0.1:{a_smtp}"\n')
        assert mail_ports(b)["smtp"] == b_smtp
        a.coop("mail", "dkim", "generate", "--domain", "a.test", "--selector", "s1")
        b.coop("mail", "dkim", "generate", "--domain", "b.test", "--selector", "s1")
        publish_keys(a, b, "a.test")
        publish_keys(b, a, "b.test")
        alice, dave = client(url_a, "alice"), client(url_b, "dave")
        work = alice.principal().make_calendar(name="Work", cal_id="work")
        dave.principal().make_calendar(name="Dave", cal_id="dave")
        work.save_with_invites(INVITE.format(uid="visit@a.test", start="20270201T100000Z", end="20270201T120000Z",
                                             summary="Visite de la coopérative"), ["dave@b.test"], schedule_agent="SERVER")
        assert "SCHEDULE-STATUS=1.1" in attendee_line(only_event(work).data, "dave@b.test")
        # The mail reaches dave's INBOX at b, signed by a, and his calendar has the event.
        inbox = lambda: control(b, "mail", "/v1/messages/dave/INBOX")
        wait_for(lambda: len(inbox()) == 1, timeout=60, what="the invitation by mail at b")
        raw = subprocess.run(["curl", "-s", "--unix-socket", os.path.join(b.home, "run", "mail.sock"),
                              f"http://coop/v1/blobs/{inbox()[0]['blob']}"], capture_output=True, check=True).stdout
        assert b"DKIM-Signature:" in raw and b"dkim=pass" in raw and b"dmarc=pass" in raw, raw[:2000]
        assert b"text/calendar; charset=utf-8; method=REQUEST" in raw
        dave_calendar = dave.principal().calendars()[0]
        wait_for(lambda: len(dave_calendar.events()) == 1, what="the event in dave's calendar")
        assert "coopérative" in only_event(dave_calendar).data
        # dave accepts in his calendar client; the REPLY goes back by mail and alice's copy says so.
        items = list(dave.principal().schedule_inbox().get_items())
        assert len(items) == 1
        items[0].accept_invite()
        wait_for(lambda: partstat(only_event(work).data, "dave@b.test") == "ACCEPTED", timeout=60,
                 what="dave's answer applied at a")
        # A forged answer by mail (no signature, From: dave) does not change alice's copy.
        forged = ("From: dave@b.test\r\nTo: alice@a.test\r\nSubject: forged\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: text/calendar; method=REPLY; charset=utf-8\r\n\r\n"
                  "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:visit@a.test\r\n"
                  "DTSTAMP:20270101T000000Z\r\nSEQUENCE:5\r\nORGANIZER:mailto:alice@a.test\r\n"
                  "ATTENDEE;PARTSTAT=DECLINED:mailto:dave@b.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        messages_before = len(control(a, "mail", "/v1/messages/alice/INBOX"))
        with smtplib.SMTP("127.0.0.1", a_smtp, timeout=30) as s:
            s.sendmail("dave@b.test", ["alice@a.test"], forged.encode())
        wait_for(lambda: len(control(a, "mail", "/v1/messages/alice/INBOX")) > messages_before, what="the forged mail delivered")
        time.sleep(0.5)
        assert partstat(only_event(work).data, "dave@b.test") == "ACCEPTED"
        a.coop("down")
        b.coop("down")


if __name__ == "__main__":
    run_tests([test_three_members_invite_accept_decline_reschedule_cancel,
               test_free_busy_over_the_outbox_and_what_members_may_not_do,
               test_an_attendee_on_another_shard_gets_imip_and_answers_by_mail])
