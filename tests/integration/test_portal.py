"""The member portal, as members and admins use it in headless Chromium (playwright-core
and Debian's chromium): sign in, change the password, make an app password and use it over
IMAP and CalDAV, revoke it, download the takeout and read it back; an admin suspends and
reinstates from the members page, and a suspended member's session ends. At the HTTP level:
the cookie's flags, forms without the CSRF token refused, app passwords that cannot open
the portal, hostile forms, and no password in any log."""
import http.cookiejar
import imaplib
import json
import os
import ssl
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import caldav

from coopshard import Shard, bin_dir_from_args, listener, run_tests

BIN = bin_dir_from_args()
DOMAIN = "portal.test"
STRONG = "correct horse battery staple"
NEWER = "a much longer passphrase now"
CLIENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients")
# Kept after the run (build/screenshots), for a person to look at.
SHOTS = os.environ.get("COOP_SCREENSHOTS", os.path.join(os.path.dirname(os.path.abspath(BIN)), "screenshots"))
os.makedirs(SHOTS, exist_ok=True)


def browser(phase, base, state, *args):
    out = subprocess.run(["node", os.path.join(CLIENTS, "portal_browser.mjs"), phase, base, state,
                          os.path.join(SHOTS, "coop-portal"), *args],
                         capture_output=True, text=True, timeout=180, cwd=CLIENTS)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(lines[-1])


def start(shard):
    shard.init()
    shard.coop("up")
    shard.coop("mail", "domain", "add", DOMAIN)
    shard.coop("member", "add", "alice", "--email", f"alice@{DOMAIN}", "--password-stdin", input=STRONG)
    shard.coop("member", "add", "carol", "--role", "admin", "--password-stdin", input=STRONG)
    return listener(shard, "member", "portal")


def session(base, user, password):
    """A urllib opener signed in to the portal, and the page it lands on."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    data = urllib.parse.urlencode({"user": user, "password": password}).encode()
    try:
        with opener.open(base + "/portal/login", data=data, timeout=30) as r:
            page = r.read().decode()
    except urllib.error.HTTPError as e:  # a refusal is a page too
        page = e.read().decode()
    return opener, jar, page


def post(opener, url, fields):
    try:
        with opener.open(url, data=urllib.parse.urlencode(fields).encode(), timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_member_manages_their_account_in_chromium():
    if not os.path.isdir(os.path.join(CLIENTS, "node_modules", "playwright-core")) or not os.path.exists("/usr/bin/chromium"):
        raise AssertionError("playwright-core or chromium is not installed: run scripts/install-deps")
    with Shard(BIN, domain=DOMAIN) as shard, tempfile.TemporaryDirectory() as tmp:
        base = start(shard)
        state = os.path.join(tmp, "state.json")
        made = browser("signin-and-make", base, state, "alice", STRONG, NEWER)
        secret = made["secret"]
        assert made["loginsShowPortal"], made
        # The new password works and the old one does not.
        shard.coop("member", "verify", "alice", "--protocol", "mail", "--source", "192.0.2.1", input=NEWER)
        shard.coop("member", "verify", "alice", "--protocol", "mail", "--source", "192.0.2.1", input=STRONG, expect=1)
        # The app password opens IMAP and CalDAV, and only those.
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        imaps = int(listener(shard, "mail", "imaps").rsplit(":", 1)[1])
        imap = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
        assert imap.login(f"alice@{DOMAIN}", secret)[0] == "OK"
        imap.logout()
        dav = listener(shard, "dav", "http")
        caldav.DAVClient(url=dav + "/dav/", username="alice", password=secret).principal().make_calendar(name="Phone")
        shard.coop("member", "verify", "alice", "--protocol", "room", "--source", "192.0.2.1", input=secret, expect=1)
        # It does not open the portal either.
        _, _, page = session(base, "alice", secret)
        assert "An app password does not open the portal" in page, page[-500:]

        takeout = os.path.join(tmp, "takeout.tar.gz")
        done = browser("revoke-and-takeout", base, state, takeout)
        assert done["name"] == "coop-takeout-alice.tar.gz", done
        try:
            imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx).login(f"alice@{DOMAIN}", secret)
            raise AssertionError("a revoked app password still opens IMAP")
        except imaplib.IMAP4.error:
            pass
        with tarfile.open(takeout) as archive:
            names = archive.getnames()
            assert "coop-takeout-alice/README.txt" in names and "coop-takeout-alice/calendars/Phone.ics" not in names
            profile = json.load(archive.extractfile("coop-takeout-alice/profile.json"))
            assert profile["handle"] == "alice"
            assert any(n.startswith("coop-takeout-alice/mail/maildir") for n in names), names
            assert all(m.mode & 0o077 == 0 for m in archive.getmembers()), "takeout entries readable by others"

        # Suspended: the browser's session ends at its next request.
        shard.coop("member", "suspend", "alice", "--reason", "test")
        assert browser("reload", base, state)["signinShown"]
        shard.coop("member", "reinstate", "alice")
        # An admin suspends and reinstates from the members page.
        admin = browser("admin", base, os.path.join(tmp, "admin.json"), "carol", STRONG, "alice")
        assert admin == {"suspended": True, "reinstated": True}, admin
        assert shard.json("member", "show", "alice")["status"] == "active"
        for name in ("member", "supervisor"):
            log = shard.log(name)
            for password in (STRONG, NEWER, secret):
                assert password not in log, f"a password is in {name}.log"
        shard.coop("down")


def test_cookie_csrf_and_hostile_forms():
    with Shard(BIN, domain=DOMAIN) as shard:
        base = start(shard)
        opener, jar, page = session(base, "alice", STRONG)
        assert "Your account" in page
        cookie = next(c for c in jar if c.name == "coop_portal")
        assert cookie.path == "/portal/" and cookie.has_nonstandard_attr("HttpOnly") and not cookie.secure
        # The headers every page has, and the cookie's SameSite.
        req = urllib.request.Request(base + "/portal/login", data=urllib.parse.urlencode({"user": "alice", "password": STRONG}).encode())
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(req, timeout=10)
        except urllib.error.HTTPError as e:
            set_cookie = e.headers["Set-Cookie"]
            assert "SameSite=Strict" in set_cookie and "HttpOnly" in set_cookie and "Secure" not in set_cookie, set_cookie
        with urllib.request.urlopen(base + "/portal/", timeout=10) as r:
            assert "default-src 'none'" in r.headers["Content-Security-Policy"] and r.headers["X-Frame-Options"] == "DENY"
        opener, jar, _ = session(base, "alice", STRONG)
        # Forms without the session's CSRF token, or with another, change nothing.
        for fields in ({"label": "evil", "scope": "mail"}, {"label": "evil", "scope": "mail", "csrf": "0" * 64}):
            status, body = post(opener, base + "/portal/app-passwords", fields)
            assert status == 403 and "out of date" in body, (status, body[:300])
        status, _ = post(opener, base + "/portal/password", {"current": STRONG, "new": NEWER, "confirm": NEWER})
        assert status == 403
        assert shard.json("member", "app-password", "list", "alice") == []
        shard.coop("member", "verify", "alice", "--protocol", "mail", "--source", "192.0.2.1", input=STRONG)
        # Without a session, a form goes back to the sign-in page.
        anonymous = urllib.request.build_opener(NoRedirect)
        try:
            anonymous.open(base + "/portal/app-passwords", data=b"label=x&scope=mail", timeout=10)
            raise AssertionError("a form without a session was taken")
        except urllib.error.HTTPError as e:
            assert e.code == 303 and e.headers["Location"] == "/portal/"
        # Hostile forms and paths: a clear refusal, and the worker stays up.
        for body in (b"user=%ZZ&password=x", b"user=%C0%AF&password=x", b"\xff\xfe=\xff", b"a=" + b"x" * 70000):
            try:
                with urllib.request.urlopen(base + "/portal/login", data=body, timeout=10) as r:
                    raise AssertionError(f"accepted {body[:20]!r}")
            except urllib.error.HTTPError as e:
                assert e.code in (400, 401, 413), (body[:20], e.code)
        for path in ("/portal/../etc/passwd", "/portal/%2e%2e/keys/tls.key", "/portal/members/../../x"):
            try:
                urllib.request.urlopen(base + path, timeout=10)
                raise AssertionError(f"{path} was answered")
            except urllib.error.HTTPError as e:
                assert e.code in (400, 404), (path, e.code)
        # A member who is not an admin does not see the members page.
        try:
            opener.open(base + "/portal/members", timeout=10)
            raise AssertionError("a member saw the members page")
        except urllib.error.HTTPError as e:
            assert e.code == 403
        assert shard.json("status")["workers"][0]["restarts"] == 0
        shard.coop("down")


def test_a_web_group_member_publishes_a_site_in_chromium():
    import zipfile
    with Shard(BIN, domain=DOMAIN) as shard, tempfile.TemporaryDirectory() as tmp:
        base = start(shard)
        shard.coop("member", "group", "add", "web")
        shard.coop("member", "add", "dora", "--group", "web", "--password-stdin", input=STRONG)
        zips = []
        for n, text in ((1, "Fresh bread every morning"), (2, "Now with croissants")):
            path = os.path.join(tmp, f"export{n}.zip")
            with zipfile.ZipFile(path, "w") as z:  # as WebStudio exports: one top folder
                z.writestr("bakery-export/index.html", f"<!doctype html><title>Bakery</title><h1>Bakery</h1><p>{text}</p>")
                z.writestr("bakery-export/assets/style.css", "h1{color:brown}")
            zips.append(path)
        akash = os.path.join(tmp, "deploy.yaml")
        done = browser("publish", base, os.path.join(tmp, "dora.json"), "dora", STRONG, zips[0], zips[1], akash)
        assert "Version 1 of bakery is published (2 files)" in done["first"] and "Version 2" in done["second"], done
        assert "croissants" in done["v2"] and "Fresh bread" in done["v1"] and "croissants" not in done["v1"], done
        assert "event is published" in done["event"], done
        with open(akash) as f:
            assert "coop-site-bakery:" in f.read()
        site = shard.json("site", "show", "bakery")
        assert [e["title"] for e in site["events"]] == ["Bread course"], site
        # alice is not in the web group: no sites page, no publishing.
        opener, _, _ = session(base, "alice", STRONG)
        try:
            opener.open(base + "/portal/sites", timeout=10)
            raise AssertionError("a member outside the web group saw the sites page")
        except urllib.error.HTTPError as e:
            assert e.code == 403
        # With a map on the shard, the event form links to it in pick mode.
        demo = os.path.join(os.path.dirname(CLIENTS), "..", "contrib", "demo", "monaco.osm.pbf")
        shard.coop("tiles", "import", demo, "--name", "monaco", "--quiet")
        dora_session, _, _ = session(base, "dora", STRONG)
        with dora_session.open(base + "/portal/sites/bakery", timeout=10) as r:
            assert "/tiles/monaco/map?pick=1" in r.read().decode()
        # A hostile zip: a path out of the site, refused with a clear line; nothing published.
        bad = os.path.join(tmp, "bad.zip")
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("../../escape.html", "x")
        twice = os.path.join(tmp, "twice.zip")
        import warnings
        with warnings.catch_warnings(), zipfile.ZipFile(twice, "w") as z:
            warnings.simplefilter("ignore")  # zipfile warns of the duplicate it is asked to write
            z.writestr("index.html", "one")
            z.writestr("index.html", "two")
        dora, _, page = session(base, "dora", STRONG)
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        boundary = "coopboundary"
        for bad_zip, said in ((bad, "not a path a site may have"), (twice, "index.html&#39; twice")):
            with open(bad_zip, "rb") as f:
                payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
                           f"--{boundary}\r\nContent-Disposition: form-data; name=\"site\"\r\n\r\nbakery\r\n"
                           f"--{boundary}\r\nContent-Disposition: form-data; name=\"zip\"; filename=\"x.zip\"\r\n"
                           f"Content-Type: application/zip\r\n\r\n").encode() + f.read() + f"\r\n--{boundary}--\r\n".encode()
            req = urllib.request.Request(base + "/portal/sites/publish", data=payload,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            try:
                dora.open(req, timeout=30)
                raise AssertionError(f"{bad_zip} was published")
            except urllib.error.HTTPError as e:
                assert e.code == 400 and said in e.read().decode(), said  # nothing published
        assert shard.json("site", "show", "bakery")["version"]["version"] == 3  # the event's republish
        shard.coop("down")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_the_cookie_is_secure_behind_https():
    with Shard(BIN, domain=DOMAIN) as shard:
        shard.init()
        path = os.path.join(shard.home, "coop.toml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("[workers.member]\nenabled = true\n", f'[workers.member]\nenabled = true\npublic_url = "https://{DOMAIN}"\n'))
        shard.coop("up")
        shard.coop("member", "add", "alice", "--password-stdin", input=STRONG)
        base = listener(shard, "member", "portal")
        req = urllib.request.Request(base + "/portal/login", data=urllib.parse.urlencode({"user": "alice", "password": STRONG}).encode())
        try:
            urllib.request.build_opener(NoRedirect).open(req, timeout=10)
            raise AssertionError("no redirect after signing in")
        except urllib.error.HTTPError as e:
            assert "; Secure" in e.headers["Set-Cookie"], e.headers["Set-Cookie"]
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_cookie_csrf_and_hostile_forms,
        test_the_cookie_is_secure_behind_https,
        test_a_member_manages_their_account_in_chromium,
        test_a_web_group_member_publishes_a_site_in_chromium,
    ])
