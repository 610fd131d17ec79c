"""Server ACLs (m.room.server_acl, Client-Server API "Server Access Control Lists (ACLs) for
rooms") against the fake remote homeserver of test_federate_events: once alice's room denies
remote.test, its PDUs are refused one by one in its transactions, its reads and joins of the
room get 403 M_FORBIDDEN, and its typing in the room is ignored; lifting the ACL lets it back
in. Complement's TestACLs and TestACLsForEDUs."""
from coopshard import run_tests, wait_for
from test_federate_events import BOB, alice_sees, client, message, now_ms, q, with_room


def typing_users(s):
    """The users alice's /sync says are typing in the room."""
    status, body, _ = client(s, "GET", "/sync?timeout=0")
    assert status == 200, body
    room = body.get("rooms", {}).get("join", {}).get(s.room_id, {})
    for event in room.get("ephemeral", {}).get("events", []):
        if event["type"] == "m.typing":
            return set(event["content"]["user_ids"])
    return set()


def typing_edu(s, typing):
    return {"edu_type": "m.typing", "content": {"room_id": s.room_id, "user_id": BOB, "typing": typing}}


def set_acl(s, content):
    status, body, _ = client(s, "PUT", f"/rooms/{q(s.room_id)}/state/m.room.server_acl/", content)
    assert status == 200, body
    return body["event_id"]


def test_acls():
    """TestACLs and TestACLsForEDUs: a denied server's PDUs, reads, joins and typing are
    refused, and allowed again once the ACL no longer names it."""
    def scenario(s):
        fake = s.fake
        # Before: bob's message is taken and his typing shows.
        before_id, before = fake.new_event("m.room.message", message("before the ACL"))
        status, answer = fake.send(s.fed_url, [before], edus=[typing_edu(s, True)])
        assert status == 200 and answer["pdus"] == {before_id: {}}, answer
        wait_for(lambda: BOB in typing_users(s), 10, "alice sees bob typing")

        set_acl(s, {"allow": ["*"], "deny": ["remote.test"], "allow_ip_literals": False})

        # A PDU of the denied server: refused in the transaction's answer, never shown. Its
        # "stopped typing" is ignored: bob still types as far as alice can tell.
        denied_id, denied = fake.new_event("m.room.message", message("after the ACL"), prev=[before_id])
        status, answer = fake.send(s.fed_url, [denied], edus=[typing_edu(s, False)])
        assert status == 200, answer
        assert "ACL" in answer["pdus"].get(denied_id, {}).get("error", ""), answer
        assert alice_sees(s, denied_id)[0] == 404
        assert BOB in typing_users(s), "typing from a denied server was applied"

        # Every read and membership endpoint of the room refuses it.
        room = q(s.room_id)
        for method, uri, body in (
                ("GET", f"/_matrix/federation/v1/state_ids/{room}?event_id={q(before_id)}", None),
                ("GET", f"/_matrix/federation/v1/state/{room}?event_id={q(before_id)}", None),
                ("GET", f"/_matrix/federation/v1/event_auth/{room}/{q(before_id)}", None),
                ("GET", f"/_matrix/federation/v1/backfill/{room}?v={q(before_id)}&limit=5", None),
                ("POST", f"/_matrix/federation/v1/get_missing_events/{room}",
                 {"earliest_events": [], "latest_events": [before_id], "limit": 5}),
                ("GET", f"/_matrix/federation/v1/event/{q(before_id)}", None),
                ("GET", f"/_matrix/federation/v1/make_join/{room}/{q('@dave:remote.test')}?ver=11", None),
                ("GET", f"/_matrix/federation/v1/make_leave/{room}/{q(BOB)}", None)):
            status, answer = fake.call(s.fed_url, method, uri, body)
            assert status == 403 and answer.get("errcode") == "M_FORBIDDEN", (uri, status, answer)

        # An ACL that allows everyone again: bob's next message is taken.
        set_acl(s, {"allow": ["*"], "deny": [], "allow_ip_literals": False})
        lifted_id, lifted = fake.new_event("m.room.message", message("after lifting"), prev=[before_id])
        status, answer = fake.send(s.fed_url, [lifted], txn=f"lifted-{now_ms()}")
        assert status == 200 and answer["pdus"] == {lifted_id: {}}, answer
        wait_for(lambda: alice_sees(s, lifted_id)[0] == 200, 10, "alice sees bob's message once allowed")

    with_room(scenario)


if __name__ == "__main__":
    run_tests([test_acls])
