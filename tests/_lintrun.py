"""Run one check on a (broken) copy of the fleet, the way the per-check tests need it.

Why one helper: a check test seeds a fault in `fleet_copy`, renders it, and asks one check (or
`fleet lint --only <check>` in each report format) where the fault is. Each test file had its own
copy of that sequence; a change to how a check is invoked is now made once.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from click.testing import CliRunner, Result

from fleet import model
from fleet.checks import CheckContext
from fleet.cli import cli
from fleet.render.fleet import render_fleet
from fleet.writer import write_tree
from test_report_formats import _error_lines, validate_sarif

FORMATS = ["text", "json", "github", "sarif", "junit"]


def render(root: Path):
    """Load the fleet under `root` and write its rendered/ tree; the fleet model."""
    fleet = model.load(root)
    write_tree(root / "rendered", render_fleet(fleet))
    return fleet


def check_findings(root: Path, check: ModuleType, *, rendered: bool = False) -> list:
    """`check`'s findings on `root`; renders first unless `rendered` (root/rendered is current)."""
    fleet = model.load(root) if rendered else render(root)
    return list(check.check(CheckContext(root=root, fleet=fleet, rendered=root / "rendered")))


def lint_only(root: Path, check: ModuleType, fmt: str = "text") -> Result:
    """`fleet lint --root <root> --only <check> --format <fmt>` (rendered/ as it is on disk)."""
    return CliRunner().invoke(cli, ["lint", "--root", str(root), "--only", check.NAME, "--format", fmt])


def assert_errors_at(root: Path, check: ModuleType, fmt: str, expected: set[tuple[str, int]]) -> None:
    """Render, lint with only `check` in `fmt`: it fails (exit 1) with errors exactly at `expected`."""
    render(root)
    result = lint_only(root, check, fmt)
    assert result.exit_code == 1, result.output
    assert _error_lines(fmt, result.stdout) == expected
    if fmt == "sarif":
        validate_sarif(json.loads(result.stdout))
