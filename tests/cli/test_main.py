"""The command line: version, usage errors as one message (no traceback), user errors exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lusynth import __version__
from lusynth.cli import main


def test_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lusynth {__version__}"


def test_usage_error_is_a_message_not_a_traceback() -> None:
    exe = Path(sys.executable).with_name("lusynth")
    res = subprocess.run([str(exe), "no-such-command"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "No such command" in res.stderr and "Traceback" not in res.stderr


def test_every_command_group_is_registered() -> None:
    from lusynth.cli import app

    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert {"phantom", "ingest", "train-gan", "generate", "train-classifier", "evaluate", "export", "serve", "run",
            "pipeline", "stack", "registry"} <= names


def test_stack_without_the_dev_tools_says_in_one_line_to_install_the_dev_extra(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "lusynth_dev", None)  # as if the dev extra were not installed
    assert main(["stack", "status", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lusynth_dev" in err[0] and "dev extra" in err[0] and "pip install" in err[0], err
