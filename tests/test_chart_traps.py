"""chart-traps: merged values that a pinned chart's templates turn into a broken release."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext, chart_traps
from fleet.cli import cli

from conftest import patch_components, require_shared

CLUSTER = "clusters/nyc3-prod-01/cluster.yaml"


def _line(lines: list[str], key: str) -> int:
    hits = [i + 1 for i, line in enumerate(lines) if line.strip().startswith(f"{key}:")]
    assert len(hits) == 1, (key, hits)
    return hits[0]


def _findings(root: Path, charts: Path | None = None) -> list:
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered", options={"charts": charts})
    return list(chart_traps.check(ctx))


def test_shipped_fleet_springs_no_trap(repo_root: Path) -> None:
    assert _findings(repo_root, require_shared("charts")) == []


def test_every_trap_of_the_reference_readme_is_in_the_table() -> None:
    covered = {(t.chart, t.path) for t in chart_traps.TRAPS}
    assert {c for c, _ in covered} == {"alloy", "fluent-bit", "victoria-metrics-agent", "kube-state-metrics",
                                       "metrics-server", "gateway-helm"}
    assert len(chart_traps.TRAPS) == 13


# case → (patch on the cluster, key whose line the finding names, path named in the message)
SPRUNG = {
    "alloy-cluster-rules-empty": ({"alloy": {"values": {"rbac": {"clusterRules": []}}}},
                                  "clusterRules", "values.rbac.clusterRules"),
    "alloy-rules-empty": ({"alloy": {"values": {"rbac": {"rules": []}}}}, "rules", "values.rbac.rules"),
    "fluent-bit-mounts-empty": ({"fluent-bit": {"values": {"daemonSetVolumeMounts": []}}},
                                "daemonSetVolumeMounts", "values.daemonSetVolumeMounts"),
    "fluent-bit-volumes-empty": ({"fluent-bit": {"values": {"daemonSetVolumes": []}}},
                                 "daemonSetVolumes", "values.daemonSetVolumes"),
    "fluent-bit-hot-reload-no-args": ({"fluent-bit": {"values": {"args": [], "hotReload": {"enabled": True}}}},
                                      "args", "values.args"),
    "fluent-bit-netpol-no-ingress": ({"fluent-bit": {"values": {"networkPolicy": {"enabled": True}}}},
                                     "enabled", "values.networkPolicy.ingress"),
    "fluent-bit-netpol-from-empty": ({"fluent-bit": {"values": {"networkPolicy": {"enabled": True, "ingress": {"from": []}}}}},
                                     "from", "values.networkPolicy.ingress.from"),
    "vmagent-metrics-endpoints-empty": ({"vmagent": {"values": {"allowedMetricsEndpoints": []}}},
                                        "allowedMetricsEndpoints", "values.allowedMetricsEndpoints"),
    "vmagent-statefulset-pv-name": ({"vmagent": {"values": {"mode": "statefulSet", "persistentVolume": {
        "enabled": True, "name": "queue"}}}}, "name", "values.persistentVolume.name"),
    "vmagent-empty-flag": ({"vmagent": {"values": {"extraArgs": {"loggerFormat": ""}}}},
                           "loggerFormat", "values.extraArgs.loggerFormat"),
    "ksm-collectors-empty": ({"kube-state-metrics": {"values": {"collectors": []}}}, "collectors", "values.collectors"),
    "gateway-ports-empty": ({"envoy-gateway": {"values": {"deployment": {"ports": []}}}}, "ports", "values.deployment.ports"),
}


@pytest.mark.parametrize("case", sorted(SPRUNG))
def test_trap_is_reported_at_the_line_that_springs_it(fleet_copy: Path, case: str) -> None:
    patch, key, path = SPRUNG[case]
    lines = patch_components(fleet_copy, CLUSTER, patch)
    found = _findings(fleet_copy, require_shared("charts"))
    assert len(found) == 1, found
    assert (found[0].source.file, found[0].source.line) == (CLUSTER, _line(lines, key))
    assert f"{path} springs a template trap" in found[0].message and "nyc3-prod-01" in found[0].message


# Near misses: values these templates render correctly.
SAFE = {
    "alloy-both-empty": {"alloy": {"values": {"rbac": {"rules": [], "clusterRules": []}}}},
    "alloy-namespaced-role": {"alloy": {"values": {"rbac": {"namespaces": ["starform-alloy"], "clusterRules": []}}}},
    "alloy-cluster-rules-null-is-chart-default": {"alloy": {"values": {"rbac": {"clusterRules": None}}}},
    "fluent-bit-deployment-kind": {"fluent-bit": {"values": {"kind": "Deployment", "daemonSetVolumes": []}}},
    "fluent-bit-probe-null": {"fluent-bit": {"values": {"readinessProbe": None}}},
    "fluent-bit-hot-reload-with-args": {"fluent-bit": {"values": {"hotReload": {"enabled": True}}}},
    "fluent-bit-netpol-from-set": {"fluent-bit": {"values": {"networkPolicy": {"enabled": True, "ingress": {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "starform-alloy"}}}]}}}}},
    "vmagent-namespaced-rbac": {"vmagent": {"values": {"rbac": {"namespaced": True}, "allowedMetricsEndpoints": []}}},
    "vmagent-statefulset-unnamed-pv": {"vmagent": {"values": {"mode": "statefulSet", "persistentVolume": {"enabled": True}}}},
    "vmagent-flag-dropped-with-null": {"vmagent": {"values": {"extraArgs": {"loggerFormat": None}}}},
    # Helm coalesces a {} with the chart's default map: the default probe/volume is rendered.
    "fluent-bit-probe-empty-map-filled-by-default": {"fluent-bit": {"values": {"readinessProbe": {}}}},
    "metrics-server-tmp-volume-empty-map-filled-by-default": {"metrics-server": {"values": {"tmpVolume": {}}}},
    "gateway-probe-empty-map-filled-by-default": {"envoy-gateway": {"values": {"deployment": {"envoyGateway": {
        "startupProbe": {}}}}}},
    "gateway-probe-dropped-with-null": {"envoy-gateway": {"values": {"deployment": {"envoyGateway": {"startupProbe": None}}}}},
}


@pytest.mark.parametrize("case", sorted(SAFE))
def test_near_miss_is_not_a_trap(fleet_copy: Path, case: str) -> None:
    patch_components(fleet_copy, CLUSTER, SAFE[case])
    assert _findings(fleet_copy, require_shared("charts")) == []


# Traps that only an empty *effective* value springs (a chart whose default is not a map, or none).
EFFECTIVE = {
    ("fluent-bit", "livenessProbe / readinessProbe"): ({"livenessProbe": {}}, ("livenessProbe",)),
    ("metrics-server", "tmpVolume"): ({"tmpVolume": {}}, ("tmpVolume",)),
    ("gateway-helm", "deployment.envoyGateway.startupProbe / livenessProbe / readinessProbe"):
        ({"deployment": {"envoyGateway": {"readinessProbe": {}}}}, ("deployment", "envoyGateway", "readinessProbe")),
}


@pytest.mark.parametrize("key", sorted(EFFECTIVE))
def test_empty_effective_value_springs_the_trap(key: tuple) -> None:
    trap = next(t for t in chart_traps.TRAPS if (t.chart, t.path) == key)
    effective, path = EFFECTIVE[key]
    assert trap.sprung(chart_traps.Values(effective, defaults_known=True)) == [path]
    handler = {"httpGet": {"path": "/", "port": 8080}}
    filled = {k: (handler if v == {} else v) for k, v in effective.items()} if path[0] != "deployment" \
        else {"deployment": {"envoyGateway": {"readinessProbe": handler}}}
    assert trap.sprung(chart_traps.Values(filled, defaults_known=True)) == []


def test_unread_chart_version_is_not_judged(fleet_copy: Path) -> None:
    patch_components(fleet_copy, CLUSTER, {"alloy": {"chart": {"version": "1.12.0"}, "values": {"rbac": {"clusterRules": []}}}})
    assert _findings(fleet_copy, require_shared("charts")) == []


def test_without_chart_defaults_an_explicit_empty_value_still_springs(fleet_copy: Path) -> None:
    lines = patch_components(fleet_copy, CLUSTER, {"kube-state-metrics": {"values": {"collectors": []}},
                                                   "metrics-server": {"values": {"tmpVolume": {}}}})
    found = _findings(fleet_copy, None)
    assert [(f.source.file, f.source.line) for f in found] == [(CLUSTER, _line(lines, "collectors"))]


def test_lint_fails_at_the_source_line(fleet_copy: Path) -> None:
    lines = patch_components(fleet_copy, CLUSTER, {"alloy": {"values": {"rbac": {"clusterRules": []}}}})
    assert CliRunner().invoke(cli, ["render", "--root", str(fleet_copy)]).exit_code == 0
    result = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--only", "chart-traps"])
    assert result.exit_code == 1, result.output
    assert f"{CLUSTER}:{_line(lines, 'clusterRules')}:" in result.output
