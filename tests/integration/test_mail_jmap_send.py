"""JMAP sending and away (RFC 8621 6-8): Identity, EmailSubmission through coop's outbound
queue (jmap-jam sending a draft and moving it to Sent in one request; raw requests for the
envelope, refusals and deliveryStatus; a receiver of the test's own for mail leaving the
shard), and VacationResponse answered once per sender, never to lists or robots."""
import email
import email.policy
import json
import os
import smtplib
import subprocess

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for
from mailpeers import SmtpReceiver
from test_mail_jmap import CLIENTS, DOMAIN, STRONG, Jmap, app_password

BIN = bin_dir_from_args()
SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
CORE, MAIL = "urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"


def start(shard, toml="", mx=None):
    """A shard hosting mail.test with alice and bob; mx: a domain whose mail goes to the test's receiver."""
    shard.init()
    if mx:
        shard.dns.mx(mx, 10, "mx." + mx)
        shard.dns.a("mx." + mx, "127.0.0.1")
        shard.dns.txt(mx, "v=spf1 ip4:127.0.0.1 -all")  # its mail comes from here (SPF pass)
        shard.dns.txt("forged.example", "v=spf1 ip4:192.0.2.1 -all")  # and this domain's never does
    with open(os.path.join(shard.home, "coop.toml"), "a") as f:
        f.write("\n[workers.mail.queue]\nretry_first_ms = 200\nretry_max_ms = 400\n" + toml)
    shard.coop("up")
    shard.coop("mail", "domain", "add", DOMAIN)
    for who in ("alice", "bob"):
        shard.coop("member", "add", who, "--email", f"{who}@{DOMAIN}", "--password-stdin", input=STRONG)
    shard.coop("mail", "dkim", "generate", "--domain", DOMAIN, "--selector", "rsa1")
    mail = next(w for w in shard.json("status")["workers"] if w["name"] == "mail")
    return {l["name"]: l["url"] for l in mail["listeners"]}


class Session(Jmap):
    def call(self, *calls, using=(CORE, MAIL, SUBMISSION, VACATION)):
        return super().call(*calls, using=using)


def inbox_subjects(j):
    r = j.call(["Email/query", {"accountId": j.account, "filter": {"inMailbox": role(j, "inbox")}}, "q"],
               ["Email/get", {"accountId": j.account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                              "properties": ["subject", "from", "keywords", "header:Auto-Submitted:asText", "inReplyTo"]}, "g"])
    return r[1][1]["list"]


def role(j, name):
    return next(b["id"] for b in j.one("Mailbox/get", {"ids": None})["list"] if b["role"] == name)


def test_identity_and_submission_with_jmap_jam():
    with SmtpReceiver() as receiver, Shard(BIN) as shard:
        urls = start(shard, f"mx_port = {receiver.port}\n", mx="example.net")
        alice, bob = Session(urls), Session(urls, user="bob")
        assert SUBMISSION in alice.session["capabilities"] and alice.session["primaryAccounts"][SUBMISSION] == alice.account
        ids = alice.one("Identity/get", {"ids": None})["list"]
        assert f"alice@{DOMAIN}" in [i["email"] for i in ids], ids
        ident = next(i["id"] for i in ids if i["email"] == f"alice@{DOMAIN}")
        # Identity needs the submission capability in "using" (RFC 8621 6).
        plain = alice.call(["Identity/get", {"accountId": alice.account}, "x"], using=(CORE, MAIL))
        assert plain[0][0] == "error" and plain[0][1]["type"] == "unknownMethod"
        # jmap-jam: a draft and its submission in one request, the draft then in Sent.
        token = app_password(shard, "alice", "mail")
        out = subprocess.run(["node", os.path.join(CLIENTS, "jmap_jam_send.mjs"), urls["jmap"] + "/.well-known/jmap", token,
                              "alice", f"bob@{DOMAIN}", "Tools for the workshop"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        sent = json.loads(out.stdout)
        assert sent["created"] == ["draft"] and sent["moved"] == [sent["draftId"]], sent
        [draft] = alice.one("Email/get", {"ids": [sent["draftId"]], "properties": ["mailboxIds", "keywords"]})["list"]
        assert draft["mailboxIds"] == {role(alice, "sent"): True} and "$draft" not in draft["keywords"], draft
        wait_for(lambda: any(e["subject"] == "Tools for the workshop" for e in inbox_subjects(bob)), what="bob's copy")
        got = next(e for e in inbox_subjects(bob) if e["subject"] == "Tools for the workshop")
        assert got["from"][0]["email"] == sent["identity"], got
        # No second copy in Sent: the member's own Email was moved there.
        assert len(alice.one("Email/query", {"filter": {"inMailbox": role(alice, "sent")}})["ids"]) == 1
        subs = alice.one("EmailSubmission/get", {"ids": None})["list"]
        assert len(subs) == 1 and subs[0]["emailId"] == sent["draftId"] and subs[0]["undoStatus"] == "final"
        wait_for(lambda: alice.one("EmailSubmission/get", {"ids": None})["list"][0]["deliveryStatus"][f"bob@{DOMAIN}"]["delivered"] == "yes",
                 what="deliveryStatus yes")
        # Raw: an envelope of our own, to a receiver outside the shard; Bcc is not sent.
        drafts = role(alice, "drafts")
        r = alice.call(["Email/set", {"accountId": alice.account, "create": {"d": {
                            "mailboxIds": {drafts: True}, "from": [{"email": f"alice@{DOMAIN}"}],
                            "to": [{"email": "carol@example.net"}], "bcc": [{"email": "dan@example.net"}], "subject": "Out",
                            "bodyValues": {"b": {"value": "hello"}}, "textBody": [{"partId": "b"}]}}}, "0"],
                       ["EmailSubmission/set", {"accountId": alice.account, "create": {"s": {"identityId": ident, "emailId": "#d"}},
                                                "onSuccessDestroyEmail": ["#s"]}, "1"])
        assert [x[0] for x in r] == ["Email/set", "EmailSubmission/set", "Email/set"], r
        assert r[1][2] == r[2][2] == "1" and r[2][1]["destroyed"] == [r[0][1]["created"]["d"]["id"]]
        envelope = alice.one("EmailSubmission/get", {"ids": [r[1][1]["created"]["s"]["id"]]})["list"][0]["envelope"]
        assert sorted(x["email"] for x in envelope["rcptTo"]) == ["carol@example.net", "dan@example.net"]
        wait_for(lambda: len(receiver.received()) == 1, what="the receiver's copy")
        sender, rcpts, raw = receiver.received()[0]
        assert sender == f"alice@{DOMAIN}" and sorted(rcpts) == ["carol@example.net", "dan@example.net"], (sender, rcpts)
        assert b"Bcc" not in raw and b"dan@example.net" not in raw and b"DKIM-Signature:" in raw
        # Refusals: another's address, no recipients, a forged From, unknown ids.
        def create(props, sub):
            return alice.call(["Email/set", {"accountId": alice.account, "create": {"d": {
                                 "mailboxIds": {drafts: True}, "subject": "x", "bodyValues": {"b": {"value": "x"}},
                                 "textBody": [{"partId": "b"}], **props}}}, "0"],
                              ["EmailSubmission/set", {"accountId": alice.account, "create": {"s": {"emailId": "#d", **sub}}}, "1"])[1][1]
        assert create({"from": [{"email": f"bob@{DOMAIN}"}], "to": [{"email": "x@example.net"}]}, {"identityId": ident})["notCreated"]["s"]["type"] == "forbiddenFrom"
        assert create({"from": [{"email": f"alice@{DOMAIN}"}]}, {"identityId": ident})["notCreated"]["s"]["type"] == "noRecipients"
        assert create({"from": [{"email": f"alice@{DOMAIN}"}], "to": [{"email": "x@example.net"}]},
                      {"identityId": ident, "envelope": {"mailFrom": {"email": f"bob@{DOMAIN}"}, "rcptTo": [{"email": "x@example.net"}]}})["notCreated"]["s"]["type"] == "forbiddenMailFrom"
        assert create({"from": [{"email": f"alice@{DOMAIN}"}], "to": [{"email": "x@example.net"}]}, {"identityId": "nope"})["notCreated"]["s"]["type"] == "invalidProperties"
        foreign = bob.one("Email/query", {})["ids"][0]
        stolen = alice.one("EmailSubmission/set", {"create": {"s": {"identityId": ident, "emailId": foreign}}})
        assert stolen["notCreated"]["s"]["type"] == "invalidProperties"  # bob's Email is not alice's to send
        cancel = alice.one("EmailSubmission/set", {"update": {subs[0]["id"]: {"undoStatus": "canceled"}}})
        assert cancel["notUpdated"][subs[0]["id"]]["type"] == "cannotUnsend"
        assert len(receiver.received()) == 1


def send_in(urls, raw, sender="carol@example.org", to=f"alice@{DOMAIN}"):
    port = int(urls["smtp"].rsplit(":", 1)[1])
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail(sender, [to], raw.encode())


def test_vacation_response_once_per_sender_never_to_lists():
    with SmtpReceiver() as receiver, Shard(BIN) as shard:
        urls = start(shard, f"mx_port = {receiver.port}\n", mx="example.org")
        alice = Session(urls)
        [v] = alice.one("VacationResponse/get", {"ids": None})["list"]
        assert v == {"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None, "subject": None, "textBody": None, "htmlBody": None}
        bad = alice.one("VacationResponse/set", {"update": {"singleton": {"isEnabled": "yes", "toDate": "tomorrow"}}, "create": {"x": {}}})
        assert set(bad["notUpdated"]["singleton"]["properties"]) == {"isEnabled", "toDate"} and bad["notCreated"]["x"]["type"] == "singleton"
        on = alice.one("VacationResponse/set", {"update": {"singleton": {"isEnabled": True, "subject": "Away at the harvest",
                                                                          "textBody": "Back on Monday.", "fromDate": "2020-01-01T00:00:00Z"}}})
        assert on["updated"] == {"singleton": None} and on["newState"] != on["oldState"]
        message = ("From: Carol <carol@example.org>\r\nTo: alice@mail.test\r\nSubject: {s}\r\nMessage-ID: <{i}@example.org>\r\n"
                   "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n{extra}\r\nHello.\r\n")
        send_in(urls, message.format(s="Rota", i="v1", extra=""))
        wait_for(lambda: len(receiver.received()) == 1, what="the auto-reply")
        sender, rcpts, raw = receiver.received()[0]
        reply = email.message_from_bytes(raw, policy=email.policy.default)
        # RFC 3834: from the null sender, to the envelope sender, marked and threaded.
        assert sender == "" and rcpts == ["carol@example.org"], (sender, rcpts)
        assert reply["Auto-Submitted"] == "auto-replied" and reply["Subject"] == "Away at the harvest"
        assert reply["In-Reply-To"] == "<v1@example.org>" and reply["From"] == f"alice@{DOMAIN}"
        assert reply.get_content().strip() == "Back on Monday."
        # Once per sender per period; never to lists, robots, auto-replies or Bcc copies.
        send_in(urls, message.format(s="Rota again", i="v2", extra=""))
        send_in(urls, message.format(s="Digest", i="v3", extra="List-Id: <garden.example.org>\r\n"), sender="dora@example.org")
        send_in(urls, message.format(s="Bulk", i="v4", extra="Precedence: bulk\r\n"), sender="erin@example.org")
        send_in(urls, message.format(s="Out", i="v5", extra="Auto-Submitted: auto-replied\r\n"), sender="fred@example.org")
        send_in(urls, message.format(s="Bounce", i="v6", extra=""), sender="")
        send_in(urls, message.format(s="Robot", i="v7", extra=""), sender="noreply@example.org")
        send_in(urls, message.replace("To: alice@mail.test", "To: someone@example.org").format(s="Bcc", i="v8", extra=""), sender="gina@example.org")
        send_in(urls, message.format(s="Forged", i="v12", extra=""), sender="mallory@forged.example")
        send_in(urls, message.format(s="Hello", i="v9", extra=""), sender="hal@example.org")
        wait_for(lambda: len(receiver.received()) == 2, what="the second auto-reply")
        wait_for(lambda: len(inbox_subjects(alice)) == 10, what="all ten delivered")
        assert receiver.received()[1][1] == ["hal@example.org"] and len(receiver.received()) == 2
        # Outside its dates, or turned off, nothing more goes out.
        alice.one("VacationResponse/set", {"update": {"singleton": {"isEnabled": False}}})
        send_in(urls, message.format(s="Late", i="v10", extra=""), sender="ivy@example.org")
        alice.one("VacationResponse/set", {"update": {"singleton": {"isEnabled": True, "fromDate": "2099-01-01T00:00:00Z"}}})
        send_in(urls, message.format(s="Early", i="v11", extra=""), sender="jo@example.org")
        wait_for(lambda: len(inbox_subjects(alice)) == 12, what="the last two delivered")
        assert len(receiver.received()) == 2


if __name__ == "__main__":
    run_tests([test_identity_and_submission_with_jmap_jam, test_vacation_response_once_per_sender_never_to_lists])
