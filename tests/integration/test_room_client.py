"""What Element-class clients depend on from coop-room beyond encryption: transaction IDs on
the sender's own events, bundled edits, threads and references (Complement's TestRelations*,
TestThreadsEndpoint area), history up to the moment a member left, lazy-loaded members in
/messages, the room summary on membership changes, names on the joins coop writes, Space
hierarchy pages, leaving and rejoining the cooperative's Space, and discovery that takes
its address from coop.toml."""
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request

from coopshard import Shard, bin_dir_from_args, free_port_block, run_tests, wait_for
from test_room_e2ee import ALICE, BOB, CAROL, Member
from test_room_nio import DOMAIN, STRONG, homeserver, http_json, start


def start_with(shard, room_settings):
    """A shard whose [workers.room] has these extra lines, with alice and bob (bob an admin)."""
    shard.domain = DOMAIN
    shard.init()
    config = os.path.join(shard.home, "coop.toml")
    with open(config) as f:
        text_of_config = f.read()
    with open(config, "w") as f:
        f.write(text_of_config.replace("[workers.room]\n", "[workers.room]\n" + room_settings, 1))
    shard.coop("up")
    shard.coop("member", "add", "alice", "--name", "Alice Liddell", "--password-stdin", input=STRONG)
    shard.coop("member", "add", "bob", "--name", "Bob Builder", "--email", "bob@chat.test", "--role", "admin",
               "--password-stdin", input=STRONG)
    return homeserver(shard)

BIN = bin_dir_from_args()


def q(room_id):
    return urllib.parse.quote(room_id)


def send(member, room_id, content, txn, event_type="m.room.message"):
    return member.ok("PUT", f"/rooms/{q(room_id)}/send/{event_type}/{txn}", content)["event_id"]


def text(body):
    return {"msgtype": "m.text", "body": body}


def timeline_of(sync, room_id):
    return sync["rooms"]["join"].get(room_id, {}).get("timeline", {}).get("events", [])


def test_transaction_ids_and_bundled_relations():
    with Shard(BIN) as shard:
        url = start(shard)
        shard.coop("member", "add", "carol", "--password-stdin", input=STRONG)
        alice, alice2, bob, carol = Member(url, "alice"), Member(url, "alice"), Member(url, "bob"), Member(url, "carol")
        room_id = alice.ok("POST", "/createRoom", {"invite": [BOB, CAROL]})["room_id"]
        for m in (bob, carol):
            m.ok("POST", f"/join/{q(room_id)}", {})
        for m in (alice, alice2, bob):
            m.sync()

        # Client-Server API "Transaction identifiers": the sending device sees its txn id.
        original = send(alice, room_id, text("the original"), "txn-original")
        for viewer, expected in ((alice, "txn-original"), (alice2, None), (bob, None)):
            event = next(e for e in timeline_of(viewer.sync(), room_id) if e["event_id"] == original)
            assert event.get("unsigned", {}).get("transaction_id") == expected, (viewer.device, event)
        assert alice.ok("GET", f"/rooms/{q(room_id)}/event/{q(original)}")["unsigned"]["transaction_id"] == "txn-original"

        # Edits: the latest by the original sender is bundled; another member's "edit" is not.
        def edit(member, body, txn):
            return send(member, room_id, {"msgtype": "m.text", "body": "* " + body,
                                          "m.new_content": text(body),
                                          "m.relates_to": {"rel_type": "m.replace", "event_id": original}}, txn)
        edit(alice, "first edit", "e1")
        latest = edit(alice, "second edit", "e2")
        edit(bob, "not allowed", "e3")
        bundled = bob.ok("GET", f"/rooms/{q(room_id)}/event/{q(original)}")["unsigned"]["m.relations"]
        assert bundled["m.replace"]["event_id"] == latest, bundled
        assert bundled["m.replace"]["content"]["m.new_content"]["body"] == "second edit", bundled

        # Threads: count, latest reply, and whether the viewer took part.
        def reply(member, body, txn):
            return send(member, room_id, {"msgtype": "m.text", "body": body,
                                          "m.relates_to": {"rel_type": "m.thread", "event_id": original}}, txn)
        reply(bob, "in the thread", "t1")
        last_reply = reply(bob, "still in the thread", "t2")
        thread = carol.ok("GET", f"/rooms/{q(room_id)}/event/{q(original)}")["unsigned"]["m.relations"]["m.thread"]
        assert thread["count"] == 2 and thread["latest_event"]["event_id"] == last_reply, thread
        assert thread["current_user_participated"] is False, thread
        assert bob.ok("GET", f"/rooms/{q(room_id)}/event/{q(original)}")["unsigned"]["m.relations"]["m.thread"][
            "current_user_participated"] is True
        assert alice.ok("GET", f"/rooms/{q(room_id)}/event/{q(original)}")["unsigned"]["m.relations"]["m.thread"][
            "current_user_participated"] is True, "the root's sender takes part in its thread"
        # References.
        reference = send(carol, room_id, {"msgtype": "m.text", "body": "see above",
                                          "m.relates_to": {"rel_type": "m.reference", "event_id": original}}, "r1")
        # /messages, /context and /sync carry the same bundles.
        chunk = bob.ok("GET", f"/rooms/{q(room_id)}/messages?dir=b&limit=50")["chunk"]
        root = next(e for e in chunk if e["event_id"] == original)
        assert root["unsigned"]["m.relations"]["m.reference"]["chunk"] == [{"event_id": reference}], root
        context = bob.ok("GET", f"/rooms/{q(room_id)}/context/{q(original)}?limit=2")
        assert context["event"]["unsigned"]["m.relations"]["m.thread"]["count"] == 2, context["event"]
        gappy = Member(url, "bob")
        first = gappy.ok("GET", "/sync?" + urllib.parse.urlencode(
            {"filter": json.dumps({"room": {"timeline": {"limit": 50}}})}))
        root = next(e for e in timeline_of(first, room_id) if e["event_id"] == original)
        assert root["unsigned"]["m.relations"]["m.replace"]["event_id"] == latest, root
        # A redacted edit is no longer bundled.
        alice.ok("PUT", f"/rooms/{q(room_id)}/redact/{q(latest)}/red1", {})
        bundled = bob.ok("GET", f"/rooms/{q(room_id)}/event/{q(original)}")["unsigned"]["m.relations"]
        assert bundled["m.replace"]["content"]["m.new_content"]["body"] == "first edit", bundled
        shard.coop("down")


def test_history_until_leaving_and_lazy_members():
    """A member who left reads the room up to their leave, not after; /messages with
    lazy_load_members carries the member events of its senders."""
    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob = Member(url, "alice"), Member(url, "bob")
        room_id = alice.ok("POST", "/createRoom", {"invite": [BOB]})["room_id"]
        bob.ok("POST", f"/join/{q(room_id)}", {})
        before = [send(alice, room_id, text(f"before {i}"), f"b{i}") for i in range(3)]
        bob.ok("POST", f"/rooms/{q(room_id)}/leave", {})
        after = send(alice, room_id, text("after bob left"), "a1")

        chunk = bob.ok("GET", f"/rooms/{q(room_id)}/messages?dir=b&limit=10")["chunk"]
        ids = [e["event_id"] for e in chunk]
        assert after not in ids and all(b in ids for b in before), [e.get("content", {}).get("body") for e in chunk]
        status, _ = bob.call("GET", f"/rooms/{q(room_id)}/event/{q(after)}")
        assert status == 404
        bob.ok("GET", f"/rooms/{q(room_id)}/event/{q(before[1])}")
        # Someone who was never in the room reads nothing.
        shard.coop("member", "add", "carol", "--password-stdin", input=STRONG)
        carol = Member(url, "carol")
        status, answer = carol.call("GET", f"/rooms/{q(room_id)}/messages?dir=b")
        assert status == 403, answer

        lazy = json.dumps({"lazy_load_members": True})
        answer = alice.ok("GET", f"/rooms/{q(room_id)}/messages?dir=b&limit=3&filter={urllib.parse.quote(lazy)}")
        members = {e["state_key"] for e in answer["state"] if e["type"] == "m.room.member"}
        senders = {e["sender"] for e in answer["chunk"]}
        assert members == senders, (members, senders)
        shard.coop("down")


def test_summary_names_and_discovery():
    """The summary comes with membership changes; the joins coop writes carry names; the
    well-known address is coop.toml's, whatever the Host header says."""
    with Shard(BIN) as shard:
        url = start_with(shard, 'public_url = "https://matrix.chat.test/"\n')
        shard.coop("member", "add", "carol", "--password-stdin", input=STRONG)

        request = urllib.request.Request(f"{url}/.well-known/matrix/client", headers={"Host": "evil.example"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["m.homeserver"]["base_url"] == "https://matrix.chat.test"

        alice, bob, carol = Member(url, "alice"), Member(url, "bob"), Member(url, "carol")
        room_id = alice.ok("POST", "/createRoom", {"invite": [BOB, CAROL]})["room_id"]
        creator_join = alice.ok("GET", f"/rooms/{q(room_id)}/state/m.room.member/{q(ALICE)}")
        assert creator_join["displayname"] == "Alice Liddell", creator_join
        space_id = next(r["room_id"] for r in shard.json("room", "list") if r.get("managed") == "cooperative")
        wait_for(lambda: alice.call("GET", f"/rooms/{q(space_id)}/state/m.room.member/{q(BOB)}")[0] == 200,
                 what="bob in the cooperative's Space")
        space_join = alice.ok("GET", f"/rooms/{q(space_id)}/state/m.room.member/{q(BOB)}")
        assert space_join["displayname"] == "Bob Builder", space_join

        bob.ok("POST", f"/join/{q(room_id)}", {})
        alice.sync()
        carol.ok("POST", f"/join/{q(room_id)}", {})
        summary = alice.sync()["rooms"]["join"][room_id].get("summary")
        assert summary and summary["m.joined_member_count"] == 3 and summary["m.invited_member_count"] == 0, summary
        send(bob, room_id, text("no membership change"), "x1")
        assert "summary" not in alice.sync()["rooms"]["join"][room_id]
        shard.coop("down")


def test_space_hierarchy_pages_and_rejoining_the_cooperative_space():
    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob = Member(url, "alice"), Member(url, "bob")
        space = alice.ok("POST", "/createRoom", {"creation_content": {"type": "m.space"}, "name": "Garden"})["room_id"]
        children = []
        for i in range(5):
            child = alice.ok("POST", "/createRoom", {"name": f"Bed {i}"})["room_id"]
            alice.ok("PUT", f"/rooms/{q(space)}/state/m.space.child/{q(child)}",
                     {"via": [DOMAIN], "suggested": i == 0})
            children.append(child)
        listed, token, pages = [], None, 0
        while True:
            path = f"/rooms/{q(space)}/hierarchy?limit=2" + (f"&from={token}" if token else "")
            status, page, _ = http_json(f"{url}/_matrix/client/v1{path}", token=alice.token)
            assert status == 200, page
            assert len(page["rooms"]) <= 2
            listed += [r["room_id"] for r in page["rooms"]]
            pages += 1
            token = page.get("next_batch")
            if not token:
                break
        assert pages == 3 and listed[0] == space and set(listed[1:]) == set(children), listed
        status, page, _ = http_json(f"{url}/_matrix/client/v1/rooms/{q(space)}/hierarchy?suggested_only=true",
                                    token=alice.token)
        assert [r["room_id"] for r in page["rooms"]] == [space, children[0]], page
        status, _, _ = http_json(f"{url}/_matrix/client/v1/rooms/{q(space)}/hierarchy?from=x", token=alice.token)
        assert status == 400

        # bob leaves the cooperative's Space; he stays out (a registry change does not pull him
        # back in) until he joins again, which he may.
        coop_space = next(r["room_id"] for r in shard.json("room", "list") if r.get("managed") == "cooperative")
        wait_for(lambda: bob.call("GET", f"/rooms/{q(coop_space)}/joined_members")[0] == 200, what="bob in the Space")
        bob.ok("POST", f"/rooms/{q(coop_space)}/leave", {})
        shard.coop("member", "set", "bob", "--name", "Bob again")
        shard.coop("member", "add", "dave", "--password-stdin", input=STRONG)
        # The registry's events are taken in order: once dave is in, bob's change was seen too.
        wait_for(lambda: f"@dave:{DOMAIN}" in alice.ok("GET", f"/rooms/{q(coop_space)}/joined_members")["joined"],
                 what="dave in the cooperative's Space")
        status, _ = bob.call("GET", f"/rooms/{q(coop_space)}/joined_members")
        assert status == 403, "bob was put back into the Space he left"
        bob.ok("POST", f"/join/{q(coop_space)}", {})
        members = bob.ok("GET", f"/rooms/{q(coop_space)}/joined_members")["joined"]
        assert BOB in members, members
        shard.coop("down")


def test_profiles_directory_and_small_endpoints():
    """Profiles set over Matrix reach every room; room account data reads back; the directory
    searches and pages; the endpoints Element calls at start-up answer as the big servers do."""
    with Shard(BIN) as shard:
        url = start_with(shard, 'support_page = "https://chat.test/help"\n')
        alice, bob = Member(url, "alice"), Member(url, "bob")
        caps = alice.ok("GET", "/capabilities")["capabilities"]
        assert caps["m.set_displayname"]["enabled"] and caps["m.set_avatar_url"]["enabled"], caps

        room_id = alice.ok("POST", "/createRoom", {"invite": [BOB], "name": "Orchard", "visibility": "public",
                                                   "preset": "public_chat"})["room_id"]
        bob.ok("POST", f"/join/{q(room_id)}", {})
        bob.sync()
        alice.ok("PUT", f"/profile/{q(ALICE)}/displayname", {"displayname": "Alice in Chains"})
        alice.ok("PUT", f"/profile/{q(ALICE)}/avatar_url", {"avatar_url": "mxc://chat.test/abc"})
        profile = bob.ok("GET", f"/profile/{q(ALICE)}")
        assert profile == {"displayname": "Alice in Chains", "avatar_url": "mxc://chat.test/abc"}, profile
        member = bob.ok("GET", f"/rooms/{q(room_id)}/state/m.room.member/{q(ALICE)}")
        assert member["displayname"] == "Alice in Chains" and member["avatar_url"] == "mxc://chat.test/abc", member
        # Rooms she creates or joins later carry the same profile in her join.
        later = alice.ok("POST", "/createRoom", {"name": "Later"})["room_id"]
        join = alice.ok("GET", f"/rooms/{q(later)}/state/m.room.member/{q(ALICE)}")
        assert join["displayname"] == "Alice in Chains" and join["avatar_url"] == "mxc://chat.test/abc", join
        status, _ = bob.call("PUT", f"/profile/{q(ALICE)}/displayname", {"displayname": "mine now"})
        assert status == 403
        status, _ = alice.call("PUT", f"/profile/{q(ALICE)}/avatar_url", {"avatar_url": "https://tracker.example/x.png"})
        assert status == 400
        status, _ = alice.call("PUT", f"/profile/{q(ALICE)}/displayname", {"displayname": "x" * 300})
        assert status == 400
        status, _ = alice.call("GET", "/profile/@someone:elsewhere.test")
        assert status == 404

        # Room account data reads back what was written, per room.
        alice.ok("PUT", f"/user/{q(ALICE)}/rooms/{q(room_id)}/account_data/org.example.x", {"n": 1})
        assert alice.ok("GET", f"/user/{q(ALICE)}/rooms/{q(room_id)}/account_data/org.example.x") == {"n": 1}
        status, _ = alice.call("GET", f"/user/{q(ALICE)}/rooms/{q(room_id)}/account_data/org.example.none")
        assert status == 404
        status, _ = bob.call("GET", f"/user/{q(ALICE)}/rooms/{q(room_id)}/account_data/org.example.x")
        assert status == 403

        # The directory: POST with a search term and pages.
        for i in range(3):
            alice.ok("POST", "/createRoom", {"name": f"Plot {i}", "visibility": "public", "preset": "public_chat"})
        found = bob.ok("POST", "/publicRooms", {"filter": {"generic_search_term": "orch"}})
        assert [r["room_id"] for r in found["chunk"]] == [room_id], found
        assert found["chunk"][0]["join_rule"] == "public" and found["chunk"][0]["num_joined_members"] == 2
        page = bob.ok("POST", "/publicRooms", {"limit": 2})
        assert len(page["chunk"]) == 2 and page["chunk"][0]["room_id"] == room_id and "next_batch" in page, page
        rest = bob.ok("POST", "/publicRooms", {"limit": 2, "since": page["next_batch"]})
        assert len(rest["chunk"]) == 2 and "next_batch" not in rest, rest
        status, _ = bob.call("POST", "/publicRooms", {"since": "nonsense"})
        assert status == 400

        # Start-up calls.
        status, answer = alice.call("GET", "/register/available?username=zed")
        assert status == 403 and answer["errcode"] == "M_FORBIDDEN", answer
        assert alice.ok("GET", "/account/3pid") == {"threepids": []}
        assert alice.ok("GET", "/thirdparty/protocols") == {}
        assert alice.ok("GET", f"/presence/{q(BOB)}/status")["presence"] == "offline"
        alice.ok("PUT", f"/presence/{q(ALICE)}/status", {"presence": "online"})
        status, support, _ = http_json(f"{url}/.well-known/matrix/support")
        assert status == 200 and support["support_page"] == "https://chat.test/help", support
        assert support["contacts"] == [{"matrix_id": BOB, "role": "m.role.admin", "email_address": "bob@chat.test"}], support
        token = alice.ok("POST", f"/user/{q(ALICE)}/openid/request_token", {})
        assert token["token_type"] == "Bearer" and token["matrix_server_name"] == DOMAIN and token["expires_in"] > 0
        status, _ = alice.call("POST", f"/user/{q(BOB)}/openid/request_token", {})
        assert status == 403
        # No TURN server configured: an empty answer.
        assert alice.ok("GET", "/voip/turnServer") == {}
        shard.coop("down")


def test_push_rules_counts_notifications_and_pushers():
    """TestPushSync-style: the default rules decide notification and highlight counts (threads
    apart when asked), a member's own rule changes them, read receipts clear them, and
    GET /notifications lists what notified; pushers are kept per member."""
    with Shard(BIN) as shard:
        url = start_with(shard, "")
        alice, bob = Member(url, "alice"), Member(url, "bob")
        room_id = alice.ok("POST", "/createRoom", {"invite": [BOB]})["room_id"]
        bob.ok("POST", f"/join/{q(room_id)}", {})
        bob.sync()

        send(alice, room_id, text("plain message"), "p1")
        send(alice, room_id, text("hey bob, lunch?"), "p2")  # bob's user name: a highlight
        send(alice, room_id, {"msgtype": "m.notice", "body": "a bot's notice"}, "p3")
        mention = send(alice, room_id, {"msgtype": "m.text", "body": "look",
                                        "m.mentions": {"user_ids": [BOB]}}, "p4")
        root = send(alice, room_id, text("thread root"), "p5")
        send(alice, room_id, {"msgtype": "m.text", "body": "in a thread",
                              "m.relates_to": {"rel_type": "m.thread", "event_id": root}}, "p6")
        counts = bob.sync()["rooms"]["join"][room_id]["unread_notifications"]
        assert counts == {"notification_count": 5, "highlight_count": 2}, counts
        # Threads apart, when the filter asks.
        threaded = Member(url, "bob")
        filt = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})
        room = threaded.ok("GET", "/sync?filter=" + urllib.parse.quote(filt))["rooms"]["join"][room_id]
        assert room["unread_notifications"]["notification_count"] == 4, room["unread_notifications"]
        assert room["unread_thread_notifications"] == {root: {"notification_count": 1, "highlight_count": 0}}, room
        # alice's own messages never count for her.
        assert alice.sync()["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 0

        listed = bob.ok("GET", "/notifications?limit=3")
        assert len(listed["notifications"]) == 3 and "next_token" in listed, listed
        assert all(not n["read"] and n["room_id"] == room_id for n in listed["notifications"])
        rest = bob.ok("GET", f"/notifications?from={listed['next_token']}")
        # The five above and alice's invitation; coop's own Space invitation is not one.
        assert len(listed["notifications"]) + len(rest["notifications"]) == 6, rest
        assert all(n["room_id"] == room_id for n in rest["notifications"]), rest
        highlights = bob.ok("GET", "/notifications?only=highlight")["notifications"]
        assert {n["event"]["event_id"] for n in highlights} >= {mention}, highlights
        assert all({"set_tweak": "highlight"} in n["actions"] for n in highlights)

        # A read receipt clears the counts; the listed notifications now read as read.
        bob.ok("POST", f"/rooms/{q(room_id)}/receipt/m.read/{q(mention)}", {})
        counts = bob.sync()["rooms"]["join"][room_id]["unread_notifications"]
        assert counts == {"notification_count": 2, "highlight_count": 0}, counts
        assert any(n["read"] for n in bob.ok("GET", "/notifications")["notifications"])

        # bob mutes alice with a rule of his own: nothing she sends counts any more.
        bob.ok("PUT", "/pushrules/global/override/mute-alice",
               {"conditions": [{"kind": "event_match", "key": "sender", "pattern": ALICE}], "actions": []})
        rules = bob.ok("GET", "/pushrules/")["global"]["override"]
        assert [r["rule_id"] for r in rules[:2]] == [".m.rule.master", "mute-alice"], rules[:3]
        assert any(r["rule_id"] == ".m.rule.suppress_edits" for r in rules)
        before = bob.sync()["rooms"]["join"].get(room_id, {}).get("unread_notifications")
        send(alice, room_id, text("bob, are you muting me?"), "p7")
        after = bob.sync()["rooms"]["join"][room_id]["unread_notifications"]
        assert after == {"notification_count": 2, "highlight_count": 0}, (before, after)

        # Pushers: kept, listed, replaced, removed; bad ones refused.
        pusher = {"kind": "http", "app_id": "im.vector.app", "pushkey": "device-token", "app_display_name": "Element",
                  "device_display_name": "phone", "lang": "en", "data": {"url": "https://push.example/_matrix/push/v1/notify"}}
        bob.ok("POST", "/pushers/set", pusher)
        assert bob.ok("GET", "/pushers")["pushers"][0]["pushkey"] == "device-token"
        alice.ok("POST", "/pushers/set", pusher)  # the device changed hands: bob's goes
        assert bob.ok("GET", "/pushers")["pushers"] == []
        status, _ = bob.call("POST", "/pushers/set", dict(pusher, data={"url": "https://push.example/other"}))
        assert status == 400
        status, _ = bob.call("POST", "/pushers/set", dict(pusher, pushkey=""))
        assert status == 400
        alice.ok("POST", "/pushers/set", {"kind": None, "app_id": "im.vector.app", "pushkey": "device-token"})
        assert alice.ok("GET", "/pushers")["pushers"] == []
        shard.coop("down")


def test_threaded_read_receipts():
    """Threaded read receipts (TestThreadReceipts-style): a receipt in a thread clears that
    thread's counts only, one for "main" the main timeline's only, an unthreaded one both;
    the receipt goes out with its thread_id; thread_ids that cannot be right are refused."""
    with Shard(BIN) as shard:
        url = start_with(shard, "")
        alice, bob = Member(url, "alice"), Member(url, "bob")
        room_id = alice.ok("POST", "/createRoom", {"invite": [BOB]})["room_id"]
        bob.ok("POST", f"/join/{q(room_id)}", {})
        first = send(alice, room_id, text("main one"), "t1")
        root = send(alice, room_id, text("thread root"), "t2")
        reply = send(alice, room_id, {"msgtype": "m.text", "body": "in the thread",
                                      "m.relates_to": {"rel_type": "m.thread", "event_id": root}}, "t3")
        last = send(alice, room_id, text("main two"), "t4")
        filt = urllib.parse.quote(json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}}))

        def counts():
            room = bob.ok("GET", f"/sync?filter={filt}")["rooms"]["join"][room_id]
            threads = {k: v["notification_count"] for k, v in room.get("unread_thread_notifications", {}).items()
                       if v["notification_count"]}
            return room["unread_notifications"]["notification_count"], threads

        assert counts() == (3, {root: 1})
        bob.ok("POST", f"/rooms/{q(room_id)}/receipt/m.read/{q(reply)}", {"thread_id": root})
        assert counts() == (3, {})
        bob.ok("POST", f"/rooms/{q(room_id)}/receipt/m.read/{q(first)}", {"thread_id": "main"})
        assert counts() == (2, {})
        receipts = [e for e in bob.sync()["rooms"]["join"][room_id]["ephemeral"]["events"] if e["type"] == "m.receipt"]
        seen = {(event_id, r.get("thread_id")) for e in receipts for event_id, by in e["content"].items()
                for r in by.get("m.read", {}).values()}
        assert {(reply, root), (first, "main")} <= seen, receipts

        # A new thread reply counts in its thread again; an unthreaded receipt reads everything before it.
        later = send(alice, room_id, {"msgtype": "m.text", "body": "more in the thread",
                                      "m.relates_to": {"rel_type": "m.thread", "event_id": root}}, "t5")
        assert counts() == (2, {root: 1})
        bob.ok("POST", f"/rooms/{q(room_id)}/receipt/m.read/{q(later)}", {})
        assert counts() == (0, {})

        for body, event_id, kind in [({"thread_id": 5}, last, "m.read"), ({"thread_id": ""}, last, "m.read"),
                                     ({"thread_id": root}, last, "m.read"),  # not in that thread
                                     ({"thread_id": "main"}, last, "m.fully_read")]:
            status, answer = bob.call("POST", f"/rooms/{q(room_id)}/receipt/{kind}/{q(event_id)}", body)
            assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", (body, status, answer)
        shard.coop("down")


def test_search():
    """TestSearch: words anywhere in bodies, names and topics of rooms the member can read, in
    pages, newest first or best first, with context; not in rooms they never joined, not after
    they left, not what was redacted; the member's words never reach the query syntax."""
    with Shard(BIN) as shard:
        url = start_with(shard, "")
        shard.coop("member", "add", "carol", "--password-stdin", input=STRONG)
        alice, bob, carol = Member(url, "alice"), Member(url, "bob"), Member(url, "carol")
        room_id = alice.ok("POST", "/createRoom", {"invite": [BOB], "name": "Compost corner",
                                                   "topic": "All about worms"})["room_id"]
        bob.ok("POST", f"/join/{q(room_id)}", {})
        private = alice.ok("POST", "/createRoom", {"name": "Secret compost plans"})["room_id"]
        for i in range(12):
            send(alice, room_id, text(f"turning the compost heap, day {i}"), f"c{i}")
        send(alice, room_id, text("Pommes de terre récoltées"), "fr")
        secret = send(alice, private, text("compost recipe nobody else may read"), "s1")
        gone = send(alice, room_id, text("compost gossip to take back"), "g1")
        alice.ok("PUT", f"/rooms/{q(room_id)}/redact/{q(gone)}/r1", {})

        def search(member, term, query="", **criteria):
            body = {"search_categories": {"room_events": dict({"search_term": term}, **criteria)}}
            return member.ok("POST", "/search" + query, body)["search_categories"]["room_events"]

        assert search(bob, "compost")["count"] == 13  # the twelve messages and the room's name
        found = search(bob, "compost", order_by="recent", filter={"limit": 5}, keys=["content.body"])
        assert found["count"] == 12 and len(found["results"]) == 5 and "next_batch" in found, found
        assert found["results"][0]["result"]["content"]["body"] == "turning the compost heap, day 11"
        assert "compost" in found["highlights"]
        seen = [r["result"]["event_id"] for r in found["results"]]
        token = found["next_batch"]
        while token:
            more = search(bob, "compost", f"?next_batch={token}", order_by="recent", filter={"limit": 5},
                          keys=["content.body"])
            seen += [r["result"]["event_id"] for r in more["results"]]
            token = more.get("next_batch")
        assert len(seen) == len(set(seen)) == 12 and secret not in seen and gone not in seen, seen
        # Names and topics too, and prefixes of the last word; accents folded.
        assert search(bob, "worm", keys=["content.topic"])["count"] == 1
        assert search(bob, "corner", keys=["content.name"])["count"] == 1
        assert search(bob, "recoltees")["count"] == 1
        # alice finds her private room's message; carol, in neither room, finds nothing.
        assert secret in [r["result"]["event_id"] for r in search(alice, "recipe")["results"]]
        assert search(carol, "compost")["count"] == 0
        # Context and profiles.
        one = search(bob, "day 5", event_context={"before_limit": 1, "after_limit": 1, "include_profile": True})
        result = one["results"][0]
        assert result["result"]["content"]["body"] == "turning the compost heap, day 5", one
        assert result["context"]["events_before"][0]["content"]["body"].endswith("day 4")
        assert result["context"]["events_after"][0]["content"]["body"].endswith("day 6")
        assert result["context"]["profile_info"][ALICE]["displayname"] == "Alice Liddell"
        # After bob leaves, what came later is not his to find.
        bob.ok("POST", f"/rooms/{q(room_id)}/leave", {})
        send(alice, room_id, text("compost after bob left"), "late")
        assert search(bob, "left")["count"] == 0
        assert search(alice, "left")["count"] == 1
        # FTS syntax from the member is only words.
        for term in ['"', "compost OR secret", "NEAR(a b)", "*", "compost\" AND \"x", "", "a" * 5000]:
            search(alice, term)
        status, _ = alice.call("POST", "/search", {"search_categories": {"room_events": {"search_term": 5}}})
        assert status == 400
        status, _ = alice.call("POST", "/search?next_batch=x", {"search_categories": {"room_events": {"search_term": "a"}}})
        assert status == 400
        shard.coop("down")


def test_knock():
    """Knocking (room versions 7+): a member asks to join a room whose join rule is knock; its
    moderators see the knock and let them in with an invite. Rooms that take no knocks refuse."""
    with Shard(BIN) as shard:
        url = start(shard)
        alice, bob = Member(url, "alice"), Member(url, "bob")
        room_id = alice.ok("POST", "/createRoom", {"name": "Workshop", "initial_state": [
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]})["room_id"]
        closed = alice.ok("POST", "/createRoom", {"name": "Closed"})["room_id"]
        alice.sync()
        bob.sync()
        status, answer = bob.call("POST", f"/knock/{q(closed)}", {})
        assert status == 403 and answer["errcode"] == "M_FORBIDDEN", answer
        status, _ = bob.call("POST", f"/join/{q(room_id)}", {})
        assert status == 403, "a knock room let bob straight in"
        assert bob.ok("POST", f"/knock/{q(room_id)}", {"reason": "I can bring tools"})["room_id"] == room_id
        knocked = bob.sync()["rooms"]["knock"]
        assert room_id in knocked, knocked
        names = [e["content"].get("name") for e in knocked[room_id]["knock_state"]["events"] if e["type"] == "m.room.name"]
        assert names == ["Workshop"], knocked
        timeline = timeline_of(alice.sync(), room_id)
        knock = next(e for e in timeline if e["type"] == "m.room.member" and e["state_key"] == BOB)
        assert knock["content"]["membership"] == "knock" and knock["content"]["reason"] == "I can bring tools", knock
        status, _ = bob.call("POST", f"/knock/{q(room_id)}", {})
        assert status == 200  # knocking again is allowed while the knock stands
        alice.ok("POST", f"/rooms/{q(room_id)}/invite", {"user_id": BOB})
        bob.ok("POST", f"/join/{q(room_id)}", {})
        assert BOB in alice.ok("GET", f"/rooms/{q(room_id)}/joined_members")["joined"]
        status, _ = bob.call("POST", f"/knock/{q(room_id)}", {})
        assert status == 403, "a member knocked on their own room"
        shard.coop("down")


class LocalWeb:
    """An HTTP server on 127.0.0.1 (a free port) in a thread, for a handler class."""

    def __init__(self, handler):
        import http.server
        import threading
        handler.log_message = lambda *args: None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


class Gateway(LocalWeb):
    """A push gateway's /_matrix/push/v1/notify on 127.0.0.1, as Sygnal answers it: records each
    notification; answers 500 to the first `fail_first` requests and rejects the push keys in
    `reject`."""

    def __init__(self, fail_first=0):
        import http.server
        self.received, self.reject, self.fail_first = [], set(), fail_first
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if gateway.fail_first > 0:
                    gateway.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                gateway.received.append((self.path, body))
                keys = [d["pushkey"] for d in body["notification"]["devices"] if d["pushkey"] in gateway.reject]
                answer = json.dumps({"rejected": keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        super().__init__(Handler)


def test_http_pushers_reach_configured_gateways():
    """HTTP pushers get each notification at their gateway (Push Gateway API) when the gateway
    is one coop.toml names; encrypted events go without content; a gateway error is retried; a
    rejected push key removes its pusher; a gateway not named is never contacted."""
    gateway, stranger = Gateway(fail_first=1), Gateway()
    try:
        with Shard(BIN) as shard:
            url = start_with(shard, f'push = {{ gateways = ["http://127.0.0.1:{gateway.port}/"] }}\n')
            alice, bob = Member(url, "alice"), Member(url, "bob")
            room_id = alice.ok("POST", "/createRoom", {"invite": [BOB], "name": "Allotment"})["room_id"]
            bob.ok("POST", f"/join/{q(room_id)}", {})
            pusher = {"kind": "http", "app_id": "org.coop.app", "pushkey": "phone-1", "app_display_name": "app",
                      "device_display_name": "phone", "lang": "en",
                      "data": {"url": f"http://127.0.0.1:{gateway.port}/_matrix/push/v1/notify"}}
            bob.ok("POST", "/pushers/set", pusher)
            bob.ok("POST", "/pushers/set", dict(pusher, pushkey="phone-2", data={
                "url": f"http://127.0.0.1:{stranger.port}/_matrix/push/v1/notify"}))
            event_id = send(alice, room_id, text("seedlings are in"), "m1")
            wait_for(lambda: any(b["notification"]["event_id"] == event_id for _, b in gateway.received), timeout=30,
                     what="the notification at the gateway (after one retry)")
            path, body = next(x for x in gateway.received if x[1]["notification"]["event_id"] == event_id)
            n = body["notification"]
            assert path == "/_matrix/push/v1/notify", path
            assert n["room_id"] == room_id and n["sender"] == ALICE and n["room_name"] == "Allotment", n
            assert n["sender_display_name"] == "Alice Liddell" and n["content"]["body"] == "seedlings are in", n
            assert n["counts"]["unread"] >= 1 and n["devices"][0]["pushkey"] == "phone-1", n
            assert "url" not in n["devices"][0]["data"], n
            assert {"sound": "default"}.items() <= n["devices"][0]["tweaks"].items(), n

            encrypted = send(alice, room_id, {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "opaque",
                                              "sender_key": "k", "session_id": "s", "device_id": "D"}, "m2",
                             event_type="m.room.encrypted")
            wait_for(lambda: any(b["notification"]["event_id"] == encrypted for _, b in gateway.received), timeout=30,
                     what="the encrypted event's notification")
            n = next(b for _, b in gateway.received if b["notification"]["event_id"] == encrypted)["notification"]
            assert "content" not in n and n["type"] == "m.room.encrypted", n

            gateway.reject.add("phone-1")
            rejected = send(alice, room_id, text("are you still there?"), "m3")
            wait_for(lambda: any(b["notification"]["event_id"] == rejected for _, b in gateway.received), timeout=30,
                     what="the last notification")
            wait_for(lambda: [p["pushkey"] for p in bob.ok("GET", "/pushers")["pushers"]] == ["phone-2"], timeout=10,
                     what="the rejected pusher to go")
            assert stranger.received == [], "a gateway coop.toml does not name was contacted"
            shard.coop("down")
    finally:
        gateway.close()
        stranger.close()


def test_change_password_over_matrix():
    """POST /account/password: the current password again, then the new one is the member's
    coop password; the other devices are logged out, this one stays (or all stay with
    logout_devices false); a weak password is refused with M_WEAK_PASSWORD."""
    import time
    with Shard(BIN) as shard:
        url = start(shard)
        alice, phone = Member(url, "alice"), Member(url, "alice")
        new = STRONG + " and a new one"
        status, answer = alice.call("POST", "/account/password", {"new_password": new})
        assert status == 401 and answer["flows"][0]["stages"] == ["m.login.password"], answer
        uia = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": STRONG}
        status, answer = alice.call("POST", "/account/password", {"new_password": new, "auth": dict(uia, password="nope")})
        assert status == 401 and answer["errcode"] == "M_FORBIDDEN", answer
        status, answer = alice.call("POST", "/account/password", {"new_password": "short", "auth": uia})
        assert status == 400 and answer["errcode"] == "M_WEAK_PASSWORD", answer
        alice.ok("POST", "/account/password", {"new_password": new, "auth": uia})
        wait_for(lambda: phone.call("GET", "/account/whoami")[0] == 401, what="the other device logged out")
        assert alice.call("GET", "/account/whoami")[0] == 200, "the device that changed the password was logged out"
        status, _, _ = http_json(f"{url}/_matrix/client/v3/login", "POST", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": STRONG})
        assert status == 403, "the old password still logs in"
        tablet = Member(url, "alice", password=new)
        uia["password"] = new
        alice.ok("POST", "/account/password", {"new_password": STRONG, "auth": uia, "logout_devices": False})
        time.sleep(2)  # the registry's event reaches coop-room within milliseconds
        assert tablet.call("GET", "/account/whoami")[0] == 200, "logout_devices false logged the tablet out"
        Member(url, "alice", password=STRONG)
        shard.coop("down")


class Pages(LocalWeb):
    """A small web site on 127.0.0.1 for URL previews: a page with OpenGraph, one with only a
    <title>, a redirect to another address, and a large page."""

    def __init__(self):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                pages = {
                    "/og": ("text/html; charset=utf-8", '<html><head><title>ignored</title>'
                            '<meta property="og:title" content="Seed swap on Saturday">'
                            '<meta property="og:description" content="Bring what you saved">'
                            '<meta property="og:image" content="http://169.254.169.254/latest/meta-data">'
                            '</head><body>hello</body></html>'),
                    "/plain": ("text/html", "<html><head><title>Only a title</title>"
                               '<meta name="description" content="and a description"></head></html>'),
                    "/big": ("text/html", "<html><head><title>Big</title></head><body>" + "x" * 3_000_000 + "</body></html>"),
                    "/image": ("image/png", "not really a png"),
                }
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                    self.end_headers()
                    return
                if self.path not in pages:
                    self.send_response(404)
                    self.end_headers()
                    return
                kind, text = pages[self.path]
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        super().__init__(Handler)


def test_url_previews_off_by_default_and_never_inside():
    """URL previews: off by default; when on, never fetched from loopback, private, link-local
    or otherwise special addresses (redirects included) unless coop.toml lets a network
    through; the OpenGraph title and description come back, images are not fetched."""
    pages = Pages()
    try:
        with Shard(BIN) as shard:
            url = start(shard)
            alice = Member(url, "alice")
            preview_path = f"{url}/_matrix/client/v1/media/preview_url?url="
            status, answer, _ = http_json(preview_path + urllib.parse.quote(f"http://127.0.0.1:{pages.port}/og"),
                                          token=alice.token)
            assert status == 404, answer
            shard.coop("down")
        with Shard(BIN) as shard:
            url = start_with(shard, "url_previews = { enabled = true }\n")
            alice = Member(url, "alice")

            def preview(target, token=alice.token):
                status, answer, _ = http_json(f"{url}/_matrix/client/v1/media/preview_url?url=" + urllib.parse.quote(target),
                                              token=token)
                return status, answer
            for inside in [f"http://127.0.0.1:{pages.port}/og", f"http://localhost:{pages.port}/og",
                           f"http://[::1]:{pages.port}/og", "http://169.254.169.254/latest/meta-data",
                           "http://10.0.0.1/", f"http://0x7f000001:{pages.port}/og", f"http://2130706433:{pages.port}/og"]:
                status, answer = preview(inside)
                assert status == 403 and answer["errcode"] == "M_FORBIDDEN", (inside, status, answer)
            for bad in ["file:///etc/passwd", "gopher://127.0.0.1/", "ftp://example.org/", "not a url", "http://" + "a" * 3000]:
                status, answer = preview(bad)
                assert status == 400, (bad, status, answer)
            status, _ = preview(f"http://127.0.0.1:{pages.port}/og", token="nonsense")
            assert status == 401
            shard.coop("down")
        with Shard(BIN) as shard:
            url = start_with(shard, 'url_previews = { enabled = true, allow_networks = ["127.0.0.1/32"] }\n')
            alice = Member(url, "alice")

            def preview(target):
                status, answer, _ = http_json(f"{url}/_matrix/media/v3/preview_url?url=" + urllib.parse.quote(target),
                                              token=alice.token)
                return status, answer
            status, og = preview(f"http://127.0.0.1:{pages.port}/og")
            assert status == 200 and og == {"og:title": "Seed swap on Saturday",
                                            "og:description": "Bring what you saved"}, (status, og)
            status, og = preview(f"http://127.0.0.1:{pages.port}/plain")
            assert og == {"og:title": "Only a title", "og:description": "and a description"}, og
            status, og = preview(f"http://127.0.0.1:{pages.port}/big")
            assert status == 200 and og.get("og:title") == "Big", (status, og)
            status, og = preview(f"http://127.0.0.1:{pages.port}/image")
            assert status == 200 and og == {}, og
            # A redirect to a refused address is refused; the allowed network is only 127.0.0.1.
            status, answer = preview(f"http://127.0.0.1:{pages.port}/redirect")
            assert status == 403, answer
            status, answer = preview(f"http://[::1]:{pages.port}/og")
            assert status == 403, answer
            status, answer = preview(f"http://127.0.0.1:{pages.port}/missing")
            assert status == 502, answer
            shard.coop("down")
    finally:
        pages.close()


def test_turn_credentials_allocate_on_coturn():
    """coturn's turnutils_uclient allocates with /voip/turnServer's credentials; a tampered
    password fails."""
    assert shutil.which("turnserver") and shutil.which("turnutils_uclient"), "coturn is missing: run scripts/install-deps"
    port = free_port_block(1)
    relay = free_port_block(40)
    with Shard(BIN) as shard:
        secret = os.urandom(16).hex()
        url = start_with(shard, f'turn = {{ uris = ["turn:127.0.0.1:{port}?transport=udp"], '
                                f'secret_file = "keys/turn_secret", ttl_s = 600 }}\n')
        with open(os.path.join(shard.home, "keys", "turn_secret"), "w") as f:
            f.write(secret + "\n")
        turn = subprocess.Popen(
            ["turnserver", "-n", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(port),
             "--min-port", str(relay), "--max-port", str(relay + 39), "--use-auth-secret", "--static-auth-secret", secret,
             "--realm", DOMAIN, "--no-tls", "--no-dtls", "--no-cli", "--log-file", "stdout", "--simple-log",
             "--pidfile", os.path.join(shard.dir, "turn.pid"), "--userdb", os.path.join(shard.dir, "turndb"),
             "--allow-loopback-peers"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            alice = Member(url, "alice")
            creds = alice.ok("GET", "/voip/turnServer")
            assert creds["uris"] == [f"turn:127.0.0.1:{port}?transport=udp"] and creds["ttl"] == 600, creds
            assert creds["username"].endswith(":" + ALICE), creds

            def udp_bound():
                with open("/proc/net/udp") as f:
                    return any(line.split()[1].endswith(f":{port:04X}") for line in f.readlines()[1:])
            # turnserver is up once its UDP listener is bound (it exits if the port was taken).
            wait_for(lambda: udp_bound() or turn.poll() is not None, timeout=20, what="turnserver listening")
            assert turn.poll() is None, "turnserver exited at start"

            def allocate(password):
                try:
                    return subprocess.run(["turnutils_uclient", "-u", creds["username"], "-w", password, "-p", str(port),
                                           "-e", "127.0.0.1", "-n", "1", "-m", "1", "-y", "127.0.0.1"],
                                          capture_output=True, text=True, timeout=15)
                except subprocess.TimeoutExpired as e:  # UDP: a lost datagram can leave the client waiting
                    return subprocess.CompletedProcess(e.cmd, 124, str(e.stdout or ""), str(e.stderr or ""))
            done = None
            for _ in range(5):
                done = allocate(creds["password"])
                if done.returncode == 0:
                    break
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            # One character changed (a password that starts with "A" stays whole with "A").
            wrong = ("B" if creds["password"][0] == "A" else "A") + creds["password"][1:]
            for _ in range(5):  # a timeout (124) is a lost datagram, not an answer: ask again
                tampered = allocate(wrong)
                if tampered.returncode != 124:
                    break
            assert tampered.returncode != 0 and "Cannot complete Allocation" in tampered.stdout + tampered.stderr, \
                (tampered.returncode, tampered.stdout[-2000:] + tampered.stderr[-2000:])
        finally:
            turn.kill()
            turn.wait()
        shard.coop("down")


if __name__ == "__main__":
    run_tests([test_transaction_ids_and_bundled_relations, test_history_until_leaving_and_lazy_members,
               test_summary_names_and_discovery, test_space_hierarchy_pages_and_rejoining_the_cooperative_space,
               test_profiles_directory_and_small_endpoints, test_push_rules_counts_notifications_and_pushers, test_threaded_read_receipts, test_search,
               test_knock, test_http_pushers_reach_configured_gateways, test_change_password_over_matrix,
               test_url_previews_off_by_default_and_never_inside,
               test_turn_credentials_allocate_on_coturn])
