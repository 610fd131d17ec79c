"""`make install` lays out binaries, man pages and completions, and the installed coop runs a shard."""
import os
import shutil
import subprocess
import tempfile

from coopshard import Shard, bin_dir_from_args, run_tests

BIN = bin_dir_from_args()
BUILD = os.path.dirname(os.path.abspath(BIN))


def test_installed_tree_runs_a_shard():
    prefix = tempfile.mkdtemp(prefix="coop-install-")
    try:
        subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], check=True, capture_output=True)
        for path in ["bin/coop", "bin/coop-supervisor", "bin/coop-member", "share/man/man1/coop.1",
                     "share/bash-completion/completions/coop", "share/zsh/vendor-completions/_coop",
                     "share/fish/vendor_completions.d/coop.fish"]:
            assert os.path.exists(os.path.join(prefix, path)), path
        page = subprocess.run(["man", "-l", os.path.join(prefix, "share/man/man1/coop.1")],
                              capture_output=True, text=True, env=dict(os.environ, MANWIDTH="80"))
        assert page.returncode == 0 and "EXIT STATUS" in page.stdout
        with Shard(os.path.join(prefix, "bin")) as shard:
            shard.init()
            shard.coop("up")
            status = shard.json("status")
            assert status["workers"][0]["state"] == "running"
            assert status["workers"][0]["name"] == "member"
            shard.coop("down")
            assert shard.processes() == []
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


run_tests([test_installed_tree_runs_a_shard])
