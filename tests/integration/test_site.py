"""coop-site with curl, Python's http.client, python3-icalendar, PyYAML and headless Chromium:
every header a static server owes its clients, versions that switch and roll back without a
failed request under load, retention, traversal attempts, Markdown pages and events with
their iCalendar files, and the Akash deployment files."""
import datetime
import gzip
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import threading
import time

from coopshard import Shard, bin_dir_from_args, free_port_block, run_tests, wait_for

BIN = bin_dir_from_args()
CLIENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients")


def site_port(shard):
    worker = next(w for w in shard.json("status")["workers"] if w["name"] == "site")
    url = next(l["url"] for l in worker["listeners"] if l["name"] == "http")
    return int(url.rsplit(":", 1)[1].split("/")[0])


def curl(port, path, *args, host="bakery.test"):
    """(status, headers with lowercase names, body) of one request through curl."""
    output = [] if "-I" in args else ["-D", "-", "-o", "/dev/stdout"]
    out = subprocess.run(["curl", "-s", "--path-as-is", *output, "-H", f"Host: {host}", *args,
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, timeout=30)
    raw = out.stdout
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def write(root, path, data):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def webstudio_like(root, title="Bakery cooperative"):
    """What `webstudio build --template ssg` leaves: index.html, a folder per page, hashed assets."""
    filler = "<p>" + "Fresh bread every morning, baked by its members. " * 30 + "</p>"
    write(root, "index.html", f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title>"
                              f"<link rel=stylesheet href=/assets/index.3f9a1c.css></head><body><h1>{title}</h1>"
                              f"{filler}<script src=/assets/index.77b2e0.js></script></body></html>")
    write(root, "about/index.html", "<!doctype html><title>About</title><h1>About us</h1><p>Since 1984.</p>")
    write(root, "contact.html", "<!doctype html><title>Contact</title><h1>Contact</h1><p>Rue du Pain 1</p>")
    write(root, "404.html", "<!doctype html><title>Lost</title><h1>Nothing here</h1>")
    write(root, "assets/index.3f9a1c.css", "body { font-family: sans-serif; color: #222; }\n" * 40)
    write(root, "assets/index.77b2e0.js", "document.documentElement.dataset.ready = 'yes';\n" * 30)
    write(root, "assets/photo.png", b"\x89PNG\r\n\x1a\n" + os.urandom(200000))
    write(root, ".well-known/security.txt", "Contact: mailto:security@bakery.test\n")
    write(root, "favicon.ico", b"\x00\x00\x01\x00" + os.urandom(1000))


def start(shard, **site_config):
    shard.init()
    if site_config:
        config = os.path.join(shard.home, "coop.toml")
        text = open(config).read()
        extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in site_config.items())
        with open(config, "w") as f:
            f.write(text.replace("[workers.site]\nenabled = true\n", "[workers.site]\nenabled = true\n" + extra))
    shard.coop("up")
    return site_port(shard)


def test_headers_of_a_published_site():
    with Shard(BIN) as shard:
        port = start(shard)
        www = os.path.join(shard.dir, "www")
        webstudio_like(www)
        published = shard.json("site", "publish", www, "--site", "bakery", "--domain", "bakery.test")
        assert published["version"] == 1 and published["files"] == 9 and published["uploaded_files"] == 9, published
        index = open(os.path.join(www, "index.html"), "rb").read()

        status, h, body = curl(port, "/")
        assert status == 200 and body == index
        assert h["content-type"] == "text/html; charset=utf-8" and h["cache-control"] == "no-cache"
        assert h["etag"].startswith('"') and "last-modified" in h and h["accept-ranges"] == "bytes"
        assert h["vary"] == "Accept-Encoding" and int(h["content-length"]) == len(index)
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "SAMEORIGIN"
        assert h["referrer-policy"] == "strict-origin-when-cross-origin"
        assert h["content-security-policy"] == "frame-ancestors 'self'"
        etag, modified = h["etag"], h["last-modified"]
        # HEAD: the same headers, no body.
        status, hh, body = curl(port, "/", "-I")
        assert status == 200 and body == b"" and hh["etag"] == etag and hh["content-length"] == h["content-length"]
        # Conditional requests.
        assert curl(port, "/", "-H", f"If-None-Match: {etag}")[0] == 304
        assert curl(port, "/", "-H", f"If-None-Match: \"other\", W/{etag}")[0] == 304
        assert curl(port, "/", "-H", "If-None-Match: \"other\"")[0] == 200
        status, h304, body = curl(port, "/", "-H", f"If-Modified-Since: {modified}")
        assert status == 304 and body == b"" and h304["etag"] == etag
        assert curl(port, "/", "-H", "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT")[0] == 200
        # Variants made at publish time, chosen by Accept-Encoding.
        status, hg, body = curl(port, "/", "-H", "Accept-Encoding: gzip")
        assert status == 200 and hg["content-encoding"] == "gzip" and gzip.decompress(body) == index
        assert hg["etag"] != etag and len(body) < len(index)
        status, hb, body = curl(port, "/", "-H", "Accept-Encoding: gzip, br")
        assert hb["content-encoding"] == "br" and len(body) < len(index)
        status, _, body = curl(port, "/", "--compressed", "-H", "Accept-Encoding: br")
        assert body == index  # curl's own brotli decoder agrees
        assert curl(port, "/", "-H", "Accept-Encoding: br;q=0, gzip")[1]["content-encoding"] == "gzip"
        assert "content-encoding" not in curl(port, "/", "-H", "Accept-Encoding: identity")[1]
        # Binary files: their type, cached, never compressed again.
        photo = open(os.path.join(www, "assets/photo.png"), "rb").read()
        status, hp, body = curl(port, "/assets/photo.png", "-H", "Accept-Encoding: gzip, br")
        assert status == 200 and body == photo and hp["content-type"] == "image/png" and "content-encoding" not in hp
        assert hp["cache-control"] == "public, max-age=300"
        assert curl(port, "/assets/index.3f9a1c.css")[1]["content-type"] == "text/css; charset=utf-8"
        assert curl(port, "/assets/index.77b2e0.js")[1]["content-type"] == "text/javascript; charset=utf-8"
        # Ranges.
        status, hr, body = curl(port, "/assets/photo.png", "-H", "Range: bytes=0-99")
        assert status == 206 and body == photo[:100] and hr["content-range"] == f"bytes 0-99/{len(photo)}"
        assert curl(port, "/assets/photo.png", "-H", "Range: bytes=-50")[2] == photo[-50:]
        assert curl(port, "/assets/photo.png", "-H", "Range: bytes=199990-")[2] == photo[199990:]
        status, hr, _ = curl(port, "/assets/photo.png", "-H", f"Range: bytes={len(photo)}-")
        assert status == 416 and hr["content-range"] == f"bytes */{len(photo)}"
        photo_tag = hp["etag"]
        assert curl(port, "/assets/photo.png", "-H", "Range: bytes=0-9", "-H", f"If-Range: {photo_tag}")[0] == 206
        assert curl(port, "/assets/photo.png", "-H", "Range: bytes=0-9", "-H", "If-Range: \"stale\"")[0] == 200
        # index.html, clean URLs, folders without their slash, the site's 404 page.
        assert curl(port, "/about/")[2].startswith(b"<!doctype html><title>About")
        status, hm, _ = curl(port, "/about?x=1")
        assert status == 301 and hm["location"] == "/about/?x=1"
        assert b"Rue du Pain" in curl(port, "/contact")[2]
        status, h404, body = curl(port, "/no/such/page")
        assert status == 404 and b"Nothing here" in body and h404["content-type"] == "text/html; charset=utf-8"
        assert curl(port, "/.well-known/security.txt")[2].startswith(b"Contact:")
        # Previews by name; unknown hosts and names get nothing.
        assert curl(port, "/sites/bakery/", host="127.0.0.1")[2] == index
        assert curl(port, "/sites/bakery", host="127.0.0.1")[1]["location"] == "/sites/bakery/"
        # An unknown host gets the shard's front page at / (no site's content), nothing elsewhere.
        status, headers, front = curl(port, "/", host="other.test")
        assert status == 200 and b"runs its own communication stack" in front and front != index, front[:300]
        assert b"/sites/bakery/" in front and "default-src 'none'" in headers["content-security-policy"]
        assert curl(port, "/about.html", host="other.test")[0] == 404
        assert curl(port, "/sites/nobody/", host="127.0.0.1")[0] == 404
        assert curl(port, "/", "-X", "POST")[0] == 405
        # Keep-alive: curl reuses one connection for two requests.
        both = subprocess.run(["curl", "-sv", "-o", "/dev/null", "-o", "/dev/null", "-H", "Host: bakery.test",
                               f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/contact"],
                              capture_output=True, text=True, timeout=30)
        assert "Re-using existing connection" in both.stderr or "Reusing existing connection" in both.stderr, both.stderr

        # Paths never leave the version: dots, encoded dots and slashes, backslashes, NULs.
        secret = open(os.path.join(shard.home, "coop.toml"), "rb").read()[:40]
        for attempt in ["/../coop.toml", "/%2e%2e/%2e%2e/coop.toml", "/assets/..%2f..%2fcoop.toml",
                        "/%2e%2e%5c%2e%2e%5ccoop.toml", "/assets/%00.png", "/.%2e/site.db", "//etc/passwd",
                        "/sites/bakery/../../../etc/passwd", "/%252e%252e/coop.toml", "/about/%2e/../../x"]:
            status, _, body = curl(port, attempt)
            assert status in (400, 404), (attempt, status)
            assert secret not in body and b"root:" not in body, attempt
        shard.coop("down")


def test_bad_folders_are_refused_before_anything_is_published():
    with Shard(BIN) as shard:
        port = start(shard)
        www = os.path.join(shard.dir, "www")
        webstudio_like(www)
        os.symlink("/etc/passwd", os.path.join(www, "passwd.html"))
        result = shard.coop("site", "publish", www, "--site", "bakery", expect=1)
        assert "symbolic link" in result.stderr and "passwd.html" in result.stderr
        assert shard.json("site", "list") == []
        os.remove(os.path.join(www, "passwd.html"))
        write(www, "bad\\name.html", "x")
        assert "cannot hold" in shard.coop("site", "publish", www, "--site", "bakery", expect=1).stderr
        os.remove(os.path.join(www, "bad\\name.html"))
        assert "site names" in shard.coop("site", "publish", www, "--site", "../x", expect=2).stderr
        assert shard.json("site", "list") == []
        # The control API checks paths too, whatever a client sends.
        import socket
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(os.path.join(shard.home, "run", "site.sock"))
        body = json.dumps({"files": [{"path": "../escape.html", "blob": "a" * 64}]})
        sock.sendall(f"POST /v1/sites/bakery/versions HTTP/1.1\r\nHost: coop\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n{body}".encode())
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 400") and b"bad_path" in answer, answer
        assert curl(port, "/sites/bakery/", host="127.0.0.1")[0] == 404
        shard.coop("down")


def blob_files(shard):
    root = os.path.join(shard.home, "blobs", "site")
    return {f for _, _, fs in os.walk(root) for f in fs if not f.startswith(".")}


def test_versions_dedup_rollback_and_retention():
    with Shard(BIN) as shard:
        port = start(shard, keep_versions=3)
        www = os.path.join(shard.dir, "www")
        webstudio_like(www)
        assert shard.json("site", "publish", www, "--site", "bakery")["uploaded_files"] == 9
        stored = blob_files(shard)
        # Unchanged files are neither sent nor stored again.
        again = shard.json("site", "publish", www, "--site", "bakery")
        assert again["version"] == 2 and again["uploaded_files"] == 0 and blob_files(shard) == stored
        write(www, "contact.html", "<!doctype html><h1>Contact</h1><p>New address</p>")
        third = shard.json("site", "publish", www, "--site", "bakery")
        assert third["version"] == 3 and third["uploaded_files"] == 1
        assert b"New address" in curl(port, "/sites/bakery/contact", host="x")[2]
        # Rollback: the one before, or a chosen one.
        assert shard.json("site", "rollback", "bakery")["version"] == 2
        assert b"Rue du Pain" in curl(port, "/sites/bakery/contact", host="x")[2]
        assert shard.json("site", "rollback", "bakery", "--to", "3")["version"] == 3
        assert b"New address" in curl(port, "/sites/bakery/contact", host="x")[2]
        versions = shard.json("site", "versions", "bakery")
        assert [v["version"] for v in versions] == [1, 2, 3] and [v["current"] for v in versions] == [False, False, True]
        # Retention keeps three: version 1 goes, and the blob only it held with it.
        write(www, "contact.html", "<!doctype html><h1>Contact</h1><p>Third address</p>")
        shard.json("site", "publish", www, "--site", "bakery")
        write(www, "contact.html", "<!doctype html><h1>Contact</h1><p>Fourth address</p>")
        shard.json("site", "publish", www, "--site", "bakery")
        assert [v["version"] for v in shard.json("site", "versions", "bakery")] == [3, 4, 5]
        assert "no version 1" in shard.coop("site", "rollback", "bakery", "--to", "1", expect=1).stderr
        old = hashlib.sha256(b"<!doctype html><title>Contact</title><h1>Contact</h1><p>Rue du Pain 1</p>").hexdigest()
        assert old not in blob_files(shard)
        assert "Versions" not in shard.coop("site", "versions", "bakery").stderr
        shown = shard.json("site", "show", "bakery")
        assert shown["version"]["version"] == 5 and shown["preview"].endswith("/sites/bakery/")
        # Domains.
        shard.coop("site", "domain", "add", "bakery", "www.bakery.test")
        assert curl(port, "/", host="www.bakery.test")[0] == 200
        shard.json("site", "publish", www, "--site", "other")
        assert "already serves" in shard.coop("site", "domain", "add", "other", "www.bakery.test", expect=1).stderr
        shard.coop("site", "domain", "remove", "bakery", "www.bakery.test")
        status, _, body = curl(port, "/", host="www.bakery.test")
        assert status == 200 and b"runs its own communication stack" in body  # the front page, not the bakery
        # Removing a site takes its blobs (those no other site holds).
        shard.coop("site", "remove", "bakery")
        assert curl(port, "/sites/bakery/", host="x")[0] == 404
        assert [s["name"] for s in shard.json("site", "list")] == ["other"]
        shard.coop("site", "remove", "other")
        assert blob_files(shard) == set()
        shard.coop("down")


def test_switches_under_load_fail_no_request():
    with Shard(BIN) as shard:
        port = start(shard)
        www = os.path.join(shard.dir, "www")
        webstudio_like(www, title="Version one")
        write(www, "big.bin", os.urandom(1 << 20))
        shard.coop("site", "publish", www, "--site", "bakery", "--domain", "bakery.test")
        bodies = {"/": {open(os.path.join(www, "index.html"), "rb").read()},
                  "/big.bin": {open(os.path.join(www, "big.bin"), "rb").read()}}
        stop = threading.Event()
        results = {"ok": 0, "bad": []}
        lock = threading.Lock()

        def hammer():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while not stop.is_set():
                for path in ("/", "/big.bin"):
                    try:
                        conn.request("GET", path, headers={"Host": "bakery.test"})
                        response = conn.getresponse()
                        body = response.read()
                        with lock:
                            if response.status == 200 and body in bodies[path]:
                                results["ok"] += 1
                            else:
                                results["bad"].append((path, response.status, len(body)))
                    except Exception as e:  # noqa: BLE001 - any failure counts
                        with lock:
                            results["bad"].append((path, repr(e)))
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.close()

        threads = [threading.Thread(target=hammer) for _ in range(6)]
        for t in threads:
            t.start()
        try:
            for title in ("Version two", "Version three"):
                webstudio_like(www, title=title)
                bodies["/"].add(open(os.path.join(www, "index.html"), "rb").read())
                shard.coop("site", "publish", www, "--site", "bakery")
                time.sleep(0.3)
                shard.coop("site", "rollback", "bakery")
                time.sleep(0.3)
                shard.coop("site", "rollback", "bakery", "--to", str(shard.json("site", "versions", "bakery")[-1]["version"]))
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert results["bad"] == [], results["bad"][:5]
        assert results["ok"] > 100, results
        shard.coop("down")


def test_pages_events_calendars_and_chromium():
    import icalendar
    with Shard(BIN) as shard:
        port = start(shard, timezone="Europe/Paris")
        www = os.path.join(shard.dir, "www")
        webstudio_like(www)
        shard.coop("site", "publish", www, "--site", "bakery", "--domain", "bakery.test")
        story = os.path.join(shard.dir, "story.md")
        write(shard.dir, "story.md", "# Our story\n\nWe bake *together* since 1984.\n\n<script>alert(1)</script>\n\n"
                                     "- rye\n- spelt\n\n[Contact](/contact)\n")
        page = shard.json("site", "page", "new", "bakery", "--from", story)
        assert page["path"] == "our-story/" and page["title"] == "Our story"
        status, h, body = curl(port, "/our-story/")
        assert status == 200 and b"<em>together</em>" in body and b"<li>rye</li>" in body
        assert b"<script>alert" not in body  # raw HTML in Markdown is dropped
        # Tiles runs in this shard: the event is also a map marker. Events are dated next year,
        # so they are still ahead whenever the test runs (the listing puts past events last).
        year = datetime.date.today().year + 1
        day = f"{year}-12-05"
        event = shard.json("site", "event", "add", "bakery", "--title", "Bread workshop", "--when", f"{day}T18:00",
                           "--where", "Bakehouse, Rue du Pain 1", "--description", "Bring an **apron**.",
                           "--marker", "43.7384,7.4246")
        assert event["path"] == f"events/{day}-bread-workshop/", event
        assert event["map_marker"]["properties"]["kind"] == "event", event
        markers = shard.json("tiles", "marker", "list")["features"]
        assert [m["properties"]["title"] for m in markers] == ["Bread workshop"]
        shard.json("site", "event", "add", "bakery", "--title", "General assembly", "--when", f"{year + 1}-01-16 10:00+01:00",
                   "--until", f"{year + 1}-01-16T12:30+01:00", "--where", "Town hall")
        # The .ics files, read by python3-icalendar: 18:00 in Paris in December is 17:00 UTC.
        status, h, body = curl(port, f"/events/{day}-bread-workshop.ics")
        assert status == 200 and h["content-type"] == "text/calendar; charset=utf-8"
        calendar = icalendar.Calendar.from_ical(body)
        events = [c for c in calendar.walk("VEVENT")]
        assert len(events) == 1
        e = events[0]
        assert str(e["SUMMARY"]) == "Bread workshop" and str(e["LOCATION"]) == "Bakehouse, Rue du Pain 1"
        assert e.decoded("DTSTART").isoformat() == f"{day}T17:00:00+00:00"
        assert e.decoded("DTEND").isoformat() == f"{day}T19:00:00+00:00"
        assert str(calendar["METHOD"]) == "PUBLISH" and str(e["UID"]).endswith("@bakery.coop-site")
        # RFC 5545 3.8.1.5: the description is plain text, and it ends with the event's page.
        description = str(e["DESCRIPTION"])
        assert description.startswith("Bring an apron.") and "**" not in description, description
        assert description.endswith(f"/sites/bakery/events/{day}-bread-workshop/") and str(e["URL"]) == description.split()[-1]
        everything = icalendar.Calendar.from_ical(curl(port, "/events/calendar.ics")[2])
        assert sorted(str(c["SUMMARY"]) for c in everything.walk("VEVENT")) == ["Bread workshop", "General assembly"]
        listing = curl(port, "/events/")[2]
        assert listing.index(b"Bread workshop") < listing.index(b"General assembly")
        weekday = datetime.date(year, 12, 5).strftime("%A")
        assert f"{weekday} 5 December {year}, 18:00 (Europe/Paris)".encode() in listing
        # The uploaded files survive a page or event: they ride into every new version.
        assert b"Rue du Pain" in curl(port, "/contact")[2]
        shown = shard.json("site", "show", "bakery")
        assert [p["slug"] for p in shown["pages"]] == ["our-story"] and len(shown["events"]) == 2
        # Republishing the folder keeps the pages and events.
        shard.coop("site", "publish", www, "--site", "bakery")
        assert curl(port, "/our-story/")[0] == 200 and curl(port, "/events/")[0] == 200
        shard.coop("site", "event", "remove", "bakery", f"{year + 1}-01-16-general-assembly")
        assert curl(port, f"/events/{year + 1}-01-16-general-assembly/")[0] == 404
        assert "no event" in shard.coop("site", "event", "remove", "bakery", "nope", expect=1).stderr
        # The map follows the version that is current: an event rolled back past leaves it, rolled
        # forward it is back, removed it goes.
        def marker_titles():
            return sorted(m["properties"]["title"] for m in shard.json("tiles", "marker", "list")["features"])
        harvest = shard.json("site", "event", "add", "bakery", "--title", "Harvest", "--when", f"{day}T10:00",
                             "--where", "The field", "--marker", "43.74,7.43")
        assert marker_titles() == ["Bread workshop", "Harvest"]
        shard.json("site", "rollback", "bakery")
        assert marker_titles() == ["Bread workshop"]
        shard.json("site", "rollback", "bakery", "--to", str(harvest["version"]["version"]))
        assert marker_titles() == ["Bread workshop", "Harvest"]
        shard.coop("site", "event", "remove", "bakery", harvest["slug"])
        assert marker_titles() == ["Bread workshop"]
        bad = shard.coop("site", "event", "add", "bakery", "--title", "x", "--when", "tomorrow", "--where", "y", expect=1)
        assert "2026-12-05T18:00" in bad.stderr
        # Headless Chromium: the published page (its links are absolute, so it previews at
        # NAME.localhost, which browsers resolve to this machine), a Markdown page and an event
        # page (relative links: they preview under /sites/NAME/ too).
        base = f"http://127.0.0.1:{port}/sites/bakery/"
        shots = os.path.join(shard.dir, "shot")
        result = subprocess.run(["node", os.path.join(CLIENTS, "site_browser.mjs"), shots, f"http://bakery.localhost:{port}/",
                                 base + "our-story/", base + f"events/{day}-bread-workshop/", base + "events/"],
                                capture_output=True, text=True, timeout=180, cwd=CLIENTS)
        assert result.returncode == 0 and "ALL OK" in result.stdout, result.stdout + result.stderr
        shard.coop("down")


def test_akash_sdl_and_build_context():
    import yaml
    with Shard(BIN) as shard:
        start(shard)
        www = os.path.join(shard.dir, "www")
        webstudio_like(www)
        shard.coop("site", "publish", www, "--site", "bakery", "--domain", "bakery.test", "--domain", "www.bakery.test")
        out = os.path.join(shard.dir, "context")
        made = shard.json("site", "image", "bakery", "--out", out)
        assert made["version"] == 1 and made["files"] == 9
        dockerfile = open(os.path.join(out, "Dockerfile")).read()
        assert dockerfile.splitlines()[2].startswith("FROM nginx:") and "COPY site/ /usr/share/nginx/html/" in dockerfile
        assert "COPY nginx.conf /etc/nginx/conf.d/default.conf" in dockerfile and "EXPOSE 80" in dockerfile
        conf = open(os.path.join(out, "nginx.conf")).read()
        assert "try_files $uri $uri.html $uri/ =404;" in conf and "error_page 404 /404.html;" in conf
        for root, _, files in os.walk(www):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), www)
                assert open(os.path.join(out, "site", rel), "rb").read() == open(os.path.join(root, name), "rb").read(), rel
        index_gz = os.path.join(out, "site", "index.html.gz")
        assert gzip.decompress(open(index_gz, "rb").read()) == open(os.path.join(www, "index.html"), "rb").read()
        assert "not empty" in shard.coop("site", "image", "bakery", "--out", out, expect=1).stderr
        # nginx itself accepts the configuration (when it is installed: make bench's peer).
        if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
            nginx = shutil.which("nginx") or "/usr/sbin/nginx"
            wrapper = os.path.join(shard.dir, "nginx-test.conf")
            with open(wrapper, "w") as f:
                f.write(f"pid {shard.dir}/nginx.pid; error_log stderr; events {{}} http {{ access_log off; "
                        f"include /etc/nginx/mime.types; include {out}/nginx.conf; }}\n")
            check = subprocess.run([nginx, "-t", "-c", wrapper, "-p", shard.dir], capture_output=True, text=True)
            assert check.returncode == 0, check.stderr
            # And serves it as coop-site does: its headers, .ics as text/calendar, relative redirects.
            port = free_port_block(1)
            served = os.path.join(shard.dir, "nginx-served.conf")
            conf_text = open(os.path.join(out, "nginx.conf")).read()
            conf_text = conf_text.replace("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;")
            conf_text = conf_text.replace("root /usr/share/nginx/html;", f"root {out}/site;")
            # One process, as the test's own user: the site lies in the test's private directory.
            open(served, "w").write(f"pid {shard.dir}/nginx.pid; error_log stderr; daemon off; master_process off; "
                                    f"events {{}} http {{ access_log off; "
                                    f"client_body_temp_path {shard.dir}/nginx-tmp; include /etc/nginx/mime.types; {conf_text} }}\n")
            os.makedirs(os.path.join(out, "site", "sub"), exist_ok=True)
            open(os.path.join(out, "site", "sub", "index.html"), "w").write("<p>sub</p>")
            open(os.path.join(out, "site", "ev.ics"), "w").write("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
            proc = subprocess.Popen([nginx, "-c", served, "-p", shard.dir], stderr=subprocess.PIPE)
            try:
                wait_for(lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"]).returncode == 0,
                         what="nginx")

                def head(path):
                    text = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}"],
                                          capture_output=True, text=True).stdout
                    fields = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in text.splitlines()[1:] if ":" in l)}
                    fields["status"] = text.split(" ", 2)[1] if text else ""
                    return fields
                page = head("/")
                assert page["status"] == "200" and page["cache-control"] == "no-cache" and page["x-content-type-options"] == "nosniff", page
                assert page["content-security-policy"] == "frame-ancestors 'self'" and page["x-frame-options"] == "SAMEORIGIN", page
                ics = head("/ev.ics")
                assert ics.get("content-type") == "text/calendar; charset=utf-8", ics
                assert head("/ev.ics")["cache-control"] == "public, max-age=300"
                assert head("/sub")["location"] == "/sub/"  # absolute_redirect off
            finally:
                proc.terminate()
                proc.wait()

        sdl_path = os.path.join(shard.dir, "deploy.yaml")
        shard.coop("site", "akash", "bakery", "--out", sdl_path, "--image", "registry.example.org/bakery:1",
                   "--cpu", "1", "--memory", "512Mi", "--storage", "2Gi", "--price", "2500", "--count", "2",
                   "--attribute", "region=eu-west")
        sdl = yaml.safe_load(open(sdl_path))
        assert sdl["version"] == "2.0"
        assert set(sdl) == {"version", "services", "profiles", "deployment"}
        web = sdl["services"]["web"]
        assert web["image"] == "registry.example.org/bakery:1"
        assert web["expose"] == [{"port": 80, "as": 80, "accept": ["bakery.test", "www.bakery.test"], "to": [{"global": True}]}]
        resources = sdl["profiles"]["compute"]["web"]["resources"]
        assert resources == {"cpu": {"units": 1}, "memory": {"size": "512Mi"}, "storage": {"size": "2Gi"}}
        placement = sdl["profiles"]["placement"]["akash"]
        assert placement["pricing"] == {"web": {"denom": "uakt", "amount": 2500}}
        assert placement["attributes"] == {"region": "eu-west"}
        assert sdl["deployment"] == {"web": {"akash": {"profile": "web", "count": 2}}}
        # The default image names the version coop site image built.
        default = yaml.safe_load(shard.coop("site", "akash", "bakery").stdout)
        assert default["services"]["web"]["image"] == "coop-site-bakery:1"
        assert shard.coop("site", "akash", "bakery", "--memory", "lots", expect=2).stderr
        assert "above zero" in shard.coop("site", "akash", "bakery", "--memory", "0Mi", expect=2).stderr
        assert "above zero" in shard.coop("site", "akash", "bakery", "--storage", "0Gi", expect=2).stderr
        assert shard.coop("site", "akash", "nobody", expect=1).stderr
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_headers_of_a_published_site,
        test_bad_folders_are_refused_before_anything_is_published,
        test_versions_dedup_rollback_and_retention,
        test_switches_under_load_fail_no_request,
        test_pages_events_calendars_and_chromium,
        test_akash_sdl_and_build_context,
    ])
