"""`.pre-commit-config.yaml`: pre-commit accepts it, every hook runs a command and checks that
exist, and the lint hook's checks are the fast ones (they start no upstream binary)."""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pre_commit.clientlib import load_config

from conftest import REPO
from fleet import checks
from fleet.cli import cli

CONFIG = REPO / ".pre-commit-config.yaml"


def hooks() -> dict[str, list[str]]:
    config = load_config(str(CONFIG))  # pre-commit's own schema: raises on an invalid file
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    return {hook["id"]: shlex.split(hook["entry"]) for hook in repo["hooks"]}


def test_hooks_name_existing_commands_and_checks() -> None:
    entries = hooks()
    assert set(entries) == {"fleet-render-check", "fleet-lint-fast", "yamllint"}
    for argv in entries.values():
        assert (REPO / argv[0]).is_file(), f"{argv[0]} missing: run `make setup`"
    known = {c.name for c in checks.discover()}
    for argv in (entries["fleet-render-check"], entries["fleet-lint-fast"]):
        assert argv[0] == ".venv/bin/fleet"
        command = cli.get_command(click.Context(cli), argv[1])  # commands load lazily
        assert command is not None, argv[1]
        with command.make_context(argv[1], argv[2:]) as ctx:  # click refuses an unknown option
            if argv[1] == "lint":
                assert ctx.params["only"] and set(ctx.params["only"]) <= known
    assert entries["yamllint"][-1] == ".yamllint.yaml" and (REPO / ".yamllint.yaml").is_file()


def refuse_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way our code starts a binary (subprocess.run/check_output/Popen) goes through Popen."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a fast check started a process: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_fast_lint_hook_runs_no_binary_and_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a copy of the repo's inputs and rendered/ without .cache: no cached result hides a binary."""
    for name in ("base", "overlays", "regions", "clusters", "policies", "rendered", "tests/rules", "tests/relabel"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / ".yamllint.yaml", tmp_path)
    refuse_processes(monkeypatch)
    argv = hooks()["fleet-lint-fast"]
    result = CliRunner().invoke(cli, [*argv[1:2], "--root", str(tmp_path), *argv[2:]])
    assert result.exit_code == 0, result.output


def test_the_process_guard_trips_on_a_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard above can fail: starting any binary under it raises."""
    refuse_processes(monkeypatch)
    with pytest.raises(AssertionError, match="started a process"):
        subprocess.run(["true"], check=True)
