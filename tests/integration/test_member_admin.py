"""An admin's shell session with the member registry: import, groups, suspension, app passwords,
export, and every kind of bad input refused with one line and no change."""
import csv
import io
import json
import os
import subprocess
import threading

from coopshard import Shard, bin_dir_from_args, run_tests

BIN = bin_dir_from_args()
STRONG = "correct horse battery staple"


def one_line_error(result, *fragments):
    assert result.returncode != 0
    assert result.stderr.startswith("coop: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def members_csv(count):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["handle", "name", "emails", "groups", "role"])
    for i in range(1, count + 1):
        groups = "kitchen" if i % 10 == 0 else ("ops" if i % 7 == 0 else "")
        # Names that need quoting, and not only ASCII.
        writer.writerow([f"m{i:03d}", f"Member {i}, \"M{i}\" Ünïcødé", f"m{i:03d}@coop.test;alt{i}@coop.test",
                         groups, "admin" if i == 1 else "member"])
    return out.getvalue()


def verify(shard, user, password, protocol="mail", expect=0):
    return shard.coop("member", "verify", user, "--protocol", protocol, "--source", "192.0.2.7",
                      input=password, expect=expect)


def test_admin_session():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("member", "group", "add", "ops", "--description", "Operations")
        shard.coop("member", "group", "add", "kitchen", "--parent", "ops")

        path = os.path.join(shard.dir, "members.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write(members_csv(100))
        imported = shard.coop("member", "import", path)
        assert imported.stdout == "Imported 100 members\n" and imported.stderr == ""

        listed = shard.json("member", "list")
        assert len(listed) == 100
        m050 = next(m for m in listed if m["handle"] == "m050")
        assert m050["name"] == 'Member 50, "M50" Ünïcødé'
        assert m050["emails"] == ["m050@coop.test", "alt50@coop.test"]
        assert m050["groups"] == ["kitchen"]
        # ops includes its subgroup kitchen's members.
        direct_ops = [i for i in range(1, 101) if i % 7 == 0 and i % 10 != 0]
        ops = shard.json("member", "list", "--group", "ops")
        assert len(ops) == len(direct_ops) + 10
        assert len(shard.json("member", "group", "members", "ops", "--direct")) == len(direct_ops)
        groups = {g["name"]: g for g in shard.json("member", "group", "list")}
        assert groups["kitchen"]["parent"] == "ops" and groups["kitchen"]["direct_members"] == 10

        # A member with a password logs in by handle or address, any case.
        shard.coop("member", "add", "alice", "--name", "Alice", "--email", "Alice@Coop.test", "--group", "kitchen",
                   "--password-stdin", input=STRONG + "\n")
        ok = json.loads(shard.coop("member", "verify", "ALICE@coop.test", "--json", input=STRONG).stdout)
        assert ok["handle"] == "alice" and ok["credential"] == "password"
        assert ok["groups"] == ["kitchen", "ops"]
        one_line_error(verify(shard, "alice", "wrong password here", expect=1), "wrong user name or password")

        # Suspension reaches a follower of the change feed, and every login is refused.
        feed = os.path.join(shard.home, "run", "member.sock")
        since = json.loads(subprocess.run(["curl", "-s", "--unix-socket", feed, "http://coop/v1/status"],
                                          capture_output=True, text=True, check=True).stdout)["last_event"]
        poll = subprocess.Popen(["curl", "-s", "--unix-socket", feed,
                                 f"http://coop/v1/events?since={since}&timeout_ms=30000"],
                                stdout=subprocess.PIPE, text=True)
        shard.coop("member", "suspend", "alice", "--reason", "dues")
        out, _ = poll.communicate(timeout=30)
        events = json.loads(out)["events"]
        assert [e["kind"] for e in events] == ["member.suspended"] and events[0]["handle"] == "alice"
        one_line_error(verify(shard, "alice", STRONG, expect=1), "suspended")
        shown = shard.json("member", "show", "alice")
        assert shown["status"] == "suspended" and shown["status_reason"] == "dues"
        shard.coop("member", "reinstate", "alice")
        verify(shard, "alice", STRONG)

        # App passwords: shown once, scoped, revocable.
        created = shard.json("member", "app-password", "add", "alice", "--label", "phone", "--scope", "mail")
        secret = created["password"]
        assert created["scopes"] == ["mail"]
        listed = shard.json("member", "app-password", "list", "alice")
        assert listed[0]["label"] == "phone" and "password" not in listed[0] and listed[0]["last_used_at"] is None
        used = json.loads(shard.coop("member", "verify", "alice", "--protocol", "mail", "--json", input=secret).stdout)
        assert used["credential"] == "app:phone"
        # Typed without dashes and in capitals, it still works.
        verify(shard, "alice", secret.replace("-", "").upper())
        one_line_error(verify(shard, "alice", secret, protocol="dav", expect=1), "not valid for dav")
        assert shard.json("member", "app-password", "list", "alice")[0]["last_used_at"] is not None
        shard.coop("member", "app-password", "revoke", "alice", "--label", "phone")
        one_line_error(verify(shard, "alice", secret, expect=1), "wrong user name or password")

        # Export round-trips what was imported.
        exported = shard.coop("member", "export", "--format", "csv").stdout
        rows = {r["handle"]: r for r in csv.DictReader(io.StringIO(exported))}
        assert len(rows) == 101
        assert rows["m050"]["name"] == 'Member 50, "M50" Ünïcødé'
        assert rows["m050"]["emails"] == "m050@coop.test;alt50@coop.test"
        assert rows["m001"]["role"] == "admin"
        as_json = json.loads(shard.coop("member", "export", "--format", "json").stdout)
        assert {m["handle"] for m in as_json} == set(rows)
        out_file = os.path.join(shard.dir, "export.csv")
        shard.coop("member", "export", "-o", out_file)
        with open(out_file, encoding="utf-8") as f:  # text mode, like the captured stdout
            assert f.read() == exported

        # Generated passwords are shown once and work.
        generated = shard.json("member", "passwd", "m002", "--generate-password")["password"]
        verify(shard, "m002", generated)

        audit = shard.json("member", "audit", "alice")
        outcomes = [e["outcome"] for e in audit]
        assert "ok" in outcomes and "bad_credentials" in outcomes and "suspended" in outcomes
        assert {"192.0.2.7", "cli"} == {e["source"] for e in audit}
        shard.coop("down")


def test_bad_input_changes_nothing():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("member", "group", "add", "ops")
        shard.coop("member", "add", "alice", "--email", "alice@coop.test", "--group", "ops")
        shard.coop("member", "add", "gone")
        shard.coop("member", "remove", "gone", "--purge")
        before = shard.coop("member", "export", "--format", "json").stdout

        def refused(*args, fragment, input=None):
            one_line_error(shard.coop(*args, expect=1, input=input), fragment)

        refused("member", "add", "alice", fragment="already exists")
        refused("member", "add", "Alice", fragment="lowercase")
        refused("member", "add", "a..b", fragment="invalid handle")
        refused("member", "add", "bob", "--group", "nosuch", fragment="no group 'nosuch'")
        refused("member", "add", "bob", "--email", "alice@coop.test", fragment="already belongs to alice")
        refused("member", "add", "bob", "--email", "not-an-address", fragment="invalid email")
        refused("member", "add", "gone", fragment="never reused")
        refused("member", "add", "bob", "--password-stdin", input="\n", fragment="password")
        refused("member", "add", "bob", "--password-stdin", input="short\n", fragment="password")
        refused("member", "add", "bob", "--password-stdin", input="password123\n", fragment="password")
        refused("member", "passwd", "alice", "--password-stdin", input="aaaaaaaaaaaaaaaa\n", fragment="password")
        refused("member", "set", "nobody", "--name", "X", fragment="no member 'nobody'")
        refused("member", "set", "alice", "--add-group", "nosuch", fragment="no group 'nosuch'")
        refused("member", "suspend", "nobody", fragment="no member")
        refused("member", "reinstate", "alice", fragment="already active")
        refused("member", "group", "add", "ops", fragment="already exists")
        refused("member", "group", "add", "sub", "--parent", "nosuch", fragment="no group 'nosuch'")
        refused("member", "app-password", "add", "alice", "--label", "x", "--scope", "mail,telepathy",
                fragment="unknown scope 'telepathy'")
        refused("member", "app-password", "revoke", "alice", "--label", "nope", fragment="no app password")

        bad_csvs = {
            "bad quoting": ("handle,name\nbob,\"unterminated\n", "line 2: a quoted field is never closed"),
            "stray quote": ("handle,name\nbob,x\"y\n", "line 2: a quote inside an unquoted field"),
            "wrong columns": ("handle,nickname\nbob,b\n", "line 1: unknown column 'nickname'"),
            "short row": ("handle,name\nbob,Bob\ncarol\n", "line 3: expected 2 fields, found 1"),
            "utf-8": (b"handle,name\nbob,Bob\ncarol,\xff\xfe\n", "line 3: not valid UTF-8"),
            "duplicate in file": ("handle\nbob\ncarol\nbob\n", "line 4: member 'bob' already exists"),
            "existing member": ("handle\nbob\nalice\n", "line 3: member 'alice' already exists"),
            "unknown group": ("handle,groups\nbob,ops\ncarol,nosuch\n", "line 3: no group 'nosuch'"),
            "retired handle": ("handle\nbob\ngone\n", "line 3: handle 'gone'"),
        }
        for name, (content, fragment) in bad_csvs.items():
            path = os.path.join(shard.dir, "bad.csv")
            with open(path, "wb") as f:
                f.write(content if isinstance(content, bytes) else content.encode())
            result = shard.coop("member", "import", path, expect=None)
            assert result.returncode == 1, name
            one_line_error(result, fragment)

        # --json prints the error body for scripts, and the message still goes to stderr.
        result = shard.coop("member", "add", "alice", "--json", expect=1)
        assert json.loads(result.stdout)["error"]["code"] == "member_exists"

        assert shard.coop("member", "export", "--format", "json").stdout == before
        shard.coop("down")


def test_failed_logins_are_throttled():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        shard.coop("member", "add", "bob", "--password-stdin", input=STRONG)
        for _ in range(10):
            one_line_error(verify(shard, "bob", "not the password", expect=1), "wrong user name or password")
        # Now even the right password waits: a guesser gets ten tries per window, not more.
        one_line_error(verify(shard, "bob", STRONG, expect=1), "too many failed logins")
        status = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
                                 os.path.join(shard.home, "run", "member.sock"), "http://coop/v1/auth/verify",
                                 "-d", json.dumps({"user": "bob", "password": STRONG, "protocol": "mail",
                                                   "source": "198.51.100.1"})],
                                capture_output=True, text=True).stdout
        assert status == "429"
        assert "throttled" in [e["outcome"] for e in shard.json("member", "audit", "bob")]
        shard.coop("down")


def test_member_commands_need_a_running_shard():
    with Shard(BIN) as shard:
        shard.init()
        result = shard.coop("member", "list", expect=3)
        assert "coop-member is not running" in result.stderr


def test_events_follow_prints_changes_as_they_happen():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        follow = subprocess.Popen([shard.coop_bin, "--home", shard.home, "member", "events", "-f", "--json"],
                                  stdout=subprocess.PIPE, text=True)
        lines = []
        threading.Thread(target=lambda: lines.extend(iter(follow.stdout.readline, "")), daemon=True).start()
        try:
            shard.coop("member", "add", "carol")
            shard.coop("member", "suspend", "carol")
            from coopshard import wait_for
            wait_for(lambda: len(lines) >= 2, what="two events")
        finally:
            follow.kill()
            follow.wait()
        kinds = [json.loads(line)["kind"] for line in lines[:2]]
        assert kinds == ["member.added", "member.suspended"]
        shard.coop("down")


def readme_block(after):
    """The indented block of README.md that follows the line containing `after`."""
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) + 1
    while not lines[start].startswith("    "):
        start += 1
    block = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        block.append(line[4:])
    return block


def test_the_readme_session_and_csv_work_on_a_fresh_shard_and_round_trip():
    with Shard(BIN, domain="example.org") as shard, Shard(BIN, domain="example.org") as second:
        shard.init()
        shard.coop("up")
        # The README's own commands, as a new admin types them.
        commands = readme_block("a suspension reaches every protocol within a second")
        assert commands[0] == "coop member group add ops", commands
        shard.coop(*commands[0].split()[1:])
        added = shard.coop("member", "add", "alice", "--name", "Alice", "--email", "alice@example.org", "--group", "ops",
                           "--password-stdin", input=STRONG)
        assert "Added member alice" in added.stdout
        # The README's CSV example imports as it stands (new groups made on request).
        rows = readme_block("field are separated by")
        path = os.path.join(shard.dir, "readme.csv")
        with open(path, "w") as f:
            f.write("\n".join(rows).replace("alice,", "alice2,").replace("alice@", "alice2@").replace("a.liddell@", "a2@") + "\n")
        one_line_error(shard.coop("member", "import", path, expect=1), "no group 'kitchen'")
        assert "Imported 2 members" in shard.coop("member", "import", path, "--create-groups").stdout
        assert shard.json("member", "show", "bob")["name"] == "Bob, the baker"
        single = os.path.join(shard.dir, "one.csv")
        with open(single, "w") as f:
            f.write("handle,emails\ndora,dora@example.org\n")
        assert shard.coop("member", "import", single).stdout == "Imported 1 member\n"
        shard.coop("member", "suspend", "bob", "--reason", "dues")
        shard.coop("member", "remove", "dora")
        exported = os.path.join(shard.dir, "members.csv")
        shard.coop("member", "export", "-o", exported)
        assert oct(os.stat(exported).st_mode & 0o777) == "0o600"

        # Into a new shard: the same registry, removed members' handles still retired.
        second.init()
        second.coop("up")
        second.coop("member", "import", exported, "--create-groups")
        again = os.path.join(second.dir, "members.csv")
        second.coop("member", "export", "-o", again)
        with open(exported) as a, open(again) as b:
            assert a.read() == b.read()
        one_line_error(second.coop("member", "add", "dora", expect=1), "never reused")
        assert second.json("member", "show", "bob")["status"] == "suspended"
        second.coop("down")
        shard.coop("down")


run_tests([
    test_admin_session,
    test_the_readme_session_and_csv_work_on_a_fresh_shard_and_round_trip,
    test_bad_input_changes_nothing,
    test_failed_logins_are_throttled,
    test_member_commands_need_a_running_shard,
    test_events_follow_prints_changes_as_they_happen,
])
