"""JMAP (RFC 8620, RFC 8621) on coop-mail's jmap listener: the session resource, the request
and its errors, result references, limits, blobs; mail read, searched, flagged and moved by
jmap-jam (npm) and by raw requests, while imaplib changes the same mailbox; a move into Junk
over JMAP teaches the spam filter."""
import base64
import imaplib
import json
import os
import smtplib
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for

BIN = bin_dir_from_args()
DOMAIN = "mail.test"
STRONG = "correct horse battery staple"
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "..", "clients")
CORE, MAIL = "urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"


def start(shard):
    shard.init()
    shard.coop("up")
    shard.coop("mail", "domain", "add", DOMAIN)
    for who in ("alice", "bob"):
        shard.coop("member", "add", who, "--email", f"{who}@{DOMAIN}", "--password-stdin", input=STRONG)
    mail = next(w for w in shard.json("status")["workers"] if w["name"] == "mail")
    return {l["name"]: l["url"] for l in mail["listeners"]}


def http(method, url, body=None, user="alice", password=STRONG, content_type="application/json"):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if user:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def deliver(urls, subject, body, to="alice"):
    port = int(urls["smtp"].rsplit(":", 1)[1])
    raw = (f"From: Carol <carol@example.org>\r\nTo: {to}@{DOMAIN}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{uuid.uuid4()}@example.org>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("carol@example.org", [f"{to}@{DOMAIN}"], raw.encode())


def app_password(shard, handle, scope, label=None):
    """A new app password (what the member portal makes), for use as a Bearer token."""
    made = shard.json("member", "app-password", "add", handle, "--label", label or f"jmap-{scope}", "--scope", scope)
    return made["password"]


def bearer(method, url, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Jmap:
    def __init__(self, urls, user="alice"):
        self.base = urls["jmap"]
        self.user = user
        status, body, _ = http("GET", self.base + "/.well-known/jmap", user=user)
        assert status == 200, (status, body)
        self.session = json.loads(body)
        self.account = self.session["primaryAccounts"][MAIL]

    def call(self, *calls, using=(CORE, MAIL)):
        status, body, _ = http("POST", self.session["apiUrl"], {"using": list(using), "methodCalls": list(calls)}, user=self.user)
        assert status == 200, (status, body)
        return json.loads(body)["methodResponses"]

    def one(self, name, args):
        [[got, result, _]] = self.call([name, {"accountId": self.account, **args}, "c"])
        assert got == name, result
        return result


def test_session_requests_errors_and_limits():
    with Shard(BIN) as shard:
        urls = start(shard)
        base = urls["jmap"]
        # No credentials, wrong ones: 401 with a Basic challenge.
        status, _, headers = http("GET", base + "/.well-known/jmap", user=None)
        assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic")
        assert http("GET", base + "/.well-known/jmap", password="wrong")[0] == 401
        j = Jmap(urls)
        s = j.session
        core = s["capabilities"][CORE]
        for limit in ("maxSizeUpload", "maxConcurrentUpload", "maxSizeRequest", "maxConcurrentRequests", "maxCallsInRequest",
                      "maxObjectsInGet", "maxObjectsInSet"):
            assert isinstance(core[limit], int) and core[limit] > 0, limit
        assert s["username"] == "alice" and s["accounts"][j.account]["isPersonal"] is True
        assert MAIL in s["accounts"][j.account]["accountCapabilities"]
        for template in ("{accountId}", "{blobId}", "{name}", "{type}"):
            assert template in s["downloadUrl"]
        assert s["apiUrl"].startswith(base)
        # Bob's session names another account.
        assert Jmap(urls, "bob").account != j.account

        def problem(body, content_type="application/json"):
            status, out, headers = http("POST", s["apiUrl"], body, content_type=content_type)
            return status, json.loads(out), headers
        # RFC 8620 3.6.1: request-level problems.
        status, p, headers = problem(b"{not json")
        assert status == 400 and p["type"] == "urn:ietf:params:jmap:error:notJSON"
        assert headers["Content-Type"].startswith("application/problem+json")
        assert problem({"using": [CORE]})[1]["type"] == "urn:ietf:params:jmap:error:notRequest"
        assert problem({"using": [CORE], "methodCalls": [["Core/echo", {}]]})[1]["type"].endswith("notRequest")
        assert problem({"using": ["urn:example:nope"], "methodCalls": []})[1]["type"].endswith("unknownCapability")
        calls = [["Core/echo", {"i": i}, str(i)] for i in range(core["maxCallsInRequest"] + 1)]
        p = problem({"using": [CORE], "methodCalls": calls})[1]
        assert p["type"].endswith(":limit") and p["limit"] == "maxCallsInRequest"
        big = json.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"x": "a" * core["maxSizeRequest"]}, "0"]]}).encode()
        p = problem(big)[1]
        assert p["type"].endswith(":limit") and p["limit"] == "maxSizeRequest"
        deep = {"using": [CORE], "methodCalls": [["Core/echo", json.loads("[" * 500 + "]" * 500), "0"]]}
        assert problem(json.dumps(deep).encode())[1]["type"].endswith("notJSON")
        # RFC 8620 3.6.2: method-level errors, each answered in place; later calls still run.
        acc = j.account
        r = j.call(["Core/echo", {"hello": True}, "0"],
                   ["Nope/get", {"accountId": acc}, "1"],
                   ["Mailbox/get", {"accountId": "someone-else"}, "2"],
                   ["Mailbox/get", {}, "3"],
                   ["Email/get", {"accountId": acc, "#ids": {"resultOf": "9", "name": "Email/query", "path": "/ids"}}, "4"],
                   ["Email/get", {"accountId": acc, "ids": [], "#ids": {"resultOf": "0", "name": "Core/echo", "path": "/x"}}, "5"],
                   ["Email/query", {"accountId": acc, "filter": {"colour": "red"}}, "6"],
                   ["Email/query", {"accountId": acc, "sort": [{"property": "colour"}]}, "7"],
                   ["Mailbox/changes", {"accountId": acc, "sinceState": "old"}, "8"],
                   ["Email/query", {"accountId": acc, "anchor": "nope"}, "9"],
                   ["Email/get", {"accountId": acc, "ids": ["e" + str(i) for i in range(core["maxObjectsInGet"] + 1)]}, "10"],
                   ["Email/set", {"accountId": acc, "ifInState": "old"}, "11"],
                   ["Core/echo", {"still": "here"}, "12"])
        assert r[0] == ["Core/echo", {"hello": True}, "0"]
        types = [x[1].get("type") for x in r[1:12]]
        assert types == ["unknownMethod", "accountNotFound", "invalidArguments", "invalidResultReference", "invalidArguments",
                         "unsupportedFilter", "unsupportedSort", "cannotCalculateChanges", "anchorNotFound", "requestTooLarge",
                         "stateMismatch"], types
        assert r[12] == ["Core/echo", {"still": "here"}, "12"]
        # Every method with arguments of every wrong kind: method errors, never a crash.
        pid = next(w for w in shard.json("status")["workers"] if w["name"] == "mail")["pid"]
        wrong = [{"ids": "x", "properties": 5, "filter": [], "sort": {}, "create": [], "update": 3, "destroy": {},
                  "emails": "x", "sinceState": 5, "maxChanges": -1, "position": "a", "limit": -5, "anchor": 3},
                 {"ids": [1, None, {}], "properties": ["nope"], "filter": {"operator": "XOR"}, "sort": [{}],
                  "blobIds": ["G" + "z" * 64, 5], "emailIds": "x",
                  "create": {"a": "b"}, "update": {"x": []}, "destroy": [1, {}], "emails": {"a": {"keywords": "x"}},
                  "sinceState": "", "maxChanges": 0, "limit": 1.5, "anchor": "e1", "position": -99999},
                 {"filter": {"operator": "AND", "conditions": [{"before": "yesterday"}, {"minSize": -1}]},
                  "update": {"e1": {"keywords": "x", "mailboxIds": [], "keywords/$seen": 7}},
                  "create": {"a": {"name": None, "parentId": 5}}, "emails": {"a": {"blobId": 5, "mailboxIds": "x"}}}]
        for name in ["Mailbox/get", "Mailbox/changes", "Mailbox/query", "Mailbox/set", "Email/get", "Email/changes",
                     "Email/query", "Email/set", "Email/import", "Email/parse", "SearchSnippet/get", "Thread/get",
                     "Thread/changes", "Identity/get"]:
            for args in wrong:
                [[got, result, _]] = j.call([name, {"accountId": acc, **args}, "w"])
                assert got in ("error", name), (name, got, result)
        assert next(w for w in shard.json("status")["workers"] if w["name"] == "mail")["pid"] == pid
        # A mail method without the mail capability in "using" is unknown (RFC 8620 3.3).
        assert j.call(["Mailbox/get", {"accountId": acc}, "0"], using=[CORE])[0][1]["type"] == "unknownMethod"
        # Blobs: upload, download by the uploader only; over maxSizeUpload refused.
        upload = s["uploadUrl"].replace("{accountId}", acc)
        status, out, _ = http("POST", upload, b"\x00binary\xffbytes", content_type="application/octet-stream")
        assert status == 201, out
        blob = json.loads(out)
        assert blob["size"] == 13 and blob["accountId"] == acc
        url = s["downloadUrl"].format(accountId=acc, blobId=blob["blobId"], name="x.bin", type="application/octet-stream")
        status, out, headers = http("GET", url)
        assert status == 200 and out == b"\x00binary\xffbytes" and "x.bin" in headers.get("Content-Disposition", "")
        assert http("GET", url, user="bob")[0] == 404  # not bob's account
        bob = Jmap(urls, "bob")
        assert http("GET", url.replace(acc, bob.account), user="bob")[0] == 404  # not bob's blob
        assert http("GET", url.replace(blob["blobId"], "G" + "0" * 64))[0] == 404
        assert http("GET", url.replace(blob["blobId"], "../../etc/passwd"))[0] == 404
        # Result references cannot multiply a big result: past maxSizeRequest of copies, the
        # call is requestTooLarge and the worker lives on.
        pid = next(w for w in shard.json("status")["workers"] if w["name"] == "mail")["pid"]
        big = "x" * 300000
        many = [["Core/echo", {"x": big}, "0"]] + [["Core/echo", {"#x": {"resultOf": "0", "name": "Core/echo", "path": "/x"}}, str(i)]
                                                   for i in range(1, 60)]
        got = j.call(*many, using=(CORE,))
        assert got[1][1] == {"x": big} and got[-1][0] == "error" and got[-1][1]["type"] == "requestTooLarge"
        assert next(w for w in shard.json("status")["workers"] if w["name"] == "mail")["pid"] == pid
        # Bearer tokens (RFC 6750): an app password with the mail scope opens JMAP; one for
        # another protocol, a wrong one or a revoked one does not.
        token = app_password(shard, "alice", "mail", label="phone")
        status, got = bearer("GET", urls["jmap"] + "/.well-known/jmap", token)
        assert status == 200 and json.loads(got)["username"] == "alice", (status, got)
        status, got = bearer("POST", urls["jmap"] + "/jmap/api/", token,
                             {"using": [CORE], "methodCalls": [["Core/echo", {"x": 1}, "0"]]})
        assert status == 200 and json.loads(got)["methodResponses"][0][1] == {"x": 1}
        dav_only = app_password(shard, "alice", "dav")
        for wrong in (dav_only, "aaaa-bbbb-cccc-dddd-eeee-ffff", "not a token!"):
            status, got = bearer("GET", urls["jmap"] + "/.well-known/jmap", wrong)
            assert status == 401, (wrong, status, got)
        shard.coop("member", "app-password", "revoke", "alice", "--label", "phone")
        wait_for(lambda: bearer("GET", urls["jmap"] + "/.well-known/jmap", token)[0] == 401, timeout=90,
                 what="the revoked token refused")
        shard.coop("down")


def test_mail_with_jmap_jam_and_imap_on_the_same_store():
    with Shard(BIN) as shard:
        urls = start(shard)
        deliver(urls, "Allotment rota", "Who waters the seedlings on Tuesday?")
        deliver(urls, "Quarterly accounts", "The figures are attached in spirit.")
        j = Jmap(urls)
        boxes = j.one("Mailbox/get", {"ids": None})["list"]
        roles = {b["role"]: b for b in boxes if b["role"]}
        assert {"inbox", "sent", "drafts", "trash", "junk", "archive"} <= set(roles), roles
        assert roles["inbox"]["totalEmails"] == 2 and roles["inbox"]["unreadEmails"] == 2
        # Mailbox/query pages as Email/query does (RFC 8620 5.5).
        names = sorted(b["name"] for b in boxes)
        page = j.one("Mailbox/query", {"sort": [{"property": "name"}], "position": 1, "limit": 2, "calculateTotal": True})
        assert page["position"] == 1 and page["total"] == len(boxes)
        assert [next(b["name"] for b in boxes if b["id"] == i) for i in page["ids"]] == names[1:3]
        last = j.one("Mailbox/query", {"sort": None, "position": -1})
        assert last["position"] == len(boxes) - 1 and len(last["ids"]) == 1
        state = j.one("Email/get", {"ids": []})["state"]
        # Search, sort and read in one request with result references (RFC 8620 3.7).
        r = j.call(["Email/query", {"accountId": j.account, "filter": {"inMailbox": roles["inbox"]["id"]},
                                    "sort": [{"property": "subject", "isAscending": True}], "calculateTotal": True}, "q"],
                   ["Email/get", {"accountId": j.account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                                  "properties": ["subject", "from", "preview", "mailboxIds", "keywords", "bodyValues", "textBody", "threadId"],
                                  "fetchTextBodyValues": True}, "g"],
                   ["Thread/get", {"accountId": j.account, "#ids": {"resultOf": "g", "name": "Email/get", "path": "/list/*/threadId"}}, "t"])
        query, got = r[0][1], r[1][1]
        assert query["total"] == 2 and [e["subject"] for e in got["list"]] == ["Allotment rota", "Quarterly accounts"]
        first = got["list"][0]
        assert first["from"] == [{"name": "Carol", "email": "carol@example.org"}]
        assert first["bodyValues"][first["textBody"][0]["partId"]]["value"].startswith("Who waters the seedlings")
        assert r[2][0] == "Thread/get" and r[2][1]["notFound"] == [] and len(r[2][1]["list"]) == 2
        assert j.one("Email/query", {"filter": {"text": "seedlings"}})["ids"] == [first["id"]]
        assert j.one("Email/query", {"filter": {"operator": "NOT", "conditions": [{"subject": "rota"}]}})["ids"] == [got["list"][1]["id"]]

        # IMAP flags a message; JMAP sees the keyword and a new state.
        imap_port = int(urls["imap"].rsplit(":", 1)[1])
        imap = imaplib.IMAP4("127.0.0.1", imap_port)
        imap.starttls(ssl._create_unverified_context())
        imap.login("alice", STRONG)
        imap.select("INBOX")
        typ, data = imap.uid("SEARCH", None, "SUBJECT", "Quarterly")
        uid = data[0].split()[0]
        imap.uid("STORE", uid, "+FLAGS", "(\\Flagged)")
        after = j.one("Email/get", {"ids": [got["list"][1]["id"]], "properties": ["keywords"]})
        assert after["list"][0]["keywords"] == {"$flagged": True} and after["state"] != state
        # jmap-jam, with a Bearer token (a mail app password, RFC 6750), finds the rota, reads
        # it, flags it seen and moves it to Archive.
        token = app_password(shard, "alice", "mail")
        out = subprocess.run(["node", os.path.join(CLIENTS, "jmap_jam.mjs"), urls["jmap"] + "/.well-known/jmap", token,
                              "seedlings", "archive"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        jam = json.loads(out.stdout)
        assert jam["accountId"] == j.account and jam["found"] == 1 and jam["subject"] == "Allotment rota"
        assert jam["from"] == "carol@example.org" and "Tuesday" in jam["text"]
        assert jam["flagged"] == [first["id"]] and jam["moved"] == [first["id"]]
        # IMAP sees both changes: gone from INBOX, in Archive with \Seen and \Flagged.
        imap.select("INBOX")
        typ, data = imap.uid("SEARCH", None, "SUBJECT", "Allotment")
        assert data[0] == b""
        imap.select("Archive")
        typ, data = imap.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"\\Seen" in data[0][0] and b"\\Flagged" in data[0][0] and b"Allotment rota" in data[0][1]
        # A move into Junk over JMAP teaches the spam filter, as over IMAP.
        before = shard.json("mail", "spam", "status")["classifier"]["spam_messages"]
        moved = j.one("Email/set", {"update": {got["list"][1]["id"]: {"mailboxIds": {roles["junk"]["id"]: True}}}})
        assert list(moved["updated"]) == [got["list"][1]["id"]]
        assert shard.json("mail", "spam", "status")["classifier"]["spam_messages"] == before + 1
        # Destroy: gone everywhere.
        gone = j.one("Email/set", {"destroy": [first["id"], "e-nope"]})
        assert gone["destroyed"] == [first["id"]] and "e-nope" in gone["notDestroyed"]
        imap.select("Archive")
        assert imap.uid("SEARCH", None, "ALL")[1][0] == b""
        imap.logout()
        # /changes (RFC 8620 5.2): from a state, what IMAP and JMAP did since, each once.
        since = j.one("Email/get", {"ids": []})["state"]
        box_since = j.one("Mailbox/get", {"ids": []})["state"]
        deliver(urls, "Third", "A new one.")
        deliver(urls, "Fourth", "And another.")
        imap = imaplib.IMAP4("127.0.0.1", imap_port)
        imap.starttls(ssl._create_unverified_context())
        imap.login("alice", STRONG)
        imap.select("Junk")
        imap.uid("STORE", imap.uid("SEARCH", None, "ALL")[1][0].split()[0], "+FLAGS", "(\\Seen)")
        changes = j.one("Email/changes", {"sinceState": since})
        assert len(changes["created"]) == 2 and changes["updated"] == [got["list"][1]["id"]] and changes["destroyed"] == []
        assert changes["hasMoreChanges"] is False and changes["newState"] != since
        assert j.one("Email/changes", {"sinceState": changes["newState"]})["created"] == []
        # At most maxChanges at a time, through an intermediate state.
        part = j.one("Email/changes", {"sinceState": since, "maxChanges": 2})
        assert part["hasMoreChanges"] is True and len(part["created"] + part["updated"]) == 2
        rest = j.one("Email/changes", {"sinceState": part["newState"], "maxChanges": 2})
        assert rest["hasMoreChanges"] is False and len(rest["created"] + rest["updated"]) == 1
        assert set(part["created"] + part["updated"] + rest["created"] + rest["updated"]) == set(changes["created"] + changes["updated"])
        boxes_changed = j.one("Mailbox/changes", {"sinceState": box_since})
        assert set(boxes_changed["updated"]) == {roles["inbox"]["id"], roles["junk"]["id"]}
        assert boxes_changed["updatedProperties"] == ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]
        threads = j.one("Thread/changes", {"sinceState": since})
        new_threads = j.one("Email/get", {"ids": changes["created"], "properties": ["threadId"]})["list"]
        assert sorted(threads["created"]) == sorted(e["threadId"] for e in new_threads)
        # JMAP destroys one of them; IMAP's session hears it, and /changes says destroyed.
        imap.select("INBOX")
        count_before = int(imap.select("INBOX")[1][0])
        gone = j.one("Email/set", {"destroy": [changes["created"][0]]})
        assert gone["destroyed"] == [changes["created"][0]]
        imap.noop()
        assert int(imap.select("INBOX")[1][0]) == count_before - 1
        assert j.one("Email/changes", {"sinceState": changes["newState"]})["destroyed"] == [changes["created"][0]]
        imap.logout()
        # Mailbox/set and Email/import: a tree made, a message imported into it, seen by IMAP.
        made = j.one("Mailbox/set", {"create": {"p": {"name": "Projects"}, "bad": {"name": "a/b"}, "dup": {"name": "Archive"}}})
        assert made["notCreated"]["bad"]["type"] == "invalidProperties" and made["notCreated"]["dup"]["type"] == "alreadyExists"
        projects = made["created"]["p"]["id"]
        child = j.one("Mailbox/set", {"create": {"c": {"name": "2026", "parentId": projects}}})["created"]["c"]
        assert child["parentId"] == projects and child["name"] == "2026"
        raw = (b"From: Dora <dora@example.org>\r\nTo: alice@mail.test\r\nSubject: Imported\r\n"
               b"Date: Sun, 06 Dec 2026 09:00:00 +0000\r\nMessage-ID: <imp@example.org>\r\n\r\nFrom an old archive.\r\n")
        status, out, _ = http("POST", j.session["uploadUrl"].replace("{accountId}", j.account), raw, content_type="message/rfc822")
        blob = json.loads(out)["blobId"]
        imported = j.one("Email/import", {"emails": {"i": {"blobId": blob, "mailboxIds": {child["id"]: True},
                                                             "keywords": {"$seen": True}, "receivedAt": "2026-12-06T09:00:00Z"},
                                                       "x": {"blobId": "G" + "0" * 64, "mailboxIds": {child["id"]: True}}}})
        assert imported["notCreated"]["x"]["type"] == "blobNotFound"
        email = j.one("Email/get", {"ids": [imported["created"]["i"]["id"]], "properties": ["subject", "receivedAt", "keywords", "mailboxIds"]})["list"][0]
        assert email == {"id": imported["created"]["i"]["id"], "subject": "Imported", "receivedAt": "2026-12-06T09:00:00Z",
                         "keywords": {"$seen": True}, "mailboxIds": {child["id"]: True}}
        imap = imaplib.IMAP4("127.0.0.1", imap_port)
        imap.starttls(ssl._create_unverified_context())
        imap.login("alice", STRONG)
        assert any(b'"Projects/2026"' in line or b"Projects/2026" in line for line in imap.list()[1])
        assert int(imap.select("Projects/2026")[1][0]) == 1
        # A message with an attachment: Email/parse reads it without storing it, the part
        # downloads decoded, and SearchSnippet marks what a search found.
        pdf = bytes(range(256)) * 4
        multipart = (b"From: Dora <dora@example.org>\r\nTo: alice@mail.test\r\nSubject: Minutes & budget\r\n"
                     b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                     b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe budget for the orchard is attached.\r\n--b\r\n"
                     b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=budget.pdf\r\n"
                     b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(pdf).replace(b"\n", b"\r\n") + b"--b--\r\n")
        status, out, _ = http("POST", j.session["uploadUrl"].replace("{accountId}", j.account), multipart, content_type="message/rfc822")
        mp_blob = json.loads(out)["blobId"]
        parsed = j.one("Email/parse", {"blobIds": [mp_blob, "G" + "1" * 64], "fetchTextBodyValues": True})
        mail = parsed["parsed"][mp_blob]
        assert mail["subject"] == "Minutes & budget" and mail["hasAttachment"] is True and "id" not in mail
        assert parsed["notFound"] == ["G" + "1" * 64]
        [attachment] = mail["attachments"]
        assert attachment["name"] == "budget.pdf" and attachment["type"] == "application/pdf"
        url = j.session["downloadUrl"].format(accountId=j.account, blobId=attachment["blobId"], name="budget.pdf", type="application/pdf")
        status, content, headers = http("GET", url)
        assert status == 200 and content == pdf and headers["Content-Type"] == "application/pdf"
        assert http("GET", url.replace(attachment["blobId"], attachment["blobId"] + "-9"))[0] == 404
        assert http("GET", url.replace(attachment["blobId"], attachment["blobId"].split("_")[0] + "_x"))[0] == 404
        stored_mp = j.one("Email/import", {"emails": {"m": {"blobId": mp_blob, "mailboxIds": {roles["inbox"]["id"]: True}}}})
        mp_id = stored_mp["created"]["m"]["id"]
        snippets = j.one("SearchSnippet/get", {"filter": {"text": "budget"}, "emailIds": [mp_id, "e-nope"]})
        assert snippets["notFound"] == ["e-nope"]
        [snippet] = snippets["list"]
        assert snippet["subject"] == "Minutes &amp; <mark>budget</mark>"
        assert "The <mark>budget</mark> for the orchard" in snippet["preview"]
        # What a careless or hostile client may not do.
        assert len(j.one("Email/get", {"ids": [mp_id] * 500, "properties": ["subject"]})["list"]) == 1  # each id once
        bob = Jmap(urls, "bob")
        stolen = bob.one("Email/import", {"emails": {"s": {"blobId": mp_blob, "mailboxIds": {bob.one("Mailbox/get", {})["list"][0]["id"]: True}}}})
        assert stolen["notCreated"]["s"]["type"] == "blobNotFound"  # alice's upload is not bob's
        assert bob.one("Email/parse", {"blobIds": [mp_blob]})["notFound"] == [mp_blob]
        bad = j.one("Email/set", {"update": {mp_id: {"keywords/bad word": True}}, })
        assert bad["notUpdated"][mp_id]["type"] == "invalidProperties"
        assert j.one("Email/set", {"update": {mp_id: {"keywords": {"$seen": False}}}})["notUpdated"][mp_id]["type"] == "invalidProperties"
        assert j.one("Mailbox/set", {"update": {roles["inbox"]["id"]: {"name": "Old"}}})["notUpdated"][roles["inbox"]["id"]]["type"] == "forbidden"
        assert j.one("Mailbox/set", {"update": {projects: {"parentId": child["id"]}}})["notUpdated"][projects]["type"] == "invalidProperties"
        many = {"operator": "OR", "conditions": [{"subject": str(i)} for i in range(70)]}
        [[name, result, _]] = j.call(["Email/query", {"accountId": j.account, "filter": many}, "m"])
        assert name == "error" and result["type"] == "unsupportedFilter"
        # Renamed under another parent; destroying a mailbox with mail needs onDestroyRemoveEmails.
        assert j.one("Mailbox/set", {"update": {child["id"]: {"parentId": None, "name": "Projects 2026"}}})["updated"] == {child["id"]: None}
        assert any(b"Projects 2026" in line for line in imap.list()[1])
        refused = j.one("Mailbox/set", {"destroy": [child["id"]]})
        assert refused["notDestroyed"][child["id"]]["type"] == "mailboxHasEmail"
        assert j.one("Mailbox/set", {"destroy": [child["id"]], "onDestroyRemoveEmails": True})["destroyed"] == [child["id"]]
        imap.logout()
        # Bob sees none of it.
        assert Jmap(urls, "bob").one("Email/query", {})["ids"] == []
        shard.coop("down")


def test_push_over_eventsource():
    import http.client as httpclient
    import threading
    with Shard(BIN) as shard:
        urls = start(shard)
        j = Jmap(urls)
        host, port = urls["jmap"].split("//")[1].split(":")
        auth = "Basic " + base64.b64encode(f"alice:{STRONG}".encode()).decode()

        def listen(query, events, done):
            conn = httpclient.HTTPConnection(host, int(port), timeout=60)
            conn.request("GET", "/jmap/eventsource/?" + query, headers={"Authorization": auth, "Accept": "text/event-stream"})
            r = conn.getresponse()
            events.append(("status", r.status, r.getheader("Content-Type")))
            name = None
            while True:
                line = r.fp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
            done.set()

        # closeafter=state: one StateChange after a delivery, then the server ends the stream.
        events, done = [], threading.Event()
        threading.Thread(target=listen, args=("types=*&closeafter=state&ping=0", events, done), daemon=True).start()
        wait_for(lambda: events, what="the stream's head")
        assert events[0] == ("status", 200, "text/event-stream"), events
        deliver(urls, "Pushed", "Heard at once.")
        assert done.wait(30), "the stream did not end after its state"
        [(name, change)] = [e for e in events if e[0] == "state"]
        assert change["@type"] == "StateChange"
        # A delivery from outside also moves EmailDelivery (RFC 8621 1.5).
        assert set(change["changed"][j.account]) == {"Mailbox", "Email", "Thread", "EmailDelivery"}
        assert change["changed"][j.account]["Email"] == j.one("Email/get", {"ids": []})["state"]
        # types=Mailbox, pings every 5 s (the least the server allows), open until closed.
        events, done = [], threading.Event()
        threading.Thread(target=listen, args=("types=Mailbox&closeafter=no&ping=1", events, done), daemon=True).start()
        wait_for(lambda: events, what="the second stream's head")
        deliver(urls, "Again", "And again.")
        wait_for(lambda: any(e[0] == "state" for e in events), timeout=30, what="a second state event")
        assert all(set(e[1]["changed"][j.account]) == {"Mailbox"} for e in events if e[0] == "state")
        wait_for(lambda: any(e[0] == "ping" for e in events), timeout=30, what="a ping")
        assert [e[1] for e in events if e[0] == "ping"][0] == {"interval": 5}
        # Bad parameters and no credentials are refused before any stream opens.
        base = urls["jmap"] + "/jmap/eventsource/"
        assert http("GET", base + "?types=*&closeafter=maybe&ping=0")[0] == 400
        assert http("GET", base + "?types=*&closeafter=no&ping=-1")[0] == 400
        assert http("GET", base + "?types=*&closeafter=no&ping=0", user=None)[0] == 401
        # Stopping the worker ends the open stream.
        shard.coop("down")
        assert done.wait(30), "the stream outlived the worker"


def test_requests_and_push_over_websocket():
    """RFC 8887 with the ws package: the handshake's rules, requests, errors and push."""
    with Shard(BIN) as shard:
        urls = start(shard)
        j = Jmap(urls)
        node = subprocess.Popen(["node", os.path.join(CLIENTS, "jmap_ws.mjs"), urls["jmap"] + "/.well-known/jmap", "alice", STRONG],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = node.stdout.readline()
            assert line.strip() == "ready", (line, node.stderr.read() if node.poll() is not None else "")
            deliver(urls, "Over the socket", "Pushed down the WebSocket.")
            out, err = node.communicate(timeout=60)
        finally:
            if node.poll() is None:
                node.kill()
        assert node.returncode == 0, err
        got = json.loads(out)
        assert got["noCredentials"] == 401 and got["noSubprotocol"] == 400 and got["protocol"] == "jmap"
        assert got["url"] == urls["jmap"].replace("http://", "ws://") + "/jmap/ws" and got["supportsPush"] is True
        r = got["response"]
        assert r["@type"] == "Response" and [m[0] for m in r["methodResponses"]] == ["Mailbox/get", "Core/echo"]
        assert r["methodResponses"][1][1] == {"hello": True} and "sessionState" in r
        assert got["notJson"]["type"] == "urn:ietf:params:jmap:error:notJSON" and "requestId" not in got["notJson"]
        assert got["unknownCapability"]["type"] == "urn:ietf:params:jmap:error:unknownCapability"
        assert got["unknownCapability"]["requestId"] == "r2" and got["unknownType"]["requestId"] == "r3"
        change = got["change"]
        assert set(change["changed"][j.account]) == {"Email", "Mailbox"}
        assert change["changed"][j.account]["Email"] == j.one("Email/get", {"ids": []})["state"]
        assert isinstance(change["pushState"], str) and change["pushState"]  # opaque (RFC 8887 4.3.5.1)


if __name__ == "__main__":
    run_tests([test_session_requests_errors_and_limits, test_mail_with_jmap_jam_and_imap_on_the_same_store,
               test_push_over_eventsource, test_requests_and_push_over_websocket])
