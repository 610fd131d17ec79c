"""Members on their phones (issue 24). Simplified sliding sync (MSC4186) with real clients:
matrix-js-sdk's SlidingSync (tests/clients/sliding_sync.mjs) against coop-room, whose room list
follows the rooms as they get messages, ranges widen, a subscription brings a room outside them
with a longer timeline, required_state carries $ME and the timeline's senders ($LAZY), the five
extensions carry what they should, and a position stays good across a restart of coop-room;
matrix-js-sdk with Rust crypto on sliding sync and matrix-nio on /sync in one encrypted room.
Also a new device signed in with a login token, and push to a phone whose app is closed."""
import asyncio
import json
import os
import queue
import subprocess
import threading
import time
import urllib.parse

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for
from test_room_e2ee import nio_and_js_sdk_read_each_other
from test_room_nio import DOMAIN, STRONG, http_json, start

BIN = bin_dir_from_args()
CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients")
SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


class SlidingClient:
    """tests/clients/sliding_sync.mjs, fed commands on stdin; its JSON lines are collected."""

    def __init__(self, url, session):
        self.proc = subprocess.Popen(
            ["node", os.path.join(CLIENTS, "sliding_sync.mjs"), url, session["access_token"], session["user_id"],
             session["device_id"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"what": "output", "text": line.rstrip()})

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def wait(self, predicate, what, timeout=30):
        """The first line from now on that predicate accepts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if line.get("what") == "error" and line.get("status") not in (None, 400):
                raise AssertionError(f"sliding sync failed: {line}")
            if predicate(line):
                return line
        raise AssertionError(f"timed out waiting for {what}; the client said:\n" +
                             "\n".join(json.dumps(x) for x in self.seen[-30:]))

    def room(self, room_id, what, check=lambda r: True, timeout=30):
        return self.wait(lambda x: x.get("what") == "room" and x["room_id"] == room_id and check(x), what, timeout)

    def ext(self, name, check, what, timeout=30):
        return self.wait(lambda x: x.get("what") == "ext" and x["name"] == name and check(x["data"] or {}), what, timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("stop")
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.kill()


def login(url, user):
    status, session, _ = http_json(f"{url}/_matrix/client/v3/login", "POST",
                                   {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                                    "password": STRONG})
    assert status == 200, session
    return session


def call(url, session, method, path, body=None):
    status, answer, _ = http_json(f"{url}/_matrix/client/v3{path}", method, body, session["access_token"])
    assert status == 200, (method, path, status, answer)
    return answer


def test_room_list_subscriptions_extensions_and_restart():
    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob = login(url, "alice"), login(url, "bob")
        status, versions, _ = http_json(f"{url}/_matrix/client/versions")
        assert versions["unstable_features"].get("org.matrix.simplified_msc3575") is True, versions
        rooms = []
        for i in range(5):
            rooms.append(call(url, alice, "POST", "/createRoom", {"name": f"room {i}", "preset": "public_chat"})["room_id"])
        listed = len(call(url, alice, "GET", "/joined_rooms")["joined_rooms"])  # the cooperative's Space too

        client = SlidingClient(url, alice)
        try:
            client.wait(lambda x: x.get("what") == "ready", "the client to start")
            client.send("start")
            first = client.wait(lambda x: x.get("what") == "complete", "the first answer")
            assert first["count"] == listed, (first, listed)
            # The newest three rooms, each the first time: its name, one event, $ME.
            for room_id, name in ((rooms[4], "room 4"), (rooms[3], "room 3"), (rooms[2], "room 2")):
                seen = next(x for x in client.seen if x.get("what") == "room" and x["room_id"] == room_id)
                assert seen["initial"] and seen["name"] == name and len(seen["bodies"]) == 1, seen
                assert ["m.room.member", f"@alice:{DOMAIN}"] in seen["state"], seen
            assert not any(x.get("what") == "room" and x["room_id"] in rooms[:2] for x in client.seen)
            e2ee = client.ext("e2ee", lambda d: True, "the e2ee extension")["data"]
            assert "signed_curve25519" in e2ee["device_one_time_keys_count"], e2ee

            # bob joins the oldest room: it comes to the top of the list, sent for the first
            # time; then he talks, and his member event ($LAZY) comes next to the message.
            call(url, bob, "POST", f"/join/{rooms[0]}", {})
            seen = client.room(rooms[0], "room 0 once bob joins", lambda r: r["initial"])
            assert seen["name"] == "room 0" and seen["joined_count"] == 2, seen
            call(url, bob, "PUT", f"/rooms/{rooms[0]}/send/m.room.message/b1", {"msgtype": "m.text", "body": "hello from bob"})
            seen = client.room(rooms[0], "room 0 with bob's message", lambda r: "hello from bob" in r["bodies"])
            assert not seen["initial"] and seen["bodies"] == ["hello from bob"] and seen["notification_count"] == 1, seen
            assert ["m.room.member", f"@bob:{DOMAIN}"] in seen["state"], seen
            bump = seen["bump_stamp"]
            # An answer in the same room: not the first time any more, one live event.
            call(url, alice, "PUT", f"/rooms/{rooms[0]}/send/m.room.message/a1", {"msgtype": "m.text", "body": "hello bob"})
            seen = client.room(rooms[0], "alice's answer", lambda r: r["bodies"] == ["hello bob"])
            assert not seen["initial"] and seen["num_live"] == 1 and seen["bump_stamp"] > bump, seen

            # A wider range brings the rooms that were out of it, each the first time.
            client.send("ranges 0 9")
            seen = client.room(rooms[1], "room 1 once the range is wider", lambda r: r["initial"])
            assert seen["name"] == "room 1", seen

            # Extensions: bob types and reads alice's answer; alice's account data; bob's
            # to-device message for alice's device, once.
            call(url, bob, "PUT", f"/rooms/{rooms[0]}/typing/@bob:{DOMAIN}", {"typing": True, "timeout": 20000})
            client.ext("typing", lambda d: f"@bob:{DOMAIN}" in d.get("rooms", {}).get(rooms[0], {}).get("content", {}).get("user_ids", []),
                       "bob typing")
            last = call(url, alice, "GET", f"/rooms/{rooms[0]}/messages?dir=b&limit=1")["chunk"][0]["event_id"]
            call(url, bob, "POST", f"/rooms/{rooms[0]}/receipt/m.read/{last}", {})
            client.ext("receipts", lambda d: f"@bob:{DOMAIN}" in json.dumps(d.get("rooms", {}).get(rooms[0], {})), "bob's receipt")
            call(url, alice, "PUT", f"/user/@alice:{DOMAIN}/account_data/org.coop.test", {"n": 1})
            client.ext("account_data", lambda d: any(e["type"] == "org.coop.test" for e in d.get("global", [])), "alice's account data")
            call(url, bob, "PUT", "/sendToDevice/org.coop.test/t1",
                 {"messages": {f"@alice:{DOMAIN}": {alice["device_id"]: {"secret": "for alice"}}}})
            client.ext("to_device", lambda d: any(e["content"] == {"secret": "for alice"} for e in d.get("events", [])),
                       "bob's to-device message")

            # A subscription to a room outside the list's range, which the list sent before with
            # one event: the subscription's five events and all its state (an expanded timeline).
            client.send("ranges 0 0")
            client.wait(lambda x: x.get("what") == "complete", "the narrower list")
            old = rooms[1]
            client.send(f"subscribe {old}")
            seen = client.room(old, "the subscribed room, with more of its timeline", lambda r: len(r["bodies"]) > 1)
            assert seen["expanded"] and not seen["initial"] and len(seen["bodies"]) == 5, seen
            assert ["m.room.create", ""] in seen["state"] and ["m.room.join_rules", ""] in seen["state"], seen
            call(url, alice, "PUT", f"/rooms/{old}/send/m.room.message/a2", {"msgtype": "m.text", "body": "for room 1"})
            client.room(old, "room 1's new message", lambda r: r["bodies"] == ["for room 1"])
            client.wait(lambda x: x.get("what") == "complete", "an answer after the subscription")
            # The to-device message came once: later answers do not repeat it.
            repeats = [x for x in client.seen if x.get("what") == "ext" and x["name"] == "to_device" and x["data"]["events"]]
            assert len(repeats) == 1, repeats

            # coop-room restarts under the running client: its position still holds, so it
            # goes on with what is new (no M_UNKNOWN_POS, no room sent whole again).
            shard.coop("restart", "room")
            wait_for(lambda: http_json(f"{url}/_matrix/client/versions")[0] == 200, what="coop-room back")
            mark = len(client.seen)
            call(url, bob, "PUT", f"/rooms/{rooms[0]}/send/m.room.message/b3", {"msgtype": "m.text", "body": "during the restart"})
            seen = client.room(rooms[0], "the message after the restart", lambda r: r["bodies"] == ["during the restart"], timeout=60)
            after = client.seen[mark:]
            assert not seen["initial"], (seen, after)
            assert not [x for x in after if x.get("what") == "error" and x.get("status") == 400], after
            assert not [x for x in after if x.get("what") == "room" and x["initial"]], after
        finally:
            client.close()
        # Nothing received after last_pos was lost: the client stopped there.
        last_pos = [x for x in client.seen if x.get("what") == "complete"][-1]["pos"]

        # The position outlives coop-room: after a restart, the same position gives what
        # happened since, not M_UNKNOWN_POS.
        shard.coop("restart", "room")
        wait_for(lambda: http_json(f"{url}/_matrix/client/versions")[0] == 200, what="coop-room back")
        call(url, bob, "PUT", f"/rooms/{rooms[0]}/send/m.room.message/b2", {"msgtype": "m.text", "body": "after the restart"})
        # (The list as the client asked for it: a longer timeline would be an expansion.)
        body = {"lists": {"all": {"ranges": [[0, 0]], "timeline_limit": 1, "required_state": [
            ["m.room.name", ""], ["m.room.member", "$ME"], ["m.room.member", "$LAZY"], ["m.room.encryption", ""]]}}}
        status, answer, _ = http_json(f"{url}{SLIDING}?pos={last_pos}&timeout=0", "POST", body, alice["access_token"])
        assert status == 200, answer
        room = answer["rooms"][rooms[0]]
        bodies = [e["content"]["body"] for e in room["timeline"]]
        had = {b for x in client.seen if x.get("what") == "room" and x["room_id"] == rooms[0] for b in x["bodies"]}
        assert "initial" not in room and bodies[-1] == "after the restart" and not had & set(bodies), (room, had)
        # A position nobody was given: M_UNKNOWN_POS; bob cannot use alice's.
        status, answer, _ = http_json(f"{url}{SLIDING}?pos=123456789", "POST", body, alice["access_token"])
        assert status == 400 and answer["errcode"] == "M_UNKNOWN_POS", answer
        status, answer, _ = http_json(f"{url}{SLIDING}?pos={last_pos}", "POST", body, bob["access_token"])
        assert status == 400 and answer["errcode"] == "M_UNKNOWN_POS", answer

        # A room without a name is named for its heroes ("Calculating the display name for a
        # room"), then for its canonical alias once it has one.
        unnamed = call(url, alice, "POST", "/createRoom", {"preset": "public_chat"})["room_id"]
        call(url, bob, "POST", f"/join/{unnamed}", {})
        subscribe = {"room_subscriptions": {unnamed: {"timeline_limit": 1}}}
        status, answer, _ = http_json(f"{url}{SLIDING}", "POST", subscribe, alice["access_token"])
        room = answer["rooms"][unnamed]
        assert [h["user_id"] for h in room["heroes"]] == [f"@bob:{DOMAIN}"], room
        assert room["name"] == room["heroes"][0].get("displayname", f"@bob:{DOMAIN}") and room["joined_count"] == 2, room
        call(url, alice, "PUT", f"/directory/room/{urllib.parse.quote(f'#corner:{DOMAIN}')}", {"room_id": unnamed})
        call(url, alice, "PUT", f"/rooms/{unnamed}/state/m.room.canonical_alias", {"alias": f"#corner:{DOMAIN}"})
        status, answer, _ = http_json(f"{url}{SLIDING}?pos={answer['pos']}", "POST", subscribe, alice["access_token"])
        assert answer["rooms"][unnamed]["name"] == f"#corner:{DOMAIN}", answer["rooms"][unnamed]


def test_hostile_requests_get_clear_errors():
    """Bodies that are not what MSC4186 describes get a 400 and change nothing."""
    with Shard(BIN) as shard:
        url = start(shard)
        alice = login(url, "alice")
        token = alice["access_token"]
        for body in ([], {"lists": {"x": {"ranges": [[5, 1]]}}}, {"lists": {"x": {"ranges": [[-1, 3]]}}},
                     {"lists": {"x": {"ranges": "0-3"}}}, {"conn_id": "x" * 100}, {"lists": {"x": 5}},
                     {"lists": {f"l{i}": {"ranges": [[0, 1]]} for i in range(101)}}):
            status, answer, _ = http_json(f"{url}{SLIDING}", "POST", body, token)
            assert status == 400 and answer["errcode"].startswith("M_"), (body if len(json.dumps(body)) < 200 else "...", answer)
        too_many = [["m.room.topic", str(i)] for i in range(101)]
        for body in ({"lists": {"x": {"ranges": [[0, 1]], "required_state": too_many}}},
                     {"room_subscriptions": {"!a:b": {"required_state": [["t" * 300, ""]]}}},
                     {"lists": {"x": {"ranges": [[0, 1]], "filters": {"spaces": [f"!s{i}:x" for i in range(101)]}}}}):
            status, answer, _ = http_json(f"{url}{SLIDING}", "POST", body, token)
            assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer
        for pos in ("abc", "-1", "1" * 40, "../1"):
            status, answer, _ = http_json(f"{url}{SLIDING}?pos={pos}", "POST", {}, token)
            assert status == 400 and answer["errcode"] == "M_UNKNOWN_POS", (pos, answer)
        status, answer, _ = http_json(f"{url}{SLIDING}", "POST", {}, None)
        assert status == 401, answer
        # Odd but harmless: unknown fields, extensions and filters are ignored; a huge range is fine.
        status, answer, _ = http_json(f"{url}{SLIDING}", "POST", {
            "lists": {"x": {"ranges": [[0, 10 ** 12]], "timeline_limit": 10 ** 9, "required_state": [["*", "*"], [1, 2], "x"],
                            "filters": {"is_dm": "maybe", "spaces": [5], "tags": ["u.work"]}}},
            "extensions": {"nonsense": {"enabled": True}, "to_device": {"enabled": True, "limit": -5}},
            "room_subscriptions": {"!nowhere:elsewhere": {"timeline_limit": 1}}, "whatever": 1}, token)
        assert status == 200 and "nonsense" not in answer["extensions"], answer
        assert answer["rooms"] == {} or all(k != "!nowhere:elsewhere" for k in answer["rooms"]), answer

        # An invitation bob takes back: alice hears she is out (her own membership) and sees
        # nothing of a room she never joined, whatever she asks for.
        bob = login(url, "bob")
        private = call(url, bob, "POST", "/createRoom", {"name": "Private", "topic": "not for alice",
                                                          "invite": [f"@alice:{DOMAIN}"]})["room_id"]
        call(url, bob, "PUT", f"/rooms/{private}/send/m.room.message/m1", {"msgtype": "m.text", "body": "secret plans"})
        call(url, bob, "POST", f"/rooms/{private}/kick", {"user_id": f"@alice:{DOMAIN}"})
        status, answer, _ = http_json(f"{url}{SLIDING}", "POST", {
            "lists": {"x": {"ranges": [[0, 20]], "timeline_limit": 10, "required_state": [["*", "*"]]}},
            "room_subscriptions": {private: {"timeline_limit": 10, "required_state": [["*", "*"]]}},
            "extensions": {"receipts": {"enabled": True}, "typing": {"enabled": True}}}, token)
        assert status == 200, answer
        room = answer["rooms"][private]
        assert [(e["type"], e["content"]["membership"]) for e in room["required_state"]] == [("m.room.member", "leave")], room
        assert "timeline" not in room and "secret plans" not in json.dumps(answer) and "not for alice" not in json.dumps(answer), room


def test_nio_and_a_sliding_sync_client_read_each_other_in_an_encrypted_room():
    """matrix-nio on /sync and matrix-js-sdk with Rust crypto on sliding sync (its room keys
    come through the to_device extension, device lists through e2ee) in one encrypted room:
    each decrypts all ten of the other's messages."""
    nio_and_js_sdk_read_each_other("Phones", "sliding carol secret", env=dict(os.environ, COOP_SLIDING_SYNC="1"))


def test_a_second_device_signs_in_with_a_login_token():
    """Client-Server API POST /login/get_token and m.login.token: a signed-in device, after
    the password again, gets a token with which matrix-nio signs in a new device, once."""
    from nio import AsyncClient, LoginResponse

    with Shard(BIN) as shard:
        url = start(shard)
        alice = login(url, "alice")
        status, flows, _ = http_json(f"{url}/_matrix/client/v3/login")
        assert {"type": "m.login.token", "get_login_token": True} in flows["flows"], flows
        capabilities = call(url, alice, "GET", "/capabilities")["capabilities"]
        assert capabilities["m.get_login_token"] == {"enabled": True}, capabilities
        get_token = f"{url}/_matrix/client/v1/login/get_token"
        status, ask, _ = http_json(get_token, "POST", {}, alice["access_token"])
        assert status == 401 and "session" in ask, ask
        auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": STRONG,
                "session": ask["session"]}
        status, made, _ = http_json(get_token, "POST", {"auth": auth}, alice["access_token"])
        assert status == 200 and made["expires_in_ms"] == 120000 and len(made["login_token"]) >= 32, made

        async def phone():
            client = AsyncClient(url, f"@alice:{DOMAIN}")
            try:
                signed_in = await client.login(token=made["login_token"], device_name="phone")
                assert isinstance(signed_in, LoginResponse) and signed_in.device_id != alice["device_id"], signed_in
                status, who, _ = http_json(f"{url}/_matrix/client/v3/account/whoami", token=client.access_token)
                assert status == 200 and who["user_id"] == f"@alice:{DOMAIN}" and who["device_id"] == signed_in.device_id, who
            finally:
                await client.close()
        asyncio.run(phone())
        # Once only; and nothing else is a token.
        for token in (made["login_token"], "not a token", ""):
            status, answer, _ = http_json(f"{url}/_matrix/client/v3/login", "POST", {"type": "m.login.token", "token": token})
            assert status == 403 and answer["errcode"] == "M_FORBIDDEN", (token, answer)
        status, answer, _ = http_json(f"{url}/_matrix/client/v3/login", "POST", {"type": "m.login.token", "token": 5})
        assert status == 403, answer


def test_a_phone_whose_app_is_closed_hears_each_message_once_through_its_gateway():
    """Push (Push Gateway API, as Sygnal takes it): alice's phone syncs once with sliding sync,
    sets an HTTP pusher and closes; each of bob's messages reaches the gateway exactly once,
    with alice's growing unread count, and those of the encrypted room with no content."""
    from test_room_client import Gateway, start_with

    gateway = Gateway()
    try:
        with Shard(BIN) as shard:
            url = start_with(shard, f'push = {{ gateways = ["http://127.0.0.1:{gateway.port}/"] }}\n')
            alice, bob = login(url, "alice"), login(url, "bob")
            plain = call(url, bob, "POST", "/createRoom", {"name": "Plain", "invite": [f"@alice:{DOMAIN}"]})["room_id"]
            secret = call(url, bob, "POST", "/createRoom", {"name": "Secret", "invite": [f"@alice:{DOMAIN}"], "initial_state": [
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]})["room_id"]
            for room_id in (plain, secret):
                call(url, alice, "POST", f"/join/{room_id}", {})
            status, first, _ = http_json(f"{url}{SLIDING}", "POST", {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1}}},
                                         alice["access_token"])
            assert status == 200 and {plain, secret} <= set(first["rooms"]), first
            call(url, alice, "POST", "/pushers/set", {
                "kind": "http", "app_id": "io.element.elementx", "pushkey": "phone", "app_display_name": "Element X",
                "device_display_name": "phone", "lang": "en",
                "data": {"url": f"http://127.0.0.1:{gateway.port}/_matrix/push/v1/notify"}})
            sent = []
            for i in range(3):
                sent.append(call(url, bob, "PUT", f"/rooms/{plain}/send/m.room.message/p{i}", {"msgtype": "m.text", "body": f"plain {i}"})["event_id"])
            for i in range(2):
                sent.append(call(url, bob, "PUT", f"/rooms/{secret}/send/m.room.encrypted/e{i}", {
                    "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": f"opaque {i}", "sender_key": "k", "session_id": "s",
                    "device_id": "D"})["event_id"])
            # A last message: notifications go in order, so a repeat of any before it would
            # have come before it.
            sent.append(call(url, bob, "PUT", f"/rooms/{plain}/send/m.room.message/last", {"msgtype": "m.text", "body": "last"})["event_id"])
            wait_for(lambda: any(b["notification"]["event_id"] == sent[-1] for _, b in gateway.received), timeout=30,
                     what="the last notification")
            got = [b["notification"] for _, b in gateway.received]
            assert [n["event_id"] for n in got] == sent, ([n["event_id"] for n in got], sent)
            # The badge: alice's unread count when each goes out (never less than the messages
            # so far), six at the end.
            unread = [n["counts"]["unread"] for n in got]
            assert all(u >= i + 1 for i, u in enumerate(unread)) and unread == sorted(unread) and unread[-1] == 6, unread
            for n in got:
                assert n["devices"][0]["pushkey"] == "phone" and n["sender"] == f"@bob:{DOMAIN}", n
                if n["room_id"] == secret:
                    assert n["type"] == "m.room.encrypted" and "content" not in n, n
                else:
                    assert n["content"]["body"].startswith(("plain", "last")) and n["room_name"] == "Plain", n
            assert "opaque" not in json.dumps([n for n in got if n["room_id"] == secret])
    finally:
        gateway.close()


if __name__ == "__main__":
    run_tests([test_room_list_subscriptions_extensions_and_restart, test_hostile_requests_get_clear_errors,
               test_nio_and_a_sliding_sync_client_read_each_other_in_an_encrypted_room,
               test_a_second_device_signs_in_with_a_login_token,
               test_a_phone_whose_app_is_closed_hears_each_message_once_through_its_gateway])
