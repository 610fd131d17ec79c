"""A shard's life: init, up, status, a worker killed and restarted, down with nothing left behind."""
import json
import os
import signal
import stat
import subprocess
import threading

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for

BIN = bin_dir_from_args()


def has_open(pid, path):
    fd_dir = f"/proc/{pid}/fd"
    try:
        return any(os.readlink(os.path.join(fd_dir, fd)) == path for fd in os.listdir(fd_dir))
    except OSError:
        return False


def worker(status, name):
    return next(w for w in status["workers"] if w["name"] == name)


def test_init_creates_a_shard_and_refuses_to_touch_it_again():
    with Shard(BIN) as shard:
        shard.init()
        assert os.path.isfile(os.path.join(shard.home, "coop.toml"))
        key = os.path.join(shard.home, "keys", "tls.key")
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.join(shard.home, "keys")).st_mode) == 0o700
        with open(os.path.join(shard.home, "coop.toml")) as f:
            config = f.read()
        assert f'domain = "{shard.domain}"' in config
        assert f"port = {shard.base_port}," in config
        # The certificate is a real one for the shard's domain.
        text = subprocess.run(["openssl", "x509", "-in", os.path.join(shard.home, "keys", "tls.crt"),
                               "-noout", "-text"], capture_output=True, text=True, check=True).stdout
        assert f"DNS:{shard.domain}" in text
        before = config
        again = shard.coop("init", "--domain", "other.test", expect=1)
        assert "refusing" in again.stderr and again.stderr.count("\n") == 1
        with open(os.path.join(shard.home, "coop.toml")) as f:
            assert f.read() == before


def test_up_status_restart_down():
    with Shard(BIN) as shard:
        shard.init()
        not_running = shard.coop("status", expect=3)
        assert "not running" in not_running.stderr

        up = shard.coop("up")
        assert "member" in up.stdout and "running" in up.stdout

        status = shard.json("status")
        member = worker(status, "member")
        assert member["state"] == "running" and member["healthy"] is True
        assert member["restarts"] == 0
        assert status["domain"] == shard.domain
        first_pid = member["pid"]
        os.kill(first_pid, 0)

        # Anyone can script the control API with curl.
        curl = subprocess.run(["curl", "-sS", "--unix-socket", os.path.join(shard.home, "run", "supervisor.sock"),
                               "http://coop/v1/status"], capture_output=True, text=True, check=True)
        assert json.loads(curl.stdout)["workers"][0]["name"] == "member"
        curl = subprocess.run(["curl", "-sS", "--unix-socket", os.path.join(shard.home, "run", "member.sock"),
                               "http://coop/v1/health"], capture_output=True, text=True, check=True)
        assert json.loads(curl.stdout) == {"status": "ok"}

        run_dir = os.path.join(shard.home, "run")
        assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o750
        assert stat.S_IMODE(os.stat(os.path.join(run_dir, "member.sock")).st_mode) == 0o660

        # A crashed worker comes back, and its restart shows in status; `logs -f` sees it happen.
        follow = subprocess.Popen([shard.coop_bin, "--home", shard.home, "logs", "supervisor", "-f", "-n", "0"],
                                  stdout=subprocess.PIPE, text=True)
        followed = []
        threading.Thread(target=lambda: followed.extend(iter(follow.stdout.readline, "")), daemon=True).start()
        wait_for(lambda: has_open(follow.pid, os.path.join(shard.home, "log", "supervisor.log")),
                 what="coop logs -f to open the log")
        os.kill(first_pid, signal.SIGKILL)

        def restarted():
            m = worker(shard.json("status"), "member")
            return m if m["state"] == "running" and m["pid"] != first_pid else None
        member = wait_for(restarted, what="member restarted")
        assert member["restarts"] == 1
        assert "killed" in member["last_exit"].lower()
        assert "died" in shard.log("supervisor")
        try:
            wait_for(lambda: any("member died" in line for line in followed), what="logs -f to show the crash")
        finally:
            follow.kill()
            follow.wait()

        # A restart asked for is neither a crash nor counted as one.
        before = worker(shard.json("status"), "member")
        restarted_json = shard.json("restart", "member")
        assert restarted_json["healthy"] and restarted_json["pid"] != before["pid"], restarted_json
        after = worker(shard.json("status"), "member")
        assert after["restarts"] == before["restarts"] and "last_exit" not in after, after
        assert shard.log("supervisor").count("member died") == 1, "the asked-for restart was logged as a crash"
        assert "stopped for the restart asked for" in shard.log("supervisor")
        unknown = shard.coop("restart", "nosuch", expect=1)
        assert "no worker named 'nosuch'" in unknown.stderr, unknown.stderr

        # Starting twice is harmless.
        again = shard.coop("up")
        assert "already running" in again.stdout

        logs = shard.coop("logs", "member", "-n", "5")
        assert "coop-member" in logs.stdout and len(logs.stdout.splitlines()) <= 5

        down = shard.coop("down")
        assert "stopped" in down.stdout
        assert shard.processes() == [], f"left behind: {shard.processes()}"
        assert not os.path.exists(os.path.join(run_dir, "supervisor.sock"))
        assert not os.path.exists(os.path.join(run_dir, "member.sock"))
        shard.coop("status", expect=3)
        shard.coop("down", expect=3)


def test_a_killed_supervisor_takes_its_workers_along():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        status = shard.json("status")
        os.kill(status["pid"], signal.SIGKILL)
        wait_for(lambda: shard.processes() == [], what="workers to exit after their supervisor")
        # The stale sockets do not stop the next start.
        shard.coop("up")
        assert worker(shard.json("status"), "member")["state"] == "running"
        shard.coop("down")
        assert shard.processes() == []


def test_a_second_worker_instance_is_refused():
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        result = subprocess.run([os.path.join(BIN, "coop-member"), "--home", shard.home],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 1
        assert "already running" in result.stderr
        assert worker(shard.json("status"), "member")["restarts"] == 0
        shard.coop("down")


def test_foreground_up_stops_on_ctrl_c():
    with Shard(BIN) as shard:
        shard.init()
        proc = subprocess.Popen([shard.coop_bin, "--home", shard.home, "up", "--foreground"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            # coop prints "coop is up" once it has seen every worker healthy itself.
            seen = []
            reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True)
            reader.start()
            wait_for(lambda: any("coop is up" in line for line in seen), timeout=60, what="coop is up")
            assert worker(shard.json("status"), "member")["state"] == "running"
            # Ctrl-C is SIGINT to the terminal's whole foreground process group.
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
            reader.join(timeout=10)
            out, err = "".join(seen), proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "coop is up" in out and "coop stopped" in out
        assert "coop-member" in err  # workers log to stderr in the foreground
        assert shard.processes() == []


def test_a_broken_config_fails_up_with_its_location():
    with Shard(BIN) as shard:
        shard.init()
        path = os.path.join(shard.home, "coop.toml")
        with open(path) as f:
            config = f.read()
        with open(path, "w") as f:
            f.write(config.replace(f"port = {shard.base_port},", "port = 99999,"))
        result = shard.coop("up", expect=1)
        assert "coop.toml:" in result.stderr and "port" in result.stderr
        assert result.stderr.count("\n") == 1
        assert shard.processes() == []
        # A misspelled key and a value that is not allowed: each with its line, nothing started.
        for broken, line_of, said in [
                (config.replace("[workers.mail]\n", "[workers.mail]\nmax_mesage_bytes = 1000\n", 1),
                 "max_mesage_bytes", "unknown key workers.mail.max_mesage_bytes (did you mean max_message_bytes?)"),
                (config.replace('level = "info"', 'level = "verbose"', 1),
                 'level = "verbose"', "log.level = 'verbose' is not one of trace, debug, info, warn, error")]:
            with open(path, "w") as f:
                f.write(broken)
            line = 1 + broken[:broken.index(line_of)].count("\n")
            result = shard.coop("up", expect=1)
            assert f"{path}:{line}:" in result.stderr and said in result.stderr, result.stderr
            assert shard.processes() == []


def test_a_port_clash_fails_up_with_the_worker_and_its_error():
    """A worker that cannot start (its port is taken) fails `coop up` at once with its name and
    error, and the workers that did start are stopped again."""
    import socket
    with Shard(BIN) as shard:
        shard.init()
        port = shard.base_port + 5  # mail's imap listener
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", port))
            taken.listen()
            result = shard.coop("up", expect=1)
        assert f"coop-mail did not start: cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr
        assert "healthy in" not in result.stderr, result.stderr
        assert shard.processes() == []
        shard.coop("up")  # the port is free again: everything starts
        shard.coop("down")


run_tests([
    test_init_creates_a_shard_and_refuses_to_touch_it_again,
    test_up_status_restart_down,
    test_a_killed_supervisor_takes_its_workers_along,
    test_a_second_worker_instance_is_refused,
    test_foreground_up_stops_on_ctrl_c,
    test_a_broken_config_fails_up_with_its_location,
    test_a_port_clash_fails_up_with_the_worker_and_its_error,
])
