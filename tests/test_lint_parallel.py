"""A large fleet's lint runs its checks in forked processes: the same report as one process, and a
check's error in the forked process is reported as in the parent."""
from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from fleet.checks import yaml_lint
from fleet.cli import cli
from fleet.commands import lint

ONLY = ["--only", "yamllint", "--only", "rules-static", "--only", "k8s-schema", "--only", "secrets",
        "--only", "required-values"]


def _lint(root: Path) -> tuple[int, dict, str]:
    result = CliRunner().invoke(cli, ["lint", "--root", str(root), "--format", "json", *ONLY])
    return result.exit_code, json.loads(result.stdout) if result.exit_code in (0, 1) else {}, result.stderr


def test_two_processes_give_the_one_process_report(fleet_copy: Path, monkeypatch) -> None:
    cluster = fleet_copy / "clusters/nyc3-prod-01/cluster.yaml"
    cluster.write_text(cluster.read_text().replace("shuttle:\n  tokenSecretName", "shuttle:\n    tokenSecretName")
                       + "components:\n  envoy-gateway:\n    values:\n      deployment:\n        replicas: 1\n")
    assert CliRunner().invoke(cli, ["render", "--root", str(fleet_copy)]).exit_code == 0
    code, serial, _ = _lint(fleet_copy)
    monkeypatch.setattr(lint, "PARALLEL_MIN_CLUSTERS", 1)
    pids = fleet_copy / "pids"
    real = yaml_lint.check

    def recorded(ctx):
        with pids.open("a") as out:
            out.write(f"{os.getpid()}\n")
        yield from real(ctx)

    monkeypatch.setattr(yaml_lint, "check", recorded)
    code2, parallel, stderr = _lint(fleet_copy)
    assert pids.read_text().split() != [str(os.getpid())], "yamllint ran in a second process"
    assert "yamllint" in stderr and "rules-static" in stderr
    assert (code2, parallel) == (code, serial)
    checks = {f["check"] for f in serial["findings"]}
    assert {"yamllint", "required-values"} <= checks, checks  # both processes found something


def test_a_bug_in_the_forked_process_is_reported_with_its_input(fleet_copy: Path, monkeypatch) -> None:
    assert CliRunner().invoke(cli, ["render", "--root", str(fleet_copy)]).exit_code == 0
    monkeypatch.setattr(lint, "PARALLEL_MIN_CLUSTERS", 1)

    def broken(ctx):
        raise KeyError("boom")

    monkeypatch.setattr(yaml_lint, "check", broken)
    result = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), *ONLY])
    assert result.exit_code == 3
    assert "lint check yamllint" in result.stderr and "boom" in result.stderr
