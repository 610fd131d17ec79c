"""End-to-end encryption on coop-room: the key endpoints as Complement's client-server tests
check them (TestUploadKey*, TestKeyClaimOrdering, TestKeyChangesLocal, TestDeviceListUpdates,
TestToDeviceMessages, TestE2EKeyBackupReplaceRoomKeyRules, cross-signing), then real clients:
matrix-nio with python3-olm, and matrix-js-sdk with its Rust crypto, in encrypted rooms. No
message's plaintext may be found under COOP_HOME afterwards."""
import asyncio
import base64
import json
import os
import shutil
import subprocess
import threading
import urllib.parse

import nacl.signing
from nio import AsyncClient, AsyncClientConfig, LoginResponse, MegolmEvent, RoomMessageText, SyncResponse

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for
from test_room_nio import DOMAIN, STRONG, http_json, start

BIN = bin_dir_from_args()
CLIENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients")
ALICE, BOB, CAROL = f"@alice:{DOMAIN}", f"@bob:{DOMAIN}", f"@carol:{DOMAIN}"


class Member:
    """One logged-in device speaking raw HTTP."""

    def __init__(self, url, user, password=STRONG, device=None):
        self.url, self.user = url, user
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}
        if device:
            body["device_id"] = device
        status, answer, _ = http_json(f"{url}/_matrix/client/v3/login", "POST", body)
        assert status == 200, answer
        self.user_id, self.token, self.device = answer["user_id"], answer["access_token"], answer["device_id"]
        self.since = None

    def call(self, method, path, body=None):
        return http_json(f"{self.url}/_matrix/client/v3{path}", method, body, self.token)[:2]

    def ok(self, method, path, body=None):
        status, answer = self.call(method, path, body)
        assert status == 200, (method, path, status, answer)
        return answer

    def sync(self, timeout=0):
        query = {"timeout": str(timeout)}
        if self.since:
            query["since"] = self.since
        answer = self.ok("GET", "/sync?" + urllib.parse.urlencode(query))
        self.since = answer["next_batch"]
        return answer


def b64(raw):
    return base64.b64encode(raw).decode().rstrip("=")


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(obj, user_id, key_id, signing_key):
    """Matrix "Signing JSON": the signature over the object without signatures and unsigned."""
    bare = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = b64(signing_key.sign(canonical(bare)).signature)
    obj.setdefault("signatures", {}).setdefault(user_id, {})[key_id] = signature
    return obj


def device_keys(member, signing_key=None):
    signing_key = signing_key or nacl.signing.SigningKey.generate()
    keys = {"user_id": member.user_id, "device_id": member.device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{member.device}": b64(os.urandom(32)),
                     f"ed25519:{member.device}": b64(bytes(signing_key.verify_key))}}
    return sign(keys, member.user_id, f"ed25519:{member.device}", signing_key), signing_key


def one_time_key(member, key_id):
    return {f"signed_curve25519:{key_id}": {"key": b64(os.urandom(32)),
                                             "signatures": {member.user_id: {f"ed25519:{member.device}": "sig"}}}}


def shared_room(owner, *others, encrypted=False):
    body = {"invite": [o.user_id for o in others]}
    if encrypted:
        body["initial_state"] = [{"type": "m.room.encryption", "state_key": "",
                                  "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]
    room_id = owner.ok("POST", "/createRoom", body)["room_id"]
    for o in others:
        o.ok("POST", f"/join/{urllib.parse.quote(room_id)}", {})
    return room_id


def assert_no_plaintext(shard, needles):
    """Walks COOP_HOME (databases, blobs, logs) for any of the needles."""
    for root, _, files in os.walk(shard.home):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for needle in needles:
                assert needle.encode() not in data, f"plaintext {needle!r} found in {path}"


def test_upload_key():
    """TestUploadKey: device keys for this device only, one-time keys counted, a key id that
    comes back with other content refused, keys/query lists with display names."""
    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob = Member(url, "alice"), Member(url, "bob")
        keys, _ = device_keys(alice)
        otk = one_time_key(alice, "AAAAAQ")
        answer = alice.ok("POST", "/keys/upload", {"device_keys": keys, "one_time_keys": otk})
        assert answer["one_time_key_counts"] == {"signed_curve25519": 1}, answer

        # Should_reject_keys_claiming_to_belong_to_a_different_user
        other = dict(keys, user_id=BOB)
        status, answer = alice.call("POST", "/keys/upload", {"device_keys": other})
        assert status == 400, answer
        status, answer = alice.call("POST", "/keys/upload", {"device_keys": dict(keys, device_id="NOTMINE")})
        assert status == 400, answer
        # Rejects_invalid_device_keys
        status, answer = alice.call("POST", "/keys/upload", {"device_keys": {"user_id": alice.user_id}})
        assert status == 400 and answer["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), answer
        status, answer = alice.call("POST", "/keys/upload", {"one_time_keys": {"nocolon": "x"}})
        assert status == 400, answer

        # The same one-time key again is fine; the same id with other content is refused.
        answer = alice.ok("POST", "/keys/upload", {"one_time_keys": otk})
        assert answer["one_time_key_counts"]["signed_curve25519"] == 1, answer
        changed = {"signed_curve25519:AAAAAQ": {"key": b64(os.urandom(32)), "signatures": {}}}
        status, answer = alice.call("POST", "/keys/upload", {"one_time_keys": changed})
        assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer

        # Can_query_device_keys_using_POST, with the device's name in unsigned.
        alice.ok("PUT", f"/devices/{alice.device}", {"display_name": "Alice's laptop"})
        answer = bob.ok("POST", "/keys/query", {"device_keys": {ALICE: []}})
        got = answer["device_keys"][ALICE][alice.device]
        assert got["keys"] == keys["keys"] and got["signatures"] == keys["signatures"], got
        assert got["unsigned"]["device_display_name"] == "Alice's laptop", got
        answer = bob.ok("POST", "/keys/query", {"device_keys": {ALICE: ["NOSUCH"]}})
        assert answer["device_keys"][ALICE] == {}, answer
        # device_keys values must be lists.
        status, answer = bob.call("POST", "/keys/query", {"device_keys": {ALICE: alice.device}})
        assert status == 400, answer
        status, answer = bob.call("POST", "/keys/query", {"device_keys": [ALICE]})
        assert status == 400, answer
        # Another server's user is a failure, not an error.
        answer = bob.ok("POST", "/keys/query", {"device_keys": {"@x:elsewhere.test": []}})
        assert "elsewhere.test" in answer["failures"], answer
        shard.coop("down")


def test_key_claim_ordering():
    """TestKeyClaimOrdering and fallback keys: one-time keys oldest first and each once, then
    the fallback key, which stays and is reported used until a new one replaces it."""
    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob = Member(url, "alice"), Member(url, "bob")
        alice.ok("POST", "/keys/upload", {"one_time_keys": one_time_key(alice, "first")})
        alice.ok("POST", "/keys/upload", {"one_time_keys": one_time_key(alice, "second")})
        fallback = {"signed_curve25519:fb1": {"key": b64(os.urandom(32)), "fallback": True, "signatures": {}}}
        alice.ok("POST", "/keys/upload", {"fallback_keys": fallback})
        sync = alice.sync()
        assert sync["device_one_time_keys_count"]["signed_curve25519"] == 2, sync
        assert sync["device_unused_fallback_key_types"] == ["signed_curve25519"], sync

        claim = {"one_time_keys": {ALICE: {alice.device: "signed_curve25519"}}}
        got = [list(bob.ok("POST", "/keys/claim", claim)["one_time_keys"][ALICE][alice.device])[0] for _ in range(4)]
        assert got == ["signed_curve25519:first", "signed_curve25519:second", "signed_curve25519:fb1",
                       "signed_curve25519:fb1"], got
        sync = alice.sync()
        assert sync["device_one_time_keys_count"]["signed_curve25519"] == 0, sync
        assert sync["device_unused_fallback_key_types"] == [], sync
        # A new fallback key is unused again; the used one is not handed out any more.
        fallback2 = {"signed_curve25519:fb2": {"key": b64(os.urandom(32)), "fallback": True, "signatures": {}}}
        alice.ok("POST", "/keys/upload", {"fallback_keys": fallback2})
        assert alice.sync()["device_unused_fallback_key_types"] == ["signed_curve25519"]
        got = bob.ok("POST", "/keys/claim", claim)["one_time_keys"][ALICE][alice.device]
        assert list(got) == ["signed_curve25519:fb2"], got
        # A device without keys is simply absent.
        got = bob.ok("POST", "/keys/claim", {"one_time_keys": {BOB: {"NOSUCH": "signed_curve25519"}}})
        assert got["one_time_keys"] == {}, got
        status, _ = bob.call("POST", "/keys/claim", {"one_time_keys": {ALICE: [alice.device]}})
        assert status == 400
        shard.coop("down")


def test_key_changes_local_and_device_list_updates():
    """TestKeyChangesLocal and TestDeviceListUpdates: members who share a room hear of new keys,
    of a member who joins and of one who leaves them; every member shares the cooperative's
    Space, so a member is "left" only once they leave it (suspension)."""
    with Shard(BIN) as shard:
        url = start(shard)
        shard.coop("member", "add", "carol", "--password-stdin", input=STRONG)
        alice, bob, carol = Member(url, "alice"), Member(url, "bob"), Member(url, "carol")
        room_id = shared_room(alice, bob)
        alice.sync()
        start_token = alice.since

        keys, _ = device_keys(bob)
        bob.ok("POST", "/keys/upload", {"device_keys": keys})
        sync = alice.sync()
        assert BOB in sync["device_lists"]["changed"], sync["device_lists"]
        changes = alice.ok("GET", "/keys/changes?" + urllib.parse.urlencode({"from": start_token, "to": alice.since}))
        assert BOB in changes["changed"], changes
        assert alice.sync()["device_lists"]["changed"] == [], "the same change reported twice"
        status, _ = alice.call("GET", "/keys/changes?from=nonsense&to=s1_1")
        assert status == 400

        # Carol joins the room: alice looks at her keys again; carol learns of alice and bob.
        carol.sync()
        alice.ok("POST", f"/rooms/{urllib.parse.quote(room_id)}/invite", {"user_id": CAROL})
        carol.ok("POST", f"/join/{urllib.parse.quote(room_id)}", {})
        assert CAROL in alice.sync()["device_lists"]["changed"]
        carol_sync = carol.sync()
        assert {ALICE, BOB} <= set(carol_sync["device_lists"]["changed"]), carol_sync["device_lists"]
        # Carol leaves the room but still shares the cooperative's Space: not "left".
        carol.ok("POST", f"/rooms/{urllib.parse.quote(room_id)}/leave", {})
        assert CAROL not in alice.sync()["device_lists"]["left"]
        # Suspended, carol leaves the Space too: alice stops tracking her.
        shard.coop("member", "suspend", "carol", "--reason", "test")
        left = set()
        wait_for(lambda: left.update(alice.sync()["device_lists"]["left"]) or CAROL in left, what="carol in left")

        # A deleted device's keys go, and the peers hear of it.
        uia = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"}, "password": STRONG}
        status, answer = bob.call("POST", "/delete_devices", {"devices": [bob.device]})
        assert status == 401 and answer["flows"][0]["stages"] == ["m.login.password"], answer
        status, answer = bob.call("POST", "/delete_devices", {"devices": [bob.device],
                                                              "auth": dict(uia, password="wrong")})
        assert status == 401 and answer["errcode"] == "M_FORBIDDEN", answer
        bob2 = Member(url, "bob")
        bob2.ok("POST", "/delete_devices", {"devices": [bob.device], "auth": uia})
        status, _ = bob.call("GET", "/account/whoami")
        assert status == 401, "the deleted device's token still works"
        assert BOB in alice.sync()["device_lists"]["changed"]
        answer = alice.ok("POST", "/keys/query", {"device_keys": {BOB: []}})
        assert bob.device not in answer["device_keys"][BOB], answer
        shard.coop("down")


def test_keys_of_a_vanished_device_are_forgotten_at_start():
    """A crash between removing a device and removing its keys leaves keys for a device that is
    gone; the next start removes them, so nobody encrypts to it."""
    import sqlite3
    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob = Member(url, "alice"), Member(url, "bob")
        keys, _ = device_keys(bob)
        bob.ok("POST", "/keys/upload", {"device_keys": keys, "one_time_keys": one_time_key(bob, "x")})
        shard.coop("down")
        with sqlite3.connect(os.path.join(shard.home, "room.db")) as db:
            db.execute("DELETE FROM devices WHERE device_id = ?", (bob.device,))
        shard.coop("up")
        answer = alice.ok("POST", "/keys/query", {"device_keys": {BOB: []}})
        assert answer["device_keys"][BOB] == {}, answer
        claimed = alice.ok("POST", "/keys/claim", {"one_time_keys": {BOB: {bob.device: "signed_curve25519"}}})
        assert claimed["one_time_keys"] == {}, claimed
        shard.coop("down")


def test_to_device_messages():
    """TestToDeviceMessages: delivered to the named device (or all with "*"), once per
    transaction, again until a later token acknowledges them, and kept across a restart."""
    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob, bob2 = Member(url, "alice"), Member(url, "bob"), Member(url, "bob")
        bob.sync()
        bob2.sync()
        body = {"messages": {BOB: {bob.device: {"secret": "for one device"}}}}
        alice.ok("PUT", "/sendToDevice/m.test/txn1", body)
        alice.ok("PUT", "/sendToDevice/m.test/txn1", body)  # a retry stores nothing twice
        first_token = bob.since
        events = bob.sync()["to_device"]["events"]
        assert events == [{"sender": ALICE, "type": "m.test", "content": {"secret": "for one device"}}], events
        assert bob2.sync()["to_device"]["events"] == [], "another device got a message it was not sent"
        # The same token again: not acknowledged yet, so the same message again.
        acked_token = bob.since
        bob.since = first_token
        assert len(bob.sync()["to_device"]["events"]) == 1
        bob.since = acked_token
        assert bob.sync()["to_device"]["events"] == []

        alice.ok("PUT", "/sendToDevice/m.test/txn2", {"messages": {BOB: {"*": {"n": 2}}}})
        assert [e["content"] for e in bob2.sync()["to_device"]["events"]] == [{"n": 2}]
        # bob has not synced since: the message survives a restart of the shard.
        shard.coop("down")
        shard.coop("up")
        assert [e["content"] for e in bob.sync()["to_device"]["events"]] == [{"n": 2}]
        # Long-poll: a parked sync is woken by a message.
        result = {}
        waiter = threading.Thread(target=lambda: result.setdefault("sync", bob.sync(timeout=20000)))
        waiter.start()
        alice.ok("PUT", "/sendToDevice/m.test/txn3", {"messages": {BOB: {bob.device: {"n": 3}}}})
        waiter.join(60)
        assert [e["content"] for e in result["sync"]["to_device"]["events"]] == [{"n": 3}], result
        # Bad input: a message that is not an object, an unknown user, a huge message.
        status, _ = alice.call("PUT", "/sendToDevice/m.test/txn4", {"messages": {BOB: {"*": "text"}}})
        assert status == 400
        alice.ok("PUT", "/sendToDevice/m.test/txn5", {"messages": {"@nobody:chat.test": {"*": {}}}})
        status, _ = alice.call("PUT", "/sendToDevice/m.test/txn6", {"messages": {BOB: {"*": {"x": "y" * 70000}}}})
        assert status == 413
        shard.coop("down")


def test_key_backup_replace_room_key_rules():
    """TestE2EKeyBackupReplaceRoomKeyRules and the backup versions around it."""
    with Shard(BIN) as shard:
        url = start(shard)
        alice = Member(url, "alice")
        status, answer = alice.call("GET", "/room_keys/version")
        assert status == 404 and answer["errcode"] == "M_NOT_FOUND", answer
        status, answer = alice.call("GET", "/room_keys/keys?version=1")
        assert status == 404 and answer["errcode"] == "M_NOT_FOUND", answer
        auth_data = {"public_key": b64(os.urandom(32)), "signatures": {}}
        algorithm = "m.megolm_backup.v1.curve25519-aes-sha2"
        version = alice.ok("POST", "/room_keys/version", {"algorithm": algorithm, "auth_data": auth_data})["version"]
        info = alice.ok("GET", "/room_keys/version")
        assert info["version"] == version and info["count"] == 0 and info["auth_data"] == auth_data, info

        def key(index, forwarded=0, verified=False, tag="a"):
            return {"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
                    "session_data": {"ciphertext": tag, "ephemeral": "e", "mac": "m"}}

        path = f"/room_keys/keys/!room:{DOMAIN}/session1?version={version}"

        def stored():
            return alice.ok("GET", path)["session_data"]["ciphertext"]

        put = alice.ok("PUT", path, key(5, tag="first"))
        assert put["count"] == 1, put
        alice.ok("PUT", path, key(3, tag="lower index"))
        assert stored() == "lower index"
        alice.ok("PUT", path, key(4, tag="higher index"))
        assert stored() == "lower index"
        alice.ok("PUT", path, key(3, forwarded=1, tag="more forwarded"))
        assert stored() == "lower index"
        alice.ok("PUT", path, key(9, verified=True, tag="verified"))
        assert stored() == "verified", "a verified key replaces an unverified one"
        alice.ok("PUT", path, key(0, verified=False, tag="unverified"))
        assert stored() == "verified", "an unverified key never replaces a verified one"
        etag_before = alice.ok("GET", "/room_keys/version")["etag"]
        alice.ok("PUT", f"/room_keys/keys?version={version}",
                 {"rooms": {f"!other:{DOMAIN}": {"sessions": {"s2": key(0), "s3": key(1)}}}})
        info = alice.ok("GET", "/room_keys/version")
        assert info["count"] == 3 and info["etag"] != etag_before, info
        everything = alice.ok("GET", f"/room_keys/keys?version={version}")
        assert set(everything["rooms"]) == {f"!room:{DOMAIN}", f"!other:{DOMAIN}"}, everything
        status, answer = alice.call("PUT", path, {"first_message_index": "x"})
        assert status == 400, answer

        # A new version: writes to the old one are refused with the current version named.
        version2 = alice.ok("POST", "/room_keys/version", {"algorithm": algorithm, "auth_data": auth_data})["version"]
        status, answer = alice.call("PUT", path, key(1))
        assert status == 403 and answer["errcode"] == "M_WRONG_ROOM_KEYS_VERSION", answer
        assert answer["current_version"] == version2, answer
        status, answer = alice.call("PUT", f"/room_keys/version/{version2}",
                                    {"algorithm": "other", "auth_data": auth_data})
        assert status == 400, answer
        alice.ok("PUT", f"/room_keys/version/{version2}", {"algorithm": algorithm, "auth_data": dict(auth_data, x=1),
                                                          "version": version2})
        assert alice.ok("GET", f"/room_keys/version/{version2}")["auth_data"]["x"] == 1
        alice.ok("DELETE", f"/room_keys/version/{version2}")
        assert alice.ok("GET", "/room_keys/version")["version"] == version
        status, _ = alice.call("GET", f"/room_keys/keys/!room:{DOMAIN}/nosuch?version={version}")
        assert status == 404
        status, _ = alice.call("GET", "/room_keys/version/notanumber")
        assert status == 404
        # Another member sees none of it.
        bob = Member(url, "bob")
        status, _ = bob.call("GET", f"/room_keys/keys?version={version}")
        assert status == 404
        shard.coop("down")


def test_cross_signing_keys_and_signatures():
    """Cross-signing: the first upload needs no password, a replacement does; keys that are not
    signed by the master key, and signatures that do not verify, are refused."""
    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob = Member(url, "alice"), Member(url, "bob")
        device, device_signer = device_keys(alice)
        alice.ok("POST", "/keys/upload", {"device_keys": device})

        def cross_key(usage, signer=None, signer_id=None):
            secret = nacl.signing.SigningKey.generate()
            public = b64(bytes(secret.verify_key))
            key = {"user_id": ALICE, "usage": [usage], "keys": {f"ed25519:{public}": public}}
            if signer:
                sign(key, ALICE, signer_id, signer)
            return key, secret, public

        master, master_secret, master_public = cross_key("master")
        self_signing, self_secret, self_public = cross_key("self_signing", master_secret, f"ed25519:{master_public}")
        user_signing, _, _ = cross_key("user_signing", master_secret, f"ed25519:{master_public}")
        bad_self, _, _ = cross_key("self_signing", nacl.signing.SigningKey.generate(), f"ed25519:{master_public}")
        status, answer = alice.call("POST", "/keys/device_signing/upload",
                                    {"master_key": master, "self_signing_key": bad_self})
        assert status == 400 and answer["errcode"] == "M_INVALID_SIGNATURE", answer
        alice.ok("POST", "/keys/device_signing/upload",
                 {"master_key": master, "self_signing_key": self_signing, "user_signing_key": user_signing})
        seen_by_bob = bob.ok("POST", "/keys/query", {"device_keys": {ALICE: []}})
        assert seen_by_bob["master_keys"][ALICE]["keys"] == master["keys"], seen_by_bob
        assert seen_by_bob["self_signing_keys"][ALICE]["keys"] == self_signing["keys"]
        assert ALICE not in seen_by_bob["user_signing_keys"], "a user-signing key is for its owner only"
        seen_by_alice = alice.ok("POST", "/keys/query", {"device_keys": {ALICE: []}})
        assert seen_by_alice["user_signing_keys"][ALICE]["keys"] == user_signing["keys"]

        # The same keys again need nothing; new ones need the password.
        alice.ok("POST", "/keys/device_signing/upload", {"master_key": master})
        master2, master2_secret, master2_public = cross_key("master")
        status, answer = alice.call("POST", "/keys/device_signing/upload", {"master_key": master2})
        assert status == 401 and answer["flows"][0]["stages"] == ["m.login.password"], answer
        uia = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": STRONG}
        self2, self2_secret, self2_public = cross_key("self_signing", master2_secret, f"ed25519:{master2_public}")
        alice.ok("POST", "/keys/device_signing/upload", {"master_key": master2, "self_signing_key": self2, "auth": uia})

        # The self-signing key signs the device; a signature that does not verify is refused.
        bob.sync()
        shared_room(alice, bob)
        bob.sync()
        signed_device = json.loads(json.dumps(device))
        signed_device["signatures"] = {}
        sign(signed_device, ALICE, f"ed25519:{self2_public}", self2_secret)
        forged = json.loads(json.dumps(device))
        forged["signatures"] = {}
        sign(forged, ALICE, f"ed25519:{self2_public}", nacl.signing.SigningKey.generate())
        answer = alice.ok("POST", "/keys/signatures/upload", {ALICE: {alice.device: forged}})
        assert answer["failures"][ALICE][alice.device]["errcode"] == "M_INVALID_SIGNATURE", answer
        answer = alice.ok("POST", "/keys/signatures/upload", {ALICE: {alice.device: signed_device}})
        assert answer["failures"] == {}, answer
        got = bob.ok("POST", "/keys/query", {"device_keys": {ALICE: [alice.device]}})["device_keys"][ALICE][alice.device]
        assert got["signatures"][ALICE][f"ed25519:{self2_public}"] == signed_device["signatures"][ALICE][
            f"ed25519:{self2_public}"], got
        assert ALICE in bob.sync()["device_lists"]["changed"], "bob is not told of the new signature"
        # Signing something that is not alice's stored key.
        tampered = dict(signed_device, algorithms=["other"])
        answer = alice.ok("POST", "/keys/signatures/upload", {ALICE: {alice.device: tampered}})
        assert alice.device in answer["failures"][ALICE], answer
        shard.coop("down")


# ---- real clients ----

async def nio_alice_with_encrypted_room(url, store, name, invitee):
    """alice on matrix-nio, in a new encrypted room that invitee is invited to, synced once."""
    alice = await nio_login(url, "alice", os.path.join(store, "alice"))
    created = await alice.room_create(name=name, invite=[invitee], initial_state=[
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    reader = Reader(alice, created.room_id)
    await reader.step(0)
    return alice, created.room_id, reader


async def wait_for_device(reader, user_id):
    """Syncs until user_id is in the room with a device whose keys alice knows."""
    client, room_id = reader.client, reader.room_id
    for _ in range(120):
        await reader.step()
        if user_id in client.rooms[room_id].users and list(client.device_store.active_user_devices(user_id)):
            return
    raise AssertionError(f"{user_id} never joined with a device")


def nio_client(url, user, store):
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    os.makedirs(store, exist_ok=True)
    return AsyncClient(url, f"@{user}:{DOMAIN}", store_path=store, config=config)


async def housekeeping(client):
    """What nio's sync_forever does between syncs: keys up, queried, claimed, to-device out."""
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()


class Reader:
    """Collects one client's decrypted message bodies in a room, retrying undecrypted ones as
    room keys arrive."""

    def __init__(self, client, room_id):
        self.client, self.room_id, self.bodies, self.pending = client, room_id, set(), []

    async def step(self, timeout=500):
        # A timeline limit above what a test sends, so no sync answer is gappy.
        response = await self.client.sync(timeout=timeout, sync_filter={"room": {"timeline": {"limit": 100}}})
        assert isinstance(response, SyncResponse), response
        await housekeeping(self.client)
        room = response.rooms.join.get(self.room_id)
        for event in room.timeline.events if room else []:
            if isinstance(event, RoomMessageText):
                self.bodies.add(event.body)
            elif isinstance(event, MegolmEvent):
                self.pending.append(event)
        still = []
        for event in self.pending:
            decrypted = self.client.decrypt_event(event) if self.client.olm.inbound_group_store.get(
                self.room_id, event.sender_key, event.session_id) else None
            if isinstance(decrypted, RoomMessageText):
                self.bodies.add(decrypted.body)
            else:
                still.append(event)
        self.pending = still


async def nio_login(url, user, store):
    client = nio_client(url, user, store)
    response = await client.login(STRONG, device_name=f"nio {user}")
    assert isinstance(response, LoginResponse), response
    await housekeeping(client)
    return client


async def nio_send(client, room_id, bodies):
    for body in bodies:
        await housekeeping(client)
        await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                               ignore_unverified_devices=True)


def test_matrix_nio_with_olm_in_an_encrypted_room():
    """matrix-nio (python3-olm) to matrix-nio: ten encrypted messages each way, decrypted."""
    async def scenario(url, store):
        alice = await nio_login(url, "alice", os.path.join(store, "alice"))
        bob = await nio_login(url, "bob", os.path.join(store, "bob"))
        try:
            created = await alice.room_create(name="Nio secrets", invite=[BOB], initial_state=[
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
            room_id = created.room_id
            await bob.sync(timeout=0)
            await bob.join(room_id)
            alice_reader, bob_reader = Reader(alice, room_id), Reader(bob, room_id)
            await alice_reader.step(0)
            await bob_reader.step(0)
            assert alice.rooms[room_id].encrypted and bob.rooms[room_id].encrypted
            from_alice = [f"nio alice secret {i}" for i in range(10)]
            from_bob = [f"nio bob secret {i}" for i in range(10)]
            await nio_send(alice, room_id, from_alice)
            await nio_send(bob, room_id, from_bob)
            for _ in range(60):
                await alice_reader.step()
                await bob_reader.step()
                if set(from_bob) <= alice_reader.bodies and set(from_alice) <= bob_reader.bodies:
                    break
            assert set(from_alice) <= bob_reader.bodies, sorted(bob_reader.bodies)
            assert set(from_bob) <= alice_reader.bodies, sorted(alice_reader.bodies)
            return from_alice + from_bob
        finally:
            await alice.close()
            await bob.close()

    with Shard(BIN) as shard:
        url = start(shard)
        secrets = asyncio.run(scenario(url, os.path.join(shard.dir, "nio")))
        shard.coop("down")
        assert_no_plaintext(shard, secrets + ["nio alice secret", "nio bob secret"])


def node_available():
    return os.path.isdir(os.path.join(CLIENTS, "node_modules", "matrix-js-sdk")) and shutil.which("node")


def nio_and_js_sdk_read_each_other(name, secret, env=None):
    """matrix-nio (alice) and tests/clients/room_e2ee.mjs's peer (carol, on matrix-js-sdk with
    Rust crypto; `env` for its environment) send ten messages each in a new encrypted room
    named `name`; each decrypts all of the other's; no plaintext is on disk afterwards."""
    assert node_available(), "matrix-js-sdk is not installed: run scripts/install-deps"

    async def scenario(url, store):
        alice, room_id, reader = await nio_alice_with_encrypted_room(url, store, name, CAROL)
        try:
            peer = await asyncio.create_subprocess_exec(
                "node", os.path.join(CLIENTS, "room_e2ee.mjs"), url, DOMAIN, STRONG, "peer", "carol", room_id, "10",
                secret, "nio alice secret", cwd=CLIENTS, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            # Wait for carol to join with her device's keys, then send; keep syncing until her
            # ten messages decrypt.
            await wait_for_device(reader, CAROL)
            from_alice = [f"nio alice secret {i}" for i in range(10)]
            await nio_send(alice, room_id, from_alice)
            from_carol = [f"{secret} {i}" for i in range(10)]
            for _ in range(120):
                await reader.step()
                if set(from_carol) <= reader.bodies:
                    break
            out, err = await asyncio.wait_for(peer.communicate(), 120)
            assert peer.returncode == 0, out.decode() + err.decode()
            assert json.loads(out.decode().strip().splitlines()[-1])["decrypted"] == 10
            assert set(from_carol) <= reader.bodies, sorted(reader.bodies)
            return from_alice + from_carol
        finally:
            await alice.close()

    with Shard(BIN) as shard:
        url = start(shard)
        shard.coop("member", "add", "carol", "--password-stdin", input=STRONG)
        secrets = asyncio.run(scenario(url, os.path.join(shard.dir, "nio")))
        shard.coop("down")
        assert_no_plaintext(shard, secrets)


def test_matrix_nio_and_js_sdk_rust_crypto_read_each_other():
    """matrix-nio with olm and matrix-js-sdk with Rust crypto in one encrypted room."""
    nio_and_js_sdk_read_each_other("Mixed", "js carol secret")


def test_matrix_js_sdk_in_chromium_reads_nio():
    """A page bundling matrix-js-sdk with its browser crypto, in headless Chromium on an origin
    of its own: logs in, decrypts what matrix-nio sent, uploads an image and shows its
    authenticated thumbnail. The screenshot is kept in the build's test-artefacts/."""
    assert node_available() and os.path.exists("/usr/bin/chromium"), "chromium or npm clients missing: run scripts/install-deps"
    artefacts = os.path.join(os.path.dirname(os.path.abspath(BIN)), "test-artefacts")
    os.makedirs(artefacts, exist_ok=True)
    screenshot = os.path.join(artefacts, "room-browser.png")
    if os.path.exists(screenshot):
        os.remove(screenshot)

    async def scenario(url, store):
        alice, room_id, reader = await nio_alice_with_encrypted_room(url, store, "Browser", CAROL)
        try:
            secret = "a secret for the browser"
            page = await asyncio.create_subprocess_exec(
                "node", os.path.join(CLIENTS, "room_browser.mjs"), url, "carol", STRONG, room_id, secret, screenshot,
                cwd=CLIENTS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            line = await asyncio.wait_for(page.stdout.readline(), 120)
            assert line.strip() == b"joined", line + await page.stderr.read()
            await wait_for_device(reader, CAROL)
            await nio_send(alice, room_id, [secret])
            out, err = await asyncio.wait_for(page.communicate(), 180)
            outcome = json.loads(out.decode().strip().splitlines()[-1])
            assert page.returncode == 0 and "error" not in outcome, out.decode() + err.decode()
            return outcome, secret
        finally:
            await alice.close()

    with Shard(BIN) as shard:
        url = start(shard)
        shard.coop("member", "add", "carol", "--password-stdin", input=STRONG)
        outcome, secret = asyncio.run(scenario(url, os.path.join(shard.dir, "nio")))
        assert outcome["decrypted"] == secret, outcome
        assert outcome["thumbnail"][0] > 0 and max(outcome["thumbnail"]) <= 96, outcome
        assert outcome["unauthenticated_status"] == 401, outcome
        assert outcome["problems"] == [], outcome
        assert os.path.getsize(screenshot) > 5000
        shard.coop("down")
        assert_no_plaintext(shard, [secret])


def test_matrix_js_sdk_rust_crypto_pair():
    """matrix-js-sdk with Rust crypto to itself: messages both ways, cross-signing, a key
    backup restored on a new device (a wrong key fails), a deleted device gone for the peer."""
    assert node_available(), "matrix-js-sdk is not installed: run scripts/install-deps"
    with Shard(BIN) as shard:
        url = start(shard)
        result = subprocess.run(["node", os.path.join(CLIENTS, "room_e2ee.mjs"), url, DOMAIN, STRONG, "pair"],
                                capture_output=True, text=True, timeout=240, cwd=CLIENTS)
        assert result.returncode == 0, result.stdout + result.stderr
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcome["js_to_js"] == 20 and outcome["cross_signing_first_upload_without_password"], outcome
        assert outcome["second_device_signed_by_owner"] and outcome["wrong_recovery_key_fails"], outcome
        assert outcome["restored_keys"] >= 1 and outcome["deleted_device_gone"], outcome
        assert outcome["fallback_key_served"] and outcome["one_time_keys_replenished"], outcome
        shard.coop("down")
        assert_no_plaintext(shard, ["alice says", "bob says", "after the deletion"])


if __name__ == "__main__":
    run_tests([test_upload_key, test_key_claim_ordering, test_key_changes_local_and_device_list_updates,
               test_keys_of_a_vanished_device_are_forgotten_at_start, test_to_device_messages, test_key_backup_replace_room_key_rules, test_cross_signing_keys_and_signatures,
               test_matrix_nio_with_olm_in_an_encrypted_room, test_matrix_nio_and_js_sdk_rust_crypto_read_each_other,
               test_matrix_js_sdk_in_chromium_reads_nio, test_matrix_js_sdk_rust_crypto_pair])
