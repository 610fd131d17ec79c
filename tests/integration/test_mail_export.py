"""`coop mail export` and `import`: Python's mailbox module reads what coop writes, flags and
bytes survive, a second import adds nothing, a round trip is byte-identical, memory stays flat
and cron sees no output."""
import filecmp
import mailbox
import os
import stat
import re
import shutil
import resource
import smtplib
import subprocess

from coopshard import Shard, bin_dir_from_args, run_tests, wait_for
from test_mail_smtp import DOMAIN, blob, control, inbox, start

BIN = bin_dir_from_args()

TRICKY = [
    b"Subject: plain\r\n\r\nJust text.\r\n",
    b"Subject: from lines\r\n\r\nFrom the start of a line\r\n>From already quoted\r\n>>From twice\r\nFromage\r\n",
    "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln\r\n".encode(),
    b"Subject: dots\r\n\r\n.\r\n..\r\n. leading\r\n",
]


def deliver(port, messages, to="alice"):
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for m in messages:
            smtp.sendmail("sender@example.org", [f"{to}@{DOMAIN}"], m)


def mutt_index(folder, workdir):
    """What mutt shows when it opens a folder: it runs on a pseudo-terminal (script(1)),
    read-only, without any user configuration, and quits at once."""
    transcript = os.path.join(workdir, "mutt.out")
    command = (f"mutt -n -F /dev/null -R -e 'set folder={workdir}' -e 'set status_format=\"MSGCOUNT=%m\"' "
               f"-f {folder} -e 'push q'")
    subprocess.run(["script", "-qec", command, transcript], env=dict(os.environ, TERM="xterm"),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    with open(transcript, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return re.sub(r"\x1b(\[[0-9;?]*[a-zA-Z]|[()][A-Z0-9]|[=>])", " ", text)


def tree_equal(a, b):
    comparison = filecmp.dircmp(a, b)
    if comparison.left_only or comparison.right_only or comparison.diff_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, comparison.common_files, shallow=False)
    return not mismatch and not errors and all(tree_equal(os.path.join(a, d), os.path.join(b, d))
                                               for d in comparison.common_dirs)


def test_exports_read_by_python_and_round_trip_byte_identical():
    with Shard(BIN) as shard:
        port = start(shard)
        deliver(port, TRICKY)
        stored = [blob(shard, m["blob"]) for m in inbox(shard, "alice")]
        out = shard.dir

        # mbox: Python reads every message; mboxrd quoting is undone by coop's own reader.
        shard.coop("mail", "export", "alice", "--mailbox", "INBOX", "--format", "mbox", "--out", f"{out}/a.mbox")
        box = mailbox.mbox(f"{out}/a.mbox")
        assert [m["Subject"] for m in box] == ["plain", "from lines", "8bit", "dots"]
        assert box[1].get_from().startswith("sender@example.org ")
        raw = box.get_bytes(1)
        assert b">From the start" in raw and b">>From already quoted" in raw
        assert box[0].get_flags() == "O"  # not seen yet

        # Maildir: every message's bytes exactly as stored.
        shard.coop("mail", "export", "alice", "--mailbox", "INBOX", "--format", "maildir", "--out", f"{out}/a.maildir")
        md = mailbox.Maildir(f"{out}/a.maildir", factory=None, create=False)
        exported = sorted(md.get_bytes(key) for key in md.keys())
        assert exported == sorted(stored)

        # mutt opens both and lists every message.
        if shutil.which("mutt"):
            for folder in (f"{out}/a.mbox", f"{out}/a.maildir"):
                shown = mutt_index(folder, out)
                assert f"MSGCOUNT={len(TRICKY)}" in shown, shown[-800:]
                assert "from lines" in shown and "dots" in shown

        # Import into another member, export again: byte-identical; a second import adds nothing.
        shard.coop("member", "add", "carol")
        for fmt, path in (("mbox", f"{out}/a.mbox"), ("maildir", f"{out}/a.maildir")):
            first = shard.json("mail", "import", "carol", "--format", fmt, "--mailbox", f"From-{fmt}", path)
            assert first["added"] == len(TRICKY), first
            again = shard.json("mail", "import", "carol", "--format", fmt, "--mailbox", f"From-{fmt}", path)
            assert again["added"] == 0 and again["already_there"] == len(TRICKY)
        shard.coop("mail", "export", "carol", "--mailbox", "From-mbox", "--format", "mbox", "--out", f"{out}/c.mbox")
        assert filecmp.cmp(f"{out}/a.mbox", f"{out}/c.mbox", shallow=False)
        shard.coop("mail", "export", "carol", "--mailbox", "From-maildir", "--format", "maildir", "--out", f"{out}/c.maildir")
        assert tree_equal(f"{out}/a.maildir", f"{out}/c.maildir")
        shard.coop("down")


def test_flags_survive_import_and_export():
    with Shard(BIN) as shard:
        start(shard)
        src = os.path.join(shard.dir, "flags.mbox")
        box = mailbox.mbox(src)
        for flags, subject in (("RO", "seen"), ("ROAF", "answered and flagged"), ("O", "unread"), ("ROT", "draft")):
            msg = mailbox.mboxMessage(f"Subject: {subject}\n\nbody of {subject}\n")
            msg.set_flags(flags)
            msg.set_from("someone@example.org")
            box.add(msg)
        box.flush()
        shard.coop("mail", "import", "alice", "--format", "mbox", src)
        boxes = {b["name"]: b for b in control(shard, "mail", "/v1/mailboxes/alice")}
        assert boxes["INBOX"]["messages"] == 4 and boxes["INBOX"]["unseen"] == 1
        out = os.path.join(shard.dir, "out")
        shard.coop("mail", "export", "alice", "--format", "maildir", "--out", out)
        md = mailbox.Maildir(out, create=False)
        flags = {md[key]["Subject"]: md[key].get_flags() for key in md.keys()}
        assert flags == {"seen": "S", "answered and flagged": "FRS", "unread": "", "draft": "DS"}, flags
        shard.coop("mail", "export", "alice", "--mailbox", "INBOX", "--format", "mbox", "--out",
                   os.path.join(shard.dir, "again.mbox"))
        again = mailbox.mbox(os.path.join(shard.dir, "again.mbox"))
        assert {m["Subject"]: m.get_flags() for m in again} == {
            "seen": "RO", "answered and flagged": "ROAF", "unread": "O", "draft": "ROT"}
        # Folders of a Maildir++ tree come back as mailboxes of the same names.
        shard.coop("member", "add", "dave")
        shard.coop("mail", "import", "dave", "--format", "maildir", out)
        names = {b["name"] for b in control(shard, "mail", "/v1/mailboxes/dave")}
        assert {"INBOX", "Sent", "Trash"} <= names
        shard.coop("down")


def test_export_streams_with_flat_memory_and_is_quiet_under_cron():
    with Shard(BIN) as shard:
        port = start(shard, max_message_bytes=4 << 20)
        # Over a MiB each: more than a control request used to carry.
        big = b"Subject: big\r\n\r\n" + (b"0123456789abcdef" * 64 + b"\r\n") * 1500
        deliver(port, [big] * 32)  # ~50 MB in the mailbox
        out = os.path.join(shard.dir, "big.mbox")
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result = subprocess.run([shard.coop_bin, "--home", shard.home, "mail", "export", "alice", "--mailbox", "INBOX",
                                 "--format", "mbox", "--out", out], capture_output=True, timeout=300)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"" and result.stderr == b""  # nothing for cron to mail
        assert os.path.getsize(out) > 32 * 1_500_000
        # The CLI holds one message at a time, never the mailbox.
        assert max(peak_kib, before) < 40 * 1024, f"coop used {peak_kib} KiB for a 50 MB export"
        # Messages over a megabyte import as well (each is one control request).
        shard.coop("member", "add", "carol")
        imported = shard.json("mail", "import", "carol", "--format", "mbox", out)
        assert imported["added"] == 32, imported
        shard.coop("down")


def test_bad_exports_and_imports_are_refused():
    with Shard(BIN) as shard:
        start(shard)
        os.makedirs(os.path.join(shard.dir, "full"))
        open(os.path.join(shard.dir, "full", "x"), "w").close()
        r = shard.coop("mail", "export", "alice", "--format", "mbox", "--out", os.path.join(shard.dir, "full"), expect=1)
        assert "refusing to overwrite" in r.stderr
        r = shard.coop("mail", "export", "alice", "--mailbox", "Nope", "--format", "mbox", "--out",
                       os.path.join(shard.dir, "n.mbox"), expect=1)
        assert "no mailbox" in r.stderr
        r = shard.coop("mail", "import", "alice", "--format", "maildir", shard.dir, expect=1)
        assert "not a Maildir" in r.stderr
        notmbox = os.path.join(shard.dir, "not.mbox")
        with open(notmbox, "w") as f:
            f.write("this is not an mbox\n")
        r = shard.coop("mail", "import", "alice", "--format", "mbox", notmbox, expect=1)
        assert r.stderr.startswith("coop: ") and r.stderr.count("\n") == 1
        assert shard.coop("mail", "export", "alice", "--format", "json", "--out", "x", expect=2)
        # A member the registry does not know: refused, and nothing is written.
        for command in (["mail", "export", "nobody", "--format", "mbox", "-o", os.path.join(shard.dir, "nobody")],
                        ["mail", "import", "nobody", "--format", "mbox", notmbox],
                        ["mail", "mailboxes", "nobody"],
                        ["room", "export", "nobody", "-o", os.path.join(shard.dir, "nobody.json")]):
            r = shard.coop(*command, expect=1)
            assert r.stderr == "coop: no member 'nobody'\n", (command, r.stderr)
        assert not os.path.exists(os.path.join(shard.dir, "nobody"))
        assert not os.path.exists(os.path.join(shard.dir, "nobody.json"))
        shard.coop("down")


def test_exports_are_private_whatever_the_umask():
    with Shard(BIN) as shard:
        deliver(start(shard), TRICKY[:2])
        wait_for(lambda: inbox(shard, "alice"), what="the messages in alice's INBOX")
        old = os.umask(0o022)
        try:
            for fmt in ("mbox", "maildir"):
                out = os.path.join(shard.dir, "export-" + fmt)
                shard.coop("mail", "export", "alice", "--format", fmt, "-o", out)
                assert stat.S_IMODE(os.stat(out).st_mode) == 0o700, fmt
                for root, dirs, files in os.walk(out):
                    for name in files:
                        mode = stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
                        assert mode == 0o600, (fmt, name, oct(mode))
            single = os.path.join(shard.dir, "inbox.mbox")
            shard.coop("mail", "export", "alice", "--mailbox", "INBOX", "--format", "mbox", "-o", single)
            assert stat.S_IMODE(os.stat(single).st_mode) == 0o600
        finally:
            os.umask(old)
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_exports_read_by_python_and_round_trip_byte_identical,
        test_flags_survive_import_and_export,
        test_export_streams_with_flat_memory_and_is_quiet_under_cron,
        test_bad_exports_and_imports_are_refused,
        test_exports_are_private_whatever_the_umask,
    ])
