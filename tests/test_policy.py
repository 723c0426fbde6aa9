"""The policy file: shipped file validates, bad files fail with positions, questions answered."""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import InputError
from fleet.relabel import policy as pol

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "policies" / "gdpr-labeldrop.yaml"

MINIMAL = """\
version: 1
forbidden_labels: [project_id, 'label_starform_io_.+']
external_jobs: {allow: [shuttle]}
destinations:
  - {name: gc, class: external, url: 'https://[^/]*\\.grafana\\.net(/.*)?'}
"""


@pytest.fixture(scope="module")
def shipped() -> pol.Policy:
    return pol.load_policy(SHIPPED, "policies/gdpr-labeldrop.yaml")


def test_shipped_policy_names_the_required_identifiers(shipped):
    for name in ("project_id", "service_id", "workspace_id", "label_starform_io_project_id",
                 "label_starform_io_workspace"):
        assert shipped.is_forbidden(name), name
    for name in ("project", "project_id_x", "xproject_id", "job", "label_starform_io_"):
        assert not shipped.is_forbidden(name), name


def test_shipped_policy_job_allowlist(shipped):
    assert set(shipped.job_allow) == {"shuttle", "node-exporter", "kube-state-metrics", "envoy-gateway",
                                      "envoy-proxy", "alloy", "vmagent", "fluent-bit",
                                      # the control-plane cluster's Alloy
                                      "starbase-api", "starbase-worker", "postgres", "do-loadbalancer",
                                      "clickhouse", "victoriametrics", "vector",  # the regional tier's droplets
                                      "customer-rules"}  # `cluster:` customer rules federated by the VM droplet
    assert shipped.job_allowed("shuttle")
    assert not shipped.job_allowed("envoy-self")
    assert not shipped.job_allowed(None)  # require_job


def test_shipped_policy_classifies_destinations(shipped):
    assert shipped.classify_url("https://prometheus-prod-24-prod-eu-west-2.grafana.net/api/prom/push")[0] == "external"
    assert shipped.classify_url("https://evil.example.com/push")[0] == "external"  # default
    assert shipped.classify_url(None)[0] == "external"
    assert shipped.classify_url("http://vm.fra1.example:8428/api/v1/write",
                                in_region=["http://vm.fra1.example:8428"])[0] == "in-region"
    repo = shipped.root
    assert shipped.classify_file(repo / "base/relabel/customer.yaml") == "in-region"
    assert shipped.classify_file(repo / "base/relabel/platform.yaml") == "external"


def test_file_globs_are_relative_to_the_repository_root_only(shipped, tmp_path, monkeypatch):
    """Issue 15, class 6: a copy of the in-region list's name anywhere else is not in-region."""
    monkeypatch.chdir(shipped.root)
    assert shipped.classify_file("base/relabel/customer.yaml") == "in-region"
    assert shipped.classify_file("./base/relabel/customer.yaml") == "in-region"
    for elsewhere in ("/abs/repo/base/relabel/customer.yaml", tmp_path / "base/relabel/customer.yaml",
                      shipped.root / "tests/base/relabel/customer.yaml", "base/relabel/x/../../../x/base/relabel/customer.yaml"):
        assert shipped.classify_file(elsewhere) == "external", elsewhere
    monkeypatch.chdir(tmp_path)  # a relative name means a file of the current directory
    assert shipped.classify_file("base/relabel/customer.yaml") == "external"


def test_minimal_policy_defaults():
    p = pol.load_text(MINIMAL)
    assert p.derived_forbidden and p.hashed_forbidden and p.require_job
    assert p.default_destination == "external" and p.files_default == "external"
    assert p.literal_forbidden_names == ["project_id"]


@pytest.mark.parametrize("text, where", [
    (MINIMAL.replace("version: 1", "version: 2"), ":1:"),
    (MINIMAL.replace("project_id,", "'project_(',"), ":2:"),
    (MINIMAL + "surprise: 1\n", ":6:"),
    (MINIMAL.replace("class: external", "class: outer"), ":5:"),
    (MINIMAL.replace("[shuttle]", "shuttle"), ":3:"),
])
def test_bad_policy_is_input_error_with_position(text, where):
    with pytest.raises(InputError) as exc:
        pol.load_text(text, "p.yaml")
    assert "p.yaml" + where in str(exc.value)


def test_find_default_policy_from_repo_and_elsewhere(tmp_path):
    assert pol.find_default_policy(ROOT / "tools") == SHIPPED
    assert pol.find_default_policy(tmp_path) == SHIPPED  # falls back to the package's repo
