"""`--help` is written for users on every command, and the quick commands load neither torch nor Ray."""

import subprocess
import sys

import pytest

from mmkd import cli, config

COMMANDS = {" ".join(c.words): c for c in cli.COMMANDS}


def _help(capsys, *words):
    with pytest.raises(SystemExit) as exit:
        cli.main([*words, "--help"])
    assert exit.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines to the terminal


def test_the_top_level_help_is_for_users(capsys):
    out = _help(capsys)
    assert cli.__doc__.split("\n")[0] not in out  # the module docstring is for developers
    assert "Hyperparameter sweeps for multilingual knowledge distillation" in out
    assert "exit codes: 0 ok; 2 bad input" in out
    for group in {c.words[0] for c in cli.COMMANDS}:
        assert f" {group} " in out


@pytest.mark.parametrize("words", sorted(COMMANDS))
def test_every_command_says_what_it_does_its_arguments_and_exit_codes(capsys, words):
    command = COMMANDS[words]
    out = _help(capsys, *words.split())
    assert " ".join(command.description.split()) in out
    assert "exit codes: 0 ok; 2 bad input" in out
    for arg in command.args:
        assert arg.options.get("help"), (words, arg.flags)
        assert " ".join(arg.options["help"].split()) in out


def test_a_group_without_its_command_prints_its_commands_and_exits_2(capsys):
    assert cli.main(["sweep"]) == 2
    out = capsys.readouterr().out
    assert all(f"    {c.words[1]}" in out for c in cli.COMMANDS if c.words[0] == "sweep")


HEAVY = ["torch", "transformers", "ray", "peft", "accelerate", "optuna"]
LOADED = f"""
import contextlib, sys
from mmkd import cli
with contextlib.suppress(SystemExit):
    cli.main(sys.argv[1:])
print([m for m in {HEAVY} if m in sys.modules])
"""


@pytest.mark.parametrize("words", [["--help"], ["sweep", "validate", "quickstart"], ["sweep", "status", "s"]])
def test_the_quick_commands_load_neither_torch_nor_ray(tmp_path, words):
    exp = tmp_path / "s" / "mmkd"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(config.dump(config.load("quickstart")))
    run = subprocess.run([sys.executable, "-c", LOADED, *words], cwd=tmp_path, capture_output=True, text=True)
    assert run.stdout.splitlines()[-1] == "[]", run.stderr
