"""coop-federate's first part of the Server-Server API, against a fake remote homeserver built
with Debian's python3-signedjson (an implementation of Matrix signing independent of coop's):
published keys that signedjson verifies, X-Matrix request authentication (good, forged,
misdirected, unknown origin), the notary key query, the directory and profile queries,
OpenID userinfo, and `coop federate keys|peers`."""
import base64
import json
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import signedjson.key
import signedjson.sign

from coopshard import Shard, bin_dir_from_args, listener, run_tests
from test_room_nio import STRONG, http_json

BIN = bin_dir_from_args()
DOMAIN = "fed.test"
REMOTE = "remote.test"
UNTRUSTED = ssl._create_unverified_context()  # the shard's self-signed certificate


def unpadded(data):
    return base64.b64encode(data).decode().rstrip("=")


class FakeHomeserver:
    """A remote homeserver that publishes its keys as the spec says (signed by signedjson) and
    signs its requests to coop with X-Matrix."""

    def __init__(self, name=REMOTE):
        self.name = name
        self.key = signedjson.key.generate_signing_key("fake1")
        self.peer_keys = {}  # server name -> signedjson verify key, for requests made to us
        self.seen = []       # (path, verdict) of the requests that reached the fake
        keys = {"server_name": name, "valid_until_ts": int(time.time() * 1000) + 3600_000, "old_verify_keys": {},
                "verify_keys": {f"ed25519:{self.key.version}": {"key": unpadded(self.key.verify_key.encode())}}}
        self.published = signedjson.sign.sign_json(keys, name, self.key)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/_matrix/federation/v1/query/profile"):
                    verdict = fake.check_x_matrix("GET", self.path, self.headers.get("Authorization", ""))
                    fake.seen.append((self.path, verdict))
                    body = json.dumps({"displayname": "Bob of B"} if verdict == "ok" else
                                      {"errcode": "M_UNAUTHORIZED", "error": verdict}).encode()
                    self.send_response(200 if verdict == "ok" else 401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/_matrix/key/v2/server":
                    body = json.dumps(fake.published).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def authorization(self, method, uri, destination, content=None, key=None):
        request = {"method": method, "uri": uri, "origin": self.name, "destination": destination}
        if content is not None:
            request["content"] = content
        key = key or self.key
        signed = signedjson.sign.sign_json(request, self.name, key)
        signature = signed["signatures"][self.name][f"ed25519:{key.version}"]
        return (f'X-Matrix origin="{self.name}",destination="{destination}",key="ed25519:{key.version}",'
                f'sig="{signature}"')

    def check_x_matrix(self, method, uri, header, content=None):
        """The receiving side of "Request Authentication", done with signedjson: "ok" or why not."""
        if not header.startswith("X-Matrix "):
            return "no X-Matrix header"
        params = {}
        for part in header[len("X-Matrix "):].split(","):
            name, _, value = part.strip().partition("=")
            params[name] = value.strip('"')
        if params.get("destination") != self.name:
            return "not meant for us"
        origin = params.get("origin")
        if origin not in self.peer_keys:
            return "unknown origin"
        request = {"method": method, "uri": uri, "origin": origin, "destination": self.name,
                   "signatures": {origin: {params.get("key"): params.get("sig")}}}
        if content is not None:
            request["content"] = content
        try:
            signedjson.sign.verify_signed_json(request, origin, self.peer_keys[origin])
        except signedjson.sign.SignatureVerifyException as e:
            return f"bad signature: {e}"
        return "ok"

    def close(self):
        self.server.shutdown()


def federation(url, method, uri, authorization=None, body=None):
    request = urllib.request.Request(url + uri, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=30, context=UNTRUSTED) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def verify_key(published, server, key_id):
    raw = base64.b64decode(published["verify_keys"][key_id]["key"] + "==")
    return signedjson.key.decode_verify_key_bytes(key_id, raw)


def start(shard, fake):
    shard.domain = DOMAIN
    shard.init()
    with open(os.path.join(shard.home, "coop.toml"), "a") as f:
        f.write(f'\n[workers.federate.resolve]\n"{fake.name}" = "{fake.url}"\n')
    shard.coop("up")
    shard.coop("member", "add", "alice", "--name", "Alice Liddell", "--password-stdin", input=STRONG)
    return listener(shard, "federate", "federation"), listener(shard, "room", "client")


def test_keys_are_published_signed_and_signedjson_verifies_them():
    fake = FakeHomeserver()
    try:
        with Shard(BIN) as shard:
            url, _ = start(shard, fake)
            assert url.startswith("https://"), url
            status, published = federation(url, "GET", "/_matrix/key/v2/server")
            assert status == 200 and published["server_name"] == DOMAIN, published
            (key_id,) = published["verify_keys"].keys()
            signedjson.sign.verify_signed_json(published, DOMAIN, verify_key(published, DOMAIN, key_id))
            assert published["valid_until_ts"] > time.time() * 1000 + 3600_000, published
            # The same key coop-room signs events with, as `coop federate keys` shows it.
            shown = shard.json("federate", "keys")
            assert shown["keys"][0] == {"key_id": key_id, "public_key": published["verify_keys"][key_id]["key"]}, shown
            assert "others may use them until" in shard.coop("federate", "keys").stdout
            status, version = federation(url, "GET", "/_matrix/federation/v1/version")
            assert status == 200 and version["server"]["name"] == "coop", version
            status, body = federation(url, "GET", "/_matrix/federation/v1/no/such/thing")
            assert status == 404 and body["errcode"] == "M_UNRECOGNIZED", body

            # Notary: our keys, and the remote's as fetched and checked, countersigned by us.
            status, answer = federation(url, "GET", f"/_matrix/key/v2/query/{REMOTE}")
            assert status == 200 and len(answer["server_keys"]) == 1, answer
            relayed = answer["server_keys"][0]
            signedjson.sign.verify_signed_json(relayed, REMOTE, signedjson.key.get_verify_key(fake.key))
            signedjson.sign.verify_signed_json(relayed, DOMAIN, verify_key(published, DOMAIN, key_id))
            status, answer = federation(url, "POST", "/_matrix/key/v2/query", body={"server_keys": {DOMAIN: {}, "bad name!": {}}})
            assert status == 200 and [k["server_name"] for k in answer["server_keys"]] == [DOMAIN], answer
            shard.coop("down")
    finally:
        fake.close()


def test_our_requests_are_signed_so_that_signedjson_admits_them():
    fake = FakeHomeserver()
    try:
        with Shard(BIN) as shard:
            url, _ = start(shard, fake)
            _, published = federation(url, "GET", "/_matrix/key/v2/server")
            (key_id,) = published["verify_keys"].keys()
            fake.peer_keys[DOMAIN] = verify_key(published, DOMAIN, key_id)
            answer = shard.json("federate", "profile", f"@bob:{REMOTE}")
            assert answer["status"] == 200 and answer["answer"] == {"displayname": "Bob of B"}, answer
            assert fake.seen == [(f"/_matrix/federation/v1/query/profile?user_id=%40bob%3A{REMOTE}", "ok")], fake.seen
            assert "Bob of B" in shard.coop("federate", "profile", f"@bob:{REMOTE}").stdout
            # With a key the fake does not hold for us, it refuses, and coop says so.
            fake.peer_keys[DOMAIN] = signedjson.key.get_verify_key(signedjson.key.generate_signing_key(key_id.split(":")[1]))
            refused = shard.coop("federate", "profile", f"@bob:{REMOTE}", "--json", expect=None)
            assert refused.returncode != 0 and json.loads(refused.stdout)["status"] == 401, refused.stdout
            # Nobody is asked about our own users or about names that are not user IDs.
            for bad in (f"@alice:{DOMAIN}", "bob", "@bob:bad name"):
                assert shard.coop("federate", "profile", bad, expect=None).returncode != 0, bad
            shard.coop("down")
    finally:
        fake.close()


def test_requests_are_admitted_by_their_x_matrix_signature_only():
    fake = FakeHomeserver()
    impostor = signedjson.key.generate_signing_key("fake1")  # same key ID, another key
    try:
        with Shard(BIN) as shard:
            url, client_url = start(shard, fake)
            _, login, _ = http_json(f"{client_url}/_matrix/client/v3/login", "POST",
                                    {"type": "m.login.password", "user": "alice", "password": STRONG})
            token = login["access_token"]
            status, created, _ = http_json(f"{client_url}/_matrix/client/v3/createRoom", "POST",
                                           {"name": "Kitchen", "room_alias_name": "kitchen"}, token)
            assert status == 200, created

            alias = urllib.parse.quote(f"#kitchen:{DOMAIN}")
            directory = f"/_matrix/federation/v1/query/directory?room_alias={alias}"
            status, body = federation(url, "GET", directory, fake.authorization("GET", directory, DOMAIN))
            assert status == 200 and body == {"room_id": created["room_id"], "servers": [DOMAIN]}, body
            missing = f"/_matrix/federation/v1/query/directory?room_alias={urllib.parse.quote('#nothing:' + DOMAIN)}"
            status, body = federation(url, "GET", missing, fake.authorization("GET", missing, DOMAIN))
            assert status == 404 and body["errcode"] == "M_NOT_FOUND", body

            profile = f"/_matrix/federation/v1/query/profile?user_id={urllib.parse.quote('@alice:' + DOMAIN)}"
            status, body = federation(url, "GET", profile, fake.authorization("GET", profile, DOMAIN))
            assert status == 200 and body == {"displayname": "Alice Liddell"}, body
            nobody = f"/_matrix/federation/v1/query/profile?user_id={urllib.parse.quote('@nobody:' + DOMAIN)}"
            status, body = federation(url, "GET", nobody, fake.authorization("GET", nobody, DOMAIN))
            assert status == 404, body

            refusals = [
                ("no header", None),
                ("another key under the same ID", fake.authorization("GET", profile, DOMAIN, key=impostor)),
                ("signed for another server", fake.authorization("GET", profile, "elsewhere.test")),
                ("signed for another request", fake.authorization("GET", directory, DOMAIN)),
                ("a scheme that is not X-Matrix", "Bearer something"),
                ("garbage", 'X-Matrix origin="' + "x" * 300 + '",key="ed25519:a",sig="AAAA"'),
            ]
            for what, header in refusals:
                status, body = federation(url, "GET", profile, header)
                assert status == 401 and body["errcode"] == "M_UNAUTHORIZED", (what, status, body)
            # An origin whose keys cannot be fetched.
            stranger = FakeHomeserver("stranger.test")
            try:
                status, body = federation(url, "GET", profile, stranger.authorization("GET", profile, DOMAIN))
                assert status == 401, body
            finally:
                stranger.close()

            peers = {p["server_name"]: p for p in shard.json("federate", "peers")}
            # The impostor and the request signed for another path; a misdirected one never reaches a key check.
            assert peers[REMOTE]["requests_in"] == 4 and peers[REMOTE]["refused_in"] == 2, peers
            assert peers[REMOTE]["last_error"] is None, peers
            assert peers["stranger.test"]["last_error"], peers  # not resolvable from here
            assert "stranger.test" in shard.coop("federate", "peers").stdout

            # Deny lists and allow lists, both ways, kept across a restart.
            shard.coop("federate", "deny", REMOTE)
            status, body = federation(url, "GET", profile, fake.authorization("GET", profile, DOMAIN))
            assert status == 403 and body["errcode"] == "M_FORBIDDEN", body
            refused = shard.coop("federate", "profile", f"@bob:{REMOTE}", expect=None)
            assert refused.returncode != 0 and "does not federate with" in refused.stderr, refused.stderr
            assert shard.coop("federate", "allow", REMOTE, "--remove", expect=None).returncode != 0  # not on that list
            shard.coop("federate", "deny", REMOTE, "--remove")
            assert federation(url, "GET", profile, fake.authorization("GET", profile, DOMAIN))[0] == 200
            shard.coop("federate", "allow", "friends.test")  # an allow list without remote.test
            shard.coop("down")
            shard.coop("up")
            summary = shard.json("federate", "status")
            assert summary["mode"] == "allow list" and summary["allowed"] == ["friends.test"], summary
            status, body = federation(url, "GET", profile, fake.authorization("GET", profile, DOMAIN))
            assert status == 403, body
            assert "allow list" in shard.coop("federate", "status").stdout
            shard.coop("federate", "allow", REMOTE)
            assert federation(url, "GET", profile, fake.authorization("GET", profile, DOMAIN))[0] == 200
            assert shard.coop("federate", "deny", "not a name", expect=None).returncode != 0

            # OpenID userinfo on the federation listener, for a token Alice asked for.
            status, openid, _ = http_json(
                f"{client_url}/_matrix/client/v3/user/{urllib.parse.quote('@alice:' + DOMAIN)}/openid/request_token", "POST", {}, token)
            assert status == 200, openid
            status, body = federation(url, "GET", f"/_matrix/federation/v1/openid/userinfo?access_token={openid['access_token']}")
            assert status == 200 and body == {"sub": f"@alice:{DOMAIN}"}, body
            status, body = federation(url, "GET", "/_matrix/federation/v1/openid/userinfo?access_token=nope")
            assert status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN", body
            shard.coop("down")
    finally:
        fake.close()


if __name__ == "__main__":
    run_tests([
        test_keys_are_published_signed_and_signedjson_verifies_them,
        test_our_requests_are_signed_so_that_signedjson_admits_them,
        test_requests_are_admitted_by_their_x_matrix_signature_only,
    ])
