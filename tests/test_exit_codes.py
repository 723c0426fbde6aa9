"""Exit codes, as the README documents them: 0 clean, 1 findings, 2 bad input or usage, 3 internal
error (a bug: one line naming the input being processed; the traceback only with --debug)."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import model
from fleet.cli import cli


def _fleet(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_clean_is_0_and_findings_are_1(fleet_copy: Path) -> None:
    assert _fleet("render", "--root", str(fleet_copy)).exit_code == 0
    assert _fleet("render", "--root", str(fleet_copy), "--check").exit_code == 0
    target = fleet_copy / "rendered/clusters/nyc3-prod-01/kustomization.yaml"
    target.write_text(target.read_text() + "# hand edit\n")
    assert _fleet("render", "--root", str(fleet_copy), "--check").exit_code == 1
    (fleet_copy / "rendered/clusters/nyc3-prod-01/stages.yaml").unlink()
    result = _fleet("lint", "--root", str(fleet_copy), "--only", "flux-refs")
    assert result.exit_code == 1 and "stages.yaml" in result.output


@pytest.mark.parametrize("args", [["render", "--no-such-option"], ["lint", "--only", "no-such-check"], ["nosuchcommand"]])
def test_usage_errors_are_2(fleet_copy: Path, args: list[str]) -> None:
    result = _fleet(*args)
    assert result.exit_code == 2, result.output


def test_bad_input_is_2(fleet_copy: Path) -> None:
    (fleet_copy / "clusters/nyc3-prod-01/cluster.yaml").write_text("id: [\n")
    result = _fleet("render", "--root", str(fleet_copy))
    assert result.exit_code == 2 and "clusters/nyc3-prod-01/cluster.yaml:" in result.output


def _first_cluster(root: Path) -> str:
    """The cluster rendered first (IDs in order): the one a crash in every cluster names."""
    return sorted(model.load(root).clusters)[0]


def _boom(*args, **kwargs):
    raise ZeroDivisionError("division by zero\nsecond line")


def test_an_unexpected_exception_is_3_with_one_line_naming_the_input(fleet_copy: Path, monkeypatch) -> None:
    monkeypatch.setattr("fleet.render.fleet.render_cluster", _boom)
    result = _fleet("render", "--root", str(fleet_copy))
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert f"internal error while processing clusters/{_first_cluster(fleet_copy)}/cluster.yaml" in lines[0]
    assert "ZeroDivisionError: division by zero second line" in lines[0] and "--debug" in lines[0]
    assert "Traceback" not in result.output
    assert not (fleet_copy / "rendered").exists()


def test_debug_adds_the_traceback(fleet_copy: Path, monkeypatch) -> None:
    monkeypatch.setattr("fleet.render.fleet.render_cluster", _boom)
    result = _fleet("--debug", "render", "--root", str(fleet_copy))
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.output and "_boom" in result.output
    assert result.output.splitlines()[-1].startswith("fleet: internal error while processing clusters/")


def test_a_crashing_check_is_3_naming_the_check(fleet_copy: Path, monkeypatch) -> None:
    from fleet.checks import flux_refs
    assert _fleet("render", "--root", str(fleet_copy)).exit_code == 0
    monkeypatch.setattr(flux_refs, "check", _boom)
    result = _fleet("lint", "--root", str(fleet_copy), "--only", "flux-refs")
    assert result.exit_code == 3, result.output
    assert "internal error while processing the inputs and rendered/ (lint check flux-refs)" in result.output
    assert "Traceback" not in result.output


def test_a_crash_while_loading_an_input_names_the_file(fleet_copy: Path, monkeypatch) -> None:
    monkeypatch.setattr("fleet.inputs.schema.validate", _boom)
    result = _fleet("render", "--root", str(fleet_copy))
    assert result.exit_code == 3 and "while processing base/" in result.output, result.output


def test_a_crash_while_merging_names_the_cluster_file(fleet_copy: Path, monkeypatch) -> None:
    first = _first_cluster(fleet_copy)
    monkeypatch.setattr("fleet.model.merge_layers", _boom)
    result = _fleet("render", "--root", str(fleet_copy))
    assert result.exit_code == 3, result.output
    assert f"while processing clusters/{first}/cluster.yaml (merging its layers)" in result.output
