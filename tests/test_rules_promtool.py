"""The real tools: promtool test rules on tests/rules, promtool check rules and vmalert -dryRun on
merged rule files, with their complaints mapped back to source lines."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from _binaries import require_binary
from fleet.rules import binaries, coverage, lint, vmtests

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
    old = 'summary: "No platform metrics from {{ with $labels.cluster_id }}'
    assert old in path.read_text()
    text = path.read_text().replace(old, 'summary: "No platform metrics from {{ with $labels.cluster_id ')
    path.write_text(text)
    (f,) = [f for f in lint.syntax_findings(root) if f.check == "rules-promtool"]
    assert "AlloyStoppedReporting" in path.read_text().splitlines()[f.source.line - 1]
    assert "template" in f.message


def test_fixture_override_tests_pass_and_cover_every_override_rule(root):
    """r1's replaced/appended rules and r1-a's group are tested beside them, against r1's merged set."""
    require_binary("promtool")
    assert lint.unit_test_findings(root) == []


def test_an_untested_region_override_rule_is_a_finding_at_its_line(root):
    require_binary("promtool")
    write(root, "regions/r2/rules/recording/10-resources.yaml", """groups:
  - name: starform-customer-resources
    rules:
      - record: project:container_cpu_usage_seconds:rate1h
        expr: avg_over_time(project:container_cpu_usage_seconds:rate5m[1h])
""")
    (f,) = lint.unit_test_findings(root)
    assert (f.source.file, f.source.line) == ("regions/r2/rules/recording/10-resources.yaml", 4)
    assert "regions/r2/rules/tests/" in f.message


def test_a_replaced_base_rule_needs_its_own_test(root):
    """Replacing a base rule in a region is a change: the base test does not cover it."""
    require_binary("promtool")
    override = root / "regions/r1/rules/recording/10-resources.yaml"
    tests = root / "regions/r1/rules/tests/resources.test.yaml"
    text = tests.read_text()
    start = text.index("      # replaced:")
    tests.write_text(text[:start] + text[text.index("      # appended:"):])
    (f,) = lint.unit_test_findings(root)
    assert f.source.file == "regions/r1/rules/recording/10-resources.yaml"
    assert "record: project_service:container_memory_working_set_bytes:sum" in override.read_text().splitlines()[f.source.line - 1]


def test_override_test_failure_is_reported_at_the_failing_case(root):
    """Override tests run against the merged set: the base memory rule's value is wrong in r1."""
    require_binary("promtool")
    path = root / "regions/r1/rules/tests/resources.test.yaml"
    path.write_text(path.read_text().replace("value: 5100", "value: 100"))
    (f,) = lint.unit_test_findings(root)
    assert f.source.file == "regions/r1/rules/tests/resources.test.yaml"
    assert "expr: project_service:container_memory_working_set_bytes:sum" in path.read_text().splitlines()[f.source.line - 1]
    assert "5.1E+03" in f.message


def test_an_override_test_without_a_region_is_reported_and_not_replayed(root):
    """A test under a cluster no region claims has no rule set: rules-tests says so, rules-vm skips it."""
    require_binary("promtool")
    write(root, "clusters/ghost/rules/tests/x.test.yaml", "rule_files: [../recording/x.yaml]\ntests: []\n")
    found = [f for f in lint.unit_test_findings(root) if f.source.file == "clusters/ghost/rules/tests/x.test.yaml"]
    assert [f.message for f in found] == ["cluster 'ghost' has no rendered region to test against"]
    sets = lint.region_sets(root)
    jobs = vmtests.override_jobs(root, sets, lint._cluster_regions(root, None))
    assert "clusters/ghost/rules/tests/x.test.yaml" not in {j.name for j in jobs}
    assert "regions/r1/rules/tests/resources.test.yaml" in {j.name for j in jobs}


def test_a_failing_base_case_is_reported_at_its_line(root):
    require_binary("promtool")
    path = root / "tests/rules/platform-telemetry-pipeline.test.yaml"
    text = path.read_text()
    path.write_text(text.replace("      - eval_time: 3h\n        alertname: AlloyStoppedReporting\n        exp_alerts:\n"
                                 "          - exp_labels: {severity: critical, cluster_id: c1, environment: production}",
                                 "      - eval_time: 3h\n        alertname: AlloyStoppedReporting\n        exp_alerts:\n"
                                 "          - exp_labels: {severity: critical, cluster_id: c9, environment: production}", 1))
    (f,) = lint.unit_test_findings(root)
    lines = path.read_text().splitlines()
    assert f.source.file == "tests/rules/platform-telemetry-pipeline.test.yaml"
    assert lines[f.source.line - 1].strip() == "- eval_time: 3h" and "AlloyStoppedReporting" in lines[f.source.line]


def test_cases_expecting_nothing_do_not_count_as_coverage(root):
    """An alert tested only with `exp_alerts: []` (or a record with `exp_samples: []`) is untested."""
    require_binary("promtool")
    write(root, "base/rules/alerts/extra.yaml", """groups:
  - name: extra
    rules:
      - alert: NodeDown
        expr: up{job="node-exporter"} == 0
        for: 5m
        labels: {severity: warning}
        annotations: {summary: "node down", description: "d"}
""")
    write(root, "regions/r2/rules/recording/x.yaml", """groups:
  - name: x
    rules:
      - record: project:container_cpu_usage_seconds:max1h
        expr: max_over_time(project:container_cpu_usage_seconds:rate5m[1h])
""")
    write(root, "tests/rules/extra.test.yaml", """rule_files: [../../base/rules/alerts/extra.yaml]
tests:
  - interval: 1m
    input_series:
      - {series: 'up{job="node-exporter",instance="n1"}', values: '1x10'}
    alert_rule_test:
      - {eval_time: 10m, alertname: NodeDown, exp_alerts: []}
""")
    write(root, "regions/r2/rules/tests/x.test.yaml", """rule_files: [../recording/x.yaml]
tests:
  - interval: 1m
    input_series: []
    promql_expr_test:
      - {expr: 'project:container_cpu_usage_seconds:max1h', eval_time: 10m, exp_samples: []}
""")
    found = {(f.source.file, f.source.line): f.message for f in lint.unit_test_findings(root)}
    assert set(found) == {("base/rules/alerts/extra.yaml", 4), ("regions/r2/rules/recording/x.yaml", 4)}
    assert "no alert_rule_test with exp_alerts" in found[("base/rules/alerts/extra.yaml", 4)]
    assert "no promql_expr_test with exp_samples" in found[("regions/r2/rules/recording/x.yaml", 4)]


def test_passing_unit_tests_are_remembered_by_content(root, monkeypatch):
    """An unchanged test and rule files are not re-run; a changed rule file is (and can fail)."""
    require_binary("promtool")
    runs = []
    real = binaries.subprocess.run

    def counting(cmd, *args, **kwargs):
        runs.append(cmd)
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(binaries.subprocess, "run", counting)
    test = root / "tests/rules/customer-resources.test.yaml"
    assert binaries.promtool_test([test], root)[0].ok and len(runs) == 1
    assert binaries.promtool_test([test], root)[0].ok and len(runs) == 1       # from .cache/
    rules = root / "base/rules/recording/10-resources.yaml"
    rules.write_text(rules.read_text().replace('container!="POD"', 'container!="POD", container!="x"', 1))
    assert binaries.promtool_test([test], root)[0].ok and len(runs) == 2       # rule file changed
    rules.write_text(rules.read_text().replace("sum by (cluster_id,", "max by (cluster_id,", 1))
    (result,) = binaries.promtool_test([test], root)
    assert not result.ok and len(runs) == 3
    assert not binaries.promtool_test([test], root)[0].ok and len(runs) == 4  # failures are never cached
