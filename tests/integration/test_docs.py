"""coop-docs with CryptPad's own client libraries (npm: netflux-websocket, chainpad-netflux,
chainpad, chainpad-crypto): two editors converge, a late joiner replays from a checkpoint, an
independent NaCl reader gets the same text and a wrong key gets nothing; the server's disk
and logs hold no plaintext; malformed and oversized frames end only their own connection."""
import base64
import json
import os
import shutil
import struct
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
import zlib

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for

BIN = bin_dir_from_args()
STRONG = "correct horse battery staple"
CLIENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients")


def docs_url(shard):
    status = shard.json("status")
    worker = next(w for w in status["workers"] if w["name"] == "docs")
    http = next(l["url"] for l in worker["listeners"] if l["name"] == "http")
    return http.replace("http://", "ws://") + "/cryptpad_websocket"


def node(script, *args, timeout=180, env=None):
    if not os.path.isdir(os.path.join(CLIENTS, "node_modules", "chainpad-netflux")) or not shutil.which("node"):
        raise AssertionError("the npm clients are not installed: run scripts/install-deps")
    return subprocess.run(["node", os.path.join(CLIENTS, script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=CLIENTS, env={**os.environ, **(env or {})})


def assert_no_plaintext(home, needles):
    for root, _, files in os.walk(home):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            for needle in needles:
                assert needle not in data, f"plaintext {needle!r} found in {path}"


def test_the_cli_and_the_npm_clients_read_each_others_writes():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        url = docs_url(shard)
        first = "Minutes of the cooperative meeting\n- caf\u00e9 for everyone \u20ac 5 \U0001F600\n"
        source = os.path.join(shard.dir, "minutes.txt")
        with open(source, "w") as f:
            f.write(first)
        link = shard.coop("docs", "new", "--from", source).stdout.strip()
        assert link.startswith(url.replace("ws://", "http://").replace("/cryptpad_websocket", "/docs/#/2/pad/edit/")), link
        key = link.split("/edit/")[1].strip("/")
        # CryptPad's client libraries read what the CLI wrote: CryptPad's rich text, the
        # Markdown's paragraph and list as hyper-json; then they append a paragraph.
        result = node("docs_interop.cjs", url, key, "added in the browser library\n", timeout=60)
        assert result.returncode == 0 and "APPENDED" in result.stdout, result.stdout + result.stderr
        read = json.loads(json.loads(result.stdout.split("TEXT ", 1)[1].split("\n", 1)[0]))
        assert read[0] == "BODY" and read[-1] == {"metadata": {"defaultTitle": "Rich text", "type": "pad"}}, read
        assert read[2] == [["P", {}, ["Minutes of the cooperative meeting"]],
                           ["UL", {}, [["LI", {}, ["caf\u00e9 for everyone \u20ac 5 \U0001F600"]]]]], read
        # The CLI reads what the npm client wrote.
        pulled = shard.coop("docs", "pull", link).stdout
        assert pulled == ("Minutes of the cooperative meeting\n\n- caf\u00e9 for everyone \u20ac 5 \U0001F600\n\n"
                          "added in the browser library\n"), pulled
        out = os.path.join(shard.dir, "pulled.txt")
        shard.coop("docs", "pull", link, "--out", out)
        assert open(out).read() == pulled
        html = shard.coop("docs", "pull", link, "--format", "html").stdout
        assert "<ul><li>caf\u00e9 for everyone" in html and "<p>added in the browser library</p>" in html, html
        assert shard.coop("docs", "pull", link, "--format", "text").stdout.endswith("added in the browser library\n")
        # A second push is one edit the npm client sees; the same push again changes nothing.
        second = "Minutes, second version\n"
        with open(source, "w") as f:
            f.write(second)
        assert "Pushed" in shard.coop("docs", "push", link, source).stdout
        assert "up to date" in shard.coop("docs", "push", link, source).stdout
        result = node("docs_interop.cjs", url, key, "!", timeout=60)
        read = json.loads(json.loads(result.stdout.split("TEXT ", 1)[1].split("\n", 1)[0]))
        assert read[2] == [["P", {}, ["Minutes, second version"]]], read
        # Links that lead nowhere or carry no key are refused, and create nothing.
        other = link.split("/edit/")[0] + "/edit/BQIDBAUGBwgJCgsMDQ4PEBXX/"
        assert "no document" in shard.coop("docs", "pull", other, expect=1).stderr
        assert shard.coop("docs", "pull", link.split("#")[0], expect=1).stderr
        assert_no_plaintext(shard.home, [b"cooperative meeting", b"second version", b"browser library"])
        shard.coop("down")


def test_links_carry_the_public_url_and_still_open_from_the_cli():
    """[workers.docs] public_url: `coop docs new` prints links members can open through the
    proxy, and the CLI opens such a link through the listener beside it."""
    with Shard(BIN) as shard:
        shard.init()
        path = os.path.join(shard.home, "coop.toml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("[workers.docs]\n", '[workers.docs]\npublic_url = "https://docs.example.coop/"\n', 1))
        shard.coop("up")
        source = os.path.join(shard.dir, "agenda.txt")
        with open(source, "w") as f:
            f.write("Agenda for Thursday\n")
        link = shard.coop("docs", "new", "--from", source).stdout.strip()
        assert link.startswith("https://docs.example.coop/docs/#/2/pad/edit/"), link
        assert shard.coop("docs", "pull", link).stdout == "Agenda for Thursday\n"
        with open(source, "w") as f:
            f.write("Agenda, revised\n")
        assert "Pushed" in shard.coop("docs", "push", link, source).stdout
        assert shard.coop("docs", "pull", link).stdout == "Agenda, revised\n"
        shard.coop("down")


def test_npm_clients_converge_and_the_server_sees_ciphertext_only():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        url = docs_url(shard)
        text_file = os.path.join(shard.dir, "converged.txt")
        result = node("docs_scenario.cjs", url, text_file)
        print(result.stdout.strip().split("\n")[-4])
        assert result.returncode == 0 and "RESULT: PASS" in result.stdout, result.stdout + result.stderr
        text = open(text_file).read()
        assert len(text) > 1000
        # No plaintext anywhere under COOP_HOME (logs included): not the greeting, not any
        # 24-character piece of the document.
        assert_no_plaintext(shard.home, [b"Hello from Alice"] +
                            [text[i:i + 24].encode() for i in range(0, len(text) - 24, 97)])
        stored = sum(open(os.path.join(root, name), "rb").read().count(b"\n")
                     for root, _, files in os.walk(shard.home) for name in files if name.endswith(".ndjson"))
        # The log holds the edits (ChainPad batches edits made while one is in flight).
        assert stored > 50, stored
        shard.coop("down")


def test_history_survives_a_restart_in_legacy_mode_too():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        result = node("docs_scenario.cjs", docs_url(shard), env={"MODE": "legacy", "ROUNDS": "60"})
        assert result.returncode == 0 and "RESULT: PASS" in result.stdout, result.stdout + result.stderr
        shard.coop("down")
        logs = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(shard.home, "docs")) for f in fs if f.endswith(".ndjson")]
        assert len(logs) == 1
        before = open(logs[0], "rb").read()
        shard.coop("up")
        # Acknowledged messages are on disk: the log is intact after a restart.
        assert open(logs[0], "rb").read() == before
        shard.coop("down")


def test_two_chromium_pages_edit_one_document_in_the_editor():
    """The rich-text editor in two pages and a view-only one: formatting, a checklist, a paste
    from a word processor, named cursors, history restore (tests/clients/docs_browser.mjs)."""
    if not os.path.isdir(os.path.join(CLIENTS, "node_modules", "playwright-core")) or not os.path.exists("/usr/bin/chromium"):
        raise AssertionError("playwright-core or chromium is not installed: run scripts/install-deps")
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        source = os.path.join(shard.dir, "start.md")
        with open(source, "w") as f:
            f.write("Agenda\n")
        created = shard.json("docs", "new", "--from", source)
        link, view = created["link"], created["view_link"]
        assert "/docs/#/2/pad/view/" in view and view.split("/view/")[1].strip("/") != link.split("/edit/")[1].strip("/")
        shot = os.path.join(shard.dir, "editor.png")
        result = node("docs_browser.mjs", link, view, shot, timeout=180)
        print(result.stdout.strip().split("\n")[0][:400])
        assert result.returncode == 0 and "ALL OK" in result.stdout, result.stdout + result.stderr
        assert os.path.getsize(shot) > 3000
        seen = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
        # The page's own Markdown export, before the history restore.
        md = seen["markdown"]
        assert md.startswith("Agenda\n") and "## Decisions" in md and "**Typed in page one.**" in md, md
        assert "- [ ] Page two answers." in md and "**Budget** and *rota*" in md and "* rent" in md, md
        # The share dialog's links are the CLI's.
        assert seen["share"]["edit"].endswith(link.split("/docs/")[1]) and seen["share"]["view"].endswith(view.split("/docs/")[1])
        # The document is CryptPad's rich text: BODY, hyper-json, metadata last.
        content = json.loads(seen["content"])
        assert content[0] == "BODY" and content[-1]["metadata"]["type"] == "pad", content
        # History restored the first version for everyone: the CLI reads it through either link.
        pulled = shard.coop("docs", "pull", link).stdout
        assert pulled == "Agenda\n", (pulled, seen["afterRestore"], seen["historyFirst"], shard.coop("docs", "pull", link, "--format", "json").stdout)
        assert shard.coop("docs", "pull", view).stdout == "Agenda\n"
        assert "view-only" in shard.coop("docs", "push", view, source, expect=1).stderr
        assert_no_plaintext(shard.home, [b"Typed in page one", b"Page two answers", b"Decisions"])
        shard.coop("down")


def api(url, method, path, body=None, auth=None, raw=False, token=None):
    data = body if raw else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, method=method, data=data)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_owned_documents_and_encrypted_blobs():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("member", "add", "alice", "--password-stdin", input=STRONG)
        shard.coop("member", "add", "bob", "--password-stdin", input=STRONG)
        http = docs_url(shard).replace("ws://", "http://").replace("/cryptpad_websocket", "")
        alice, bob = ("alice", STRONG), ("bob", STRONG)
        made = shard.json("docs", "new")
        channel, link = made["channel"], made["link"]
        # Only a new, empty document can be owned: one with text cannot be taken over.
        source = os.path.join(shard.dir, "text.txt")
        with open(source, "w") as f:
            f.write("someone else's text")
        written = shard.json("docs", "new", "--from", source)
        status, body = api(http, "POST", "/docs/api/documents", {"channel": written["channel"]}, auth=bob)
        assert status == 409 and json.loads(body)["error"]["code"] == "not_new", body
        assert api(http, "POST", "/docs/api/documents", {"channel": "ab" * 16}, auth=bob)[0] == 404
        # Owning a document: members only; the title is ciphertext the client made.
        assert api(http, "POST", "/docs/api/documents", {"channel": channel, "title": "opaque"})[0] == 401
        status, body = api(http, "POST", "/docs/api/documents", {"channel": channel, "title": "b3BhcXVl"}, auth=alice)
        assert status == 201, body
        assert api(http, "POST", "/docs/api/documents", {"channel": channel}, auth=bob)[0] == 409
        assert [d["channel"] for d in json.loads(api(http, "GET", "/docs/api/documents", auth=alice)[1])] == [channel]
        assert json.loads(api(http, "GET", "/docs/api/documents", auth=bob)[1]) == []
        assert api(http, "DELETE", f"/docs/api/documents/{channel}", auth=bob)[0] == 403
        logs = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(shard.home, "docs", "channels")) for f in fs
                if f.startswith(channel)]
        assert logs
        assert api(http, "DELETE", f"/docs/api/documents/{channel}", auth=alice)[0] == 200
        # The owner's delete removes the log and metadata from disk.
        assert not any(os.path.exists(p) for p in logs)
        # Deleted stays deleted: reading it says so, and it cannot be created again.
        assert "EDELETED" in shard.coop("docs", "pull", link, expect=1).stderr
        # Blobs: chunked, offsets checked, readable by id once complete, quota, owner deletes.
        data = os.urandom(3 * 1024 * 1024 + 17)
        status, body = api(http, "POST", "/docs/api/blobs", {"size": len(data)}, auth=alice)
        assert status == 201, body
        blob = json.loads(body)["id"]
        chunk = 1024 * 1024
        for offset in range(0, len(data), chunk):
            if offset == chunk:
                assert api(http, "PUT", f"/docs/api/blobs/{blob}?offset=0", data[:10], auth=alice, raw=True)[0] == 409
                assert api(http, "GET", f"/docs/blob/{blob}")[0] == 404  # not complete yet
                assert api(http, "PUT", f"/docs/api/blobs/{blob}?offset={offset}", data[:10], auth=bob, raw=True)[0] == 403
            status, body = api(http, "PUT", f"/docs/api/blobs/{blob}?offset={offset}", data[offset:offset + chunk],
                               auth=alice, raw=True)
            assert status == 200, body
        assert json.loads(body)["complete"] is True
        status, got = api(http, "GET", f"/docs/blob/{blob}")
        assert status == 200 and got == data
        assert api(http, "POST", "/docs/api/blobs", {"size": 2 * 1024 ** 3}, auth=alice)[0] == 413
        assert json.loads(api(http, "GET", "/docs/api/blobs", auth=alice)[1])["used"] == len(data)
        assert api(http, "DELETE", f"/docs/api/blobs/{blob}", auth=bob)[0] == 403
        assert api(http, "DELETE", f"/docs/api/blobs/{blob}", auth=alice)[0] == 200
        assert api(http, "GET", f"/docs/blob/{blob}")[0] == 404
        assert api(http, "GET", "/docs/blob/../../coop.toml")[0] == 404

        # The CLI for members: an owned document under a title only the member can read.
        link = shard.coop("docs", "new", "--title", "Budget 2027", "--as", "alice", "--password-stdin", input=STRONG).stdout.strip()
        listed = json.loads(shard.coop("docs", "list", "--as", "alice", "--password-stdin", "--json", input=STRONG).stdout)
        assert [d["title"] for d in listed] == ["Budget 2027"], listed
        assert "Budget 2027" in shard.coop("docs", "list", "--as", "alice", "--password-stdin", input=STRONG).stdout
        assert shard.coop("docs", "list", "--as", "alice", "--password-stdin", input="wrong", expect=1).stderr
        assert shard.coop("docs", "delete", link, "--as", "bob", "--password-stdin", input=STRONG, expect=1).stderr
        shard.coop("docs", "delete", link, "--as", "alice", "--password-stdin", input=STRONG)
        assert json.loads(shard.coop("docs", "list", "--as", "alice", "--password-stdin", "--json", input=STRONG).stdout) == []
        assert_no_plaintext(shard.home, [b"Budget 2027"])

        # Sharing a link in a Matrix room of the shard (coop-room posts it as @coop): the
        # view-only link, unless the edit link is asked for.
        shard.coop("room", "create", "Planning")
        made = shard.json("docs", "new")
        link = made["link"]
        shard.coop("docs", "share", link, "--room", "Planning", "--note", "Budget draft")
        shard.coop("docs", "share", link, "--room", "Planning", "--note", "Budget to edit", "--edit-link")
        exported = os.path.join(shard.dir, "coop-rooms.json")
        shard.coop("room", "export", "coop", "--out", exported)
        posted = open(exported).read()
        assert ("Budget draft: " + made["view_link"]) in posted and ("Budget to edit: " + link) in posted
        assert ("Budget draft: " + link) not in posted
        assert shard.coop("docs", "share", link, "--room", "Planning", "--as", "bob", expect=1).stderr
        assert shard.coop("docs", "share", "not a link", "--room", "Planning", expect=1).stderr
        shard.coop("down")


def test_sessions_from_credentials_end_with_sign_out_and_suspension():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("member", "add", "alice", "--password-stdin", input=STRONG)
        http = docs_url(shard).replace("ws://", "http://").replace("/cryptpad_websocket", "")
        assert api(http, "POST", "/docs/api/session", {}, auth=("alice", "wrong"))[0] == 401
        status, body = api(http, "POST", "/docs/api/session", {}, auth=("alice", STRONG))
        assert status == 201, body
        session = json.loads(body)
        token = session["token"]
        assert session["handle"] == "alice" and len(token) == 64 and session["expires_at"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # The token stands for the credentials: who am I, blobs, documents.
        assert json.loads(api(http, "GET", "/docs/api/session", token=token)[1])["handle"] == "alice"
        assert api(http, "POST", "/docs/api/blobs", {"size": 10}, token=token)[0] == 201
        assert api(http, "GET", "/docs/api/documents", token=token)[0] == 200
        # A session does not mint sessions; a made-up token is nobody.
        assert api(http, "POST", "/docs/api/session", {}, token=token)[0] == 400
        assert api(http, "GET", "/docs/api/session", token="ab" * 32)[0] == 401
        # Only a hash of the token is stored.
        assert_no_plaintext(shard.home, [token.encode()])
        # Signing out ends it.
        assert api(http, "DELETE", "/docs/api/session", token=token)[0] == 200
        assert api(http, "GET", "/docs/api/session", token=token)[0] == 401
        # Suspension in the registry ends every session of the member.
        token = json.loads(api(http, "POST", "/docs/api/session", {}, auth=("alice", STRONG))[1])["token"]
        shard.coop("member", "suspend", "alice")
        wait_for(lambda: api(http, "GET", "/docs/api/session", token=token)[0] == 401, timeout=15,
                 what="the suspended member's session to end")
        shard.coop("member", "reinstate", "alice")
        assert api(http, "GET", "/docs/api/session", token=token)[0] == 401
        shard.coop("down")


def tiny_png(path):
    """A 2x2 PNG, written by hand (RFC 2083): signature, IHDR, IDAT, IEND."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    rows = b"".join(b"\x00" + b"\xd9\x48\x0f" * 2 for _ in range(2))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_a_member_makes_writes_attaches_and_deletes_in_chromium():
    """Members in the rich-text editor: a new document from the page's dialog, formatting, HTML
    kept as text, an attachment and an inline image encrypted in the page, Delete only for the
    owner, the drive's rename, delete and open (tests/clients/docs_browser_member.mjs)."""
    if not os.path.isdir(os.path.join(CLIENTS, "node_modules", "playwright-core")) or not os.path.exists("/usr/bin/chromium"):
        raise AssertionError("playwright-core or chromium is not installed: run scripts/install-deps")
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("member", "add", "alice", "--password-stdin", input=STRONG)
        shard.coop("member", "add", "bob", "--password-stdin", input=STRONG)
        http = docs_url(shard).replace("ws://", "http://").replace("/cryptpad_websocket", "")
        attachment = os.path.join(shard.dir, "minutes.pdf")
        with open(attachment, "wb") as f:
            f.write(b"%PDF-1.4 minutes of the kitchen meeting " + os.urandom(300000))
        image = os.path.join(shard.dir, "dot.png")
        tiny_png(image)
        shot = os.path.join(shard.dir, "reader.png")
        result = node("docs_browser_member.mjs", http + "/docs/", "alice", STRONG, "bob", STRONG, attachment, image, shot,
                      timeout=240)
        assert result.returncode == 0 and "ALL OK" in result.stdout, result.stdout + result.stderr
        assert os.path.getsize(shot) > 3000
        outcome = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
        assert outcome["drive"] == ["Kitchen rota 2026"], outcome
        # The page sealed the drive entry with the key `coop docs list` derives from the same
        # password: the renamed title, and the link to open it.
        listed = json.loads(shard.coop("docs", "list", "--as", "alice", "--password-stdin", "--json", input=STRONG).stdout)
        assert [d["title"] for d in listed] == ["Kitchen rota 2026"], listed
        assert listed[0]["link"].split("#")[1] == outcome["link"].split("#")[1], (listed, outcome["link"])
        assert "EDELETED" in shard.coop("docs", "pull", outcome["scratch"], expect=1).stderr
        # What the page wrote is the document for the CLI too, attachment and image included.
        pulled = shard.coop("docs", "pull", outcome["link"]).stdout
        assert pulled.startswith("# Rota\n\n**Monday**: soup \\<script>"), pulled
        assert "](/docs/blob/" in pulled and "![dot.png](/docs/blob/" in pulled, pulled
        # CryptPad's own client libraries read what the editor wrote: CryptPad's pad form.
        key = outcome["link"].split("/edit/")[1].strip("/")
        result = node("docs_interop.cjs", docs_url(shard), key, "read by CryptPad's libraries\n", timeout=60)
        assert result.returncode == 0 and "APPENDED" in result.stdout, result.stdout + result.stderr
        read = json.loads(json.loads(result.stdout.split("TEXT ", 1)[1].split("\n", 1)[0]))
        assert read[0] == "BODY" and read[1]["class"].startswith("cke_editable"), read
        assert read[-1]["metadata"] == {"defaultTitle": "Rich text", "title": "Kitchen rota", "type": "pad"}, read
        assert read[2][0] == ["H1", {}, ["Rota"]] and read[2][1][2][0] == ["STRONG", {}, ["Monday"]], read
        assert any(isinstance(c, list) and c[0] == "IMG" and c[1]["src"].startswith("/docs/blob/")
                   for block in read[2] if isinstance(block, list) for c in block[2]), read
        assert shard.coop("docs", "pull", outcome["link"]).stdout.endswith("read by CryptPad's libraries\n")
        # The attachment, the image and the text were encrypted in the pages.
        assert_no_plaintext(shard.home, [b"kitchen meeting", b"Monday", b"Kitchen rota", b"\xd9\x48\x0f\xd9"])
        shard.coop("down")


def test_expiring_documents_leave_the_disk():
    with Shard(BIN) as shard:
        shard.init()
        config = os.path.join(shard.home, "coop.toml")
        text = open(config).read()
        with open(config, "w") as f:
            f.write(text.replace("[workers.docs]\nenabled = true\n", "[workers.docs]\nenabled = true\nsweep_seconds = 1\n"))
        shard.coop("up")
        made = shard.json("docs", "new", "--expire-days", "0.00003")  # about 2.6 s
        kept = shard.json("docs", "new")
        channels = os.path.join(shard.home, "docs", "channels")
        # The log and its metadata; a deleted or expired channel keeps only a tombstone.
        files = lambda channel: [f for _, _, fs in os.walk(channels) for f in fs  # noqa: E731
                                 if f.startswith(channel) and not f.endswith(".deleted")]
        assert files(made["channel"]) and files(kept["channel"])
        wait_for(lambda: not files(made["channel"]), timeout=15, what="the expired document's removal")
        assert files(kept["channel"])
        assert "EEXPIRED" in shard.coop("docs", "pull", made["link"], expect=1).stderr or \
            "EDELETED" in shard.coop("docs", "pull", made["link"], expect=1).stderr
        shard.coop("down")


def test_bad_frames_end_only_their_own_connection():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        result = node("docs_frames.cjs", docs_url(shard), timeout=60)
        assert result.returncode == 0 and "RESULT: PASS" in result.stdout, result.stdout + result.stderr
        status = shard.json("status")
        assert next(w for w in status["workers"] if w["name"] == "docs")["state"] == "running"
        shard.coop("down")


def test_documents_go_into_matrix_rooms_as_widgets():
    """coop docs new --room and the editor's Post to a room: a widget as Element writes it
    (im.vector.modular.widgets, m.custom, the editor's URL) in the room's right panel
    (io.element.widgets.layout) and a message with the link, read back with matrix-nio; the
    view-only link unless the member confirms the edit link; nobody posts into a room they are
    not in."""
    import asyncio
    from nio import AsyncClient, LoginResponse, RoomCreateResponse, RoomGetStateEventResponse

    with Shard(BIN) as shard:
        shard.domain = "docs.test"
        shard.init()
        shard.coop("up")
        shard.coop("member", "add", "alice", "--password-stdin", input=STRONG)
        shard.coop("member", "add", "bob", "--password-stdin", input=STRONG)
        status = shard.json("status")
        room_worker = next(w for w in status["workers"] if w["name"] == "room")
        homeserver = next(l["url"] for l in room_worker["listeners"] if l["name"] == "client")
        http = docs_url(shard).replace("ws://", "http://").replace("/cryptpad_websocket", "")
        source = os.path.join(shard.dir, "plan.md")
        with open(source, "w") as f:
            f.write("# Plan\n")

        async def scenario():
            alice = AsyncClient(homeserver, "@alice:docs.test")
            assert isinstance(await alice.login(STRONG, device_name="test"), LoginResponse)
            created = await alice.room_create(name="Kitchen")
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id

            made = json.loads(shard.coop("docs", "new", "--from", source, "--title", "Plan", "--room", room_id,
                                         "--as", "alice", "--password-stdin", "--json", input=STRONG).stdout)
            posted = made["room"]
            assert posted["edit_link"] is False and "/docs/#/2/pad/view/" in posted["link"], posted
            widget = await alice.room_get_state_event(room_id, "im.vector.modular.widgets", posted["widget_id"])
            assert isinstance(widget, RoomGetStateEventResponse), widget
            content = widget.content
            assert content["type"] == "m.custom" and content["url"] == posted["link"] and content["name"] == "Plan", content
            assert content["id"] == posted["widget_id"] and content["creatorUserId"] == "@alice:docs.test", content
            layout = await alice.room_get_state_event(room_id, "io.element.widgets.layout", "")
            assert layout.content["widgets"][posted["widget_id"]]["container"] == "right", layout.content
            messages = await alice.room_messages(room_id, start="", limit=20)
            bodies = [getattr(e, "body", "") for e in messages.chunk]
            assert any(posted["link"] in b for b in bodies), bodies
            # The view link in the widget opens the document, read-only, for the CLI too.
            assert shard.coop("docs", "pull", posted["link"]).stdout == "# Plan\n"

            # Confirmed: the edit link, from the CLI's share and from the editor's dialog.
            shared = json.loads(shard.coop("docs", "share", made["link"], "--room", room_id, "--as", "alice",
                                           "--edit-link", "--json").stdout)
            assert shared["edit_link"] is True and shared["link"] == made["link"], shared
            result = node("docs_room_browser.mjs", http + "/docs/", made["link"], "alice", STRONG, "yes", timeout=120)
            assert result.returncode == 0 and "ALL OK" in result.stdout, result.stdout + result.stderr
            seen = json.loads(result.stdout.splitlines()[0])
            assert seen["offered"] == ["Kitchen"] and "/edit/" in seen["posted"]["link"], seen
            assert "can read it" in seen["warning"], seen

            # Bob is not in the room: the page's API refuses him, and nothing is posted.
            # (Further down he joins, as a member without the power to change the room's state.)
            status, body = api(http, "POST", "/docs/api/rooms/post", {"room": room_id, "link": posted["link"]},
                               auth=("bob", STRONG))
            assert status == 403, (status, body)
            status, body = api(http, "GET", "/docs/api/rooms", auth=("bob", STRONG))
            assert status == 200 and json.loads(body) == [], body
            assert "not in this room" in shard.coop("docs", "share", made["link"], "--room", room_id, "--as", "bob",
                                                    expect=1).stderr
            # In the room at power level 0, Bob's link goes as a message; the room's power levels
            # keep the widget out, and no one (not the shard's own user) adds it for him.
            await alice.room_invite(room_id, "@bob:docs.test")
            bob = AsyncClient(homeserver, "@bob:docs.test")
            assert isinstance(await bob.login(STRONG, device_name="test"), LoginResponse)
            await bob.join(room_id)
            shared = json.loads(shard.coop("docs", "share", made["link"], "--room", room_id, "--as", "bob", "--json").stdout)
            assert "widget_refused" in shared and shared["widget_id"] == "" and shared["message"]["event_id"], shared
            status, body = api(http, "POST", "/docs/api/rooms/post", {"room": room_id, "link": posted["link"]},
                               auth=("bob", STRONG))
            assert status == 201 and json.loads(body).get("widget_refused") is True, (status, body)
            await bob.close()
            await alice.close()

        asyncio.run(scenario())
        shard.coop("down")


def test_spreadsheets_live_with_formulas_sheets_sorting_csv_and_xlsx():
    """The spreadsheet type in two Chromium pages: formulas worked out (HyperFormula), a cell
    typed in one page and the totals that depend on it in the other, a sheet added, rows
    sorted, CSV and XLSX out and in (tests/clients/docs_sheet_browser.mjs); the CLI makes one
    from CSV and reads it back; a formula is never run as code."""
    if not os.path.isdir(os.path.join(CLIENTS, "node_modules", "playwright-core")) or not os.path.exists("/usr/bin/chromium"):
        raise AssertionError("playwright-core or chromium is not installed: run scripts/install-deps")
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        source = os.path.join(shard.dir, "budget.csv")
        with open(source, "w") as f:
            f.write("Item,Cost\nRent,500\nFood,200\nTotal,=SUM(B2:B3)\n")
        members = os.path.join(shard.dir, "members.csv")
        with open(members, "w") as f:
            f.write("Name,Shares\nAna,3\nBen,2\n")
        made = shard.json("docs", "new", "--type", "sheet", "--from", source)
        assert "/docs/#/2/sheet/edit/" in made["link"] and "/docs/#/2/sheet/view/" in made["view_link"], made
        result = node("docs_sheet_browser.mjs", made["link"], members, shard.dir, timeout=300)
        assert result.returncode == 0 and "ALL OK" in result.stdout, result.stdout + result.stderr
        seen = json.loads(result.stdout.splitlines()[0])
        assert seen["totalBefore"] == ["700", "700"] and seen["totalAfter"] == "750", seen
        assert seen["sheetNames"] == ["budget", "Sheet2", "members", "budget 2", "Sheet2 2"], seen
        # The exports: CSV with the values shown, XLSX with the formula and its result.
        with open(seen["csvFile"]) as f:
            assert f.read().replace("\r\n", "\n").strip() == "Item,Cost\nFood,200\nRent,550\nTotal,750"
        with zipfile.ZipFile(seen["xlsxFile"]) as book:
            sheet1 = book.read("xl/worksheets/sheet1.xml").decode()
        assert "<f>SUM(B2:B3)</f><v>750</v>" in sheet1, sheet1
        # The CLI reads what the pages wrote, through the view-only link too.
        assert shard.coop("docs", "pull", made["view_link"], "--format", "csv", "--sheet", "members").stdout == \
            "Name,Shares\nAna,3\nBen,2\n"  # CRLF as RFC 4180 says; text mode reads it as \\n
        md = shard.coop("docs", "pull", made["link"]).stdout
        assert "## budget\n\n| Item | Cost |\n| --- | --- |\n| Food | 200 |\n| Rent | 550 |" in md, md
        # A push replaces one sheet from CSV and leaves the others.
        with open(members, "w") as f:
            f.write("Name,Shares\nAna,4\n")
        assert "Pushed" in shard.coop("docs", "push", made["link"], members, "--sheet", "members").stdout
        sheets = json.loads(shard.coop("docs", "pull", made["link"], "--format", "json").stdout)["sheets"]
        assert [s["name"] for s in sheets] == ["budget", "Sheet2", "members", "budget 2", "Sheet2 2"], sheets
        assert sheets[2]["cells"] == {"A1": "Name", "B1": "Shares", "A2": "Ana", "B2": "4"}, sheets[2]
        assert_no_plaintext(shard.home, [b"Costs of the second sheet", b"Shares", b"SUM(B2"])
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_the_cli_and_the_npm_clients_read_each_others_writes, test_links_carry_the_public_url_and_still_open_from_the_cli,
        test_npm_clients_converge_and_the_server_sees_ciphertext_only,
        test_history_survives_a_restart_in_legacy_mode_too,
        test_two_chromium_pages_edit_one_document_in_the_editor,
        test_owned_documents_and_encrypted_blobs,
        test_sessions_from_credentials_end_with_sign_out_and_suspension,
        test_a_member_makes_writes_attaches_and_deletes_in_chromium,
        test_expiring_documents_leave_the_disk,
        test_bad_frames_end_only_their_own_connection,
        test_documents_go_into_matrix_rooms_as_widgets,
        test_spreadsheets_live_with_formulas_sheets_sorting_csv_and_xlsx,
    ])
