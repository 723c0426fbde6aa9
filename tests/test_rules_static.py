"""Static rule checks (fleet.rules.static, fleet.rules.lint): each bad rule fails at its source line."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleet.rules import lint

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests/fixtures/rules/fleet"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    shutil.copytree(REPO / "base/rules", tmp_path / "base/rules")
    return tmp_path


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def findings(root: Path, check: str | None = None):
    found = lint.static_findings(root)
    return [f for f in found if check is None or f.check == check]


def test_shipped_rules_and_fixture_overrides_are_clean(root):
    assert findings(root) == []


def test_platform_alert_grouping_by_project_id_fails_at_its_expr_line(root):
    write(root, "base/rules/alerts/bad.yaml", """groups:
  - name: bad
    rules:
      - alert: PerProjectDown
        expr: sum by (project_id) (up{job="shuttle"}) == 0
        for: 5m
        labels: {severity: warning}
        annotations: {summary: "down"}
""")
    (f,) = findings(root, "rules-platform-ids")
    assert (f.source.file, f.source.line) == ("base/rules/alerts/bad.yaml", 5)
    assert "project_id" in f.message and "PerProjectDown" in f.message


@pytest.mark.parametrize("label", ["workspace_id", "label_starform_io_service_id"])
def test_platform_alert_mentioning_customer_ids_anywhere_fails(root, label):
    write(root, "base/rules/alerts/bad.yaml", f"""groups:
  - name: bad
    rules:
      - alert: Leaky
        expr: up{{job="shuttle"}} == 0
        for: 5m
        labels: {{severity: warning}}
        annotations: {{summary: "down for {{{{ $labels.{label} }}}}"}}
""")
    (f,) = findings(root, "rules-platform-ids")
    assert f.source.line == 4 and label in f.message


def test_customer_rule_dropping_project_id_fails_at_its_expr_line(root):
    write(root, "regions/r2/rules/recording/10-resources.yaml", """groups:
  - name: starform-customer-resources
    rules:
      - record: project:container_cpu_usage_seconds:rate5m
        expr: sum by (region, workspace_id) (project_service:container_cpu_usage_seconds:rate5m)
""")
    (f,) = findings(root, "rules-project-id")
    assert (f.source.file, f.source.line) == ("regions/r2/rules/recording/10-resources.yaml", 5)
    assert "drops project_id" in f.message and "sum by (region, workspace_id)" in f.message


def test_customer_rule_that_never_had_project_id_fails(root):
    write(root, "clusters/r1-a/rules/recording/30-extra.yaml", """groups:
  - name: r1-a-extra
    rules:
      - record: namespace:container_cpu_usage_seconds:rate5m
        expr: sum by (cluster_id, namespace) (rate(container_cpu_usage_seconds_total{job="kubelet-cadvisor"}[5m]))
""")
    (f,) = findings(root, "rules-project-id")
    assert f.source.file == "clusters/r1-a/rules/recording/30-extra.yaml" and "not sure to carry project_id" in f.message


@pytest.mark.parametrize("expr, carries", [
    ('sum by (cluster_id, namespace) (rate(container_cpu_usage_seconds_total{job="kubelet-cadvisor"}[5m]))',
     "namespace"),
    ('rate(container_cpu_usage_seconds_total{job="kubelet-cadvisor"}[5m])', "unbounded labels"),
    ('sum without (pod) (rate(container_cpu_usage_seconds_total{job="kubelet-cadvisor"}[5m]))', "unbounded labels"),
    ('sum by (cluster_id) (rate(container_cpu_usage_seconds_total{job="kubelet-cadvisor"}[5m]))'
     ' * on (cluster_id) group_left (namespace) sum by (cluster_id) (kube_namespace_labels{job="kube-state-metrics"})',
     "namespace"),
])
def test_cluster_rule_without_project_id_must_keep_only_cluster_and_region(root, expr, carries):
    write(root, "clusters/r1-a/rules/recording/30-extra.yaml", f"""groups:
  - name: r1-a-extra
    rules:
      - record: cluster:container_cpu_usage_seconds:rate5m
        expr: '{expr}'
""")
    (f,) = findings(root, "rules-project-id")
    assert (f.source.file, f.source.line) == ("clusters/r1-a/rules/recording/30-extra.yaml", 5)
    assert f"it can carry {carries}" in f.message


@pytest.mark.parametrize("expr", [
    'sum by (cluster_id) (rate(container_cpu_usage_seconds_total{job="kubelet-cadvisor"}[5m]))',
    'sum by (cluster_id, region) (rate(container_cpu_usage_seconds_total{job="kubelet-cadvisor"}[5m]))'
    ' or sum by (cluster_id, region) (rate(container_cpu_usage_seconds_total{job="kubelet-cadvisor"}[5m])) * 0',
    'sum by (cluster_id, region) (rate(container_cpu_usage_seconds_total{job="kubelet-cadvisor"}[5m])'
    ' unless on (cluster_id, namespace) kube_namespace_labels{job="kube-state-metrics"})',
])
def test_cluster_rule_of_cluster_and_region_only_needs_no_project_id(root, expr):
    write(root, "clusters/r1-a/rules/recording/30-extra.yaml", f"""groups:
  - name: r1-a-extra
    rules:
      - record: cluster:container_cpu_usage_seconds:rate5m
        expr: '{expr}'
""")
    assert findings(root, "rules-project-id") == []


def test_broken_promql_fails_at_its_expr_line(root):
    write(root, "regions/r2/rules/recording/x.yaml", """groups:
  - name: x
    rules:
      - record: project:x:sum
        expr: sum by (project_id) (rate(container_cpu_usage_seconds_total[5m])
""")
    (f,) = findings(root, "rules-promql")
    assert (f.source.file, f.source.line) == ("regions/r2/rules/recording/x.yaml", 5)


def test_alert_without_for_or_severity(root):
    write(root, "base/rules/alerts/bad.yaml", """groups:
  - name: bad
    rules:
      - alert: NoFor
        expr: up{job="shuttle"} == 0
        labels: {severity: page}
        annotations: {summary: x}
      - alert: NoSeverity
        expr: up{job="shuttle"} == 0
        for: 1m
        annotations: {summary: x}
""")
    messages = {(f.source.line, f.message) for f in findings(root, "rules-alert-fields")}
    assert any(line == 4 and "no `for:`" in m for line, m in messages)
    assert any(line == 4 and "'page'" in m for line, m in messages)
    assert any(line == 8 and "no `severity`" in m for line, m in messages)


def test_alert_without_summary_or_description_is_an_error_at_its_line(root):
    write(root, "base/rules/alerts/bad.yaml", """groups:
  - name: bad
    rules:
      - alert: NoDescription
        expr: up{job="shuttle"} == 0
        for: 1m
        labels: {severity: warning}
        annotations: {summary: x}
      - alert: BlankSummary
        expr: up{job="shuttle"} == 0
        for: 1m
        labels: {severity: warning}
        annotations: {summary: " ", description: y}
""")
    found = {(f.source.file, f.source.line, f.severity.value, f.message) for f in findings(root, "rules-alert-fields")}
    assert found == {
        ("base/rules/alerts/bad.yaml", 4, "error", "alert 'NoDescription' has no `description` annotation"),
        ("base/rules/alerts/bad.yaml", 9, "error", "alert 'BlankSummary' has no `summary` annotation"),
    }


def test_overlong_annotation_is_reported_at_the_alert_not_in_rendered_output(root):
    write(root, "base/rules/alerts/bad.yaml", f"""groups:
  - name: bad
    rules:
      - alert: Wordy
        expr: up{{job="shuttle"}} == 0
        for: 1m
        labels: {{severity: warning}}
        annotations: {{summary: x, description: "{'y' * 201}"}}
""")
    (f,) = findings(root, "rules-alert-fields")
    assert (f.source.file, f.source.line) == ("base/rules/alerts/bad.yaml", 4)
    assert "`description` is 201 characters" in f.message


@pytest.mark.parametrize("name,bad", [("project:cpu", True), ("a:b:c:d", True), ("project:cpu:rate5m", False),
                                      ("project:x_total:rate5m", True)])
def test_recording_rule_names(root, name, bad):
    write(root, "regions/r2/rules/recording/x.yaml", f"""groups:
  - name: x
    rules:
      - record: {name}
        expr: sum by (project_id) (rate(project_service:container_cpu_usage_seconds:rate5m[5m]))
""")
    assert bool(findings(root, "rules-names")) == bad


def test_reading_a_series_nothing_produces(root):
    write(root, "regions/r2/rules/recording/x.yaml", """groups:
  - name: x
    rules:
      - record: project:typo:sum
        expr: sum by (project_id) (container_cpu_usage_secnds_total{project_id!=""})
      - record: project:wrong_job:sum
        expr: sum by (project_id) (container_memory_working_set_bytes{job="envoy", project_id!=""})
      - record: project:platform_series:sum
        expr: sum by (project_id) (vmagent_remotewrite_retries_count_total{project_id!=""})
""")
    by_line = {f.source.line: f.message for f in findings(root, "rules-producers")}
    assert "container_cpu_usage_secnds_total" in by_line[5]
    assert "job 'envoy'" in by_line[7]
    assert "vmagent_remotewrite_retries_count_total" in by_line[9]  # platform metric, customer rule


def test_platform_alert_may_not_read_customer_recording_rules(root):
    write(root, "base/rules/alerts/bad.yaml", """groups:
  - name: bad
    rules:
      - alert: Busy
        expr: sum(project:container_cpu_usage_seconds:rate5m) > 100
        for: 5m
        labels: {severity: warning}
        annotations: {summary: x}
""")
    (f,) = findings(root, "rules-producers")
    assert f.source.line == 5 and "nothing produces" in f.message


def test_misspelt_platform_metric_is_a_finding_at_its_expr_line(root):
    """The catalogue lists exact names: a glob like `fluentbit_*` used to accept any typo."""
    path = root / "base/rules/alerts/starform-telemetry-pipeline.yaml"
    text = path.read_text()
    assert "fluentbit_output_dropped_records_total" in text
    path.write_text(text.replace("fluentbit_output_dropped_records_total", "fluentbit_output_records_dropped_total"))
    (f,) = findings(root, "rules-producers")
    assert f.source.file == "base/rules/alerts/starform-telemetry-pipeline.yaml"
    line = path.read_text().splitlines()[f.source.line - 1]
    assert "expr:" in line and "fluentbit_output_records_dropped_total" in line
    assert "nothing produces 'fluentbit_output_records_dropped_total'" in f.message


def _edit_catalogue(root: Path, old: str, new: str) -> Path:
    path = root / "base/rules/producers.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old,new,words", [
    ("      source: \"Fluent Bit", "      metric: [x]\n      source: \"Fluent Bit", "unknown field 'metric'"),
    ("        - fluentbit_output_retries_total\n", "        - \"fluentbit_*\"\n", "'fluentbit_*' is not valid"),
    ("platform:\n", "platfrom: {jobs: {}}\nplatform:\n", "unknown field 'platfrom'"),
])
def test_bad_producer_catalogue_is_an_input_error_at_its_line(root, old, new, words):
    from fleet.errors import InputError
    path = _edit_catalogue(root, old, new)
    with pytest.raises(InputError) as info:
        lint.static_findings(root)
    err = info.value
    assert err.source.file == "base/rules/producers.yaml" and words in err.message
    changed = next(i for i, (a, b) in enumerate(zip(path.read_text().splitlines(),
                                                   (REPO / "base/rules/producers.yaml").read_text().splitlines()), 1)
                   if a != b)
    assert err.source.line == changed


def test_unknown_catalogue_key_exits_2_from_the_cli(fleet_copy):
    from click.testing import CliRunner

    from fleet.cli import cli
    _edit_catalogue(fleet_copy, "      source: \"Fluent Bit", "      metric: [x]\n      source: \"Fluent Bit")
    result = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--only", "rules-static"])
    assert result.exit_code == 2, result.output
    assert "base/rules/producers.yaml:" in result.output and "unknown field 'metric'" in result.output


def test_ratio_of_two_recorded_series_is_a_finding_at_its_expr_line(root):
    """vmalert reads recorded series from earlier evaluations: a/b of two rules mixes intervals."""
    write(root, "regions/r2/rules/recording/20-envoy.yaml", """groups:
  - name: starform-customer-envoy
    rules:
      - record: project:envoy_cluster_upstream_rq_errors:ratio_rate5m
        expr: |
          sum by (region, project_id, workspace_id) (project_service:envoy_cluster_upstream_rq_xx:rate5m{envoy_response_code_class="5"})
          / project:envoy_cluster_upstream_rq:rate5m
""")
    (f,) = findings(root, "rules-ratio-inputs")
    assert (f.source.file, f.source.line) == ("regions/r2/rules/recording/20-envoy.yaml", 5)
    assert "project:envoy_cluster_upstream_rq:rate5m" in f.message


@pytest.mark.parametrize("expr", [
    # both sides from one recorded series
    "sum by (region, project_id, workspace_id) (project_service:envoy_cluster_upstream_rq_xx:rate5m{envoy_response_code_class=\"5\"})"
    " / sum by (region, project_id, workspace_id) (project_service:envoy_cluster_upstream_rq_xx:rate5m)",
    # a recorded series over a constant
    "project:envoy_cluster_upstream_rq:rate5m / 60",
])
def test_ratio_from_one_evaluation_is_clean(root, expr):
    write(root, "regions/r2/rules/recording/x.yaml", f"""groups:
  - name: x
    rules:
      - record: project:x:ratio_rate5m
        expr: '{expr}'
""")
    assert findings(root, "rules-ratio-inputs") == []


@pytest.mark.parametrize("expr, problem", [
    ('label_replace(project_service:container_memory_working_set_bytes:sum, "project_id", "$1", "region", "(.+)")',
     "sets project_id from 'region'"),
    ('label_replace(project_service:container_memory_working_set_bytes:sum, "project_id", "shared", "", "")',
     "sets project_id from ''"),
    ('label_replace(project_service:container_memory_working_set_bytes:sum, "service_id", "$1", '
     '"label_starform_io_service_id", "svc-(.+)")', "regex 'svc-(.+)'"),
    ('label_join(project_service:container_memory_working_set_bytes:sum, "workspace_id", "-", "project_id", "region")',
     "label_join writes workspace_id"),
])
def test_customer_rule_rewriting_a_tenant_id_fails_at_its_expr_line(root, expr, problem):
    """The tenant filter trusts project_id/service_id/workspace_id: only KSM's own labels may set them."""
    write(root, "base/rules/recording/90-bad.yaml", f"""groups:
  - name: bad
    rules:
      - record: project_service:container_memory_working_set_bytes:relabelled
        expr: '{expr}'
""")
    found = findings(root, "rules-tenant-ids")
    assert [(f.source.file, f.source.line) for f in found] == [("base/rules/recording/90-bad.yaml", 5)]
    assert problem in found[0].message, found[0].message


def test_identity_rules_copying_ksm_labels_pass_the_tenant_id_check(root):
    text = (REPO / "base/rules/recording/00-identity.yaml").read_text()
    assert text.count('"label_starform_io_project_id", "(.+)"') >= 2   # what the check accepts is used
    assert findings(root, "rules-tenant-ids") == []


# --- staging never pages (rules-environment) ---------------------------------------------------
ENV_SEVERITY = ('{{ if or (eq $labels.environment "production") (eq $labels.environment "") }}'
                'critical{{ else }}warning{{ end }}')


def _paging_alert(expr: str, severity: str = ENV_SEVERITY) -> str:
    return f"""groups:
  - name: env
    rules:
      - alert: Paging
        expr: {expr}
        for: 5m
        labels: {{severity: '{severity}'}}
        annotations: {{summary: s, description: d}}
"""


@pytest.mark.parametrize("expr", [
    'up{job="shuttle"} == 0',
    'count by (cluster_id, environment) (up{job="alloy"}) unless on (cluster_id) count by (cluster_id) (up{job="shuttle"})',
    'absent(up{job="starbase-api", environment="production"})',
    'max_over_time(up{job="alloy"}[1d]) unless on (instance) up{job="alloy"} or absent_over_time(up{job="alloy", environment="production"}[1d])',
])
def test_environment_derived_severity_that_keeps_environment_is_clean(root, expr):
    write(root, "base/rules/alerts/env.yaml", _paging_alert(expr))
    assert findings(root, "rules-environment") == []
    assert findings(root, "rules-alert-fields") == []


@pytest.mark.parametrize("expr, words", [
    ('count by (cluster_id) (up{job="shuttle"} == 0)', "`count by (cluster_id)` does not keep it"),
    ('absent(up{job="starbase-api"})', 'environment="production"'),
    ('sum(up{job="shuttle"}) == 0', "without `by` keeps no labels"),
])
def test_severity_that_cannot_tell_staging_fails_at_its_expr_line(root, expr, words):
    write(root, "base/rules/alerts/env.yaml", _paging_alert(expr))
    (f,) = findings(root, "rules-environment")
    assert (f.source.file, f.source.line) == ("base/rules/alerts/env.yaml", 5)
    assert words in f.message + f.hint and "Paging" in f.message


def test_static_critical_pages_for_staging_and_fails_at_the_alert_line(root):
    write(root, "base/rules/alerts/env.yaml", _paging_alert('up{job="shuttle"} == 0', "critical"))
    (f,) = findings(root, "rules-environment")
    assert (f.source.file, f.source.line) == ("base/rules/alerts/env.yaml", 4)
    assert "staging" in f.message


def test_shipped_severity_template_is_the_checked_one():
    from fleet.rules.static import ENV_SEVERITY as shipped
    assert shipped == ENV_SEVERITY


def test_lint_reports_rule_findings_under_the_plug_in_name_and_they_can_be_silenced(fleet_copy):
    """`fleet lint` names the plug-in (rules-static), not the rule check inside it (kept in
    details): what --only, SARIF rules, JUnit suites and `fleet:ignore rules-static` know."""
    import json

    from click.testing import CliRunner

    from fleet.cli import cli
    bad = fleet_copy / "base/rules/alerts/bad.yaml"
    alert = """groups:
  - name: bad
    rules:
      - alert: PerProjectDown
        expr: sum by (project_id) (up{job="shuttle"}) == 0IGNORE
        for: 5m
        labels: {severity: warning}
        annotations: {summary: "down", description: "d"}
"""
    bad.write_text(alert.replace("IGNORE", ""))
    args = ["lint", "--root", str(fleet_copy), "--only", "rules-static", "--format", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    (found,) = json.loads(result.stdout)["findings"]
    assert (found["check"], found["details"]["rule_check"]) == ("rules-static", "rules-platform-ids")
    assert (found["file"], found["line"]) == ("base/rules/alerts/bad.yaml", 5)
    bad.write_text(alert.replace("IGNORE", "  # fleet:ignore rules-static -- seeded"))
    silenced = CliRunner().invoke(cli, args)
    assert silenced.exit_code == 0, silenced.output
    assert [s["check"] for s in json.loads(silenced.stdout)["suppressed"]] == ["rules-static"]
