"""The customer rule tests on the real VictoriaMetrics + vmalert (`rules-vm`, fleet.rules.vmtests),
and the wrong numbers of issue 20 proved on them: restart counters across a kube-state-metrics
reschedule (through the rendered vmagent job), restarts and 5 m rates of deleted pods."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from _binaries import require_binary
from differential.remote_write import Received, decode
from fleet import upstream, yamlio
from fleet.errors import Severity
from fleet.relabel.engine import apply
from fleet.relabel.loader import rules_under
from fleet.relabel.paths import TargetChain, run_target, scraped_series
from fleet.rules import binaries, lint, vmengine, vmseries, vmtests
from fleet.rules.loader import load_rule_file

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests/fixtures/rules/fleet"
RESOURCES_RULES = "base/rules/recording/10-resources.yaml"


# --- the notation reader and the remote-write body (no binary) ---------------------------------

@pytest.mark.parametrize("text, values", [
    ("-2+4x3", [-2, 2, 6, 10]),
    ("1-2x4", [1, -1, -3, -5, -7]),
    ("1x4", [1, 1, 1, 1, 1]),
    ("500e9x1 _ 7", [500e9, 500e9, None, 7]),
    ("1 _x3 stale", [1, None, None, None, vmseries.STALE]),
    ("0x1 1.5+0.5x2", [0, 0, 1.5, 2.0, 2.5]),
])
def test_expanding_notation_is_read_as_promtool_does(text, values):
    assert vmseries.expand(text) == values


@pytest.mark.parametrize("bad", ["1+x3", "abc", "{{schema:0 sum:1}}"])
def test_values_it_cannot_replay_are_refused(bad):
    with pytest.raises(vmseries.NotationError):
        vmseries.expand(bad)


def test_series_descriptors_keep_every_label_and_escape():
    folded = 'kube_pod_labels{job="kube-state-metrics",  namespace="p-7",\n pod="a\\"b", x="1,2"}'
    assert vmseries.labels(folded) == {"__name__": "kube_pod_labels", "job": "kube-state-metrics",
                                       "namespace": "p-7", "pod": 'a"b', "x": "1,2"}
    assert vmseries.labels('{__name__="up", job="x"}') == {"__name__": "up", "job": "x"}
    with pytest.raises(vmseries.NotationError):
        vmseries.labels('{job="x"}')


def test_the_write_request_decodes_as_a_remote_write_receiver_reads_it():
    series = [vmseries.Series({"__name__": "m", "pod": "p" * 70}, [(1000, 1.5), (2000, vmseries.STALE)])] * 900
    into = Received()
    decode(vmseries.snappy_literal(vmseries.write_request(series)), into)  # > 64 KiB: several literals
    assert into.series == [{"__name__": "m", "pod": "p" * 70}] * 900


# --- the engines ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engines() -> tuple[str, str]:
    return require_binary("victoria-metrics"), require_binary("vmalert")



@pytest.mark.binary
def test_a_staleness_marker_ends_the_series_in_the_store(engines):
    vm, _ = engines
    start = vmengine.BASE_SECONDS * 1000
    with vmengine.store(vm, []) as store:
        store.write([vmseries.series_samples('m{a="stale"}', "1x3 stale", start, 60_000),
                     vmseries.series_samples('m{a="gap"}', "1x3", start, 60_000)])
        # VictoriaMetrics' default lookbehind (5 m) still sees the plain gap, not the stale series
        got = store.instant("m", vmengine.BASE_SECONDS + 240, 300)
    assert [labels["a"] for labels, _ in got] == ["gap"]


@pytest.mark.binary
def test_the_shipped_customer_rule_tests_agree_on_victoriametrics(engines, monkeypatch):
    monkeypatch.setenv("FLEET_NO_CACHE", "1")
    jobs = vmtests.base_jobs(REPO, "nyc3") + vmtests.override_jobs(REPO, lint.region_sets(REPO),
                                                                     lint._cluster_regions(REPO, None))
    assert {j.name for j in jobs} >= {"tests/rules/customer-resources.test.yaml", "tests/rules/customer-envoy.test.yaml",
                                      "regions/fra1/rules/tests/resources.test.yaml"}
    assert not any("platform" in j.name for j in jobs)  # Grafana Cloud's: Prometheus' engine, promtool's
    assert lint.vm_findings(REPO) == []


def _vm_results(test_file: Path, rules: list, name: str) -> dict[tuple[str, float], list]:
    groups, problems = vmtests.read_test(test_file, name)
    assert problems == []
    recorded = vmtests.Recorded(rules, 60.0)
    replay = vmengine.Replay(upstream.binary("vmalert"))
    out = {}
    for group in groups:
        for case, got in vmtests.evaluate_group(group, rules, recorded, [], replay, upstream.binary("victoria-metrics")):
            out[(case.expr.strip(), case.eval_seconds)] = sorted((lb.get("service_id"), v) for lb, v in got)
    return out


@pytest.mark.binary
def test_deleted_pods_keep_their_restarts_and_last_minutes_on_victoriametrics(engines):
    """The cases the test file marks understood (Prometheus extrapolates, VictoriaMetrics does
    not): VictoriaMetrics' own numbers, pinned. Joined to the current pod identity (the rules
    before issue 20) every one of them is missing."""
    rules = [g for f in ("00-identity.yaml", "10-resources.yaml")
             for g in load_rule_file(REPO / "base/rules/recording" / f, REPO).groups]
    got = _vm_results(REPO / "tests/rules/customer-resources.test.yaml", rules, "customer-resources")
    assert got[('project_service:container_cpu_usage_seconds:rate5m{service_id="s-api"}', 1920.0)] == [("s-api", 1.0)]
    assert got[('project_service:container_network_receive_bytes:rate5m{service_id="s-api"}', 1920.0)] == [("s-api", 10.0)]
    assert got[("project_service:kube_pod_container_status_restarts:increase1h", 5400.0)] == [("s-worker", 2.0)]
    assert got[('project_service:container_cpu_usage_seconds:rate5m{service_id="s-api"}', 2160.0)] == []


# --- kube-state-metrics rescheduled: through the rendered vmagent job ------------------------------

def _vmagent_values(cluster: str = "nyc3-prod-01"):
    path = REPO / f"rendered/clusters/{cluster}/stages/03-telemetry/vmagent.yaml"
    (release,) = [d for d in yamlio.load_all_text(path.read_text(), str(path)) if d.get("kind") == "HelmRelease"]
    return release["spec"]["values"]


def _stored(values, ksm_pod_ip: str, exposed: dict[str, str], with_metric_relabel: bool) -> dict[str, str]:
    """What the store receives of one series KSM exposes, scraped from the KSM pod at that IP:
    the rendered job's target relabeling, the scrape (honor_labels), metric_relabel_configs,
    the external labels and the remote write's urlRelabelConfig (the engine, differential-tested
    against this vmagent release)."""
    (job,) = [j for j in values["config"]["scrape_configs"] if j["job_name"] == "kube-state-metrics"]
    chain = TargetChain([(rules_under(job, "relabel_configs", "vmagent", "vmagent"), "vmagent")],
                        honor_labels=job.get("honor_labels") is True, alloy=False)
    target = run_target(chain, {
        "__address__": f"{ksm_pod_ip}:8080", "job": job["job_name"],
        "__meta_kubernetes_namespace": "starform-metrics",
        "__meta_kubernetes_service_label_app_kubernetes_io_name": "kube-state-metrics",
        "__meta_kubernetes_endpointslice_port_name": "http",
        "__meta_kubernetes_pod_name": f"kube-state-metrics-{ksm_pod_ip.replace('.', '-')}"})
    assert target is not None
    series = scraped_series(chain, target, exposed)
    if with_metric_relabel:
        series = apply(rules_under(job, "metric_relabel_configs", "vmagent", "vmagent"), series, "vmagent")
    series = {**values["config"]["global"]["external_labels"], **series}
    return dict(apply(rules_under(values["remoteWrite"][0], "urlRelabelConfig", "vmagent", "vmagent"), series, "vmagent"))


def _ksm_moved_test(tmp: Path, with_metric_relabel: bool) -> Path:
    """web-1 restarted 3 times long ago; KSM pod 10.244.1.5 serves it until 30m, then KSM is
    rescheduled to 10.244.2.9. At 80m the hour holds no restart."""
    values = _vmagent_values()
    exposed = [{"__name__": "kube_pod_container_status_restarts_total", "namespace": "p-1", "pod": "web-1",
                "container": "app", "uid": "0b5e"},
               {"__name__": "kube_pod_labels", "namespace": "p-1", "pod": "web-1", "uid": "0b5e",
                "label_starform_io_project_id": "p1", "label_starform_io_service_id": "s-web",
                "label_starform_io_workspace_id": "w1"}]
    values_at: dict[str, dict[int, str]] = {}
    for ip, steps in (("10.244.1.5", range(0, 31)), ("10.244.2.9", range(31, 91))):
        for sample in exposed:
            stored = _stored(values, ip, sample, with_metric_relabel)
            key = json.dumps(stored, sort_keys=True)
            value = "3" if sample["__name__"].endswith("_total") else "1"
            values_at.setdefault(key, {}).update({i: value for i in steps})
    series = [{"series": "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(json.loads(key).items())) + "}",
               "values": " ".join(steps.get(i, "_") for i in range(91))} for key, steps in values_at.items()]
    rules = sorted(str(p) for p in (REPO / "rendered/regions/nyc3/vmalert/rules").glob("*.yaml"))
    doc = {"rule_files": rules, "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": "project_service:kube_pod_container_status_restarts:increase1h",
                              "eval_time": "80m", "exp_samples": [{
                                  "labels": 'project_service:kube_pod_container_status_restarts:increase1h{cluster_id="nyc3-prod-01",'
                                            'region="nyc3",project_id="p1",service_id="s-web",workspace_id="w1"}',
                                  "value": 0}]}]}]}
    path = tmp / "ksm-moved.test.yaml"
    path.write_text(json.dumps(doc, indent=1))
    return path


def _both_engines(path: Path) -> tuple[binaries.UnitTestResult, list]:
    (promtool,) = binaries.promtool_test([path], path.parent)
    groups, _ = vmtests.read_test(path, path.name)
    rules = [g for p in sorted((REPO / "rendered/regions/nyc3/vmalert/rules").glob("*.yaml"))
             for g in load_rule_file(p, REPO).groups]
    findings = vmtests.findings_for(path.name, groups, rules, vmtests.store_flags(REPO, "nyc3"),
                                    vmengine.Replay(upstream.binary("vmalert")), upstream.binary("victoria-metrics"), 60.0)
    return promtool, findings


@pytest.mark.binary
def test_a_kube_state_metrics_reschedule_counts_no_restart(engines, tmp_path, monkeypatch):
    require_binary("promtool")
    monkeypatch.setenv("FLEET_NO_CACHE", "1")
    path = _ksm_moved_test(tmp_path, with_metric_relabel=True)
    assert "instance" not in path.read_text()  # one series whichever KSM pod serves it
    promtool, findings = _both_engines(path)
    assert promtool.ok, promtool.output
    assert findings == []


@pytest.mark.binary
def test_without_the_instance_drop_victoriametrics_counts_the_lifetime_restarts(engines, tmp_path, monkeypatch):
    """The job as it was before issue 20: promtool says 0, VictoriaMetrics says 3, reported at
    the restarts rule."""
    require_binary("promtool")
    monkeypatch.setenv("FLEET_NO_CACHE", "1")
    promtool, findings = _both_engines(_ksm_moved_test(tmp_path, with_metric_relabel=False))
    assert promtool.ok, promtool.output
    (finding,) = findings
    assert finding.severity is Severity.ERROR and finding.source.file == "rendered/regions/nyc3/vmalert/rules/10-resources.yaml"
    assert "= 3, expected 0" in finding.message


# --- the check: a finding at the rule's line, marks, missing binaries -----------------------------

@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    shutil.copytree(REPO / "base/rules", tmp_path / "base/rules")
    (tmp_path / "tests/rules").mkdir(parents=True)
    return tmp_path


MOVED = """rule_files: [../../base/rules/recording/00-identity.yaml, ../../base/rules/recording/10-resources.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'kube_pod_labels{job="kube-state-metrics",instance="10.244.1.5:8080",cluster_id="c1",region="r1",namespace="n",pod="web-1",label_starform_io_project_id="p1",label_starform_io_service_id="s1",label_starform_io_workspace_id="w1"}'
        values: '1x30'
      - series: 'kube_pod_labels{job="kube-state-metrics",instance="10.244.2.9:8080",cluster_id="c1",region="r1",namespace="n",pod="web-1",label_starform_io_project_id="p1",label_starform_io_service_id="s1",label_starform_io_workspace_id="w1"}'
        values: '_x30 1x60'
      - series: 'kube_pod_container_status_restarts_total{job="kube-state-metrics",instance="10.244.1.5:8080",cluster_id="c1",region="r1",namespace="n",pod="web-1",container="app"}'
        values: '3x30'
      - series: 'kube_pod_container_status_restarts_total{job="kube-state-metrics",instance="10.244.2.9:8080",cluster_id="c1",region="r1",namespace="n",pod="web-1",container="app"}'
        values: '_x30 3x60'
    promql_expr_test:
MARK
      - expr: project_service:kube_pod_container_status_restarts:increase1h
        eval_time: 80m
        exp_samples:
          - labels: 'project_service:kube_pod_container_status_restarts:increase1h{cluster_id="c1",region="r1",project_id="p1",service_id="s1",workspace_id="w1"}'
            value: VALUE
"""


def _rule_line(root: Path, record: str) -> int:
    for group in load_rule_file(root / RESOURCES_RULES, root).groups:
        for rule in group.rules:
            if rule.name == record:
                return rule.source.line
    raise AssertionError(record)


def _write_moved(root: Path, mark: str = "", value: str = "0") -> None:
    text = MOVED.replace("MARK\n", mark + "\n" if mark else "").replace("VALUE", value)
    (root / "tests/rules/moved.test.yaml").write_text(text)


@pytest.mark.binary
def test_an_engine_difference_is_a_finding_at_the_rules_line(engines, root):
    require_binary("promtool")
    _write_moved(root)
    (result,) = binaries.promtool_test([root / "tests/rules/moved.test.yaml"], root)
    assert result.ok, result.output  # promtool: 0 restarts
    (finding,) = lint.vm_findings(root)
    assert finding.check == "rules-vm" and finding.severity is Severity.ERROR
    assert (finding.source.file, finding.source.line) == (
        RESOURCES_RULES, _rule_line(root, "project_service:kube_pod_container_status_restarts:increase1h"))
    assert "tests/rules/moved.test.yaml:" in finding.message and "= 3, expected 0" in finding.message


@pytest.mark.binary
def test_an_understood_difference_is_no_finding_and_a_stale_mark_warns(engines, root):
    _write_moved(root, "      # rules-vm: understood -- VictoriaMetrics counts a new series from zero")
    assert lint.vm_findings(root) == []
    _write_moved(root, "      # rules-vm: understood -- no longer true", value="3")  # the engines now agree with 3
    (finding,) = lint.vm_findings(root)
    assert finding.severity is Severity.WARNING and finding.source.file == "tests/rules/moved.test.yaml"
    assert "now agrees" in finding.message


@pytest.mark.binary
def test_an_understood_mark_never_covers_a_missing_series(engines, root):
    _write_moved(root, "      # rules-vm: understood -- values differ")
    path = root / "tests/rules/moved.test.yaml"
    path.write_text(path.read_text().replace('service_id="s1",workspace_id="w1"}\'', 'service_id="s2",workspace_id="w1"}\''))
    (finding,) = lint.vm_findings(root)
    assert finding.severity is Severity.ERROR and "missing " in finding.message and "unexpected " in finding.message


@pytest.mark.binary
def test_a_mark_without_a_reason_is_an_error(engines, root):
    _write_moved(root, "      # rules-vm: understood")
    findings = lint.vm_findings(root)
    reasons = [f for f in findings if "needs a reason" in f.message]
    mark_line = (root / "tests/rules/moved.test.yaml").read_text().splitlines().index("      # rules-vm: understood") + 1
    assert len(reasons) == 1 and reasons[0].severity is Severity.ERROR and reasons[0].source.line == mark_line
    assert any("= 3, expected 0" in f.message for f in findings)  # without a reason it marks nothing


@pytest.mark.binary
def test_results_are_cached_by_content(engines, root, monkeypatch):
    _write_moved(root)
    first = lint.vm_findings(root)
    monkeypatch.setattr(vmtests, "findings_for", lambda *a, **k: pytest.fail("replayed although unchanged"))
    assert lint.vm_findings(root) == first


@pytest.mark.parametrize("ci, severity", [("", Severity.WARNING), ("true", Severity.ERROR)])
def test_without_the_binaries_it_warns_and_fails_in_ci(root, monkeypatch, ci, severity):
    _write_moved(root)
    monkeypatch.setenv("CI", ci)

    def missing(name: str) -> str:
        raise upstream.MissingUpstream(f"{name} is not built")

    monkeypatch.setattr(upstream, "binary", missing)
    (finding,) = lint.vm_findings(root)
    assert finding.severity is severity and finding.source.file == "tools/upstream.lock"


@pytest.mark.binary
def test_a_series_it_cannot_replay_is_an_error_at_its_line(engines, root):
    _write_moved(root)
    path = root / "tests/rules/moved.test.yaml"
    path.write_text(path.read_text().replace("values: '3x30'", "values: '{{schema:0 sum:3 count:3}}x30'"))
    (finding,) = lint.vm_findings(root)
    line = path.read_text().splitlines().index(
        "      - series: 'kube_pod_container_status_restarts_total{job=\"kube-state-metrics\",instance=\"10.244.1.5:8080\","
        "cluster_id=\"c1\",region=\"r1\",namespace=\"n\",pod=\"web-1\",container=\"app\"}'") + 1
    assert finding.severity is Severity.ERROR and (finding.source.file, finding.source.line) == ("tests/rules/moved.test.yaml", line)
    assert "native histograms" in finding.message
