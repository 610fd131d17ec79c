"""JMAP (RFC 8621) Email/set create from parts, creation-id references (RFC 8620 5.3), real
threads, /queryChanges and header forms, checked against what imaplib and Python's own MIME
parser read from the same store."""
import email
import json
import email.policy
import imaplib
import smtplib
import ssl

from coopshard import Shard, bin_dir_from_args, run_tests
from test_mail_jmap import DOMAIN, STRONG, Jmap, deliver, http, start

BIN = bin_dir_from_args()


def send_raw(urls, raw):
    port = int(urls["smtp"].rsplit(":", 1)[1])
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("carol@example.org", [f"alice@{DOMAIN}"], raw.encode())


def imap_message(urls, mailbox, subject):
    port = int(urls["imap"].rsplit(":", 1)[1])
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.starttls(ssl._create_unverified_context())
    imap.login("alice", STRONG)
    imap.select(mailbox)
    [uids] = imap.uid("SEARCH", None, "SUBJECT", f'"{subject}"')[1]
    assert uids, (mailbox, subject)
    data = imap.uid("FETCH", uids.split()[-1], "(FLAGS BODY.PEEK[])")[1]
    imap.logout()
    return data[0][0], email.message_from_bytes(data[0][1], policy=email.policy.default)


def test_create_from_parts_with_references():
    with Shard(BIN) as shard:
        urls = start(shard)
        j = Jmap(urls)
        status, body, _ = http("POST", j.session["uploadUrl"].replace("{accountId}", j.account), b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
                               content_type="image/png")
        assert status == 201, body
        png = json.loads(body)["blobId"]
        # One request: a mailbox, a draft in it (by "#folder"), then the draft read by "#draft".
        r = j.call(["Mailbox/set", {"accountId": j.account, "create": {"folder": {"name": "Letters"}}}, "0"],
                   ["Email/set", {"accountId": j.account, "create": {"draft": {
                       "mailboxIds": {"#folder": True}, "keywords": {"$draft": True, "$seen": True},
                       "from": [{"name": "Alice Ågren", "email": f"alice@{DOMAIN}"}],
                       "to": [{"name": "Bob", "email": f"bob@{DOMAIN}"}], "cc": [{"email": "carol@example.org"}],
                       "subject": "Plans for the Café ☕", "sentAt": "2026-12-07T10:00:00+01:00",
                       "inReplyTo": ["root@example.org"], "references": ["root@example.org"],
                       "header:X-Coop-Test:asText": "grüße",
                       "bodyValues": {"t": {"value": "Plain words — with a dash.\n"}, "h": {"value": "<p>Rich <img src=\"cid:logo@x\"></p>"}},
                       "textBody": [{"partId": "t", "type": "text/plain"}],
                       "htmlBody": [{"partId": "h", "type": "text/html"}],
                       "attachments": [{"blobId": png, "type": "image/png", "name": "logo.png", "cid": "logo@x", "disposition": "inline"},
                                       {"blobId": png, "type": "image/png", "name": "again.png"}]}}}, "1"],
                   ["Email/get", {"accountId": j.account, "ids": ["#draft"],
                                  "properties": ["subject", "from", "to", "cc", "sentAt", "keywords", "mailboxIds", "threadId",
                                                 "inReplyTo", "header:X-Coop-Test:asText", "textBody", "htmlBody", "attachments",
                                                 "bodyValues"], "fetchAllBodyValues": True}, "2"])
        assert [x[0] for x in r] == ["Mailbox/set", "Email/set", "Email/get"], r
        folder = r[0][1]["created"]["folder"]["id"]
        created = r[1][1]["created"]["draft"]
        assert set(created) >= {"id", "blobId", "threadId", "size"}, created
        [got] = r[2][1]["list"]
        assert got["id"] == created["id"] and got["mailboxIds"] == {folder: True}
        assert got["keywords"] == {"$draft": True, "$seen": True}
        assert got["subject"] == "Plans for the Café ☕" and got["from"] == [{"name": "Alice Ågren", "email": f"alice@{DOMAIN}"}]
        assert got["sentAt"] == "2026-12-07T09:00:00Z" and got["inReplyTo"] == ["root@example.org"]
        assert got["header:X-Coop-Test:asText"] == "grüße"
        assert got["threadId"] == created["threadId"]
        assert got["bodyValues"][got["textBody"][0]["partId"]]["value"].rstrip() == "Plain words — with a dash."
        assert [a["name"] for a in got["attachments"]] == ["logo.png", "again.png"], got["attachments"]
        # What IMAP and Python's parser read: a well-formed multipart with the right structure.
        flags, msg = imap_message(urls, "Letters", "Plans")
        assert b"\\Draft" in flags and b"\\Seen" in flags
        assert msg["Subject"] == "Plans for the Café ☕" and msg["X-Coop-Test"] == "grüße"
        assert msg.get_content_type() == "multipart/mixed"
        related, attached = msg.get_payload()
        assert related.get_content_type() == "multipart/related" and attached.get_filename() == "again.png"
        alternative, logo = related.get_payload()
        assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
        assert logo["Content-ID"] == "<logo@x>" and logo.get_content() == b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
        assert msg["Message-ID"] and msg["Date"]
        # Wrong creations are refused with the property named, and nothing is stored.
        before = j.one("Email/query", {"calculateTotal": True})["total"]
        bad = j.one("Email/set", {"create": {
            "a": {"mailboxIds": {folder: True}, "id": "x"},
            "b": {"mailboxIds": {folder: True}, "textBody": [{"partId": "missing"}]},
            "c": {"mailboxIds": {folder: True}, "to": [{"email": "x@y\r\nBcc: evil@example.org"}]},
            "d": {"mailboxIds": {"#nothing": True}},
            "e": {"mailboxIds": {folder: True}, "attachments": [{"blobId": "G" + "0" * 64}]},
            "f": {"mailboxIds": {folder: True}, "header:Content-Type": "text/html"},
            "g": {"mailboxIds": {folder: True}, "bodyStructure": {"type": "multipart/mixed", "subParts": [{"partId": "x"}]}},
        }})
        assert set(bad["notCreated"]) == set("abcdefg"), bad
        assert bad["notCreated"]["e"]["type"] == "blobNotFound"
        assert all(bad["notCreated"][k]["type"] == "invalidProperties" for k in "abcdfg"), bad
        assert j.one("Email/query", {"calculateTotal": True})["total"] == before


def test_threads_query_changes_and_header_forms():
    with Shard(BIN) as shard:
        urls = start(shard)
        j = Jmap(urls)
        send_raw(urls, "From: Carol <carol@example.org>\r\nTo: alice@mail.test\r\nSubject: Seed swap\r\n"
                       "Message-ID: <root@example.org>\r\nDate: Mon, 07 Dec 2026 09:00:00 +0000\r\n"
                       "List-Unsubscribe: <mailto:leave@example.org>, <https://example.org/leave>\r\n"
                       "Comments: =?utf-8?q?gr=C3=BC=C3=9Fe?= all\r\n\r\nWho brings beans?\r\n")
        inbox = next(b["id"] for b in j.one("Mailbox/get", {"ids": None})["list"] if b["role"] == "inbox")
        q0 = j.one("Email/query", {"filter": {"inMailbox": inbox}, "collapseThreads": True})
        assert q0["canCalculateChanges"] is True and len(q0["ids"]) == 1
        threads_state = j.one("Thread/get", {"ids": []})["state"]
        send_raw(urls, "From: Dan <dan@example.org>\r\nTo: alice@mail.test\r\nSubject: Re: Seed swap\r\n"
                       "Message-ID: <reply1@example.org>\r\nIn-Reply-To: <root@example.org>\r\nReferences: <root@example.org>\r\n"
                       "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\nI do.\r\n")
        send_raw(urls, "From: Erin <erin@example.org>\r\nTo: alice@mail.test\r\nSubject: Re: Seed swap\r\n"
                       "Message-ID: <reply2@example.org>\r\nIn-Reply-To: <reply1@example.org>\r\n"
                       "References: <root@example.org> <reply1@example.org>\r\nDate: Mon, 07 Dec 2026 11:00:00 +0000\r\n\r\nMe too.\r\n")
        deliver(urls, "Unrelated", "Another conversation.")
        emails = j.one("Email/get", {"ids": None, "properties": ["subject", "threadId", "receivedAt"]})["list"]
        swap = [e for e in emails if "Seed swap" in e["subject"]]
        assert len(swap) == 3 and len({e["threadId"] for e in swap}) == 1
        other = next(e for e in emails if e["subject"] == "Unrelated")
        assert other["threadId"] != swap[0]["threadId"]
        [thread] = j.one("Thread/get", {"ids": [swap[0]["threadId"]]})["list"]
        assert len(thread["emailIds"]) == 3 and set(thread["emailIds"]) == {e["id"] for e in swap}
        tc = j.one("Thread/changes", {"sinceState": threads_state})
        assert tc["updated"] == [swap[0]["threadId"]] and tc["created"] == [other["threadId"]], tc
        # Collapsed: one Email a thread; the mailbox counts threads.
        q = j.one("Email/query", {"filter": {"inMailbox": inbox}, "collapseThreads": True, "calculateTotal": True})
        assert q["total"] == 2 and q["collapseThreads"] is True
        box = j.one("Mailbox/get", {"ids": [inbox]})["list"][0]
        assert box["totalEmails"] == 4 and box["totalThreads"] == 2 and box["unreadThreads"] == 2
        # Thread-wide keyword filters.
        j.one("Email/set", {"update": {swap[0]["id"]: {"keywords/$flagged": True}}})
        some = j.one("Email/query", {"filter": {"someInThreadHaveKeyword": "$flagged"}})["ids"]
        assert set(some) == {e["id"] for e in swap}
        assert j.one("Email/query", {"filter": {"allInThreadHaveKeyword": "$flagged"}})["ids"] == []
        # Keyword sorts (RFC 8621 4.4.2): flagged first, then the rest of its thread.
        by_flag = j.one("Email/query", {"sort": [{"property": "hasKeyword", "keyword": "$flagged", "isAscending": False},
                                                 {"property": "receivedAt"}]})["ids"]
        assert by_flag[0] == swap[0]["id"], by_flag
        by_thread = j.one("Email/query", {"sort": [{"property": "someInThreadHaveKeyword", "keyword": "$flagged", "isAscending": False}]})["ids"]
        assert set(by_thread[:3]) == {e["id"] for e in swap} and by_thread[3] == other["id"]
        no_keyword = j.call(["Email/query", {"accountId": j.account, "sort": [{"property": "hasKeyword"}]}, "x"])
        assert no_keyword[0][1]["type"] == "unsupportedSort"
        # /queryChanges from the first query's state: the client's list, patched, is the query now.
        qc = j.one("Email/queryChanges", {"filter": {"inMailbox": inbox}, "collapseThreads": True, "sinceQueryState": q0["queryState"]})
        assert qc["oldQueryState"] == q0["queryState"]
        mine = [i for i in q0["ids"] if i not in qc["removed"]]
        for a in sorted(qc["added"], key=lambda a: a["index"]):
            mine.insert(a["index"], a["id"])
        now = j.one("Email/query", {"filter": {"inMailbox": inbox}, "collapseThreads": True})
        assert mine == now["ids"] and qc["newQueryState"] == now["queryState"]
        flat_state = j.one("Email/query", {"sort": [{"property": "receivedAt", "isAscending": True}]})
        j.one("Email/set", {"destroy": [other["id"]]})
        qc2 = j.one("Email/queryChanges", {"sort": [{"property": "receivedAt", "isAscending": True}], "sinceQueryState": flat_state["queryState"]})
        assert other["id"] in qc2["removed"] and qc2["added"] == []
        too_many = j.call(["Email/queryChanges", {"accountId": j.account, "sinceQueryState": q0["queryState"], "maxChanges": 1}, "x"])
        assert too_many[0][0] == "error" and too_many[0][1]["type"] == "tooManyChanges"
        unknown = j.call(["Email/queryChanges", {"accountId": j.account, "sinceQueryState": "nope"}, "x"])
        assert unknown[0][1]["type"] == "cannotCalculateChanges"
        mq = j.one("Mailbox/query", {"sort": [{"property": "name"}]})
        j.one("Mailbox/set", {"create": {"n": {"name": "Allotment"}}})
        mqc = j.one("Mailbox/queryChanges", {"sort": [{"property": "name"}], "sinceQueryState": mq["queryState"]})
        assert len(mqc["added"]) == 1 and mqc["added"][0]["index"] == 0, mqc
        # Header forms and the header filter (RFC 8621 4.1.2, 4.4.1).
        root = next(e for e in swap if e["subject"] == "Seed swap")
        [h] = j.one("Email/get", {"ids": [root["id"]], "properties": [
            "header:Comments:asText", "header:Comments", "header:List-Unsubscribe:asURLs", "header:From:asAddresses",
            "header:Message-ID:asMessageIds", "header:Date:asDate", "header:X-None", "header:Received:all",
            "header:From:asGroupedAddresses"]})["list"]
        assert h["header:Comments:asText"] == "grüße all" and h["header:Comments"] == " =?utf-8?q?gr=C3=BC=C3=9Fe?= all"
        assert h["header:List-Unsubscribe:asURLs"] == ["mailto:leave@example.org", "https://example.org/leave"]
        assert h["header:From:asAddresses"] == [{"name": "Carol", "email": "carol@example.org"}]
        assert h["header:From:asGroupedAddresses"] == [{"name": None, "addresses": [{"name": "Carol", "email": "carol@example.org"}]}]
        assert h["header:Message-ID:asMessageIds"] == ["root@example.org"] and h["header:Date:asDate"] == "2026-12-07T09:00:00Z"
        assert h["header:X-None"] is None and len(h["header:Received:all"]) >= 1
        assert j.one("Email/query", {"filter": {"header": ["Comments", "grüße"]}})["ids"] == [root["id"]]
        assert j.one("Email/query", {"filter": {"header": ["List-Unsubscribe"]}})["ids"] == [root["id"]]
        assert j.one("Email/query", {"filter": {"header": ["Comments", "all"]}})["ids"] == [root["id"]]
        bad = j.call(["Email/get", {"accountId": j.account, "ids": [root["id"]], "properties": ["header:From:asNothing"]}, "x"])
        assert bad[0][1]["type"] == "invalidArguments"


def test_mailbox_roles():
    """RFC 8621 2: roles are set on create and update, one mailbox a role, INBOX's its own; IMAP
    LIST shows them as special uses (RFC 6154)."""
    with Shard(BIN) as shard:
        urls = start(shard)
        j = Jmap(urls)
        made = j.one("Mailbox/set", {"create": {"a": {"name": "Old archive", "role": "archive"},
                                                "b": {"name": "Important", "role": "important"},
                                                "c": {"name": "Odd", "role": "nonsense"}}})
        assert made["notCreated"]["a"]["properties"] == ["role"] and made["notCreated"]["c"]["properties"] == ["role"]
        important = made["created"]["b"]["id"]
        assert j.one("Mailbox/get", {"ids": [important]})["list"][0]["role"] == "important"
        inbox = next(b["id"] for b in j.one("Mailbox/get", {"ids": None})["list"] if b["role"] == "inbox")
        bad = j.one("Mailbox/set", {"update": {inbox: {"role": "archive"}, important: {"role": "inbox"}}})
        assert set(bad["notUpdated"]) == {inbox, important}
        moved = j.one("Mailbox/set", {"update": {important: {"role": "flagged"}}})
        assert moved["updated"] == {important: None}
        port = int(urls["imap"].rsplit(":", 1)[1])
        imap = imaplib.IMAP4("127.0.0.1", port)
        imap.starttls(ssl._create_unverified_context())
        imap.login("alice", STRONG)
        listed = [line for line in imap.list()[1] if b"Important" in line]
        imap.logout()
        assert listed and b"\\Flagged" in listed[0], listed


if __name__ == "__main__":
    run_tests([test_create_from_parts_with_references, test_threads_query_changes_and_header_forms, test_mailbox_roles])
