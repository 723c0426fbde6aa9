"""secrets: no secret value in inputs or rendered output; references by name are fine."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext, secrets
from fleet.cli import cli

from conftest import patch_components

CLUSTER = "clusters/nyc3-prod-01/cluster.yaml"


def _line(lines: list[str], needle: str) -> int:
    hits = [i + 1 for i, line in enumerate(lines) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def _render(root: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--root", str(root)])
    assert result.exit_code == 0, result.output


def _findings(root: Path) -> list:
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered")
    return list(secrets.check(ctx))


def test_shipped_fleet_has_no_secret_values(repo_root: Path) -> None:
    # Shuttle's tokenSecretName, Alloy's secretKeyRef envs, Fluent Bit's tls.*_file paths and
    # the forward-tls secretName, vmagent's bearer_token_file are all references.
    assert _findings(repo_root) == []


@pytest.mark.parametrize("name", ["tokenSecretName", "secretName", "existingSecret", "secretKeyRef", "secretRef",
                                  "bearer_token_file", "tls.key_file", "remoteWrite.bearerTokenFile",
                                  "passwordFile", "Kube_Token_TTL", "GRAFANA_CLOUD_USERNAME", "key",
                                  "automountServiceAccountToken", "basicAuth.username"])
def test_reference_names_are_not_secret(name: str) -> None:
    assert not secrets.looks_secret(name)


@pytest.mark.parametrize("name", ["password", "GRAFANA_CLOUD_PASSWORD", "apiKey", "API_KEY", "STARFORM_TOKEN",
                                  "remoteWrite.basicAuth.password", "remoteWrite.bearerToken", "clientSecret",
                                  "HTTP_Passwd", "credentials", "privateKey"])
def test_secret_names(name: str) -> None:
    assert secrets.looks_secret(name)


AUDIT = {
    "vmagent-basic-auth-flag": ({"vmagent": {"values": {"extraArgs": {
        "remoteWrite.basicAuth.password": "hunter2-supersecret"}}}},
        "remoteWrite.basicAuth.password:", "key 'remoteWrite.basicAuth.password' holds a literal secret"),
    "alloy-literal-env": ({"alloy": {"values": {"alloy": {"extraEnv": [
        {"name": "GRAFANA_CLOUD_PASSWORD", "value": "glc_abc"}]}}}},
        "value: glc_abc", "environment variable GRAFANA_CLOUD_PASSWORD has a literal value"),
}


@pytest.mark.parametrize("case", sorted(AUDIT))
def test_audit_reproduction_is_found_at_the_cluster_line(fleet_copy: Path, case: str) -> None:
    patch, needle, message = AUDIT[case]
    lines = patch_components(fleet_copy, CLUSTER, patch)
    _render(fleet_copy)
    found = _findings(fleet_copy)
    assert len(found) == 1, found
    assert (found[0].source.file, found[0].source.line) == (CLUSTER, _line(lines, needle))
    assert message in found[0].message
    result = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--only", "secrets"])
    assert result.exit_code == 1, result.output
    assert f"{CLUSTER}:{_line(lines, needle)}:" in result.output


def test_empty_secret_value_and_reference_env_are_fine(fleet_copy: Path) -> None:
    patch_components(fleet_copy, CLUSTER, {
        "vmagent": {"values": {"extraArgs": {"remoteWrite.basicAuth.password": "",
                                             "remoteWrite.basicAuth.passwordFile": "/etc/secret/password"}}},
        "alloy": {"values": {"alloy": {"extraEnv": [
            {"name": "GRAFANA_CLOUD_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "x", "key": "password"}}}]}}},
    })
    _render(fleet_copy)
    assert _findings(fleet_copy) == []


def test_secret_in_a_fluent_bit_text_config_is_found_in_the_region(fleet_copy: Path) -> None:
    rel = "regions/fra1/region.yaml"
    text = "[FILTER]\n    Name lua\n    HTTP_Passwd hunter2\n    tls.key_file /fluent-bit/tls/tls.key\n"
    lines = patch_components(fleet_copy, rel, {"fluent-bit": {"values": {"config": {"filters": text}}}})
    _render(fleet_copy)
    found = _findings(fleet_copy)
    assert [(f.source.file, f.source.line) for f in found] == [(rel, _line(lines, "filters:"))]
    assert "'HTTP_Passwd'" in found[0].message


def test_rendered_secret_object_is_found_at_its_source(fleet_copy: Path) -> None:
    manifests = fleet_copy / "base/components/shuttle/manifests.yaml"
    before = manifests.read_text()
    manifests.write_text(before + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: shuttle-registration\n"
                         "  namespace: starform-system\nstringData:\n  token: abc\n")
    _render(fleet_copy)
    found = _findings(fleet_copy)
    assert len(found) == 1, found  # one finding, not one per cluster
    assert found[0].source.file == "base/components/shuttle/manifests.yaml"
    assert found[0].source.line == len(before.splitlines()) + 2
    assert "Secret starform-system/shuttle-registration is rendered" in found[0].message


def test_literal_env_in_rendered_manifests(fleet_copy: Path) -> None:
    manifests = fleet_copy / "base/components/shuttle/manifests.yaml"
    text = manifests.read_text()
    old = "            - name: STARFORM_REGION\n              value: REGION\n"
    assert old in text
    manifests.write_text(text.replace(old, old + "            - name: STARFORM_API_KEY\n              value: k-123\n"))
    _render(fleet_copy)
    found = _findings(fleet_copy)
    assert len(found) == 1 and found[0].source.file == "base/components/shuttle/manifests.yaml"
    assert "STARFORM_API_KEY" in found[0].message


def test_literal_password_in_config_alloy_is_found_at_the_template(fleet_copy: Path) -> None:
    template = fleet_copy / "base/components/alloy/config.alloy.j2"
    text = template.read_text()
    old = 'password = sys.env("GRAFANA_CLOUD_PASSWORD")'
    assert old in text
    template.write_text(text.replace(old, 'password = "glc_literal"'))
    _render(fleet_copy)
    found = _findings(fleet_copy)
    lines = template.read_text().splitlines()
    assert [(f.source.file, f.source.line) for f in found] == [
        ("base/components/alloy/config.alloy.j2", _line(lines, 'password = "glc_literal"'))]
