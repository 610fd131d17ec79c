"""The coop CLI's contract: --help everywhere, exit codes 0/1/2/3, one-line errors, stable JSON."""
import json
import os
import subprocess

from coopshard import Shard, bin_dir_from_args, run_tests

BIN = bin_dir_from_args()
COOP = os.path.join(BIN, "coop")
COMMANDS = [[], ["init"], ["up"], ["down"], ["status"], ["logs"]]


def run(*args, env=None):
    return subprocess.run([COOP, *args], capture_output=True, text=True, timeout=60, env=env)


def test_every_command_has_help_on_stdout_and_nothing_on_stderr():
    for command in COMMANDS:
        result = run(*command, "--help")
        assert result.returncode == 0, command
        assert result.stderr == "", command
        assert "Usage:" in result.stdout or "Usage" in result.stdout, command
    top = run("--help").stdout
    for name in ["init", "up", "down", "status", "logs", "--home"]:
        assert name in top
    assert "__generate" not in top


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("coop ")


def test_usage_errors_exit_2():
    assert run().returncode == 2
    assert run("frobnicate").returncode == 2
    assert run("init").returncode == 2  # --domain is required
    assert run("status", "--no-such-flag").returncode == 2
    with Shard(BIN) as shard:
        bad_domain = shard.coop("init", "--domain", "not a domain", expect=2)
        assert bad_domain.stderr.count("\n") == 1 and "not a valid domain" in bad_domain.stderr
        shard.coop("init", "--domain", "ok.test", "--base-port", "80", expect=2)
        assert not os.path.exists(os.path.join(shard.home, "coop.toml"))
        shard.init()
        unknown = shard.coop("logs", "nosuchworker", expect=2)
        assert "unknown worker" in unknown.stderr


def test_not_running_exits_3_and_not_a_shard_exits_1():
    with Shard(BIN) as shard:
        # A --home that names the wrong directory: say so, and do not suggest `coop init` there.
        for command in (["status"], ["member", "list"], ["tls", "status"], ["mail", "queue", "list"]):
            missing = shard.coop(*command, expect=1)
            assert f"no shard in {shard.home}" in missing.stderr and "--home" in missing.stderr, (command, missing.stderr)
            assert "coop init" not in missing.stderr and missing.stderr.count("\n") == 1, missing.stderr
        shard.init()
        for command in (["status"], ["down"]):
            result = shard.coop(*command, expect=3)
            assert result.stderr.startswith("coop: ") and result.stderr.count("\n") == 1
            assert result.stdout == ""
        # A script that asks for JSON gets JSON when the shard is stopped too, with exit 3.
        stopped = shard.coop("status", "--json", expect=3)
        assert json.loads(stopped.stdout) == {"state": "stopped", "home": shard.home, "workers": []}, stopped.stdout


def test_a_mistyped_command_is_named_with_the_closest():
    for args, expected in ((["member", "ad", "bob"], "coop member has no command 'ad'; did you mean 'coop member add'?"),
                           (["memb", "list"], "coop has no command 'memb'; did you mean 'coop member'?"),
                           (["tls", "statu"], "did you mean 'coop tls status'?"),
                           (["--home", "/nonexistent", "mail", "exprot", "x"], "did you mean 'coop mail export'?")):
        result = run(*args)
        assert result.returncode == 2 and expected in result.stderr, (args, result.stderr)
    nothing = run("member")
    assert nothing.returncode == 2 and "coop member needs a command: add, list" in nothing.stderr, nothing.stderr
    assert "has no command" in run("frobnicate").stderr
    # The top-level list is one line per command; the long texts are in each command's own --help.
    top = run("--help").stdout
    listed = top[top.index("Subcommands:"):]
    assert all(line.startswith("  ") and not line.startswith("   ") for line in listed.splitlines()[1:] if line), listed
    assert "Shortbread" in run("tiles", "--help").stdout


def test_home_comes_from_the_environment_too():
    with Shard(BIN) as shard:
        env = dict(os.environ, COOP_HOME=shard.home)
        result = subprocess.run([COOP, "init", "--domain", "env.test", "--json"], capture_output=True,
                                text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        out = json.loads(result.stdout)
        assert sorted(out) == ["base_port", "config", "domain", "home", "tls_cert"]
        assert out["home"] == shard.home and out["domain"] == "env.test" and out["base_port"] == 8400


def test_init_output_is_golden_and_stderr_empty():
    with Shard(BIN) as shard:
        result = shard.coop("init", "--domain", "Golden.Test", "--base-port", "30000")
        assert result.stderr == ""
        assert result.stdout == (
            f"Initialised shard golden.test in {shard.home}\n"
            f"  config  {shard.home}/coop.toml\n"
            f"  TLS     {shard.home}/keys/tls.crt (self-signed)\n"
            f"Start it with: coop --home {shard.home} up\n")


def test_status_json_is_stable():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        status = shard.json("status")
        assert set(status) >= {"name", "version", "pid", "home", "domain", "state", "uptime_s",
                               "started_at", "listeners", "workers"}
        member = status["workers"][0]
        assert set(member) >= {"name", "state", "healthy", "pid", "uptime_s", "restarts", "socket", "listeners"}
        table = shard.coop("status")
        assert table.stderr == ""
        header = table.stdout.splitlines()[2]
        assert header.split() == ["WORKER", "STATE", "PID", "UPTIME", "RESTARTS", "LISTENERS"]
        assert "\x1b[" not in table.stdout  # no colour when stdout is not a terminal
        # Times in --json are RFC 3339 in UTC, wherever a command prints one.
        import re
        iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        shard.coop("mail", "domain", "add", "iso.test")
        shard.coop("member", "add", "alice", "--email", "alice@iso.test")
        shard.coop("member", "app-password", "add", "alice", "--label", "phone", "--scope", "mail")
        shard.coop("member", "verify", "alice", "--protocol", "mail", "--source", "192.0.2.1", input="wrong", expect=1)
        times = [status["started_at"], shard.json("tls", "status")["not_after"],
                 shard.json("mail", "domain", "list")[0]["created_at"],
                 shard.json("member", "app-password", "list", "alice")[0]["created_at"],
                 shard.json("member", "audit")[0]["at"]]
        for t in times:
            assert isinstance(t, str) and iso.match(t), times
        shard.coop("down")


def test_worker_binaries_have_help_and_reject_bad_flags():
    for name in ("coop-member", "coop-supervisor"):
        path = os.path.join(BIN, name)
        result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and result.stderr == "" and "--home" in result.stdout
        bad = subprocess.run([path, "--bogus"], capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2 and "unknown argument" in bad.stderr


run_tests([
    test_every_command_has_help_on_stdout_and_nothing_on_stderr,
    test_version,
    test_usage_errors_exit_2,
    test_not_running_exits_3_and_not_a_shard_exits_1,
    test_a_mistyped_command_is_named_with_the_closest,
    test_home_comes_from_the_environment_too,
    test_init_output_is_golden_and_stderr_empty,
    test_status_json_is_stable,
    test_worker_binaries_have_help_and_reject_bad_flags,
])
