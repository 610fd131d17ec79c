"""Two coop shards federating (issue 23), each with its own domain on loopback, their
federation listeners in plain-HTTP test mode and each told where the other is
([workers.federate.resolve]). Real clients on both sides: matrix-nio on a.test, nio and
matrix-js-sdk on b.test. A member of b.test joins a room of a.test over federation
(make_join, send_join v2), both chat both ways (PUT /send transactions); one shard is
stopped while the other keeps talking, and after its restart it receives what it missed from
the other's queue."""
import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from nio import AsyncClient, AsyncClientConfig, JoinResponse, LoginResponse, RoomCreateResponse, RoomSendResponse

from coopshard import Shard, bin_dir_from_args, listener, run_tests, wait_for
from test_room_e2ee import Reader, assert_no_plaintext, housekeeping, nio_send, node_available, wait_for_device
from test_room_nio import STRONG

BIN = bin_dir_from_args()
CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients")


def start_pair(a, b):
    """Two shards a.test and b.test that know where each other's federation listener is."""
    a.domain, b.domain = "a.test", "b.test"
    a.init()
    b.init()
    for me, other in ((a, b), (b, a)):
        path = os.path.join(me.home, "coop.toml")
        with open(path) as f:
            text = f.read()
        # The plain-HTTP test mode of the federation listener (production serves TLS).
        port = me.base_port + 1
        listen = f'federation = {{ address = "127.0.0.1", port = {port}, scheme = "https" }}'
        assert listen in text, text
        text = text.replace(listen, listen.replace('"https"', '"http"'))
        text = text.replace("[workers.federate]\nenabled = true\n", "[workers.federate]\nenabled = true\nmax_backoff_ms = 2000\n")
        text += f'\n[workers.federate.resolve]\n"{other.domain}" = "http://127.0.0.1:{other.base_port + 1}"\n'
        with open(path, "w") as f:
            f.write(text)
    for shard, user in ((a, "alice"), (b, "bob")):
        shard.coop("up")
        shard.coop("member", "add", user, "--password-stdin", input=STRONG)
    b.coop("member", "add", "carol", "--password-stdin", input=STRONG)
    return listener(a, "room", "client"), listener(b, "room", "client")


def destinations(shard):
    return shard.json("federate", "status")["destinations"]


async def login(url, user_id):
    client = AsyncClient(url, user_id)
    response = await client.login(STRONG, device_name="federation test")
    assert isinstance(response, LoginResponse), response
    return client


def with_pair(scenario):
    """Runs `await scenario(url_a, url_b, alice, bob, a, b)` on a fresh pair of shards a and
    b, with alice (matrix-nio) logged in on a.test and bob on b.test; closes both clients and
    stops both shards whatever happens."""
    async def run(url_a, url_b, a, b):
        alice = await login(url_a, "@alice:a.test")
        bob = await login(url_b, "@bob:b.test")
        try:
            await scenario(url_a, url_b, alice, bob, a, b)
        finally:
            await alice.close()
            await bob.close()

    with Shard(BIN) as a, Shard(BIN) as b:
        url_a, url_b = start_pair(a, b)
        asyncio.run(run(url_a, url_b, a, b))


async def bodies_in(client, room_id, wanted, what, timeout=30):
    """Syncs until every body in `wanted` has come in room_id's timeline."""
    seen = set()
    deadline = time.time() + timeout
    while time.time() < deadline:
        sync = await client.sync(timeout=2000)
        room = getattr(sync, "rooms", None) and sync.rooms.join.get(room_id)
        if room:
            seen |= {e.body for e in room.timeline.events if hasattr(e, "body")}
        if set(wanted) <= seen:
            return seen
    raise AssertionError(f"{what}: still missing {set(wanted) - seen}")


def test_a_member_of_another_shard_joins_and_both_chat():
    async def scenario(url_a, url_b, alice, bob, a, b):
        created = await alice.room_create(name="Commons", topic="Two cooperatives", preset=None, alias="commons",
                                          initial_state=[{"type": "m.room.join_rules", "state_key": "",
                                                          "content": {"join_rule": "public"}}])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        await alice.sync(timeout=0)
        await bob.sync(timeout=0)

        # Bob of b.test joins through a.test: make_join, send_join, the room's state stored.
        # The room is of version 12 (the default), whose ID names no server: bob's client joins
        # by the alias, which a.test's directory answers with the room and its servers.
        joined = await bob.join("#commons:a.test")
        assert isinstance(joined, JoinResponse) and joined.room_id == room_id, joined
        sync = await bob.sync(timeout=0, full_state=True)
        room = bob.rooms[room_id]
        assert room.name == "Commons" and room.topic == "Two cooperatives", (room.name, room.topic)
        assert "@alice:a.test" in room.users and "@bob:b.test" in room.users, room.users

        # a.test hears of the join (it stored it through send_join).
        wait_for(lambda: any(d["server_name"] == "b.test" for d in destinations(a)), what="a.test sends to b.test")
        sync = await alice.sync(timeout=0)
        assert "@bob:b.test" in alice.rooms[room_id].users, alice.rooms[room_id].users

        # Both ways: alice's message reaches bob through a.test's queue, bob's reaches alice.
        for i in range(3):
            sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"from a {i}"})
            assert isinstance(sent, RoomSendResponse), sent
        await bodies_in(bob, room_id, {f"from a {i}" for i in range(3)}, "bob hears alice")
        sent = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "from b"})
        assert isinstance(sent, RoomSendResponse), sent
        await bodies_in(alice, room_id, {"from b"}, "alice hears bob")

        # Media: bob uploads on b.test; alice's client fetches it from a.test, which gets it
        # from b.test over federation once and keeps it.
        picture = bytes(range(256)) * 40
        uploaded, _ = await bob.upload(lambda *_: picture, content_type="application/octet-stream",
                                          filename="seeds.bin", filesize=len(picture))
        server, media_id = uploaded.content_uri[len("mxc://"):].split("/", 1)
        assert server == "b.test", uploaded.content_uri
        for _ in range(2):
            status, body = media(url_a, alice.access_token, server, media_id)
            assert status == 200 and body == picture, (status, len(body))
        assert media(url_a, alice.access_token, "b.test", "nosuchmedia")[0] == 404

        # The same event on both shards: one conversation, not two copies.
        status_a, event_on_a = await event_json(alice, room_id, sent.event_id)
        assert status_a == 200 and event_on_a["content"]["body"] == "from b", event_on_a

        # b.test stops; a.test keeps talking; after b.test's restart its queue delivers.
        b.coop("down")
        for i in range(4):
            await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"while b was down {i}"})
        wait_for(lambda: any(d["server_name"] == "b.test" and d["pending"] >= 4 and d["last_error"]
                             for d in destinations(a)),
                 what="a.test queues for the stopped b.test")
        shown = a.coop("federate", "status").stdout
        assert "b.test" in shown and "pending" in shown, shown
        b.coop("up")
        await bodies_in(bob, room_id, {f"while b was down {i}" for i in range(4)}, "b.test catches up")
        wait_for(lambda: all(d["pending"] == 0 for d in destinations(a)), what="a.test's queue drains")

        # And the other way round: a.test stops, bob talks, a.test catches up.
        a.coop("down")
        for i in range(2):
            await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"while a was down {i}"})
        a.coop("up")
        await bodies_in(alice, room_id, {f"while a was down {i}" for i in range(2)}, "a.test catches up")

    with_pair(scenario)


def test_js_sdk_member_of_another_shard_sees_typing_and_sends_receipts():
    async def scenario(url_a, url_b, a, b):
        alice = await login(url_a, "@alice:a.test")
        node = None
        try:
            created = await alice.room_create(name="Porch", initial_state=[
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}}])
            room_id = created.room_id
            await alice.sync(timeout=0)
            # carol of b.test, on matrix-js-sdk, joins through a.test and says hello.
            node = subprocess.Popen(["node", os.path.join(CLIENTS, "federation_member.mjs"), url_b, "carol", STRONG,
                                     room_id, "a.test"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            await bodies_in(alice, room_id, {"hello from js-sdk"}, "alice hears carol", timeout=60)
            # Typing and the answer cross as EDUs and PDUs; carol's read receipt comes back.
            await alice.room_typing(room_id, typing_state=True, timeout=30000)
            answer = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello js-sdk"})
            assert isinstance(answer, RoomSendResponse), answer
            deadline, receipt = time.time() + 30, None
            while time.time() < deadline and not receipt:
                sync = await alice.sync(timeout=2000)
                room = sync.rooms.join.get(room_id) if hasattr(sync, "rooms") else None
                for event in (room.ephemeral if room else []):
                    for r in getattr(event, "receipts", []):
                        if r.user_id == "@carol:b.test" and r.event_id == answer.event_id:
                            receipt = r
            output, _ = node.communicate(timeout=60)
            assert node.returncode == 0, output
            assert "typing: @alice:a.test" in output and "ALL OK" in output, output
            assert receipt, "carol's read receipt did not reach a.test"
        except BaseException:
            if node:
                if node.poll() is None:
                    node.kill()
                print("js-sdk said:", node.communicate()[0])
            raise
        finally:
            await alice.close()

    with Shard(BIN) as a, Shard(BIN) as b:
        url_a, url_b = start_pair(a, b)
        asyncio.run(scenario(url_a, url_b, a, b))


def test_invites_across_shards_are_countersigned_joined_and_declined():
    """Complement TestFederationRoomsInvite and TestFederationRejectInvite, on two shards."""
    async def scenario(url_a, url_b, a, b):
        alice = await login(url_a, "@alice:a.test")
        bob = await login(url_b, "@bob:b.test")
        carol = await login(url_b, "@carol:b.test")
        try:
            for client in (alice, bob, carol):
                await client.sync(timeout=0)
            # A direct chat with a member of the other shard: created with the invite in it.
            created = await alice.room_create(name="Just us", is_direct=True, invite=["@bob:b.test"])
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id
            deadline = time.time() + 20
            while room_id not in bob.invited_rooms and time.time() < deadline:
                await bob.sync(timeout=2000)
            assert room_id in bob.invited_rooms, "bob's invitation did not arrive"
            assert bob.invited_rooms[room_id].name == "Just us", bob.invited_rooms[room_id].name
            # The invite event in a.test's room carries b.test's signature too.
            status, invite = await event_json(alice, room_id, alice_member_event(a, room_id, "@bob:b.test"))
            assert status == 200 and invite["content"]["membership"] == "invite", invite
            joined = await bob.join(room_id)
            assert isinstance(joined, JoinResponse), joined
            await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "thanks for the invite"})
            await bodies_in(alice, room_id, {"thanks for the invite"}, "alice hears bob in the direct chat")

            # An invitation from the room's members page, declined: it goes away on b.test.
            other = await alice.room_create(name="Maybe later")
            invited = await alice.room_invite(other.room_id, "@carol:b.test")
            assert type(invited).__name__ == "RoomInviteResponse", invited
            deadline = time.time() + 20
            while other.room_id not in carol.invited_rooms and time.time() < deadline:
                await carol.sync(timeout=2000)
            assert other.room_id in carol.invited_rooms, "carol's invitation did not arrive"
            left = await carol.room_leave(other.room_id)
            assert type(left).__name__ == "RoomLeaveResponse", left
            sync = await carol.sync(timeout=0, full_state=True)
            assert other.room_id not in sync.rooms.invite, sync.rooms.invite
            # Complement TestFederationRejectInvite: the inviting shard hears of it (make_leave,
            # send_leave), and alice sees carol's membership as leave.
            wait_for(lambda: member_state(a, other.room_id, "@carol:b.test") == "leave", timeout=20,
                     what="a.test sees carol decline")

            # Inviting a user the other shard does not have is refused, and nothing is stored.
            refused = await alice.room_invite(other.room_id, "@nobody:b.test")
            assert type(refused).__name__ == "RoomInviteError", refused
        finally:
            for client in (alice, bob, carol):
                await client.close()

    with Shard(BIN) as a, Shard(BIN) as b:
        url_a, url_b = start_pair(a, b)
        asyncio.run(scenario(url_a, url_b, a, b))


def alice_members(shard, room_id):
    """The member events of a.test's room, as alice's client reads /members."""
    from test_room_nio import http_json as call
    url = listener(shard, "room", "client")
    _, login, _ = call(url + "/_matrix/client/v3/login", "POST", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": STRONG})
    _, members, _ = call(url + f"/_matrix/client/v3/rooms/{room_id}/members", token=login["access_token"])
    return members["chunk"]


def member_state(shard, room_id, user_id):
    return next((e["content"]["membership"] for e in alice_members(shard, room_id) if e["state_key"] == user_id), None)


def alice_member_event(shard, room_id, user_id):
    """The event ID of a member event in a.test's current state."""
    return next(e["event_id"] for e in alice_members(shard, room_id) if e["state_key"] == user_id)


def media(url, token, server, media_id):
    """GET /_matrix/client/v1/media/download (authenticated media): (status, bytes)."""
    import urllib.request
    request = urllib.request.Request(f"{url}/_matrix/client/v1/media/download/{server}/{media_id}",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def event_json(client, room_id, event_id):
    import urllib.request
    request = urllib.request.Request(
        f"{client.homeserver}/_matrix/client/v3/rooms/{room_id}/event/{event_id}",
        headers={"Authorization": f"Bearer {client.access_token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_encrypted_room_across_shards_nio_and_js_sdk():
    """End-to-end encryption between shards (Complement's TestDeviceListsUpdateOverFederation,
    TestFederationKeyUploadQuery and TestToDeviceMessagesOverFederation, with real clients):
    alice on a.test with matrix-nio (olm), bob on b.test with matrix-js-sdk (Rust crypto), in
    an encrypted room alice creates and invites bob to. Each client learns the other's device
    keys through its own server's keys/query over federation, claims one-time keys the same
    way, and sends its room key as to-device messages that cross as m.direct_to_device EDUs;
    ten messages each way decrypt, and neither shard holds a word of them in plain text."""
    assert node_available(), "matrix-js-sdk is not installed: run scripts/install-deps"

    async def scenario(url_a, url_b, store):
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
        os.makedirs(store, exist_ok=True)
        alice = AsyncClient(url_a, "@alice:a.test", store_path=store, config=config)
        response = await alice.login(STRONG, device_name="nio alice")
        assert isinstance(response, LoginResponse), response
        await housekeeping(alice)
        try:
            created = await alice.room_create(name="Shared secrets", invite=["@bob:b.test"], initial_state=[
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id
            reader = Reader(alice, room_id)
            await reader.step(0)
            peer = await asyncio.create_subprocess_exec(
                "node", os.path.join(CLIENTS, "room_e2ee.mjs"), url_b, "b.test", STRONG, "peer", "bob", room_id, "10",
                "js bob secret", "nio alice secret", cwd=CLIENTS,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                # bob joins over federation with his device's keys up; alice's keys/query for
                # him goes to b.test (and his for her to a.test).
                await wait_for_device(reader, "@bob:b.test")
                from_alice = [f"nio alice secret {i}" for i in range(10)]
                await nio_send(alice, room_id, from_alice)
                from_bob = [f"js bob secret {i}" for i in range(10)]
                for _ in range(120):
                    await reader.step()
                    if set(from_bob) <= reader.bodies:
                        break
                out, err = await asyncio.wait_for(peer.communicate(), 150)
            finally:
                if peer.returncode is None:
                    peer.kill()
                    await peer.wait()
            assert peer.returncode == 0, out.decode() + err.decode()
            assert json.loads(out.decode().strip().splitlines()[-1])["decrypted"] == 10
            assert set(from_bob) <= reader.bodies, sorted(reader.bodies)
            return from_alice + from_bob
        finally:
            await alice.close()

    with Shard(BIN) as a, Shard(BIN) as b:
        url_a, url_b = start_pair(a, b)
        secrets = asyncio.run(scenario(url_a, url_b, os.path.join(a.dir, "nio")))
        # The durable EDU queues drained: nothing waits for either side.
        for shard in (a, b):
            wait_for(lambda: all(d.get("pending_edus", 0) == 0 for d in destinations(shard)),
                     what="to-device messages and device list updates delivered")
        a.coop("down")
        b.coop("down")
        for shard in (a, b):
            assert_no_plaintext(shard, secrets + ["nio alice secret", "js bob secret"])


def test_room_version_12_across_shards():
    """Room version 12 between shards: alice creates one on a.test (its ID is the create
    event's hash, with no server in it) and invites bob of b.test, who joins through the
    invitation (make_join and send_join with ver=12), and both chat. A room ID without a
    server and without an invitation cannot be joined from nowhere."""
    async def scenario(url_a, url_b, alice, bob, a, b):
        created = await alice.room_create(name="Hydra", room_version="12", invite=["@bob:b.test"])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        assert ":" not in room_id and len(room_id) == 44, room_id
        wait_for(lambda: room_id in (http_get(url_b, bob.access_token, "/sync?timeout=0")
                                     .get("rooms", {}).get("invite", {})), what="bob's invitation")
        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        await bob.sync(timeout=0, full_state=True)
        assert bob.rooms[room_id].name == "Hydra", bob.rooms[room_id].name
        create = http_get(url_b, bob.access_token, f"/rooms/{room_id}/state/m.room.create/")
        assert create.get("room_version") == "12", create
        # alice is the creator: no power level listed for her, and her power is beyond any.
        levels = http_get(url_b, bob.access_token, f"/rooms/{room_id}/state/m.room.power_levels/")
        assert "@alice:a.test" not in levels.get("users", {}), levels
        for i in range(2):
            sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"v12 from a {i}"})
            assert isinstance(sent, RoomSendResponse), sent
        await bodies_in(bob, room_id, {"v12 from a 0", "v12 from a 1"}, "bob hears alice in the v12 room")
        sent = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "v12 from b"})
        assert isinstance(sent, RoomSendResponse), sent
        await bodies_in(alice, room_id, {"v12 from b"}, "alice hears bob in the v12 room")
        # alice, the creator, is listed at no level, yet may redact bob's message: b.test
        # applies her redaction too (her power is the creator's, not users_default).
        sent = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "v12 to redact"})
        assert isinstance(sent, RoomSendResponse), sent
        await bodies_in(alice, room_id, {"v12 to redact"}, "alice hears the message she will redact")
        status, answer = http_json_call(url_a, alice.access_token, "PUT", f"/v3/rooms/{room_id}/redact/{sent.event_id}/r1",
                                        {"reason": "creator"})
        assert status == 200, answer
        wait_for(lambda: http_get(url_b, bob.access_token, f"/rooms/{room_id}/event/{sent.event_id}").get("content") == {},
                 what="b.test applies the creator's redaction")
        # Bob (not a creator, level 0) cannot ban alice; the shard refuses before sending.
        status = http_post(url_b, bob.access_token, f"/rooms/{room_id}/ban", {"user_id": "@alice:a.test"})
        assert status == 403, status
        # A domain-less room ID b.test holds no invitation to: nowhere to join through.
        unknown = "!" + "A" * 43
        status = http_post(url_b, bob.access_token, f"/join/{unknown}", {})
        assert status == 404, status

    with_pair(scenario)


def http_get(url, token, path):
    request = urllib.request.Request(f"{url}/_matrix/client/v3{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode(errors="replace")}


def http_post(url, token, path, body):
    request = urllib.request.Request(f"{url}/_matrix/client/v3{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


def http_json_call(url, token, method, path, body=None):
    """A client API call: (status, JSON answer)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/_matrix/client{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_space_hierarchy_across_shards():
    """A Space on a.test names a public room of b.test and an invite-only one: alice's
    /hierarchy shows the public one with its name and topic as b.test describes it (GET
    /_matrix/federation/v1/hierarchy), and not the invite-only one."""
    async def scenario(url_a, url_b, alice, bob, a, b):
        status, bakery = http_json_call(url_b, bob.access_token, "POST", "/v3/createRoom",
                                        {"preset": "public_chat", "name": "Bakery", "topic": "Bread on Fridays"})
        assert status == 200, bakery
        status, secret = http_json_call(url_b, bob.access_token, "POST", "/v3/createRoom",
                                        {"preset": "private_chat", "name": "Secret recipes"})
        assert status == 200, secret
        status, space = http_json_call(url_a, alice.access_token, "POST", "/v3/createRoom",
                                       {"preset": "public_chat", "name": "Neighbourhood",
                                        "creation_content": {"type": "m.space"}})
        assert status == 200, space
        for child in (bakery["room_id"], secret["room_id"]):
            status, answer = http_json_call(url_a, alice.access_token, "PUT",
                                            f"/v3/rooms/{space['room_id']}/state/m.space.child/{child}",
                                            {"via": ["b.test"]})
            assert status == 200, answer
        status, tree = http_json_call(url_a, alice.access_token, "GET", f"/v1/rooms/{space['room_id']}/hierarchy")
        assert status == 200, tree
        by_id = {room["room_id"]: room for room in tree["rooms"]}
        assert space["room_id"] in by_id and by_id[space["room_id"]].get("room_type") == "m.space", tree
        remote = by_id.get(bakery["room_id"])
        assert remote and remote.get("name") == "Bakery" and remote.get("topic") == "Bread on Fridays", tree
        assert remote.get("join_rule") == "public" and remote.get("num_joined_members") == 1, remote
        assert secret["room_id"] not in by_id, tree
        # And alice can join the room she found there, through b.test.
        status, joined = http_json_call(url_a, alice.access_token, "POST", f"/v3/join/{bakery['room_id']}?server_name=b.test", {})
        assert status == 200 and joined.get("room_id") == bakery["room_id"], (status, joined)

    with_pair(scenario)


def test_remote_alias_requests_understand_unicode():
    """Complement TestRemoteAliasRequestsUnderstandUnicode: bob of b.test resolves alice's
    alias of a.test, written in four scripts and emoji, through a.test's directory; an alias
    of another server cannot be made here, and an unknown remote alias is 404."""
    async def scenario(url_a, url_b, alice, bob, a, b):
        status, room = http_json_call(url_a, alice.access_token, "POST", "/v3/createRoom", {"preset": "public_chat"})
        assert status == 200, room
        alias = "#老虎Â£я🤨👉ඞ:a.test"
        path = "/v3/directory/room/" + urllib.parse.quote(alias, safe="")
        status, answer = http_json_call(url_a, alice.access_token, "PUT", path, {"room_id": room["room_id"]})
        assert status == 200, answer
        status, answer = http_json_call(url_b, bob.access_token, "GET", path)
        assert status == 200 and answer.get("room_id") == room["room_id"], (status, answer)
        assert "a.test" in answer.get("servers", []), answer
        status, answer = http_json_call(url_b, bob.access_token, "GET",
                                        "/v3/directory/room/" + urllib.parse.quote("#nothing-here:a.test", safe=""))
        assert status == 404 and answer.get("errcode") == "M_NOT_FOUND", (status, answer)
        status, answer = http_json_call(url_b, bob.access_token, "PUT",
                                        "/v3/directory/room/" + urllib.parse.quote("#mine:a.test", safe=""),
                                        {"room_id": room["room_id"]})
        assert status == 400, (status, answer)

    with_pair(scenario)


def test_user_appears_in_changed_device_list_on_join_over_federation():
    """Complement TestUserAppearsInChangedDeviceListOnJoinOverFederation: bob of b.test has
    keys; when he joins alice's encrypted room on a.test, alice's next /sync lists him in
    device_lists.changed, and her keys/query gets his device from b.test."""
    async def scenario(url_a, url_b, alice, bob, a, b):
        keys = {"user_id": "@bob:b.test", "device_id": bob.device_id,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                "keys": {f"curve25519:{bob.device_id}": "A" * 43, f"ed25519:{bob.device_id}": "B" * 43},
                "signatures": {"@bob:b.test": {}}}
        status, answer = http_json_call(url_b, bob.access_token, "POST", "/v3/keys/upload", {"device_keys": keys})
        assert status == 200, answer
        status, room = http_json_call(url_a, alice.access_token, "POST", "/v3/createRoom", {
            "preset": "public_chat",
            "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]})
        assert status == 200, room
        status, first = http_json_call(url_a, alice.access_token, "GET", "/v3/sync?timeout=0")
        assert status == 200, first
        since = first["next_batch"]
        status, joined = http_json_call(url_b, bob.access_token, "POST", f"/v3/join/{room['room_id']}?server_name=a.test", {})
        assert status == 200, joined

        def changed():
            nonlocal since
            status, body = http_json_call(url_a, alice.access_token, "GET", f"/v3/sync?timeout=1000&since={since}")
            assert status == 200, body
            since = body["next_batch"]
            return "@bob:b.test" in body.get("device_lists", {}).get("changed", [])
        wait_for(changed, what="alice sees bob in device_lists.changed")
        status, answer = http_json_call(url_a, alice.access_token, "POST", "/v3/keys/query",
                                        {"device_keys": {"@bob:b.test": []}})
        assert status == 200, answer
        assert answer["device_keys"].get("@bob:b.test", {}).get(bob.device_id, {}).get("keys") == keys["keys"], answer
        assert answer.get("failures") == {}, answer

    with_pair(scenario)


def test_unban_via_invite():
    """Complement TestUnbanViaInvite: bob of b.test bans alice of a.test from his room, unbans
    her and invites her again; she sees the invitation and joins."""
    async def scenario(url_a, url_b, alice, bob, a, b):
        status, room = http_json_call(url_b, bob.access_token, "POST", "/v3/createRoom", {"preset": "public_chat"})
        assert status == 200, room
        room_id = room["room_id"]
        status, answer = http_json_call(url_a, alice.access_token, "POST", f"/v3/join/{room_id}?server_name=b.test", {})
        assert status == 200, answer

        seen = {"since": None, "membership": None}

        def membership_on_a():
            """alice's membership as her incremental /sync on a.test tells it."""
            path = "/v3/sync?timeout=0" + (f"&since={seen['since']}" if seen["since"] else "")
            status, body = http_json_call(url_a, alice.access_token, "GET", path)
            assert status == 200, body
            seen["since"] = body["next_batch"]
            rooms = body.get("rooms", {})
            if room_id in rooms.get("invite", {}):
                seen["membership"] = "invite"
            for section in ("join", "leave"):
                room = rooms.get(section, {}).get(room_id, {})
                for event in room.get("state", {}).get("events", []) + room.get("timeline", {}).get("events", []):
                    if event.get("type") == "m.room.member" and event.get("state_key") == "@alice:a.test":
                        seen["membership"] = event["content"].get("membership")
            return seen["membership"]

        def bob_sees(membership):
            status, body = http_json_call(url_b, bob.access_token, "GET",
                                          f"/v3/rooms/{room_id}/state/m.room.member/@alice:a.test")
            return status == 200 and body.get("membership") == membership

        wait_for(lambda: bob_sees("join"), what="b.test has alice's join")
        membership_on_a()  # a sync token from before the ban: a full sync leaves out rooms one was banned from
        status, answer = http_json_call(url_b, bob.access_token, "POST", f"/v3/rooms/{room_id}/ban",
                                        {"user_id": "@alice:a.test"})
        assert status == 200, answer
        wait_for(lambda: membership_on_a() == "ban", what="alice sees she is banned")
        status, answer = http_json_call(url_b, bob.access_token, "POST", f"/v3/rooms/{room_id}/unban",
                                        {"user_id": "@alice:a.test"})
        assert status == 200, answer
        wait_for(lambda: bob_sees("leave"), what="b.test has her unban")
        status, answer = http_json_call(url_b, bob.access_token, "POST", f"/v3/rooms/{room_id}/invite",
                                        {"user_id": "@alice:a.test"})
        assert status == 200, answer
        wait_for(lambda: bob_sees("invite"), what="b.test has her invitation")
        wait_for(lambda: membership_on_a() == "invite", what="alice sees the invitation")
        status, answer = http_json_call(url_a, alice.access_token, "POST", f"/v3/join/{room_id}?server_name=b.test", {})
        assert status == 200, answer
        wait_for(lambda: bob_sees("join"), what="alice is back in")

    with_pair(scenario)


if __name__ == "__main__":
    run_tests([test_a_member_of_another_shard_joins_and_both_chat,
               test_js_sdk_member_of_another_shard_sees_typing_and_sends_receipts,
               test_invites_across_shards_are_countersigned_joined_and_declined,
               test_encrypted_room_across_shards_nio_and_js_sdk,
               test_room_version_12_across_shards,
               test_space_hierarchy_across_shards,
               test_remote_alias_requests_understand_unicode,
               test_user_appears_in_changed_device_list_on_join_over_federation,
               test_unban_via_invite])
