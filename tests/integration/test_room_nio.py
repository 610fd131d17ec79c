"""Matrix client-server API with Debian's matrix-nio: login with coop credentials, rooms,
invites, messages, long-polled incremental sync, history, typing and receipts, and sessions
that end when the registry suspends a member."""
import asyncio
import json
import os
import subprocess
import struct
import time
import urllib.error
import urllib.parse
import zlib
import urllib.request

from nio import (AsyncClient, JoinResponse, LoginResponse, RoomCreateResponse, RoomMessagesResponse,
                 RoomSendResponse, SyncResponse)

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for

BIN = bin_dir_from_args()
DOMAIN = "chat.test"
STRONG = "correct horse battery staple"


def homeserver(shard):
    status = shard.json("status")
    room = next(w for w in status["workers"] if w["name"] == "room")
    return next(l["url"] for l in room["listeners"] if l["name"] == "client")


def start(shard):
    shard.domain = DOMAIN
    shard.init()
    shard.coop("up")
    shard.coop("member", "add", "alice", "--name", "Alice Liddell", "--password-stdin", input=STRONG)
    shard.coop("member", "add", "bob", "--password-stdin", input=STRONG)
    return homeserver(shard)


def http_json(url, method="GET", body=None, token=None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


async def login(url, user, password):
    client = AsyncClient(url, f"@{user}:{DOMAIN}")
    response = await client.login(password, device_name="test")
    assert isinstance(response, LoginResponse), response
    return client


def test_two_members_chat_with_nio():
    async def scenario(url, shard):
        alice = await login(url, "alice", STRONG)
        # bob logs in with an app password limited to Matrix.
        secret = shard.json("member", "app-password", "add", "bob", "--label", "element", "--scope", "room")["password"]
        bob = await login(url, "bob", secret)
        try:
            whoami = await bob.whoami()
            assert whoami.user_id == f"@bob:{DOMAIN}", whoami

            created = await alice.room_create(name="Kitchen", topic="Who cooks tonight", invite=[f"@bob:{DOMAIN}"])
            assert isinstance(created, RoomCreateResponse), created
            room_id = created.room_id
            # Room version 12 (the default): the ID is the create event's hash, with no server.
            assert room_id.startswith("!") and ":" not in room_id and len(room_id) == 44, room_id

            first = await bob.sync(timeout=0)
            assert isinstance(first, SyncResponse), first
            assert room_id in first.rooms.invite
            joined = await bob.join(room_id)
            assert isinstance(joined, JoinResponse), joined

            for i in range(15):
                sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"message {i}"})
                assert isinstance(sent, RoomSendResponse), sent

            synced = await bob.sync(timeout=0, full_state=True)
            room = synced.rooms.join[room_id]
            bodies = [e.body for e in room.timeline.events if hasattr(e, "body")]
            assert bodies[-1] == "message 14" and room.timeline.limited
            assert room.unread_notifications.notification_count == 15  # alice's messages, none read yet
            assert bob.rooms[room_id].display_name == "Kitchen"
            assert bob.rooms[room_id].topic == "Who cooks tonight"

            # Paginate history backwards from the sync's prev_batch, down to the first message.
            seen, token = list(bodies), room.timeline.prev_batch
            while token:
                page = await bob.room_messages(room_id, token, limit=4)
                assert isinstance(page, RoomMessagesResponse), page
                seen += [e.body for e in page.chunk if hasattr(e, "body")]
                token = page.end
            assert {f"message {i}" for i in range(15)} <= set(seen)

            # An incremental sync parked in its long-poll returns with a new message.
            since = synced.next_batch
            waiting = asyncio.create_task(bob.sync(timeout=30000, since=since))
            await asyncio.sleep(0.5)
            assert not waiting.done()
            await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "dinner at 7"})
            incremental = await asyncio.wait_for(waiting, 20)
            new = [e.body for e in incremental.rooms.join[room_id].timeline.events if hasattr(e, "body")]
            assert new == ["dinner at 7"]

            # Sending with the same transaction ID twice stores one event.
            again_a = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "once"}, tx_id="t1")
            again_b = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "once"}, tx_id="t1")
            assert again_a.event_id == again_b.event_id

            # Typing and receipts arrive in ephemeral.
            since = (await bob.sync(timeout=0, since=incremental.next_batch)).next_batch
            await alice.room_typing(room_id, True, timeout=10000)
            await alice.room_read_markers(room_id, again_a.event_id, again_a.event_id)
            eph = await bob.sync(timeout=5000, since=since)
            types = [type(e).__name__ for e in eph.rooms.join[room_id].ephemeral]
            assert "TypingNoticeEvent" in types, types
            assert bob.rooms[room_id].typing_users == [f"@alice:{DOMAIN}"] or f"@alice:{DOMAIN}" in bob.rooms[room_id].typing_users
            receipts = await bob.sync(timeout=0, since=since)
            assert any(type(e).__name__ == "ReceiptEvent" for e in receipts.rooms.join[room_id].ephemeral)

            read = await bob.sync(timeout=0, full_state=True)
            await bob.room_read_markers(room_id, again_a.event_id, again_a.event_id)
            read = await bob.sync(timeout=0, full_state=True)
            assert read.rooms.join[room_id].unread_notifications.notification_count == 0
            status, rules, _ = http_json(f"{url}/_matrix/client/v3/pushrules/", token=bob.access_token)
            assert status == 200 and ".m.rule.master" in [r["rule_id"] for r in rules["global"]["override"]]

            # Display names come from the registry.
            profile = await bob.get_displayname(f"@alice:{DOMAIN}")
            assert profile.displayname == "Alice Liddell"

            # bob cannot change the room's power levels; alice can kick bob.
            denied = await bob.room_put_state(room_id, "m.room.power_levels", {"users": {f"@bob:{DOMAIN}": 100}})
            assert getattr(denied, "status_code", "") == "M_FORBIDDEN", denied
            kicked = await alice.room_kick(room_id, f"@bob:{DOMAIN}", reason="test")
            assert not hasattr(kicked, "status_code"), kicked
            after = await bob.sync(timeout=0, since=receipts.next_batch)
            assert room_id in after.rooms.leave
        finally:
            await alice.close()
            await bob.close()

    with Shard(BIN) as shard:
        url = start(shard)
        asyncio.run(scenario(url, shard))
        shard.coop("down")


def test_login_errors_cors_and_closed_registration():
    with Shard(BIN) as shard:
        url = start(shard)
        status, body, _ = http_json(f"{url}/_matrix/client/v3/login", "POST",
                                    {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
                                     "password": "wrong password"})
        assert status == 403 and body["errcode"] == "M_FORBIDDEN"
        status, body, _ = http_json(f"{url}/_matrix/client/v3/register", "POST", {"username": "eve", "password": "x"})
        assert status == 403 and body["errcode"] == "M_FORBIDDEN"
        status, body, headers = http_json(f"{url}/_matrix/client/v3/account/whoami")
        assert status == 401 and body["errcode"] == "M_MISSING_TOKEN"
        assert headers.get("Access-Control-Allow-Origin") == "*"
        status, body, _ = http_json(f"{url}/_matrix/client/v3/no/such/thing")
        assert status == 404 and body["errcode"] == "M_UNRECOGNIZED"
        preflight = urllib.request.Request(f"{url}/_matrix/client/v3/sync", method="OPTIONS")
        with urllib.request.urlopen(preflight, timeout=10) as response:
            assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
        # matrix-nio 0.20 uses /r0 with ?access_token=: both work.
        status, body, _ = http_json(f"{url}/_matrix/client/r0/login", "POST",
                                    {"type": "m.login.password", "user": "bob", "password": STRONG})
        assert status == 200
        status, who, _ = http_json(f"{url}/_matrix/client/r0/account/whoami?access_token={body['access_token']}")
        assert status == 200 and who["user_id"] == f"@bob:{DOMAIN}"

        # Devices: listed, renamed, and deleted only with the password again (user-interactive auth).
        api = f"{url}/_matrix/client/v3"
        phone = http_json(f"{api}/login", "POST", {"type": "m.login.password", "user": "bob", "password": STRONG,
                                                   "device_id": "PHONE"})[1]["access_token"]
        laptop = body["access_token"]
        assert {d["device_id"] for d in http_json(f"{api}/devices", token=laptop)[1]["devices"]} >= {"PHONE"}
        assert http_json(f"{api}/devices/PHONE", "PUT", {"display_name": "Bob's phone"}, laptop)[0] == 200
        assert http_json(f"{api}/devices/PHONE", token=laptop)[1]["display_name"] == "Bob's phone"
        status, uia, _ = http_json(f"{api}/devices/PHONE", "DELETE", {}, laptop)
        assert status == 401 and uia["flows"] == [{"stages": ["m.login.password"]}]
        wrong = {"auth": {"type": "m.login.password", "password": "not it", "session": uia["session"]}}
        assert http_json(f"{api}/devices/PHONE", "DELETE", wrong, laptop)[0] == 401
        right = {"auth": {"type": "m.login.password", "password": STRONG, "session": uia["session"],
                          "identifier": {"type": "m.id.user", "user": "bob"}}}
        assert http_json(f"{api}/devices/PHONE", "DELETE", right, laptop)[0] == 200
        assert http_json(f"{api}/account/whoami", token=phone)[0] == 401

        # Too many wrong passwords: 429 with retry_after_ms, as clients back off by it.
        for _ in range(10):
            http_json(f"{api}/login", "POST", {"type": "m.login.password", "user": "alice", "password": "nope nope"})
        status, limited, _ = http_json(f"{api}/login", "POST", {"type": "m.login.password", "user": "alice", "password": STRONG})
        assert status == 429 and limited["errcode"] == "M_LIMIT_EXCEEDED" and limited["retry_after_ms"] > 0
        shard.coop("down")


def test_suspension_ends_matrix_sessions_within_a_second():
    with Shard(BIN) as shard:
        url = start(shard)
        _, body, _ = http_json(f"{url}/_matrix/client/v3/login", "POST",
                               {"type": "m.login.password", "user": "bob", "password": STRONG})
        token = body["access_token"]
        assert http_json(f"{url}/_matrix/client/v3/account/whoami", token=token)[0] == 200
        shard.coop("member", "suspend", "bob")
        suspended_at = time.monotonic()
        wait_for(lambda: http_json(f"{url}/_matrix/client/v3/account/whoami", token=token)[0] == 401,
                 timeout=5, what="bob's session to end")
        assert time.monotonic() - suspended_at < 5
        status, body, _ = http_json(f"{url}/_matrix/client/v3/login", "POST",
                                    {"type": "m.login.password", "user": "bob", "password": STRONG})
        assert status == 403 and body["errcode"] == "M_USER_DEACTIVATED"
        shard.coop("down")




def test_spaces_follow_the_registry_and_media_round_trips():
    async def scenario(url, shard):
        shard.coop("member", "group", "add", "kitchen")
        shard.coop("member", "set", "bob", "--add-group", "kitchen")
        shard.coop("member", "add", "carol", "--password-stdin", input=STRONG)
        space = shard.json("room", "space", "create", "Kitchen crew", "--group", "kitchen")
        menu = shard.json("room", "create", "Menu", "--space", "Kitchen crew")
        assert space["type"] == "space" and space["managed"] == "group"
        assert menu["join_rule"] == "restricted" and menu["parents"] == [space["room_id"]]

        bob = await login(url, "bob", STRONG)
        carol = await login(url, "carol", STRONG)
        try:
            synced = await bob.sync(timeout=0)
            joined = set(synced.rooms.join)
            cooperative = next(r for r in shard.json("room", "list") if r.get("managed") == "cooperative")
            assert cooperative["room_id"] in joined and space["room_id"] in joined

            # The Space's hierarchy lists the room; a member of the Space may join it, others not.
            response = await bob.send("GET", f"/_matrix/client/v1/rooms/{space['room_id']}/hierarchy",
                                      headers={"Authorization": f"Bearer {bob.access_token}"})
            hierarchy = await response.json()
            assert menu["room_id"] in [r["room_id"] for r in hierarchy["rooms"]], hierarchy
            assert isinstance(await bob.join(menu["room_id"]), JoinResponse)
            refused = await carol.join(menu["room_id"])
            assert getattr(refused, "status_code", "") == "M_FORBIDDEN", refused

            # Media: upload, then download through the authenticated and the legacy paths.
            picture = bytes(range(256)) * 40
            uploaded, _ = await bob.upload(lambda *_: picture, content_type="image/png", filename="menu.png",
                                          filesize=len(picture))
            assert uploaded.content_uri.startswith("mxc://chat.test/"), uploaded
            media_id = uploaded.content_uri.rsplit("/", 1)[1]
            downloaded = await carol.download(uploaded.content_uri)
            assert downloaded.body == picture and downloaded.content_type == "image/png"
            status, _, _ = http_json(f"{url}/_matrix/client/v1/media/download/{DOMAIN}/{media_id}")
            assert status == 401  # authenticated media needs a session
            # A real PNG gets a real thumbnail, scaled into the box asked for.
            width, height = 120, 60
            raw = b"".join(b"\x00" + bytes([(x * y) % 256 for x in range(width) for _ in range(3)]) for y in range(height))
            chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data +
                                        struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
            png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
                   chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
            image, _ = await bob.upload(lambda *_: png, content_type="image/png", filename="map.png", filesize=len(png))
            image_id = image.content_uri.rsplit("/", 1)[1]
            request = urllib.request.Request(
                f"{url}/_matrix/client/v1/media/thumbnail/{DOMAIN}/{image_id}?width=30&height=30&method=scale",
                headers={"Authorization": f"Bearer {bob.access_token}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                thumb = response.read()
                assert response.headers["Content-Type"] == "image/png"
            assert thumb[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", thumb[16:24]) == (30, 15)
            status, body, _ = http_json(f"{url}/_matrix/client/v1/media/thumbnail/{DOMAIN}/{media_id}?width=30&height=30",
                                        token=bob.access_token)
            assert status == 400  # the earlier upload is not an image
            await bob.room_send(menu["room_id"], "m.room.message",
                                {"msgtype": "m.image", "body": "menu.png", "url": uploaded.content_uri})

            # A redaction leaves only what the room version keeps.
            sent = await bob.room_send(menu["room_id"], "m.room.message", {"msgtype": "m.text", "body": "oops"})
            await bob.room_redact(menu["room_id"], sent.event_id, reason="typo")
            status, event, _ = http_json(f"{url}/_matrix/client/v3/rooms/{menu['room_id']}/event/{sent.event_id}",
                                         token=bob.access_token)
            assert status == 200 and event["content"] == {} and "redacted_because" in event["unsigned"]

            # Suspension: out of the group's Space and the cooperative's, session gone.
            shard.coop("member", "suspend", "bob")
            wait_for(lambda: http_json(f"{url}/_matrix/client/v3/account/whoami", token=bob.access_token)[0] == 401,
                     timeout=5, what="bob's session to end")
            # The worker ends sessions first, then follows the registry into the Spaces.
            membership = lambda room: {m["user_id"]: m["membership"] for m in shard.json("room", "members", room)}
            wait_for(lambda: membership("Kitchen crew")[f"@bob:{DOMAIN}"] == "leave", timeout=15,
                     what="bob to leave the group's Space")
            wait_for(lambda: membership(cooperative["room_id"])[f"@bob:{DOMAIN}"] == "leave", timeout=15,
                     what="bob to leave the cooperative's Space")
            assert membership(cooperative["room_id"])[f"@carol:{DOMAIN}"] == "join"
        finally:
            await bob.close()
            await carol.close()

        out = os.path.join(shard.dir, "bob-chat.json")
        shard.coop("room", "export", "bob", "--out", out)
        with open(out) as f:
            exported = json.load(f)
        menu_export = next(r for r in exported["rooms"] if r["room_id"] == menu["room_id"])
        bodies = [e["content"].get("body") for e in menu_export["events"] if e["type"] == "m.room.message"]
        assert "menu.png" in bodies and "oops" not in bodies  # the redacted message stays redacted

    with Shard(BIN) as shard:
        url = start(shard)
        asyncio.run(scenario(url, shard))
        shard.coop("down")


def test_threads_relations_context_and_lazy_members():
    with Shard(BIN) as shard:
        url = start(shard)
        api = f"{url}/_matrix/client/v3"
        tokens = {}
        for user in ("alice", "bob"):
            tokens[user] = http_json(f"{api}/login", "POST", {"type": "m.login.password", "user": user, "password": STRONG})[1]["access_token"]
        for i in range(5):
            shard.coop("member", "add", f"extra{i}", "--password-stdin", input=STRONG)
        a, b = tokens["alice"], tokens["bob"]
        room = http_json(f"{api}/createRoom", "POST", {"name": "Plans", "preset": "public_chat"}, a)[1]["room_id"]
        http_json(f"{api}/join/{room}", "POST", {}, b)
        for i in range(5):  # members who stay silent: lazy loading leaves them out
            t = http_json(f"{api}/login", "POST", {"type": "m.login.password", "user": f"extra{i}", "password": STRONG})[1]
            http_json(f"{api}/join/{room}", "POST", {}, t["access_token"])

        def send(token, txn, content):
            return http_json(f"{api}/rooms/{room}/send/m.room.message/{txn}", "PUT", content, token)[1]["event_id"]

        root = send(a, "r", {"msgtype": "m.text", "body": "where do we meet?"})
        for i in range(3):
            send(b if i % 2 else a, f"t{i}", {"msgtype": "m.text", "body": f"reply {i}",
                                             "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        reaction = http_json(f"{api}/rooms/{room}/send/m.reaction/x1", "PUT",
                             {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}}, b)[1]["event_id"]

        status, threads, _ = http_json(f"{url}/_matrix/client/v1/rooms/{room}/threads", token=b)
        assert status == 200 and len(threads["chunk"]) == 1
        summary = threads["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
        assert threads["chunk"][0]["event_id"] == root and summary["count"] == 3
        assert summary["latest_event"]["content"]["body"] == "reply 2" and summary["current_user_participated"]
        status, rel, _ = http_json(f"{url}/_matrix/client/v1/rooms/{room}/relations/{root}/m.annotation", token=a)
        assert [e["event_id"] for e in rel["chunk"]] == [reaction]
        status, ctx, _ = http_json(f"{api}/rooms/{room}/context/{root}?limit=4", token=a)
        assert status == 200 and ctx["event"]["event_id"] == root and len(ctx["events_after"]) == 2
        assert any(e["type"] == "m.room.member" and e["state_key"] == f"@bob:{DOMAIN}" for e in ctx["state"])

        # Lazy-loading: with the filter, only members the timeline needs come in state.
        lazy = json.dumps({"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 2}}})
        eager = json.dumps({"room": {"timeline": {"limit": 2}}})
        full = http_json(f"{api}/sync?timeout=0&filter={urllib.parse.quote(eager)}", token=b)[1]["rooms"]["join"][room]
        part = http_json(f"{api}/sync?timeout=0&filter={urllib.parse.quote(lazy)}", token=b)[1]["rooms"]["join"][room]
        members = lambda r: {e["state_key"] for e in r["state"]["events"] if e["type"] == "m.room.member"}
        senders = {e["sender"] for e in part["timeline"]["events"]}
        assert members(part) <= senders | {f"@bob:{DOMAIN}"}, (members(part), senders)
        assert {f"@extra{i}:{DOMAIN}" for i in range(5)} <= members(full)

        # Event filters: by type with a wildcard, by sender, and per room.
        only = json.dumps({"room": {"timeline": {"types": ["m.room.mem*"], "limit": 50}}})
        timeline = http_json(f"{api}/sync?timeout=0&filter={urllib.parse.quote(only)}", token=b)[1]["rooms"]["join"][room]["timeline"]
        assert timeline["events"] and {e["type"] for e in timeline["events"]} == {"m.room.member"}
        skip = json.dumps({"not_types": ["m.room.message"], "senders": [f"@bob:{DOMAIN}"]})
        page = http_json(f"{api}/rooms/{room}/messages?dir=b&limit=20&filter={urllib.parse.quote(skip)}", token=b)[1]
        assert page["chunk"] and all(e["type"] != "m.room.message" and e["sender"] == f"@bob:{DOMAIN}" for e in page["chunk"])
        elsewhere = json.dumps({"room": {"not_rooms": [room]}})
        assert room not in http_json(f"{api}/sync?timeout=0&filter={urllib.parse.quote(elsewhere)}", token=b)[1]["rooms"]["join"]
        shard.coop("down")


def test_directory_aliases_forget_and_push_rules():
    with Shard(BIN) as shard:
        url = start(shard)
        api = f"{url}/_matrix/client/v3"
        a = http_json(f"{api}/login", "POST", {"type": "m.login.password", "user": "alice", "password": STRONG})[1]["access_token"]
        b = http_json(f"{api}/login", "POST", {"type": "m.login.password", "user": "bob", "password": STRONG})[1]["access_token"]
        listed = http_json(f"{api}/createRoom", "POST", {"name": "Open", "preset": "public_chat", "visibility": "public",
                                                         "room_alias_name": "open"}, a)[1]["room_id"]
        unlisted = http_json(f"{api}/createRoom", "POST", {"name": "Quiet", "preset": "public_chat"}, a)[1]["room_id"]
        rooms = [r["room_id"] for r in http_json(f"{api}/publicRooms")[1]["chunk"]]
        assert listed in rooms and unlisted not in rooms
        assert http_json(f"{api}/directory/list/room/{unlisted}")[1] == {"visibility": "private"}
        assert http_json(f"{api}/directory/list/room/{unlisted}", "PUT", {"visibility": "public"}, b)[0] == 403
        assert http_json(f"{api}/directory/list/room/{unlisted}", "PUT", {"visibility": "public"}, a)[0] == 200
        assert unlisted in [r["room_id"] for r in http_json(f"{api}/publicRooms")[1]["chunk"]]

        alias = urllib.parse.quote(f"#open:{DOMAIN}")
        assert http_json(f"{api}/rooms/{listed}/aliases", token=a)[1]["aliases"] == [f"#open:{DOMAIN}"]
        assert http_json(f"{api}/join/{alias}", "POST", {}, b)[1]["room_id"] == listed
        assert http_json(f"{api}/directory/room/{alias}", "DELETE", None, b)[0] == 403
        assert http_json(f"{api}/directory/room/{alias}", "DELETE", None, a)[0] == 200
        assert http_json(f"{api}/directory/room/{alias}")[0] == 404

        # Forgetting: only after leaving, and the room leaves bob's syncs.
        assert http_json(f"{api}/rooms/{listed}/forget", "POST", {}, b)[0] == 400
        http_json(f"{api}/rooms/{listed}/leave", "POST", {}, b)
        assert http_json(f"{api}/rooms/{listed}/forget", "POST", {}, b)[0] == 200
        sync = http_json(f"{api}/sync?timeout=0", token=b)[1]
        assert listed not in sync["rooms"]["join"] and listed not in sync["rooms"]["leave"]

        # Push rules: a member's own rule, a default rule switched off; both reach /sync.
        assert http_json(f"{api}/pushrules/global/content/cake", "PUT",
                         {"pattern": "cake", "actions": ["notify", {"set_tweak": "highlight"}]}, b)[0] == 200
        assert http_json(f"{api}/pushrules/global/underride/.m.rule.message/enabled", "PUT", {"enabled": False}, b)[0] == 200
        assert http_json(f"{api}/pushrules/global/override/.m.rule.master", "DELETE", None, b)[0] == 400
        rules = http_json(f"{api}/pushrules/", token=b)[1]["global"]
        assert rules["content"][0]["rule_id"] == "cake"
        assert next(r for r in rules["underride"] if r["rule_id"] == ".m.rule.message")["enabled"] is False
        assert http_json(f"{api}/pushrules/global/underride/.m.rule.message/enabled", token=b)[1] == {"enabled": False}
        sync = http_json(f"{api}/sync?timeout=0", token=b)[1]
        assert "m.push_rules" in [e["type"] for e in sync["account_data"]["events"]]
        assert http_json(f"{api}/pushrules/global/content/cake", "DELETE", None, b)[0] == 200
        assert http_json(f"{api}/pushrules/global/content/cake", token=b)[0] == 404
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_two_members_chat_with_nio,
        test_login_errors_cors_and_closed_registration,
        test_suspension_ends_matrix_sessions_within_a_second,
        test_spaces_follow_the_registry_and_media_round_trips,
        test_threads_relations_context_and_lazy_members,
        test_directory_aliases_forget_and_push_rules,
    ])
