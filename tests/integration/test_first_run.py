"""`make run` in a pseudo-terminal, as a new admin types it: the demo shard comes up, the
pages it prints answer 200 (the front page links to the map), and the demo member whose
password it prints logs in over IMAP and Matrix. Then `coop down` stops it."""
import imaplib
import os
import re
import select
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request

from coopshard import bin_dir_from_args, free_port_block, matrix, run_tests

BIN = bin_dir_from_args()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.dirname(os.path.abspath(BIN))


def read_until(proc, marker, timeout=300):
    text, deadline = "", time.monotonic() + timeout
    while marker not in text:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"no {marker!r} from make run:\n{text[-3000:]}")
        ready, _, _ = select.select([proc.stdout], [], [], 1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536).decode(errors="replace")
            text += chunk
    return text


def test_make_run_shows_the_way():
    tmp = tempfile.mkdtemp(prefix="coop-first-run-")
    home = os.path.join(tmp, "coop-data")
    base = free_port_block(13)
    command = f"make -C {ROOT} run BUILD={BUILD} HOME_DIR={home} BASE_PORT={base} DOMAIN=coop.localhost"
    proc = subprocess.Popen(["script", "-qfec", command, "/dev/null"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=dict(os.environ, TERM="xterm"), start_new_session=True)
    try:
        text = read_until(proc, "coop is up.")
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text).replace("\r", "")
        opened = dict(re.findall(r"^  (Front page|Portal|Map|Documents)\s+(\S+)", plain, re.M))
        assert set(opened) == {"Front page", "Portal", "Map", "Documents"}, plain[-2000:]
        for url in opened.values():
            with urllib.request.urlopen(url, timeout=10) as r:
                assert r.status == 200, url
        with urllib.request.urlopen(opened["Front page"], timeout=10) as r:
            front = r.read().decode()
        assert opened["Map"] in front and "/tiles/monaco/map" in front and opened["Portal"] in front, front
        assert "member add NAME" in plain
        password = re.search(r"Demo member: demo \(demo@coop\.localhost\), password (\S+)", plain).group(1)
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        imap = imaplib.IMAP4_SSL("127.0.0.1", base + 6, ssl_context=ctx)
        assert imap.login("demo@coop.localhost", password)[0] == "OK"
        imap.logout()
        homeserver = re.search(r"^  Matrix\s+(\S+)", plain, re.M).group(1)
        assert matrix(homeserver, "POST", "/login", {"type": "m.login.password", "user": "demo", "password": password})["user_id"] \
            == "@demo:coop.localhost"
        # The same home again: init is not repeated, the demo member is still there.
        assert os.path.exists(os.path.join(home, "tiles", "monaco.mbtiles"))
    finally:
        subprocess.run([os.path.join(BIN, "coop"), "--home", home, "down"], capture_output=True, timeout=60)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        if home.encode() in f.read():
                            os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_make_run_shows_the_way])
