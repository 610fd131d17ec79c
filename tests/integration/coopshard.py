"""A real coop shard in a temp dir for integration tests: init, run the CLI, clean up always."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def ephemeral_start():
    """The first port the kernel hands out for outgoing connections and port-0 listeners."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(count):
    """A base port with `count` consecutive free ports on 127.0.0.1, below the ephemeral range:
    a block free when chosen stays free until the shard binds it, whatever connections other
    tests open meanwhile (in the ephemeral range, a client socket could take one first)."""
    top = max(20000 + count, ephemeral_start()) - count
    for _ in range(200):
        base = random.randint(20000, top)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no block of free ports")


def wait_for(predicate, timeout=30.0, what="condition"):
    """Polls predicate until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Shard:
    def __init__(self, bin_dir, domain="coop.test"):
        self.bin_dir = os.path.abspath(bin_dir)
        self.coop_bin = os.path.join(self.bin_dir, "coop")
        self.dir = tempfile.mkdtemp(prefix="coop-it-")
        self.home = os.path.join(self.dir, "home")
        self.domain = domain
        self.base_port = free_port_block(13)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def coop(self, *args, expect=0, timeout=90, env=None, input=None):
        """Runs `coop --home HOME args...`; checks the exit code unless expect is None."""
        cmd = [self.coop_bin, "--home", self.home, *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input)
        if expect is not None and result.returncode != expect:
            raise AssertionError(
                f"{' '.join(cmd)} exited {result.returncode}, expected {expect}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def json(self, *args):
        return json.loads(self.coop(*args, "--json").stdout)

    def init(self):
        """`coop init`, then DNS from a server of the test's own (self.dns, a mailpeers.DnsZone
        that knows no names until a test adds them): nothing a test does asks the Internet."""
        result = self.coop("init", "--domain", self.domain, "--base-port", str(self.base_port))
        from mailpeers import DnsZone
        self.dns = DnsZone().__enter__()
        with open(os.path.join(self.home, "coop.toml"), "a") as f:
            f.write(f'\n[dns]\nservers = ["127.0.0.1@{self.dns.port}"]\ntimeout_ms = 3000\nmax_ttl_s = 0\n')
        return result

    def processes(self):
        """Pids of every live process whose command line names this shard's home."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().split(b"\0")
                with open(f"/proc/{entry}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and self.home.encode() in cmdline:
                pids.append(int(entry))
        return pids

    def log(self, name):
        try:
            with open(os.path.join(self.home, "log", f"{name}.log")) as f:
                return f.read()
        except OSError:
            return ""

    def cleanup(self):
        if getattr(self, "dns", None):
            self.dns.__exit__()
            self.dns = None
        if os.path.exists(os.path.join(self.home, "run", "supervisor.sock")):
            try:
                subprocess.run([self.coop_bin, "--home", self.home, "down"], capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if os.environ.get("COOP_KEEP_TEST_DIR"):
            print(f"kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def listener(shard, worker, name):
    """The URL of a running worker's listener, from `coop status`."""
    status = shard.json("status")
    w = next(w for w in status["workers"] if w["name"] == worker)
    return next(l["url"] for l in w["listeners"] if l["name"] == name)


def matrix(url, method, path, body=None, token=None):
    """One Matrix client-server API call (v3); the answer's JSON."""
    import urllib.request
    req = urllib.request.Request(url + "/_matrix/client/v3" + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def bin_dir_from_args():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--bin":
        return args[1]
    raise SystemExit("usage: test_*.py --bin BUILD/bin")


def run_tests(tests):
    """Runs each test function in order; prints a line per test; exits non-zero on failure."""
    failed = 0
    for test in tests:
        started = time.monotonic()
        try:
            test()
            print(f"ok    {test.__name__} ({time.monotonic() - started:.1f} s)")
        except Exception:  # noqa: BLE001 -- report every failure, then go on
            failed += 1
            import traceback
            print(f"FAIL  {test.__name__}")
            traceback.print_exc()
    sys.exit(1 if failed else 0)
