"""`fleet policy check` / `fleet explain` / `fleet test-relabel`: the command-line contract."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet.checks import CheckContext
from fleet.checks import gdpr
from fleet.cli import cli
from fleet.errors import InputError
from fleet.relabel.series import format_series, parse_series

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "relabel"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_safe_list_exits_0():
    r = run("policy", "check", str(FIX / "safe.yaml"))
    assert r.exit_code == 0, r.output
    assert "SAFE" in r.output


def test_leak_exits_1_with_json_contract():
    r = run("policy", "check", "--format", "json", str(FIX / "leak_copy_before_drop.yaml"), str(FIX / "safe.yaml"))
    assert r.exit_code == 1, r.output
    data = json.loads(r.output)
    leak, safe = data["results"]
    assert (leak["verdict"], safe["verdict"]) == ("leak", "safe")
    assert leak["error"] is None and safe["findings"] == []
    (finding,) = leak["findings"]
    assert finding["kind"] == "value" and finding["label"] == "tenant"
    assert set(finding["witness"]) == {"input", "output"}
    assert finding["witness"]["output"]["tenant"] == finding["witness"]["input"]["project_id"]
    assert all(ref.rsplit(":", 1)[1].isdigit() for ref in finding["rules"])
    assert any(ref.endswith("leak_copy_before_drop.yaml:4") for ref in finding["rules"])


def test_alloy_seed_leak_exits_1():
    r = run("policy", "check", "--format", "json", str(FIX / "seed002_fixed.alloy"))
    assert r.exit_code == 1
    labels = {f["label"] for f in json.loads(r.output)["results"][0]["findings"]}
    assert "label_starform_io_project_id" in labels


@pytest.mark.parametrize("name, where", [("bad_regex.yaml", "bad_regex.yaml:1:3"),
                                         ("seed002_as_written.alloy", "seed002_as_written.alloy:3:")])
def test_parse_error_exits_2_with_position(name, where):
    r = run("policy", "check", "--format", "json", str(FIX / name))
    assert r.exit_code == 2
    result = json.loads(r.output)["results"][0]
    assert result["verdict"] == "error" and where in result["error"]


def test_bad_policy_exits_2(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("version: 1\nforbidden_labels: []\n")
    r = CliRunner().invoke(cli, ["policy", "check", "--policy", str(bad), str(FIX / "safe.yaml")])
    assert r.exit_code == 2 and "p.yaml" in r.output


def test_in_region_list_per_policy(tmp_path):
    """`relabel_files` globs are relative to the repository holding `policies/`, nowhere else."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "lists").mkdir()
    policy = tmp_path / "policies" / "p.yaml"
    text = (ROOT / "policies" / "gdpr-labeldrop.yaml").read_text().replace(
        "    - base/relabel/customer.yaml", "    - 'lists/*.yaml'")
    policy.write_text(text)
    inside = tmp_path / "lists" / "leak_copy_before_drop.yaml"
    inside.write_text((FIX / "leak_copy_before_drop.yaml").read_text())
    r = run("policy", "check", "--policy", str(policy), str(inside))
    assert r.exit_code == 0, r.output
    outside = tmp_path / "elsewhere" / "lists" / "leak_copy_before_drop.yaml"
    outside.parent.mkdir(parents=True)
    outside.write_text(inside.read_text())
    r = run("policy", "check", "--policy", str(policy), str(outside))
    assert r.exit_code == 1, r.output


def test_explain_shows_each_rule_and_labels():
    r = run("explain", str(FIX / "leak_copy_before_drop.yaml"), "--series", 'up{job="shuttle",project_id="p1"}')
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any("leak_copy_before_drop.yaml:4:3: replace source_labels=[project_id] target_label=tenant" in x for x in lines)
    assert lines[-1].strip() == '→ up{job="shuttle", tenant="p1"}'


def test_explain_alloy_follows_each_path():
    r = run("explain", str(FIX / "seed002_fixed.alloy"), "--series", 'kube_pod_labels{job="envoy-self",label_starform_io_project_id="p"}')
    assert r.exit_code == 0
    assert "prometheus.scrape.platform → prometheus.relabel.platform" in r.output
    assert r.output.strip().endswith('→ kube_pod_labels{job="envoy-self", label_starform_io_project_id="p"}')


def test_explain_bad_series_exits_2():
    r = run("explain", str(FIX / "safe.yaml"), "--series", 'up{job=shuttle}')
    assert r.exit_code == 2 and "--series" in r.output


@pytest.mark.parametrize("text, labels", [
    ('up{job="a", b="c"}', {"__name__": "up", "job": "a", "b": "c"}),
    ('{__name__="x:y", v="q\\"\\n"}', {"__name__": "x:y", "v": 'q"\n'}),
    ("m{a='s', b=`raw\\n`,}", {"__name__": "m", "a": "s", "b": "raw\\n"}),
    ('up{empty=""}', {"__name__": "up"}),
])
def test_series_syntax(text, labels):
    assert parse_series(text) == labels
    assert parse_series(format_series(labels)) == labels


@pytest.mark.parametrize("text", ['up{', 'up{a="b" c="d"}', '{a="b"', "", 'up{a="b",a="c"}'])
def test_series_errors(text):
    with pytest.raises(InputError):
        parse_series(text)


def test_test_relabel_pass_fail_and_bad_file(tmp_path):
    shutil.copy(FIX / "safe.yaml", tmp_path / "rules.yaml")
    good = tmp_path / "good.test.yaml"
    good.write_text("rule_files: [rules.yaml]\ntests:\n"
                    "  - name: drops id\n    input: 'up{job=\"shuttle\", project_id=\"p\"}'\n    output: 'up{job=\"shuttle\"}'\n"
                    "  - name: other job dropped\n    input: 'up{job=\"app\"}'\n    dropped: true\n")
    assert run("test-relabel", str(good)).exit_code == 0
    bad = tmp_path / "bad.test.yaml"
    bad.write_text(good.read_text().replace('output: \'up{job="shuttle"}\'', 'output: \'up{job="shuttle", project_id="p"}\''))
    r = run("test-relabel", str(bad))
    assert r.exit_code == 1 and "FAIL drops id" in r.output and "bad.test.yaml:3:5" in r.output
    broken = tmp_path / "broken.test.yaml"
    broken.write_text("rule_files: [missing.yaml]\ntests: []\n")
    assert CliRunner().invoke(cli, ["test-relabel", str(broken)]).exit_code == 2


SHIPPED_TESTS = sorted((ROOT / "tests" / "relabel").glob("*.test.yaml"))


@pytest.mark.parametrize("path", SHIPPED_TESTS, ids=[p.name for p in SHIPPED_TESTS])
def test_shipped_relabel_unit_tests_pass(path):
    r = run("test-relabel", str(path))
    assert r.exit_code == 0, r.output


# -- the lint plug-in --------------------------------------------------------------------------

CONFIG = (FIX / "seed002_fixed.alloy").read_text()


def make_tree(tmp_path: Path, alloy: str, url: str = "http://vm.fra1.internal:8428/api/v1/write", n: int = 2) -> Path:
    (tmp_path / "policies").mkdir()
    shutil.copy(ROOT / "policies" / "gdpr-labeldrop.yaml", tmp_path / "policies")
    (tmp_path / "regions" / "fra1").mkdir(parents=True)
    (tmp_path / "regions" / "fra1" / "region.yaml").write_text(
        "endpoints:\n  victoriaMetrics:\n    url: http://vm.fra1.internal:8428\n")
    for i in range(n):
        cid = f"fra1-prod-0{i}"
        (tmp_path / "clusters" / cid).mkdir(parents=True)
        (tmp_path / "clusters" / cid / "cluster.yaml").write_text("region: fra1\n")
        tele = tmp_path / "rendered" / "clusters" / cid / "stages" / "03-telemetry"
        tele.mkdir(parents=True)
        (tele / "config.alloy").write_text(alloy.replace("CID", cid))
        (tele / "vmagent.yaml").write_text(
            "kind: Namespace\n---\nkind: HelmRelease\nspec:\n  values:\n    remoteWrite:\n"
            f"      - url: {url}\n        urlRelabelConfig:\n          - action: labeldrop\n            regex: id\n")
    return tmp_path


def lint(root: Path) -> list:
    return list(gdpr.check(CheckContext(root=root, fleet=None, rendered=root / "rendered")))


SAFE_ALLOY = CONFIG.replace("envoy-self", "envoy-gateway").replace(
    '  rule {\n    regex  = "project_id|service_id|workspace_id"',
    '  // source: base/relabel/platform.yaml:9\n  rule {\n    regex  = "project_id|service_id|workspace_id|label_starform_io_.+"'
).replace('prometheus.remote_write "grafana" {', 'prometheus.remote_write "grafana" {\n  external_labels = {cluster_id = "CID"}')


def test_gdpr_check_clean_tree(tmp_path):
    assert lint(make_tree(tmp_path, SAFE_ALLOY)) == []


def test_gdpr_check_points_at_source_and_carries_witness(tmp_path):
    leaky = SAFE_ALLOY.replace("|label_starform_io_.+", "")
    findings = lint(make_tree(tmp_path, leaky))
    assert len(findings) == 2  # one per cluster
    f = findings[0]
    assert str(f.source) == "base/relabel/platform.yaml:9"
    assert f.details["label"] == "label_starform_io_project_id"
    assert f.details["witness"]["output"]["cluster_id"] == f.details["cluster"]


def test_gdpr_check_customer_url_must_be_the_region(tmp_path):
    findings = lint(make_tree(tmp_path, SAFE_ALLOY, url="https://x.grafana.net/api/prom/push", n=1))
    assert len(findings) == 1 and "not this cluster's region" in findings[0].message
    assert findings[0].source.file.endswith("vmagent.yaml") and findings[0].source.line == 7


def test_gdpr_normalise_ignores_comments_and_external_label_values():
    a, va = gdpr.normalise('// c1\nx {\n  external_labels = {cluster_id = "a", region = "r"}\n}\n')
    b, vb = gdpr.normalise('// c2\nx {\n  external_labels = {cluster_id = "b", region = "r"}\n}\n')
    assert a == b and va["cluster_id"] == "a" and vb["cluster_id"] == "b"
    c, _ = gdpr.normalise('// source: f:1\nx {\n  external_labels = {cluster_id = "b", job = "r"}\n}\n')
    assert c != b


def test_flavor_option_picks_the_agent_whose_semantics_are_proved(tmp_path):
    """vmagent v1.150 matches `.+` dotall but takes the groups from the non-dotall `^(?:.+)$`: on
    a value with a newline they miss and the *value* is written back, so the id survives a rule
    that Prometheus always applies. --flavor says which agent runs the file."""
    path = tmp_path / "rules.yaml"
    path.write_text("- {source_labels: [project_id], regex: '.+', target_label: project_id, replacement: ''}\n"
                    "- {action: keep, source_labels: [job], regex: shuttle}\n"
                    "- {action: labeldrop, regex: 'service_id|workspace_id|label_starform_io_.+'}\n")
    vm = run("policy", "check", "--flavor", "vmagent", "--format", "json", str(path))
    assert vm.exit_code == 1
    (result,) = json.loads(vm.output)["results"]
    assert result["findings"][0]["label"] == "project_id" and result["findings"][0]["verified"]
    assert "(vmagent)" in result["findings"][0]["path"]
    assert run("policy", "check", "--flavor", "nonsense", str(path)).exit_code == 2


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_alloy_write_sending_exemplars_is_reported_in_every_format(tmp_path, fmt):
    """A leak of what a write sends beside the series (exemplars, metadata) has no witness
    series: both report formats say it (exit 1), neither breaks on it (was a KeyError, exit 3)."""
    shipped = (ROOT / "rendered/clusters/nyc3-prod-01/stages/03-telemetry/config.alloy").read_text()
    assert "    send_exemplars = false\n" in shipped
    path = tmp_path / "config.alloy"
    path.write_text(shipped.replace("    send_exemplars = false\n", ""))
    r = run("policy", "check", "--format", fmt, str(path))
    assert r.exit_code == 1, r.output
    if fmt == "json":
        kinds = {f["kind"] for f in json.loads(r.output)["results"][0]["findings"]}
        assert kinds == {"exemplar"}
    else:
        assert "[exemplar] the write sends exemplar data no relabel rule cleans" in r.output
        assert "send_exemplars = false" in r.output
