"""The generated completions complete in real shells (bash, fish; zsh is syntax-checked)."""
import os
import shutil
import subprocess

from coopshard import bin_dir_from_args, run_tests

bin_dir_from_args()
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPLETIONS = os.path.join(TOP, "completions")


def bash_complete(*words):
    """COMPREPLY for the command line `words`, the last word being completed."""
    script = (f"source {COMPLETIONS}/coop.bash\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
              "_coop; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if line]


def fish_complete(line):
    result = subprocess.run(["fish", "--no-config", "-c", f"source {COMPLETIONS}/coop.fish; complete -C '{line}'"],
                            capture_output=True, text=True, check=True)
    return [entry.split("\t")[0] for entry in result.stdout.splitlines()]


def test_bash_completes_commands_options_and_values():
    assert bash_complete("coop", "lo") == ["logs"]
    assert bash_complete("coop", "logs", "me") == ["member"]
    assert bash_complete("coop", "--home", "/tmp", "st") == ["status"]
    assert "--domain" in bash_complete("coop", "init", "--")
    assert "--foreground" in bash_complete("coop", "up", "--")
    assert "--domain" not in bash_complete("coop", "up", "--")


def test_fish_completes_commands_and_options():
    if not shutil.which("fish"):
        print("skip: fish is not installed")
        return
    assert fish_complete("coop lo") == ["logs"]
    assert "member" in fish_complete("coop logs ")
    assert "--domain" in fish_complete("coop init --")
    assert "--domain" not in fish_complete("coop status --")


def test_zsh_completion_parses():
    if not shutil.which("zsh"):
        print("skip: zsh is not installed")
        return
    subprocess.run(["zsh", "-n", f"{COMPLETIONS}/coop.zsh"], check=True)


run_tests([
    test_bash_completes_commands_options_and_values,
    test_fish_completes_commands_and_options,
    test_zsh_completion_parses,
])
