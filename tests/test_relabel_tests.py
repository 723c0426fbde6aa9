"""Relabel unit tests: every shipped relabel set has a test file, and the test-file format
(values_file / alloy_file / groups / drop_meta_labels) reads, validates and fails as documented.

The shipped `tests/relabel/*.test.yaml` files themselves are run by
tests/test_policy_cli.py::test_shipped_relabel_unit_tests_pass.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import yamlio
from fleet.alloy import graph as alloy_graph
from fleet.alloy import syntax
from fleet.cli import cli
from fleet.errors import InputError
from fleet.relabel.relabeltest import (
    ALLOY_RELABEL_KINDS, STAGES, RuleSet, load_suite, run_suite, scrape_configs, suite_rule_sets,
)

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests" / "relabel"
VALUES = ROOT / "base" / "components" / "vmagent" / "values.yaml"
ALLOY_FILES = sorted((ROOT / "rendered" / "clusters").glob("*/stages/03-telemetry/config.alloy"))
SHIPPED_TESTS = sorted(TESTS.glob("*.test.yaml"))


# -- coverage: every shipped relabel set is pointed at by a test file -----------------------------


def values_files(root: Path) -> list[Path]:
    """Helm values files under base/ that hold scrape jobs (vmagent's)."""
    out = []
    for path in sorted((root / "base").rglob("values.yaml")):
        doc = yamlio.load_file(path)
        config = doc.get("config") if isinstance(doc, dict) else None
        if isinstance(config, dict) and "scrape_configs" in config:
            out.append(path)
    return out


def shipped_rule_sets(root: Path) -> set[RuleSet]:
    """base/relabel/*.yaml; each non-empty rule list of each scrape job; Alloy components by id
    (file part left empty: any rendered config.alloy may stand for them)."""
    sets = {RuleSet(p.resolve()) for p in sorted((root / "base" / "relabel").glob("*.yaml"))}
    for path in values_files(root):
        for job in scrape_configs(yamlio.load_file(path), str(path)):
            for stage in STAGES:
                if job.get(stage):
                    sets.add(RuleSet(path.resolve(), f"{job['job_name']}/{stage}"))
    for path in sorted((root / "rendered" / "clusters").glob("*/stages/03-telemetry/config.alloy")):
        graph = alloy_graph.build_graph(syntax.parse(path.read_text(), str(path)), str(path))
        sets |= {RuleSet(Path("config.alloy"), cid) for cid, c in graph.components.items()
                 if c.kind in ALLOY_RELABEL_KINDS}
    return sets


def covered_rule_sets(test_files: list[Path]) -> set[RuleSet]:
    """What the test files point at; a rendered config.alloy counts as any config.alloy."""
    out = set()
    for path in test_files:
        for rs in suite_rule_sets(path):
            out.add(RuleSet(Path("config.alloy"), rs.part) if rs.file.name == "config.alloy" else rs)
    return out


def test_every_shipped_relabel_set_has_a_test_file():
    missing = shipped_rule_sets(ROOT) - covered_rule_sets(SHIPPED_TESTS)
    assert not missing, "relabel sets without tests in tests/relabel: " + ", ".join(sorted(map(str, missing)))


def test_shipped_sets_include_each_kind():
    """The coverage check looks at what it should: without these the test above proves nothing."""
    parts = {rs.part for rs in shipped_rule_sets(ROOT)}
    assert {"customer-pods/relabel_configs", "kubelet-cadvisor/metric_relabel_configs",
            "envoy/relabel_configs", "kube-state-metrics/relabel_configs"} <= parts
    assert "envoy/metric_relabel_configs" not in parts  # empty stages are not sets
    assert {"discovery.relabel.job_shuttle", "prometheus.relabel.gdpr"} <= parts
    assert RuleSet((ROOT / "base" / "relabel" / "customer.yaml").resolve()) in shipped_rule_sets(ROOT)


def test_coverage_notices_a_missing_test_file():
    without_vmagent = [p for p in SHIPPED_TESTS if p.name != "vmagent-scrape.test.yaml"]
    missing = shipped_rule_sets(ROOT) - covered_rule_sets(without_vmagent)
    assert RuleSet(VALUES.resolve(), "customer-pods/relabel_configs") in missing


# -- the shipped tests detect real regressions ------------------------------------------------


def _copy_suite(tmp_path: Path, test_name: str, key: str, target: Path) -> Path:
    """The shipped test file, pointed at `target` (an edited copy of the rules it tests)."""
    text = (TESTS / test_name).read_text()
    lines = [f"{key}: {target}" if line.startswith(f"{key}:") else line for line in text.splitlines()]
    out = tmp_path / test_name
    out.write_text("\n".join(lines) + "\n")
    return out


def _edited_values(tmp_path: Path, job: str, edit) -> Path:
    """A copy of the vmagent values with `edit(relabel_configs)` applied to one job's list."""
    doc = yamlio.plain(yamlio.load_file(VALUES))
    (node,) = [j for j in doc["config"]["scrape_configs"] if j["job_name"] == job]
    before = list(node["relabel_configs"])
    node["relabel_configs"] = edit(before)
    assert node["relabel_configs"] != before, "the edit changed nothing"
    out = tmp_path / "values.yaml"
    out.write_text(yamlio.dump(doc))
    return out


def test_vmagent_tests_catch_the_ipv4_only_address_regex(tmp_path):
    """The rule shipped before: __address__ split at the first ':' (IPv6 pods keep their old port)."""
    old = {"source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
           "regex": r"([^:]+)(?::\d+)?;(\d+)", "replacement": "$1:$2", "target_label": "__address__"}

    def edit(rules: list) -> list:
        at = next(i for i, r in enumerate(rules) if r.get("target_label") == "__address__")
        return rules[:at] + [old] + [r for r in rules[at:] if r.get("target_label") != "__address__"]

    values = _edited_values(tmp_path, "customer-pods", edit)
    results = run_suite(_copy_suite(tmp_path, "vmagent-scrape.test.yaml", "values_file", values))
    failed = {r.name for r in results if not r.passed}
    assert failed and all("IPv6" in name for name in failed), failed


def test_vmagent_tests_catch_a_dropped_project_keep(tmp_path):
    def edit(rules: list) -> list:
        return [r for r in rules if not (r.get("action") == "keep" and any(
            "starform_io_project_id" in label for label in r.get("source_labels", [])))]

    values = _edited_values(tmp_path, "customer-pods", edit)
    results = run_suite(_copy_suite(tmp_path, "vmagent-scrape.test.yaml", "values_file", values))
    failed = {r.name for r in results if not r.passed}
    assert "customer-pods targets: a pod with the annotation but without the project label is not scraped" in failed


def test_alloy_tests_catch_a_namespace_free_keep(tmp_path):
    alloy = ALLOY_FILES[0].read_text().replace('regex         = "(starform-system);shuttle;metrics"',
                                               'regex         = "(.+);shuttle;metrics"')
    target = tmp_path / "config.alloy"
    target.write_text(alloy)
    results = run_suite(_copy_suite(tmp_path, "alloy-discovery.test.yaml", "alloy_file", target))
    failed = {r.name for r in results if not r.passed}
    assert any(n.startswith("shuttle: a customer pod") for n in failed), failed
    assert all(n.startswith("shuttle: ") for n in failed)


# -- the format -----------------------------------------------------------------------------------

VALUES_YAML = """\
config:
  scrape_configs:
    - job_name: pods
      relabel_configs:
        - source_labels: [__meta_kubernetes_namespace]
          regex: keep-me
          action: keep
        - source_labels: [__meta_kubernetes_namespace]
          target_label: namespace
      metric_relabel_configs: []
"""

ALLOY = """\
discovery.kubernetes "pods" {
  role = "pod"
}

discovery.relabel "mine" {
  targets = discovery.kubernetes.pods.targets

  rule {
    source_labels = ["__meta_kubernetes_namespace"]
    regex         = "keep-me"
    action        = "keep"
  }
}
"""

TARGET = "'{__address__=\"a:1\", __meta_kubernetes_namespace=\"keep-me\"}'"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def cli_run(path: Path):
    return CliRunner().invoke(cli, ["test-relabel", str(path)])


def test_values_file_group_reads_the_job_stage_with_source_lines(tmp_path):
    write(tmp_path, "values.yaml", VALUES_YAML)
    suite = write(tmp_path, "t.test.yaml", (
        "values_file: values.yaml\nscrape_job: pods\nstage: relabel_configs\ndrop_meta_labels: true\n"
        f"tests:\n  - input: {TARGET}\n    output: '{{__address__=\"a:1\", namespace=\"keep-me\"}}'\n"
        "  - input: '{__address__=\"a:1\", __meta_kubernetes_namespace=\"other\"}'\n    dropped: true\n"))
    (group,) = load_suite(suite)
    assert [r.source.line for r in group.rules] == [5, 8]
    assert group.rules[0].source.file.endswith("values.yaml")
    assert group.sets == [RuleSet((tmp_path / "values.yaml").resolve(), "pods/relabel_configs")]
    assert all(r.passed for r in run_suite(suite))
    assert cli_run(suite).exit_code == 0


def test_without_drop_meta_labels_meta_labels_stay(tmp_path):
    write(tmp_path, "values.yaml", VALUES_YAML)
    suite = write(tmp_path, "t.test.yaml", (
        "values_file: values.yaml\nscrape_job: pods\nstage: relabel_configs\n"
        f"tests:\n  - name: meta kept\n    input: {TARGET}\n"
        "    output: '{__address__=\"a:1\", namespace=\"keep-me\"}'\n"))
    r = cli_run(suite)
    assert r.exit_code == 1 and "FAIL meta kept" in r.output and '__meta_kubernetes_namespace="keep-me"' in r.output


def test_groups_share_file_keys_and_prefix_names(tmp_path):
    write(tmp_path, "c.alloy", ALLOY)
    suite = write(tmp_path, "t.test.yaml", (
        "alloy_file: c.alloy\ndrop_meta_labels: true\ngroups:\n"
        "  - name: mine\n    component: discovery.relabel.mine\n    tests:\n"
        f"      - name: kept\n        input: {TARGET}\n        output: '{{__address__=\"b:1\"}}'\n"))
    r = cli_run(suite)
    assert r.exit_code == 1 and "t.test.yaml:7:9: FAIL mine: kept" in r.output
    assert 'got:      {__address__="a:1"}' in r.output


VJ = "values_file: values.yaml\nscrape_job: pods\n"
AC = "alloy_file: c.alloy\ncomponent: discovery.relabel.mine\n"
ONE = "tests: [{input: 'a', dropped: true}]\n"


@pytest.mark.parametrize("body, message, line", [
    (VJ + "stage: relabel_configs\nfoo: 1\ntests: []\n", "unknown field 'foo'", 4),
    ("values_file: values.yaml\nscrape_job: nope\nstage: relabel_configs\n" + ONE, "no scrape job 'nope'", 2),
    (VJ + "stage: write_relabel_configs\n" + ONE, "unknown stage", 3),
    (VJ + "stage: metric_relabel_configs\n" + ONE, "has no metric_relabel_configs", 3),
    (VJ + ONE, "values_file needs stage", 1),
    ("values_file: values.yaml\nalloy_file: c.alloy\n" + ONE, "exactly one of", 2),
    ("alloy_file: c.alloy\ncomponent: discovery.kubernetes.pods\n" + ONE,
     "no discovery.relabel or prometheus.relabel component", 2),
    (AC + "stage: relabel_configs\n" + ONE, "stage only goes with values_file", 3),
    ("alloy_file: c.alloy\ngroups:\n  - component: discovery.relabel.mine\n    scrape_job: x\n    tests: []\n",
     "scrape_job only goes with values_file", 4),
    ("alloy_file: c.alloy\ngroups:\n  - component: discovery.relabel.mine\n    bogus: 1\n    tests: []\n",
     "unknown field 'bogus'", 4),
    (AC + "drop_meta_labels: yes please\n" + ONE, "drop_meta_labels must be true or false", 3),
    (AC + "drop_meta_labels: true\ntests:\n  - input: 'a'\n    output: '{__meta_x=\"1\"}'\n",
     "output lists __meta_* labels", 6),
    (AC + "groups: []\ntests: []\n", "exactly one of tests / groups", 1),
    ("values_file: missing.yaml\nscrape_job: pods\nstage: relabel_configs\n" + ONE, "not found", 1),
])
def test_bad_test_files_are_input_errors_with_position(tmp_path, body, message, line):
    write(tmp_path, "values.yaml", VALUES_YAML)
    write(tmp_path, "c.alloy", ALLOY)
    suite = write(tmp_path, "t.test.yaml", body)
    with pytest.raises(InputError) as exc:
        load_suite(suite, "t.test.yaml")
    assert message in exc.value.message
    assert exc.value.source is not None and (exc.value.source.file, exc.value.source.line) == ("t.test.yaml", line)
    assert cli_run(suite).exit_code == 2


def test_rule_files_form_still_reports_its_files(tmp_path):
    rules = write(tmp_path, "r.yaml", "- action: labeldrop\n  regex: project_id\n")
    suite = write(tmp_path, "t.test.yaml", "rule_files: [r.yaml]\ntests:\n  - input: 'up{project_id=\"p\", a=\"b\"}'\n"
                                           "    output: 'up{a=\"b\"}'\n")
    assert suite_rule_sets(suite) == {RuleSet(rules.resolve())}
    assert cli_run(suite).exit_code == 0
