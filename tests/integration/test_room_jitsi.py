"""Jitsi calls from rooms: Element's discovery, `coop room call` writing the widget and layout
Element writes (read back by matrix-js-sdk), members' tokens and guests' links checked the way
Jitsi's Prosody token module checks them (a Node harness with jsonwebtoken), and matrix-nio's
OpenID token through the user verification API that matrix-org's Prosody module asks."""
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from nio import AsyncClient, LoginResponse

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for
from test_room_nio import DOMAIN, STRONG, homeserver, http_json

BIN = bin_dir_from_args()
CLIENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients")
JITSI = "meet.chat.test"
VERIFY_TOKEN = "uvs-bearer-for-prosody"


def start(shard, auth="openidtoken-jwt"):
    """A shard with Jitsi (auth as given) and members alice, bob and carol."""
    shard.domain = DOMAIN
    shard.init()
    with open(os.path.join(shard.home, "keys", "uvs_token"), "w") as f:
        f.write(VERIFY_TOKEN + "\n")
    with open(os.path.join(shard.home, "coop.toml"), "a") as f:
        f.write(f'\n[workers.room.jitsi]\ndomain = "{JITSI}"\nauth = "{auth}"\napp_id = "coop-test"\n'
                f'audience = "jitsi-test"\nverify_token_file = "keys/uvs_token"\n')
    shard.coop("up")
    for handle in ("alice", "bob", "carol"):
        shard.coop("member", "add", handle, "--password-stdin", input=STRONG)
    return homeserver(shard)


def login(url, user):
    status, body, _ = http_json(f"{url}/_matrix/client/v3/login", "POST",
                                {"type": "m.login.password", "user": user, "password": STRONG})
    assert status == 200, body
    return body["access_token"]


def client(url, method, path, token, body=None):
    return http_json(f"{url}/_matrix/client/v3{path}", method, body, token)


def make_room(url, token, name, invite=()):
    status, body, _ = client(url, "POST", "/createRoom", token, {"name": name, "invite": list(invite)})
    assert status == 200, body
    return body["room_id"]


def join(url, token, room_id):
    status, body, _ = client(url, "POST", f"/join/{urllib.parse.quote(room_id)}", token, {})
    assert status == 200, body


def jitsi_token(url, token, room_id):
    return http_json(f"{url}/_coop/v1/jitsi/token", "POST", {"room_id": room_id}, token)


def claims(jwt):
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def conference_of(room_id):
    return base64.b32encode(room_id.encode()).decode().rstrip("=")


def secret(shard):
    with open(os.path.join(shard.home, "keys", "jitsi_app_secret")) as f:
        return f.readline().strip()


def prosody_checks(shard, cases, now=None, key=None):
    """Runs the Node harness: {name: (ok, reason)} for each (name, jwt, conference). The key is
    the shard's app_secret unless given."""
    query = {"secret": key or secret(shard), "app_id": "coop-test", "audience": "jitsi-test", "domain": JITSI,
             "cases": [{"name": n, "jwt": j, "conference": c} for n, j, c in cases]}
    if now is not None:
        query["now"] = now
    result = subprocess.run(["node", os.path.join(CLIENTS, "jitsi_token_check.mjs")], input=json.dumps(query),
                            capture_output=True, text=True, timeout=60, cwd=CLIENTS)
    assert result.returncode == 0, result.stderr
    return {r["name"]: (r["ok"], r["reason"]) for r in json.loads(result.stdout)}


def verify(url, path, body, bearer=VERIFY_TOKEN):
    request = urllib.request.Request(f"{url}{path}", method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Prosody:
    """Debian's Prosody 0.12 on free loopback ports with tests/prosody's token module on the
    Jitsi domain's virtual host, configured as `coop room jitsi config` says for token auth;
    admits(jwt, conference) opens a BOSH session as Jitsi Meet's client does (?token=&room=
    in the URL) and authenticates with SASL ANONYMOUS: (admitted, Prosody's reason)."""

    def __init__(self, directory, secret):
        self.dir = os.path.join(directory, "prosody")
        os.makedirs(os.path.join(self.dir, "data"))
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        self.port = ports[0]
        modules = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "prosody")
        with open(os.path.join(self.dir, "prosody.cfg.lua"), "w") as f:
            f.write(f"""run_as_root = true
pidfile = "{self.dir}/prosody.pid"
data_path = "{self.dir}/data"
certificates = "{self.dir}"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.dir}/prosody.log" }} }}
plugin_paths = {{ "{modules}" }}
modules_enabled = {{ "bosh"; "saslauth" }}
modules_disabled = {{ "s2s"; "c2s"; "offline" }}
c2s_ports = {{ {ports[1]} }}
c2s_interfaces = {{ "127.0.0.1" }}
http_ports = {{ {self.port} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ }}
consider_bosh_secure = true
VirtualHost "{JITSI}"
    authentication = "coop_test_token"
    app_secret = "{secret}"
    asap_accepted_issuers = {{ "coop-test" }}
    asap_accepted_audiences = {{ "jitsi-test" }}
""")
        self.process = subprocess.Popen(["prosody", "--config", os.path.join(self.dir, "prosody.cfg.lua"), "-F"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.listening, timeout=20, what="Prosody's BOSH listener")

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            assert self.process.poll() is None, "prosody exited: " + self.log()
            return False

    def log(self):
        try:
            with open(os.path.join(self.dir, "prosody.log")) as f:
                return f.read()
        except OSError:
            return ""

    def post(self, query, body):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/http-bind?{query}", data=body.encode(),
                                         headers={"Content-Type": "text/xml; charset=utf-8"})
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.read().decode()

    def admits(self, jwt, conference):
        query = urllib.parse.urlencode({"token": jwt, "room": conference.lower()})
        opened = self.post(query, f"<body content='text/xml; charset=utf-8' hold='1' rid='100' to='{JITSI}' ver='1.6' "
                                  "wait='10' xml:lang='en' xmpp:version='1.0' xmlns='http://jabber.org/protocol/httpbind' "
                                  "xmlns:xmpp='urn:xmpp:xbosh'/>")
        sid = re.search(r"sid='([^']+)'", opened).group(1)
        assert "ANONYMOUS" in opened, opened
        answer = self.post(query, f"<body rid='101' sid='{sid}' xmlns='http://jabber.org/protocol/httpbind'>"
                                  "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/></body>")
        if "<success" in answer:
            return True, ""
        reason = re.search(r"<text>([^<]*)</text>", answer)
        return False, reason.group(1) if reason else answer

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def node_available():
    return shutil.which("node") and os.path.isdir(os.path.join(CLIENTS, "node_modules", "jsonwebtoken"))


def test_element_discovers_the_jitsi_domain_and_its_auth():
    with Shard(BIN) as shard:
        url = start(shard)
        status, body, headers = http_json(f"{url}/.well-known/matrix/client")
        assert status == 200 and body["im.vector.riot.jitsi"] == {"preferredDomain": JITSI}, body
        # What the Jitsi domain proxies to coop for Element; a browser reads it cross-origin.
        status, body, headers = http_json(f"{url}/.well-known/element/jitsi")
        assert status == 200 and body == {"auth": "openidtoken-jwt"}, body
        assert headers.get("Access-Control-Allow-Origin") == "*", headers
        # The admin's help names what coop's verification API and tokens need.
        text = shard.coop("room", "jitsi", "config").stdout
        assert 'authentication = "matrix_user_verification"' in text, text
        assert f'uvs_base_url = "{url}"' in text and f'uvs_auth_token = "{VERIFY_TOKEN}"' in text, text
        # Element's tokens are unsigned: owners come from the room's power levels, not the token.
        assert "matrix_power_sync" in text and "token_affiliation" not in text, text
        shard.coop("down")


def test_coop_room_call_writes_elements_widget_and_js_sdk_reads_it():
    with Shard(BIN) as shard:
        url = start(shard)
        alice = login(url, "alice")
        room_id = make_room(url, alice, "Kitchen")
        # A careless client's widgets, with fields of the wrong types, stop nothing.
        for key, content in (("odd", {"type": 5, "url": 7, "data": "x"}),
                             ("odder", {"type": "jitsi", "url": "https://x/", "data": "not an object"})):
            status, body, _ = client(url, "PUT", f"/rooms/{urllib.parse.quote(room_id)}/state/im.vector.modular.widgets/{key}",
                                     alice, content)
            assert status == 200, body
        assert shard.json("room", "call", "Kitchen", "--end", "--as", "alice")["ended"] == ["odder"]
        started = shard.json("room", "call", "Kitchen", "--audio-only", "--as", "alice")
        assert started["started"] and started["room_id"] == room_id, started
        conference = started["conference"]
        assert conference == conference_of(room_id), started
        assert started["url"] == f"https://{JITSI}/{conference}", started
        # A second call in the same room is the first one.
        again = shard.json("room", "call", "Kitchen", "--as", "alice")
        assert not again["started"] and again["widget_id"] == started["widget_id"], again
        # carol is not in the room: she may not start a call in it.
        refused = shard.coop("room", "call", "Kitchen", "--as", "carol", expect=None)
        assert refused.returncode != 0 and "not in this room" in refused.stderr, refused.stderr

        if node_available():
            result = subprocess.run(["node", os.path.join(CLIENTS, "jitsi_widget_read.mjs"), url, "alice", STRONG, room_id],
                                    capture_output=True, text=True, timeout=90, cwd=CLIENTS)
            assert result.returncode == 0, result.stdout + result.stderr
            seen = json.loads(result.stdout.split("RESULT ", 1)[1].splitlines()[0])
            widget = next(w for w in seen["widgets"] if w["id"] == started["widget_id"])
            assert widget["sender"] == f"@alice:{DOMAIN}", widget
            content = widget["content"]
            assert content["type"] == "jitsi" and content["name"] == "Jitsi", content
            assert content["data"] == {"conferenceId": conference, "roomName": "Kitchen", "isAudioOnly": True,
                                       "isVideoChannel": False, "domain": JITSI, "auth": "openidtoken-jwt"}, content
            assert content["url"].endswith("&auth=openidtoken-jwt"), content
            assert seen["layout"]["widgets"][started["widget_id"]]["container"] == "top", seen["layout"]
        else:
            print("  (node or jsonwebtoken missing: matrix-js-sdk part skipped)")

        ended = shard.json("room", "call", "Kitchen", "--end", "--as", "alice")
        assert ended["ended"] == [started["widget_id"]], ended
        status, state, _ = client(url, "GET", f"/rooms/{urllib.parse.quote(room_id)}/state", alice)
        widgets = {e["state_key"]: e["content"] for e in state if e["type"] == "im.vector.modular.widgets"}
        assert widgets[started["widget_id"]] == {} and widgets["odd"]["type"] == 5, widgets
        layout = next(e for e in state if e["type"] == "io.element.widgets.layout")
        assert started["widget_id"] not in layout["content"]["widgets"], layout
        assert "No call was going on" in shard.coop("room", "call", "Kitchen", "--end").stdout
        shard.coop("down")


def test_tokens_pass_jitsis_checks_for_members_and_guests_only():
    """auth = "token": Jitsi's own token authentication, which checks coop's signature."""
    with Shard(BIN) as shard:
        url = start(shard, auth="token")
        alice, bob, carol = login(url, "alice"), login(url, "bob"), login(url, "carol")
        kitchen = make_room(url, alice, "Kitchen", invite=[f"@bob:{DOMAIN}"])
        join(url, bob, kitchen)
        garden = make_room(url, carol, "Garden")
        here, there = conference_of(kitchen), conference_of(garden)

        status, mine, _ = jitsi_token(url, alice, kitchen)
        assert status == 200 and mine["conference"] == here and mine["moderator"], mine
        status, bobs, _ = jitsi_token(url, bob, kitchen)
        assert status == 200 and not bobs["moderator"], bobs  # power 0 < kick 50
        status, body, _ = jitsi_token(url, carol, kitchen)
        assert status == 403 and body["errcode"] == "M_FORBIDDEN", body  # not a member: no token at all
        status, body, _ = jitsi_token(url, None, kitchen)
        assert status == 401, body
        status, body, _ = jitsi_token(url, alice, "!nonsense:elsewhere")
        assert status in (403, 404), body
        who = claims(mine["token"])
        assert who["context"]["user"]["id"] == f"@alice:{DOMAIN}" and who["room"] == here.lower(), who
        assert who["exp"] - who["iat"] == 3600 and who["nbf"] < who["iat"], who
        assert "matrix" not in who["context"], who  # no OpenID token in Jitsi's own mode
        assert mine["url"] == f"https://{JITSI}/{here}?jwt={mine['token']}", mine

        guest = shard.json("room", "call", "Kitchen", "--guest-link", "--valid", "10m", "--name", "Visitor")
        guest_jwt = guest["url"].split("?jwt=", 1)[1]
        visitor = claims(guest_jwt)
        assert visitor["context"]["user"] == {"name": "Visitor", "moderator": False, "affiliation": "member"}, visitor
        assert 590 <= visitor["exp"] - int(time.time()) <= 600, visitor
        # The link alone on stdout, for scripts.
        plain = shard.coop("room", "call", "Kitchen", "--guest-link").stdout.strip()
        assert plain.startswith(f"https://{JITSI}/{here}?jwt=") and "\n" not in plain, plain
        for valid in ("8d", "soon", "1h30", "1d1d", "30s"):  # too long, not a time, a bare tail, twice, too short
            assert shard.coop("room", "call", "Kitchen", "--guest-link", "--valid", valid, expect=None).returncode != 0, valid
        assert shard.coop("room", "call", "Kitchen", "--guest-link", "--as", "alice", expect=None).returncode != 0
        # No verification service in this mode.
        assert verify(url, "/verify/user_in_room", {"token": "x", "room_id": kitchen})[0] == 404

        if not node_available():
            print("  (node or jsonwebtoken missing: Jitsi's checks skipped)")
            return
        header, payload, signature = mine["token"].split(".")
        forged_payload = base64.urlsafe_b64encode(json.dumps(dict(who, room=there.lower())).encode()).decode().rstrip("=")
        results = prosody_checks(shard, [
            ("member", mine["token"], here),
            ("member, other case", mine["token"], here.lower()),
            ("member without moderator", bobs["token"], here),
            ("guest", guest_jwt, here),
            ("member in a foreign room", mine["token"], there),
            ("guest in a foreign room", guest_jwt, there),
            ("tampered room claim", f"{header}.{forged_payload}.{signature}", there),
            ("tampered signature", f"{header}.{payload}.{signature[:-2]}AA", here),
        ])
        for name in ("member", "member, other case", "member without moderator", "guest"):
            assert results[name][0], (name, results[name])
        for name in ("member in a foreign room", "guest in a foreign room", "tampered room claim", "tampered signature"):
            assert not results[name][0], (name, results[name])
        # Prosody's clock at the guest link's expiry: refused, with no leeway; before nbf too.
        late = prosody_checks(shard, [("guest", guest_jwt, here)], now=visitor["exp"])
        assert not late["guest"][0] and "expired" in late["guest"][1], late
        early = prosody_checks(shard, [("guest", guest_jwt, here)], now=visitor["nbf"] - 1)
        assert not early["guest"][0], early
        # Signed with another secret: refused.
        other = prosody_checks(shard, [("member", mine["token"], here)], key="not the shard's secret at all")
        assert not other["member"][0], other
        shard.coop("down")


def test_nio_openid_token_verifies_membership_until_suspension():
    async def openid(url, user):
        nio_client = AsyncClient(url, f"@{user}:{DOMAIN}")
        try:
            assert isinstance(await nio_client.login(STRONG, device_name="phone"), LoginResponse)
            response = await nio_client.get_openid_token(f"@{user}:{DOMAIN}")
            assert response.__class__.__name__ == "GetOpenIDTokenResponse", response
            assert response.matrix_server_name == DOMAIN and response.token_type == "Bearer", response
            return response.access_token
        finally:
            await nio_client.close()

    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob = login(url, "alice"), login(url, "bob")
        kitchen = make_room(url, alice, "Kitchen", invite=[f"@bob:{DOMAIN}"])
        join(url, bob, kitchen)
        lobby = make_room(url, alice, "Lobby")
        bob_token = asyncio.run(openid(url, "bob"))
        carol_token = asyncio.run(openid(url, "carol"))

        # The Server-Server API's userinfo, on the client listener.
        status, body, _ = http_json(f"{url}/_matrix/federation/v1/openid/userinfo?access_token={bob_token}")
        assert status == 200 and body == {"sub": f"@bob:{DOMAIN}"}, body
        status, body, _ = http_json(f"{url}/_matrix/federation/v1/openid/userinfo?access_token=nonsense")
        assert status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN", body

        status, answer = verify(url, "/verify/user", {"token": bob_token, "matrix_server_name": DOMAIN})
        assert status == 200 and answer == {"results": {"user": True}, "user_id": f"@bob:{DOMAIN}"}, answer
        status, answer = verify(url, "/verify/user_in_room", {"token": bob_token, "room_id": kitchen})
        assert status == 200 and answer["results"] == {"user": True, "room_membership": True}, answer
        levels = answer["power_levels"]
        assert levels["user"] == 0 and levels["room"]["kick"] == 50 and levels["room"]["state_default"] == 50, answer
        assert "users" not in levels["room"], answer

        # coop's own tokens in this mode: the member's carries an OpenID token that verifies, the
        # guest's a proof for one room; both are signed as Element signs ("notused"), which is
        # all matrix-org's module checks of the JWT itself.
        status, mine, _ = jitsi_token(url, bob, kitchen)
        proof = claims(mine["token"])["context"]["matrix"]
        assert proof["room_id"] == kitchen and proof["server_name"] == DOMAIN, proof
        status, answer = verify(url, "/verify/user_in_room", {"token": proof["token"], "room_id": kitchen})
        assert answer["results"] == {"user": True, "room_membership": True}, answer
        guest = shard.json("room", "call", "Kitchen", "--guest-link", "--valid", "5m")
        guest_jwt = guest["url"].split("?jwt=", 1)[1]
        guest_proof = claims(guest_jwt)["context"]["matrix"]
        status, answer = verify(url, "/verify/user_in_room", {"token": guest_proof["token"], "room_id": kitchen})
        assert status == 200 and answer["results"] == {"user": True, "room_membership": True}, answer
        assert "power_levels" not in answer, answer  # no owner from a guest link
        status, answer = verify(url, "/verify/user_in_room", {"token": guest_proof["token"], "room_id": lobby})
        assert answer["results"]["user"] is False, answer
        if node_available():
            signed = prosody_checks(shard, [("member", mine["token"], mine["conference"]), ("guest", guest_jwt, mine["conference"])],
                                    key="notused")
            assert signed["member"][0] and signed["guest"][0], signed
        # Not a member of that room; a member of none; a token of another server.
        status, answer = verify(url, "/verify/user_in_room", {"token": bob_token, "room_id": lobby})
        assert answer["results"] == {"user": True, "room_membership": False}, answer
        status, answer = verify(url, "/verify/user_in_room", {"token": carol_token, "room_id": kitchen})
        assert answer["results"] == {"user": True, "room_membership": False}, answer
        status, answer = verify(url, "/verify/user_in_room",
                                {"token": bob_token, "room_id": kitchen, "matrix_server_name": "elsewhere.test"})
        assert answer["results"]["user"] is False, answer
        # The service's own refusals: no bearer, missing fields, hostile bodies.
        status, text = verify(url, "/verify/user_in_room", {"token": bob_token, "room_id": kitchen}, bearer="wrong")
        assert status == 403, text
        status, text = verify(url, "/verify/user_in_room", {"token": bob_token})
        assert status == 400 and "room_id" in text, text
        status, text = verify(url, "/verify/user_in_room", {"token": "x" * 100000, "room_id": kitchen})
        assert status in (200, 400, 413), text
        status, text = verify(url, "/verify/user", json.loads("[" * 50 + "]" * 50))
        assert status == 400, text

        shard.coop("member", "suspend", "bob")
        def refused():
            return verify(url, "/verify/user_in_room", {"token": bob_token, "room_id": kitchen})[1]["results"]["user"] is False
        wait_for(refused, timeout=10, what="bob's OpenID token to stop admitting him")
        status, body, _ = http_json(f"{url}/_matrix/federation/v1/openid/userinfo?access_token={bob_token}")
        assert status == 401, body
        # The worker is still there for everyone else.
        assert jitsi_token(url, alice, kitchen)[0] == 200
        shard.coop("down")


def test_debians_prosody_admits_coop_tokens_by_jitsis_rules():
    """Prosody 0.12 itself checks the tokens: its util.jwt verifies the HS256 signature, the
    test's token module (tests/prosody) the claims, as Jitsi's token authentication would."""
    if not shutil.which("prosody"):
        print("  (prosody missing: skipped)")
        return
    with Shard(BIN) as shard:
        url = start(shard, auth="token")
        prosody = Prosody(shard.dir, secret(shard))
        try:
            alice, bob = login(url, "alice"), login(url, "bob")
            kitchen = make_room(url, alice, "Kitchen")
            garden = make_room(url, bob, "Garden")
            mine = jitsi_token(url, alice, kitchen)[1]
            assert prosody.admits(mine["token"], mine["conference"]) == (True, ""), prosody.log()
            guest = shard.json("room", "call", "Kitchen", "--guest-link", "--valid", "5m")
            guest_jwt = guest["url"].split("?jwt=", 1)[1]
            assert prosody.admits(guest_jwt, conference_of(kitchen)) == (True, ""), prosody.log()
            admitted, reason = prosody.admits(guest_jwt, conference_of(garden))
            assert not admitted and "room" in reason, reason
            header, payload, signature = mine["token"].split(".")
            admitted, reason = prosody.admits(f"{header}.{payload}.{signature[::-1]}", mine["conference"])
            assert not admitted and "signature" in reason, reason
            status, body, _ = jitsi_token(url, bob, kitchen)  # not in the room: coop signs nothing
            assert status == 403, body
            # A token signed with another secret, as a forger would.
            claims_part = base64.urlsafe_b64encode(json.dumps(dict(claims(mine["token"]), exp=int(time.time()) + 60)).encode())
            forged = f"{header}.{claims_part.decode().rstrip('=')}.{signature}"
            admitted, reason = prosody.admits(forged, mine["conference"])
            assert not admitted, reason
        finally:
            prosody.stop()
        shard.coop("down")


def test_jitsi_token_mode_and_calls_off():
    """auth = "token": Jitsi's own token auth; Element's well-known is not served and widgets
    name no auth mode; Prosody's settings are app_id/app_secret. Without a domain, no calls."""
    with Shard(BIN) as shard:
        url = start(shard, auth="token")
        status, body, _ = http_json(f"{url}/.well-known/element/jitsi")
        assert status == 404, body
        text = shard.coop("room", "jitsi", "config").stdout
        for line in ('authentication = "token"', 'app_id = "coop-test"', f'app_secret = "{secret(shard)}"',
                     'asap_accepted_issuers = { "coop-test" }', 'asap_accepted_audiences = { "jitsi-test" }'):
            assert line in text, (line, text)
        alice = login(url, "alice")
        room_id = make_room(url, alice, "Kitchen")
        refused = shard.coop("room", "call", "Kitchen", expect=None)  # @coop is not in alice's room
        assert refused.returncode != 0 and "--as HANDLE" in refused.stderr, refused.stderr
        started = shard.json("room", "call", "Kitchen", "--as", "alice")
        assert "auth" not in started["widget"]["content"]["data"], started
        status, mine, _ = jitsi_token(url, alice, room_id)
        assert status == 200 and "matrix" not in claims(mine["token"])["context"], mine
        if node_available():
            assert prosody_checks(shard, [("member", mine["token"], mine["conference"])])["member"][0]
        shard.coop("down")

    with Shard(BIN) as shard:
        shard.domain = DOMAIN
        shard.init()
        shard.coop("up")
        url = homeserver(shard)
        status, body, _ = http_json(f"{url}/.well-known/matrix/client")
        assert "im.vector.riot.jitsi" not in body, body
        result = shard.coop("room", "call", "Cooperative", expect=None)
        assert result.returncode != 0 and "[workers.room.jitsi] domain" in result.stderr, result.stderr
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_element_discovers_the_jitsi_domain_and_its_auth,
        test_coop_room_call_writes_elements_widget_and_js_sdk_reads_it,
        test_tokens_pass_jitsis_checks_for_members_and_guests_only,
        test_nio_openid_token_verifies_membership_until_suspension,
        test_debians_prosody_admits_coop_tokens_by_jitsis_rules,
        test_jitsi_token_mode_and_calls_off,
    ])
