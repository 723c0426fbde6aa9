"""Lint checks of the foundation: yamllint, kustomize build, chart values, and cluster-ID sharing."""
from __future__ import annotations

import re

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest
from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext, chart_values, kustomize_build, yaml_lint
from fleet.cli import cli
from fleet.normalize import normalize

from conftest import require_shared
from _binaries import require_binary


def _ctx(root: Path, **options) -> CheckContext:
    return CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered", options=options)


def _render(root: Path) -> None:
    assert CliRunner().invoke(cli, ["render", "--root", str(root)]).exit_code == 0


def test_normalize_keeps_length_and_skips_ids_inside_words() -> None:
    text = "path: ./rendered/clusters/nyc3-prod-01/stages\nvalue: nyc3-prod-01\n"
    out = normalize(text, "nyc3-prod-01")
    assert "nyc3-prod-01" not in out and len(out) == len(text)
    assert normalize("a: nyc3-prod-010\nb: nyc3-prod-01\n", "nyc3-prod-01") == "a: nyc3-prod-010\nb: nyc3-prod-01\n"
    assert normalize("kind: alloy\nname: alloy-config\n", "alloy") == "kind: alloy\nname: alloy-config\n"


def _normalize_by_regex(text: str, cid: str) -> str:
    """The definition normalize() implements without a regex: every occurrence bounded, or none replaced."""
    bounded = re.compile(rf"(?<![A-Za-z0-9_.-]){re.escape(cid)}(?![A-Za-z0-9_-])")
    replaced, n = bounded.subn("x" * len(cid), text)
    return replaced if n == text.count(cid) else text


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.text(alphabet="ab1-. \n:/_", max_size=40), st.text(alphabet="ab1-", min_size=1, max_size=4))
def test_normalize_matches_its_regex_definition(text: str, cid: str) -> None:
    cid = "c" + cid  # a plain-string ID (IDs that YAML reads otherwise are covered below)
    for sample in (text, text.replace("a", cid), cid + text + cid, cid * 2 + text):
        assert normalize(sample, cid) == _normalize_by_regex(sample, cid), (sample, cid)


def test_normalize_leaves_ids_yaml_reads_as_non_strings() -> None:
    """`on`, `no`, `123`, `1e3`: yamllint's truthy rule and kustomize see these tokens, a placeholder would hide them."""
    for cid in ("on", "no", "yes", "off", "y", "123", "1e3", "0x1f", "null"):
        text = f"name: {cid}\n"
        assert normalize(text, cid) == text, cid


def test_yamllint_reports_input_problem_at_its_line(fleet_copy: Path) -> None:
    path = fleet_copy / "clusters/nyc3-prod-01/cluster.yaml"
    path.write_text(path.read_text().replace("shuttle:\n  tokenSecretName", "shuttle:\n    tokenSecretName"))
    found = [f for f in yaml_lint.check(_ctx(fleet_copy)) if f.source.file == "clusters/nyc3-prod-01/cluster.yaml"]
    assert any(f.source.line == 5 and "indentation" in f.message for f in found), found


def test_kustomize_build_failure_in_one_cluster_is_found_despite_shared_cache(fleet_copy: Path) -> None:
    require_binary("kubectl")
    _render(fleet_copy)
    assert list(kustomize_build.check(_ctx(fleet_copy))) == []  # warms the shared cache
    broken = fleet_copy / "rendered/clusters/fra1-staging-01/stages/04-shuttle/kustomization.yaml"
    broken.write_text(broken.read_text().replace("- shuttle.yaml", "- shuttle.yaml\n- missing.yaml"))
    found = list(kustomize_build.check(_ctx(fleet_copy)))
    line = broken.read_text().splitlines().index("- missing.yaml") + 1
    assert [(f.source.file, f.source.line) for f in found] == [
        ("rendered/clusters/fra1-staging-01/stages/04-shuttle/kustomization.yaml", line)]
    assert "missing.yaml" in found[0].message and "fra1-staging-01" in found[0].message


def test_chart_values_typo_points_at_the_layer_that_set_it(fleet_copy: Path) -> None:
    charts = require_shared("charts")
    path = fleet_copy / "overlays/production/overlay.yaml"
    path.write_text(path.read_text().replace("        replicas: 3", "        replcas: 3"))
    found = [f for f in chart_values.check(_ctx(fleet_copy, charts=charts)) if f.severity.value == "error"]
    assert len(found) == 1
    assert found[0].source.file == "overlays/production/overlay.yaml" and found[0].source.line == 7
    assert "deployment.replcas" in found[0].message and "replicas" in found[0].hint


@pytest.mark.parametrize("path", ["config", "extraArgs"])
def test_free_form_values_are_not_flagged(repo_root: Path, path: str) -> None:
    charts = require_shared("charts")
    ctx = _ctx(repo_root, charts=charts)
    assert [f for f in chart_values.check(ctx) if path in f.message] == []


def test_lint_cli_exit_codes(fleet_copy: Path) -> None:
    _render(fleet_copy)
    ok = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--only", "yamllint"])
    assert ok.exit_code == 0, ok.output
    (fleet_copy / "clusters/nyc3-prod-01/cluster.yaml").write_text("id: nyc3-prod-01\nid: x\n")
    bad = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy)])
    assert bad.exit_code == 2 and "duplicate key" in bad.output
    usage = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--only", "no-such-check"])
    assert usage.exit_code == 2


def test_vmagent_rejects_a_misspelt_scrape_field_at_its_source(fleet_copy: Path) -> None:
    from fleet.checks import vmagent_config
    require_binary("vmagent")
    assert list(vmagent_config.check(_ctx(fleet_copy))) == []
    values = fleet_copy / "base/components/vmagent/values.yaml"
    values.write_text(values.read_text().replace("      honor_labels: true\n", "      honor_lables: true\n"))
    found = list(vmagent_config.check(_ctx(fleet_copy)))
    line = values.read_text().splitlines().index("      honor_lables: true") + 1
    assert found and {(f.source.file, f.source.line) for f in found} == {("base/components/vmagent/values.yaml", line)}
    assert "honor_lables" in found[0].message


def test_vmagent_dry_run_holds_the_fleet_owned_remote_write_flags(fleet_copy: Path, monkeypatch) -> None:
    """The per-URL flags the chart makes of remoteWrite[0] (basicAuth.username/passwordFile for the
    region's vmauth, maxDiskUsagePerURL) are real v1.150 flags; a misspelt one is a finding."""
    from fleet.checks import vmagent_config
    from fleet.render import wiring
    require_binary("vmagent")
    fleet = model.load(fleet_copy)
    cluster = fleet.clusters["nyc3-prod-01"]
    (item,) = wiring.final_values(fleet_copy, cluster, cluster.components["vmagent"])["remoteWrite"]
    assert {"basicAuth.username", "basicAuth.passwordFile", "maxDiskUsagePerURL"} <= set(vmagent_config.url_flags(item))
    assert list(vmagent_config.check(_ctx(fleet_copy))) == []
    original = wiring.WIRING["vmagent"]

    def misspelt(root, cluster, values):
        values = original(root, cluster, values)
        values["remoteWrite"][0]["basicAuth.passwordFil"] = values["remoteWrite"][0].pop("basicAuth.passwordFile")
        return values
    monkeypatch.setitem(wiring.WIRING, "vmagent", misspelt)
    monkeypatch.setenv("FLEET_NO_CACHE", "1")
    found = list(vmagent_config.check(_ctx(fleet_copy)))
    assert found and "-remoteWrite.basicAuth.passwordFil" in found[0].message


def test_vmagent_rejects_a_broken_metric_relabel_regex(fleet_copy: Path) -> None:
    from fleet.checks import vmagent_config
    require_binary("vmagent")
    values = fleet_copy / "base/components/vmagent/values.yaml"
    values.write_text(values.read_text().replace("regex: exported_.+|cluster_id|region", "regex: exported_.+|(cluster_id"))
    found = list(vmagent_config.check(_ctx(fleet_copy)))
    assert found and "missing closing )" in found[0].message
    assert found[0].source.file == "base/components/vmagent/values.yaml"


def test_vmagent_extra_args_remote_write_url_is_a_customer_path_leak(fleet_copy: Path) -> None:
    """The chart appends extraArgs last: `-remoteWrite.url` there would ship customer series
    (with their project_id) past the fleet-owned region endpoint, e.g. to Grafana Cloud."""
    from fleet.checks import gdpr
    path = fleet_copy / "clusters/fra1-staging-01/cluster.yaml"
    path.write_text(path.read_text() + "components:\n  vmagent:\n    values:\n      extraArgs:\n"
                    "        remoteWrite.url: https://prometheus-prod-01.grafana.net/api/prom/push\n")
    _render(fleet_copy)
    found = list(gdpr.check(_ctx(fleet_copy)))
    assert [(f.source.file, f.source.line) for f in found] == [("clusters/fra1-staging-01/cluster.yaml", 10)]
    assert "remoteWrite.url" in found[0].message and found[0].details["cluster"] == "fra1-staging-01"


@pytest.mark.parametrize("values, line, message", [
    ({"extraArgs": {"remoteWrite.url=https://metrics.evil.example/api/v1/write": True}}, 10, "remoteWrite.url"),
    ({"env": [{"name": "VM_remoteWrite_proxyURL", "value": "http://proxy.evil.example:3128"}]}, 10,
     "VM_remoteWrite_proxyURL"),
    ({"envFrom": [{"configMapRef": {"name": "flags"}}]}, 9, "envFrom"),
])
def test_vmagent_flags_that_redirect_customer_series_are_findings(fleet_copy: Path, values, line, message) -> None:
    """Real vmagent 1.79.5 sent to a second -remoteWrite.url, and through a VM_-prefixed proxy flag."""
    from fleet.checks import gdpr
    from conftest import patch_components
    patch_components(fleet_copy, "clusters/fra1-staging-01/cluster.yaml", {"vmagent": {"values": values}})
    _render(fleet_copy)
    found = list(gdpr.check(_ctx(fleet_copy)))
    assert [(f.source.file, f.source.line) for f in found] == [("clusters/fra1-staging-01/cluster.yaml", line)], found
    assert message in found[0].message


@pytest.mark.parametrize("old, new, key", [
    ("url: http://victoria-metrics.nyc3.starform.internal:8427", "url: https://vm.evil.example", "VictoriaMetrics"),
    ("host: vector.nyc3.starform.internal", "host: logs.evil.example", "Vector host"),
])
def test_region_endpoints_outside_the_region_are_findings(fleet_copy: Path, old, new, key) -> None:
    """Customer metrics and logs go where the region file says: it must say somewhere in-region."""
    from fleet.checks import gdpr
    path = fleet_copy / "regions/nyc3/region.yaml"
    assert old in path.read_text()
    # Without a `tier:` block (whose endpoint rule rejects this as bad input) the lint check decides.
    text = path.read_text()
    text = text[:text.index("# The regional telemetry tier")]
    path.write_text(text.replace(old, new))
    _render(fleet_copy)
    found = [f for f in gdpr.check(_ctx(fleet_copy)) if f.source.file == "regions/nyc3/region.yaml"]
    assert len(found) == 1 and key in found[0].message and found[0].source.line in (6, 8), found


def test_region_victoriametrics_host_outside_the_policy_patterns_names_them(fleet_copy: Path) -> None:
    """A private host that the policy's in-region patterns do not match (vm.<slug>…, not
    victoria-metrics.<slug>…) is a finding at the region file's URL line whose hint quotes the
    patterns themselves, not a circular "use an internal host"."""
    from fleet.checks import gdpr
    from fleet.relabel import policy as pol
    path = fleet_copy / "regions/nyc3/region.yaml"
    # A region without the rendered tier (whose own check would refuse an endpoint that is not its
    # droplet at load): the policy's patterns are then all that classifies the URL.
    text = re.sub(r"(?m)^tier:\n(?:[ #].*\n|\n)*", "", path.read_text())
    assert "\ntier:" not in text
    path.write_text(text.replace("url: http://victoria-metrics.nyc3.starform.internal:8427",
                                 "url: http://vm.nyc3.starform.internal:8427"))
    line = text.splitlines().index("    url: http://victoria-metrics.nyc3.starform.internal:8427") + 1
    _render(fleet_copy)
    found = [f for f in gdpr.check(_ctx(fleet_copy)) if f.source.file == "regions/nyc3/region.yaml"]
    assert [f.source.line for f in found] == [line], found
    policy = pol.load_policy(fleet_copy / "policies/gdpr-labeldrop.yaml", "policies/gdpr-labeldrop.yaml")
    in_region = [d.url for d in policy.destinations if d.klass == pol.IN_REGION]
    assert in_region and all(pattern in found[0].hint for pattern in in_region), found[0].hint
    assert "policies/gdpr-labeldrop.yaml" in found[0].message


def test_alloy_endpoint_sending_exemplars_is_a_gdpr_finding(fleet_copy: Path) -> None:
    """Issue 15, class 1: the shipped endpoint switches exemplars and metadata off (no finding);
    without that, every cluster's Grafana Cloud write sends exemplar labels no rule cleans."""
    from fleet.checks import gdpr
    _render(fleet_copy)
    assert list(gdpr.check(_ctx(fleet_copy))) == []
    template = fleet_copy / "base/components/alloy/config.alloy.j2"
    template.write_text(template.read_text().replace("    send_exemplars = false\n", ""))
    _render(fleet_copy)
    found = list(gdpr.check(_ctx(fleet_copy)))
    assert found and all(f.details["kind"] == "exemplar" and "send_exemplars" in f.message for f in found)
    assert {f.details["cluster"] for f in found} == {p.name for p in (fleet_copy / "rendered/clusters").iterdir()}
    assert all(f.source.file.endswith("config.alloy") and f.source.line for f in found)
