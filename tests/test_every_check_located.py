"""Every lint check, one seeded defect each, found at its source line in every report format.

One copy of the example fleet gets one deliberate defect per check (the `DEFECTS` table, each
reused from that check's own tests, so each is known to trigger it). It is rendered once and
linted once per format; each format is read back with its own parser (JSON fields, SARIF
`physicalLocation`, JUnit testcase attributes and failure text, GitHub `::error file=,line=`,
text `file:line:col`), and every check must report a finding at the file and line its table row
computes from the edited text. The unseeded fleet is the passing fixture: none of these checks
reports a finding on it but the warnings named in `SHIPPED_WARNINGS`. A check `discover()`
yields without a row here fails `test_every_check_has_a_seeded_defect`.
"""
from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml
from click.testing import CliRunner

from _binaries import require_binary
from conftest import INPUT_DIRS, REPO, patch_components, require_shared
from fleet import checks, model, suppress
from fleet.cli import cli
from fleet.render.fleet import render_fleet
from fleet.writer import write_tree
from test_alloy_only import NODE_METRICS_JOB
from test_report_formats import validate_sarif
from test_rules_vm import MOVED

FORMATS = ("text", "json", "github", "sarif", "junit")
pytestmark = pytest.mark.binary
#: Besides the inputs: the rule unit tests (rules-tests, rules-vm) and relabel tests lint reads.
TEST_DIRS = ("tests/rules", "tests/relabel")
CRD_FOLDERS = ("flux", "gateway/standard", "envoy-gateway")

VMAGENT = "base/components/vmagent/values.yaml"
PLATFORM_ALERTS = "base/rules/alerts/starform-platform.yaml"
KSM_METRIC_RELABEL = ("        - source_labels: [__meta_kubernetes_endpointslice_port_name]\n"
                      "          regex: http\n          action: keep\n      metric_relabel_configs:\n")
UNTESTED_ALERT = """  - name: seeded-untested
    rules:
      - alert: SeededNodeDown
        expr: up{job="node-exporter"} == 0
        for: 5m
        labels: {severity: warning}
        annotations: {summary: "node down", description: "d"}
"""
UNSCRAPED_ALERT = """  - name: seeded-unscraped
    rules:
      - alert: SeededRedisDown
        expr: up{job=~"redis|postgres"} == 0
        for: 2m
        labels: {severity: warning}
        annotations: {summary: s, description: d}
"""
PER_PROJECT_ALERT = """groups:
  - name: seeded-bad
    rules:
      - alert: SeededPerProjectDown
        expr: sum by (project_id) (up{job="shuttle"}) == 0
        for: 5m
        labels: {severity: warning}
        annotations: {summary: "down", description: "d"}
"""


# --- edits: each returns nothing; the expected line is found afterwards in the final text ---------

def replace(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / rel
        text = path.read_text()
        assert text.count(old) == 1, (rel, old)
        path.write_text(text.replace(old, new))
    return edit


def append(rel: str, extra: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / rel
        path.write_text(path.read_text() + extra)
    return edit


def create(rel: str, text: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        assert not (root / rel).exists(), rel
        (root / rel).write_text(text)
    return edit


def patch(rel: str, components: dict) -> Callable[[Path], None]:
    """Component patches on a cluster file (parsed and re-dumped, as the per-check tests do)."""
    return lambda root: patch_components(root, rel, components)


def strip_rendered(cluster: str, old: str) -> Callable[[Path], None]:
    """Remove `old` from every rendered stage file of one cluster (at least once in all)."""
    def edit(root: Path) -> None:
        hits = 0
        for path in sorted((root / f"rendered/clusters/{cluster}/stages").glob("*/*.yaml")):
            text = path.read_text()
            hits += text.count(old)
            path.write_text(text.replace(old, ""))
        assert hits, (cluster, old)
    return edit


def line_of(text: str, marker: str | tuple, after: str | None = None) -> int:
    """1-based line of `marker` in `text`: a substring (the one line holding it, after the first
    line holding `after` if given) or a tuple of mapping keys (the line of the last key)."""
    if isinstance(marker, tuple):
        node = yaml.compose(text)
        line = 0
        for key in marker:
            pairs = {k.value: (k, v) for k, v in node.value}
            assert key in pairs, (marker, key)
            key_node, node = pairs[key]
            line = key_node.start_mark.line + 1
        return line
    lines = text.splitlines()
    start = 0 if after is None else next(i for i, t in enumerate(lines) if after in t) + 1
    hits = [i + 1 for i, t in enumerate(lines) if i >= start and marker in t]
    assert len(hits) >= 1, (marker, after)
    if after is None:
        assert len(hits) == 1, (marker, hits)
    return hits[0]


@dataclass(frozen=True)
class Defect:
    """One seeded defect: `edit` applied to the inputs (or, `rendered=True`, to rendered/ after the
    render: for checks that guard the rendered tree against what no input can make the renderer
    write); the check must report at `file`, on the line of `marker` in that file's final text."""

    edit: Callable[[Path], None]
    file: str
    marker: str | tuple
    after: str | None = None
    rendered: bool = False
    binaries: tuple[str, ...] = ()


CLUSTER_A = "clusters/nyc3-prod-01/cluster.yaml"
CLUSTER_B = "clusters/nyc3-prod-02/cluster.yaml"
CLUSTER_C = "clusters/fra1-prod-01/cluster.yaml"
#: Beside the gateway releases, not in custom-resources/: crd-order's defect (afterReleases: false) moves it.
DATAPLANE_RENDERED = "rendered/clusters/nyc3-prod-02/stages/01-gateway/gateway-dataplane.yaml"
SHUTTLE_RENDERED = "rendered/clusters/nyc3-prod-01/stages/04-shuttle/shuttle.yaml"
SHUTTLE_KUSTOMIZATION = "rendered/clusters/fra1-staging-01/stages/04-shuttle/kustomization.yaml"
STAGES_RENDERED = "rendered/clusters/nyc3-staging-01/stages.yaml"

#: check → its seeded defect. Each is the failing fixture of that check's own tests (named).
DEFECTS: dict[str, Defect] = {
    # test_report_formats: trailing spaces are a yamllint error at their line
    "yamllint": Defect(replace("clusters/nyc3-staging-01/cluster.yaml", "region: nyc3\n", "region: nyc3   \n"),
                       "clusters/nyc3-staging-01/cluster.yaml", "region: nyc3   "),
    # test_k8s_schema: an unknown field of a core object, in the rendered object
    "k8s-schema": Defect(replace("base/components/shuttle/manifests.yaml", "spec:\n  replicas: 1\n",
                                 "spec:\n  replicas: 1\n  seededColor: blue\n"),
                         SHUTTLE_RENDERED, "seededColor: blue"),
    # test_gateway_dataplane: envoyPDB may not say maxUnavailable beside minAvailable (CEL of the real CRD)
    "flux-crds": Defect(patch(CLUSTER_B, {"gateway-dataplane": {"values": {"envoyProxy": {"envoyPDB": {"maxUnavailable": 1}}}}}),
                        DATAPLANE_RENDERED, "envoyPDB:"),
    # test_crd_order: the data plane applied beside the release that installs its CRDs
    "crd-order": Defect(replace("base/components/gateway-dataplane/component.yaml", "afterReleases: true", "afterReleases: false"),
                        "base/components/gateway-dataplane/component.yaml", "afterReleases: false"),
    # test_flux_refs: a dependsOn naming a Kustomization that does not exist
    "flux-refs": Defect(replace(STAGES_RENDERED, "  dependsOn:\n  - name: stage-02-cluster-metrics\n",
                                "  dependsOn:\n  - name: stage-02-cluster-metrix\n"),
                        STAGES_RENDERED, "stage-02-cluster-metrix", rendered=True),
    # test_lint_checks: a kustomization listing a file that is not there
    "kustomize-build": Defect(replace(SHUTTLE_KUSTOMIZATION, "- shuttle.yaml\n", "- shuttle.yaml\n- missing.yaml\n"),
                              SHUTTLE_KUSTOMIZATION, "- missing.yaml", rendered=True, binaries=("kubectl",)),
    # test_lint_checks: a values key the pinned chart does not have, at the layer that set it
    "chart-values": Defect(replace("overlays/production/overlay.yaml", "        replicas: 3\n", "        replcas: 3\n"),
                           "overlays/production/overlay.yaml", "replcas: 3"),
    # test_chart_traps: alloy's rbac.clusterRules emptied
    "chart-traps": Defect(patch(CLUSTER_A, {"alloy": {"values": {"rbac": {"clusterRules": []}}}}),
                          CLUSTER_A, ("components", "alloy", "values", "rbac", "clusterRules")),
    # test_required_values: Fluent Bit loses its system-node-critical priority
    "required-values": Defect(patch(CLUSTER_A, {"fluent-bit": {"values": {"priorityClassName": "low"}}}),
                              CLUSTER_A, ("components", "fluent-bit", "values", "priorityClassName")),
    # test_lint_checks: a misspelt scrape field vmagent -dryRun refuses
    "vmagent-config": Defect(replace(VMAGENT, "      honor_labels: true\n", "      honor_lables: true\n"),
                             VMAGENT, "honor_lables: true", binaries=("vmagent",)),
    # test_gateway_dataplane: a single Envoy proxy
    "gateway-dataplane": Defect(patch(CLUSTER_C, {"gateway-dataplane": {"values": {"envoyProxy": {"envoyDeployment": {"replicas": 1}}}}}),
                                CLUSTER_C, ("components", "gateway-dataplane", "values", "envoyProxy", "envoyDeployment", "replicas")),
    # test_namespace_prune: a rendered Namespace holding Shuttle's token without prune: disabled
    "namespace-prune": Defect(strip_rendered("fra1-staging-01", "  annotations:\n    kustomize.toolkit.fluxcd.io/prune: disabled\n"),
                              "base/components/shuttle/component.yaml", "namespace:", rendered=True),
    # test_secrets_check: a literal vmauth password in vmagent's flags
    "secrets": Defect(patch(CLUSTER_B, {"vmagent": {"values": {"extraArgs": {"remoteWrite.basicAuth.password": "hunter2-supersecret"}}}}),
                      CLUSTER_B, ("components", "vmagent", "values", "extraArgs", "remoteWrite.basicAuth.password")),
    # test_network: customers reach the region VPC once its deny is gone
    "network-isolation": Defect(replace("base/network/policies.yaml", "    - region-vpc\n", ""),
                                "base/network/policies.yaml", "customerIsolation:"),
    # test_hygiene_checks: vmagent's memory limit emptied
    "resources": Defect(patch(CLUSTER_C, {"vmagent": {"values": {"resources": {"limits": {"memory": ""}}}}}),
                        CLUSTER_C, ("components", "vmagent", "values", "resources", "limits", "memory")),
    # test_hygiene_checks: a PDB equal to the replicas allows no eviction
    "disruption-budgets": Defect(patch(CLUSTER_C, {"metrics-server": {"values": {"podDisruptionBudget": {"minAvailable": 2}}}}),
                                 CLUSTER_C, ("components", "metrics-server", "values", "podDisruptionBudget", "minAvailable")),
    # test_route_policy: a route policy that admits a Service name only extending the route's
    "route-admission": Defect(replace("base/components/gateway-dataplane/httproute-policy.yaml", "ref.name == object.metadata.name))",
                                      "ref.name.startsWith(object.metadata.name)))"),
                              "base/components/gateway-dataplane/httproute-policy.yaml", "validations:"),
    # test_shuttle_policy: Shuttle's policy without its old-object rule
    "shuttle-admission": Defect(replace("base/components/shuttle/manifests.yaml",
                                        '        request.resource.resource != "namespaces" || request.operation != "UPDATE"\n',
                                        '        true || request.resource.resource != "namespaces" || request.operation != "UPDATE"\n'),
                                "base/components/shuttle/manifests.yaml", "validations:",
                                after="kind: ValidatingAdmissionPolicy"),
    # test_hygiene_checks: an image tag that moves
    "pinned-versions": Defect(patch(CLUSTER_B, {"alloy": {"values": {"image": {"tag": "latest"}}}}),
                              CLUSTER_B, ("components", "alloy", "values", "image", "tag")),
    # test_licenses: a Business Source License component
    "licenses": Defect(replace("base/components/alloy/component.yaml", "license: Apache-2.0 ", "license: BUSL-1.1 "),
                       "base/components/alloy/component.yaml", "license: BUSL-1.1 "),
    # test_regional_tier: the aggregator stops verifying the clusters' certificates
    "regional-tier": Defect(replace("rendered/regions/nyc3/vector/vector.yaml", "verify_certificate: true", "verify_certificate: false"),
                            "rendered/regions/nyc3/vector/vector.yaml", "verify_certificate: false", rendered=True),
    # test_lint_checks: the Grafana Cloud endpoint sends exemplars no rule cleans
    "gdpr": Defect(replace("base/components/alloy/config.alloy.j2", "    send_exemplars = false\n", ""),
                   "rendered/clusters/nyc3-prod-01/stages/03-telemetry/config.alloy", "endpoint {"),
    # test_producers_sync: an Alloy job the producer catalogue does not know
    "producers-sync": Defect(append("base/components/alloy/platform-jobs.yaml",
                                    "- job: seeded-agent\n  namespaces: [kube-system]\n  podLabel: {name: app, value: x}\n  port: metrics\n"),
                             "base/components/alloy/platform-jobs.yaml", "- job: seeded-agent"),
    # test_rules_static: a platform alert grouping by project_id
    "rules-static": Defect(create("base/rules/alerts/seeded-bad.yaml", PER_PROJECT_ALERT),
                           "base/rules/alerts/seeded-bad.yaml", "expr: sum by (project_id)"),
    # test_rules_promtool: a broken template only promtool sees
    "rules-syntax": Defect(replace("base/rules/alerts/starform-telemetry-pipeline.yaml",
                                   'summary: "No platform metrics from {{ with $labels.cluster_id }}',
                                   'summary: "No platform metrics from {{ with $labels.cluster_id '),
                           "base/rules/alerts/starform-telemetry-pipeline.yaml", "alert: AlloyStoppedReporting",
                           binaries=("promtool",)),
    # test_rules_promtool: an alert no unit test covers
    "rules-tests": Defect(append(PLATFORM_ALERTS, UNTESTED_ALERT),
                          PLATFORM_ALERTS, "alert: SeededNodeDown", binaries=("promtool",)),
    # test_rule_jobs: an alert on jobs nothing scrapes
    "rule-jobs": Defect(append(PLATFORM_ALERTS, UNSCRAPED_ALERT), PLATFORM_ALERTS, "alert: SeededRedisDown"),
    # test_rules_vm: a rule test VictoriaMetrics answers differently from promtool
    "rules-vm": Defect(create("tests/rules/seeded-moved.test.yaml", MOVED.replace("MARK\n", "").replace("VALUE", "0")),
                       "base/rules/recording/10-resources.yaml",
                       "record: project_service:kube_pod_container_status_restarts:increase1h",
                       binaries=("promtool", "vmalert", "victoria-metrics")),
    # test_alloy_only: a vmagent job keeping node-exporter's pods
    "alloy-only": Defect(replace(VMAGENT, "  scrape_configs:\n", "  scrape_configs:\n" + NODE_METRICS_JOB),
                         VMAGENT, "- job_name: node-metrics"),
    # test_relabel_vs_rules: KSM's namespace dropped under the rules grouped by it
    "relabel-vs-rules": Defect(replace(VMAGENT, KSM_METRIC_RELABEL, KSM_METRIC_RELABEL + "        - action: labeldrop\n          regex: namespace\n"),
                               VMAGENT, "- action: labeldrop", after="job_name: kube-state-metrics"),
    # test_relabel_lint: a labeldrop that removes job
    "relabel-lint": Defect(append("base/relabel/customer.yaml", "# seeded\n- action: labeldrop\n  regex: job|image\n"),
                           "base/relabel/customer.yaml", "- action: labeldrop", after="# seeded"),
    # test_suppress: a suppression naming a check that does not exist
    "suppression": Defect(replace("regions/fra1/region.yaml", "region: fra1\n", "region: fra1\n# fleet:ignore no-such-check -- seeded\n"),
                          "regions/fra1/region.yaml", "fleet:ignore no-such-check"),
}

#: Findings the shipped fleet may give (check, file, text in the message): known, and warnings only.
SHIPPED_WARNINGS = {
    # ../shared/charts pins no defaults for the Envoy Gateway CRD chart: its values keys go unchecked
    ("chart-values", "base/components/envoy-gateway-crds/component.yaml", "no pinned defaults for chart gateway-crds-helm"),
}

#: Checks with no row, and why (none today: every defect above leaves the run a lint, not exit 2).
EXEMPT: dict[str, str] = {}


# --- the fleets: one seeded, one shipped; each rendered once ----------------------------------------

def _copy_fleet(root: Path) -> Path:
    """The example fleet's inputs, its rule and relabel tests and .yamllint.yaml, under `root`."""
    for name in (*INPUT_DIRS, *TEST_DIRS):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / ".yamllint.yaml", root / ".yamllint.yaml")
    return root


def _render(root: Path) -> None:
    write_tree(root / "rendered", render_fleet(model.load(root)))


def _lint(root: Path, fmt: str):
    shared = require_shared("crds")
    args = ["lint", "--root", str(root), "--format", fmt, "--charts", str(require_shared("charts"))]
    for folder in CRD_FOLDERS:
        args += ["--crds", str(shared / folder)]
    return CliRunner().invoke(cli, args)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    root = _copy_fleet(tmp_path_factory.mktemp("seeded"))
    for defect in DEFECTS.values():
        if not defect.rendered:
            defect.edit(root)
    _render(root)
    for defect in DEFECTS.values():
        if defect.rendered:
            defect.edit(root)
    return root


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    root = _copy_fleet(tmp_path_factory.mktemp("shipped"))
    _render(root)
    return root


def expected(root: Path, check: str) -> tuple[str, int]:
    defect = DEFECTS[check]
    return defect.file, line_of((root / defect.file).read_text(), defect.marker, defect.after)


# --- each format read back by its own parser: {(check, file, line)} ------------------------------

#: `file[:line[:col]]: severity: [check] message` (a finding about a whole file has no line)
TEXT_LINE = re.compile(r"^(?P<file>[^\s:]+)(?::(?P<line>\d+)(?::\d+)?)?: (?:error|warning|info): \[(?P<check>[^\]]+)\] ")
GITHUB_LINE = re.compile(r"^::(?:error|warning|notice) file=(?P<file>[^,]+),line=(?P<line>\d+),col=\d+,title=(?P<check>[^:]+)::")
JUNIT_TEXT = re.compile(r"^(?P<file>[^\s:]+)(?::(?P<line>\d+)(?::\d+)?)?: (?:error|warning|info): ")


def located(fmt: str, out: str) -> set[tuple[str, str, int]]:
    if fmt == "json":
        return {(f["check"], f["file"], f["line"]) for f in json.loads(out)["findings"]}
    if fmt == "sarif":
        (run,) = json.loads(out)["runs"]
        return {(r["ruleId"], loc["physicalLocation"]["artifactLocation"]["uri"],
                 loc["physicalLocation"].get("region", {}).get("startLine", 0))
                for r in run["results"] if "suppressions" not in r for loc in r["locations"]}
    if fmt == "junit":
        found = set()
        for suite in ET.fromstring(out).iter("testsuite"):
            for case in suite.iter("testcase"):
                failure = case.find("failure")
                if failure is None:
                    continue
                text = JUNIT_TEXT.match(failure.text)
                assert text and (text["file"], text["line"]) == (case.get("file"), case.get("line")), \
                    (case.attrib, failure.text)
                found.add((suite.get("name"), case.get("file"), int(case.get("line", "0"))))
        return found
    pattern = GITHUB_LINE if fmt == "github" else TEXT_LINE
    found = set()
    for line in out.splitlines():
        match = pattern.match(line)
        if match:
            found.add((match["check"], match["file"], int(match["line"] or 0)))
    assert found or not out.strip(), out[:2000]
    return found


@pytest.fixture(scope="module")
def reports(seeded: Path) -> dict[str, set[tuple[str, str, int]]]:
    """Each format's output of one lint of the seeded fleet, read back."""
    out = {}
    for fmt in FORMATS:
        result = _lint(seeded, fmt)
        assert result.exit_code == 1, result.output[-3000:]
        if fmt == "sarif":
            validate_sarif(json.loads(result.stdout))
        out[fmt] = located(fmt, result.stdout)
    return out


# --- the tests ---------------------------------------------------------------------------------

def lint_checks() -> set[str]:
    """What `fleet lint --list` names: every plug-in, and the suppression comments' own check."""
    return {c.name for c in checks.discover()} | {suppress.NAME}


def test_every_check_has_a_seeded_defect() -> None:
    names = lint_checks()
    assert set(DEFECTS) | set(EXEMPT) == names
    assert not set(DEFECTS) & set(EXEMPT)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("check", sorted(DEFECTS))
def test_seeded_defect_is_found_at_its_line(seeded: Path, reports: dict, check: str, fmt: str) -> None:
    for binary in DEFECTS[check].binaries:
        require_binary(binary)
    file, line = expected(seeded, check)
    found = reports[fmt]
    assert (check, file, line) in found, sorted(f for f in found if f[0] == check)


def test_every_finding_names_a_check_lint_knows(reports: dict) -> None:
    """A finding under another name than its plug-in's (a sub-check) would fall outside --only,
    SARIF's rules, JUnit's suites and fleet:ignore."""
    names = lint_checks()
    for fmt, found in reports.items():
        assert {check for check, _file, _line in found} <= names, fmt


def test_every_format_reads_back_the_same_findings(reports: dict) -> None:
    """The five writers agree finding for finding (GitHub has no line-less annotation: line 1)."""
    for fmt in FORMATS:
        json_lines = {(c, f, line or 1 if fmt == "github" else line) for c, f, line in reports["json"]}
        assert reports[fmt] == json_lines, fmt


def test_shipped_fleet_gives_none_of_these_findings(shipped: Path) -> None:
    for binary in sorted({b for defect in DEFECTS.values() for b in defect.binaries}):
        require_binary(binary)  # a missing one is a finding of its own
    result = _lint(shipped, "json")
    assert result.exit_code == 0, result.output[-3000:]
    findings = json.loads(result.stdout)["findings"]
    unexpected = [f for f in findings
                  if not any((f["check"], f["file"]) == (check, file) and text in f["message"] and f["severity"] == "warning"
                             for check, file, text in SHIPPED_WARNINGS)]
    assert unexpected == []
    assert len(findings) == len(SHIPPED_WARNINGS), findings  # each named warning is still given
