"""`--fail-on` and inline `# fleet:ignore <check> -- <reason>` suppressions."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fleet.cli import cli
from fleet.suppress import parse
from test_report_formats import validate_sarif

CLUSTER = "clusters/nyc3-prod-01/cluster.yaml"
TRAILING = "id: nyc3-prod-01\n{above}region: nyc3   \nenvironment: production\nshuttle:\n  tokenSecretName: shuttle-registration\n"


def lint(root: Path, *args: str):
    return CliRunner().invoke(cli, ["lint", "--root", str(root), "--only", "yamllint", *args])


def write(root: Path, above: str = "") -> None:
    (root / CLUSTER).write_text(TRAILING.format(above=above))


def test_fail_on_picks_the_lowest_failing_severity(fleet_copy: Path) -> None:
    (fleet_copy / CLUSTER).write_text((fleet_copy / CLUSTER).read_text().replace("region: nyc3", "region: nyc3  #x"))
    default = lint(fleet_copy)
    assert default.exit_code == 0 and "1 finding(s), 0 failing" in default.stderr
    strict = lint(fleet_copy, "--fail-on", "warning")
    assert strict.exit_code == 1 and "1 failing" in strict.stderr
    assert lint(fleet_copy, "--fail-on", "fatal").exit_code == 2


def test_suppressed_finding_does_not_fail_and_is_counted(fleet_copy: Path) -> None:
    write(fleet_copy)
    assert lint(fleet_copy).exit_code == 1
    write(fleet_copy, above="# fleet:ignore yamllint -- vendor file, kept byte-identical\n")
    result = lint(fleet_copy, "--format", "json", "--fail-on", "warning")
    assert result.exit_code == 0, result.output
    assert "0 finding(s), 0 failing, 1 suppressed" in result.stderr
    (entry,) = json.loads(result.stdout)["suppressed"]
    assert (entry["file"], entry["line"], entry["check"]) == (CLUSTER, 3, "yamllint")
    assert entry["reason"] == "vendor file, kept byte-identical" and entry["suppressedAt"] == f"{CLUSTER}:2:1"


def test_sarif_lists_suppressions_with_justification(fleet_copy: Path) -> None:
    text = (fleet_copy / CLUSTER).read_text().replace("region: nyc3", "region:  nyc3  # fleet:ignore yamllint -- kept on purpose")
    (fleet_copy / CLUSTER).write_text(text)  # two spaces after the colon: a yamllint error on line 2
    doc = json.loads(lint(fleet_copy, "--format", "sarif").stdout)
    validate_sarif(doc)
    (result,) = doc["runs"][0]["results"]
    assert (result["ruleId"], result["level"]) == ("yamllint", "error")
    (suppression,) = result["suppressions"]
    assert suppression["kind"] == "inSource" and suppression["justification"] == "kept on purpose"
    assert suppression["location"]["physicalLocation"]["region"]["startLine"] == 2


def test_reasonless_suppression_fails_and_silences_nothing(fleet_copy: Path) -> None:
    write(fleet_copy, above="# fleet:ignore yamllint\n")
    result = lint(fleet_copy)
    assert result.exit_code == 1
    assert f"{CLUSTER}:2:1: error: [suppression]" in result.stdout
    assert f"{CLUSTER}:3:13: error: [yamllint] trailing spaces" in result.stdout


def test_unused_and_unknown_suppressions(fleet_copy: Path) -> None:
    text = (fleet_copy / CLUSTER).read_text()
    (fleet_copy / CLUSTER).write_text("# fleet:ignore yamllint -- nothing to silence any more\n" + text)
    result = lint(fleet_copy)
    assert result.exit_code == 0 and f"{CLUSTER}:1:1: warning: [suppression] unused" in result.stdout
    assert lint(fleet_copy, "--fail-on", "warning").exit_code == 1
    assert lint(fleet_copy, "--fail-on", "warning", "--skip", "suppression").exit_code == 0
    (fleet_copy / CLUSTER).write_text("# fleet:ignore no-such-check -- typo\n" + text)
    result = lint(fleet_copy)
    assert result.exit_code == 1 and "unknown check 'no-such-check'" in result.stdout


def test_directive_targets() -> None:
    """Alone on its line: the next line; after content: its own line; `//` for Alloy templates."""
    text = "a: 1\n# fleet:ignore x -- r1\nb: 2  # fleet:ignore y -- r2\n// fleet:ignore z -- r3\nc\nurl: http://h/p\n"
    directives, problems = parse(text, "f")
    assert problems == []
    assert [(d.check, d.reason, d.at.line, d.target) for d in directives] == \
        [("x", "r1", 2, 3), ("y", "r2", 3, 3), ("z", "r3", 4, 5)]
