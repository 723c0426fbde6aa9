"""The real tools: promtool test rules on tests/rules, promtool check rules and vmalert -dryRun on
merged rule files, with their complaints mapped back to source lines."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _binaries import require_binary
from fleet.rules import binaries, coverage, lint

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests/fixtures/rules/fleet"
UNIT_TESTS = sorted((REPO / "tests/rules").glob("*.yaml"))

pytestmark = pytest.mark.binary


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    shutil.copytree(REPO / "base/rules", tmp_path / "base/rules")
    shutil.copytree(REPO / "tests/rules", tmp_path / "tests/rules")
    return tmp_path


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("test_file", UNIT_TESTS, ids=[p.name for p in UNIT_TESTS])
def test_promtool_unit_tests_pass(test_file):
    require_binary("promtool")
    (result,) = binaries.promtool_test([test_file], REPO)
    assert result.ok, result.output


def test_a_wrong_expectation_fails_the_unit_tests(root):
    require_binary("promtool")
    path = root / "tests/rules/customer-resources.test.yaml"
    path.write_text(path.read_text().replace("value: 1.25", "value: 1.5"))
    (f,) = lint.unit_test_findings(root)
    assert f.source.file == "tests/rules/customer-resources.test.yaml" and "1.5" in f.message


def test_every_shipped_rule_is_covered_by_a_unit_test():
    assert coverage.uncovered(lint.base_recording(REPO) + lint.alert_files(REPO), coverage.collect(REPO)) == []


def test_an_untested_alert_is_a_finding_at_its_line(root):
    require_binary("promtool")
    path = root / "base/rules/alerts/starform-platform.yaml"
    path.write_text(path.read_text() + """  - name: extra
    rules:
      - alert: NodeDown
        expr: up{job="node-exporter"} == 0
        for: 5m
        labels: {severity: warning}
        annotations: {summary: "node down"}
""")
    found = [f for f in lint.unit_test_findings(root) if f.check == "rules-tests"]
    assert len(found) == 1 and "NodeDown" in found[0].message
    line = path.read_text().splitlines()[found[0].source.line - 1]
    assert "alert: NodeDown" in line


def test_merged_fixture_regions_pass_promtool_and_vmalert(root):
    require_binary("promtool")
    require_binary("vmalert")
    assert lint.syntax_findings(root) == []


def test_rendered_files_are_accepted_by_both_tools(root, tmp_path_factory):
    """What the lead engineer writes under rendered/ is itself valid for promtool and vmalert."""
    promtool, vmalert = require_binary("promtool"), require_binary("vmalert")
    import subprocess

    from fleet.rules import render

    out = tmp_path_factory.mktemp("rendered")
    texts = render.render_region_rules(root, "r1", ["r1-a", "r1-b"])
    files = []
    for rel, text in texts.items():
        if rel.endswith(".yaml"):
            (out / Path(rel).name).write_text(text)
            files.append(str(out / Path(rel).name))
    subprocess.run([promtool, "check", "rules", *files], check=True, capture_output=True, timeout=60)
    for f in files:
        subprocess.run([vmalert, "-dryRun", f"-rule={f}"], check=True, capture_output=True, timeout=60)


def test_broken_rule_is_reported_by_both_tools_at_the_source_line(root):
    require_binary("promtool")
    require_binary("vmalert")
    write(root, "regions/r2/rules/recording/10-resources.yaml", """groups:
  - name: starform-customer-resources
    rules:
      - record: project:container_cpu_usage_seconds:rate5m
        expr: sum by (region, project_id, workspace_id) (project_service:container_cpu_usage_seconds:rate5m
""")
    found = lint.syntax_findings(root)
    assert {f.check for f in found} == {"rules-promtool", "rules-vmalert"}
    for f in found:
        assert (f.source.file, f.source.line) == ("regions/r2/rules/recording/10-resources.yaml", 5), f


def test_promtool_only_errors_map_to_the_rule(root):
    require_binary("promtool")
    path = root / "base/rules/alerts/starform-telemetry-pipeline.yaml"
    text = path.read_text().replace('summary: "No platform metrics from {{ $labels.cluster_id }} for 5 minutes"',
                                    'summary: "No platform metrics from {{ $labels.cluster_id "')
    path.write_text(text)
    (f,) = [f for f in lint.syntax_findings(root) if f.check == "rules-promtool"]
    assert "AlloyStoppedReporting" in path.read_text().splitlines()[f.source.line - 1]
    assert "template" in f.message
