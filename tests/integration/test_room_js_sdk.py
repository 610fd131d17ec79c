"""matrix-js-sdk (npm, pinned in tests/clients/package-lock.json) against coop-room."""
import os
import shutil
import subprocess

from coopshard import Shard, bin_dir_from_args, run_tests
from test_room_nio import DOMAIN, STRONG, start

BIN = bin_dir_from_args()
CLIENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients")


def test_matrix_js_sdk_chats_in_a_space():
    if not os.path.isdir(os.path.join(CLIENTS, "node_modules", "matrix-js-sdk")) or not shutil.which("node"):
        raise AssertionError("matrix-js-sdk is not installed: run scripts/install-deps")
    with Shard(BIN) as shard:
        url = start(shard)
        result = subprocess.run(["node", os.path.join(CLIENTS, "room_scenario.mjs"), url, DOMAIN, STRONG],
                                capture_output=True, text=True, timeout=120, cwd=CLIENTS)
        assert result.returncode == 0 and "ALL OK" in result.stdout, result.stdout + result.stderr
        shard.coop("down")


if __name__ == "__main__":
    run_tests([test_matrix_js_sdk_chats_in_a_space])
