"""The console script: every subcommand is there and documents every option."""

from __future__ import annotations

import subprocess
import sys

import pytest

from coffea_jetimg.cli import COMMANDS, build_parser, main


def test_all_subcommands_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS) == {"generate", "train", "run", "report", "demo", "serve",
                                                 "export-triton"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help and len(action.help) > 5, f"{command} {action.option_strings or action.dest} has no help"


def test_console_script_runs():
    res = subprocess.run([sys.executable, "-m", "coffea_jetimg.cli", "run", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    assert "--skip-bad-files" in res.stdout and "--scheduler" in res.stdout


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "generate" in capsys.readouterr().out


def test_processors_importable_under_package_name():
    from coffea_jetimg.processors import EventImageProcessor, JetTaggingProcessor
    from coffea.processor import ProcessorABC

    assert issubclass(JetTaggingProcessor, ProcessorABC) and issubclass(EventImageProcessor, ProcessorABC)
