"""Bad input gets a clear error (file, line, what was expected), exit code 2, and writes nothing."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet import inputs, model
from fleet.cli import cli
from fleet.errors import InputError
from fleet.writer import read_tree


def _render(root: Path):
    return CliRunner().invoke(cli, ["render", "--root", str(root)])


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


CASES = {
    "yaml-syntax": ("clusters/nyc3-prod-01/cluster.yaml", "region: nyc3", "region: [nyc3",
                    ["clusters/nyc3-prod-01/cluster.yaml:", "YAML syntax error"]),
    "duplicate-key": ("clusters/nyc3-prod-01/cluster.yaml", "region: nyc3", "region: nyc3\nregion: fra1",
                      ["clusters/nyc3-prod-01/cluster.yaml:3:1", "duplicate key 'region'"]),
    "unknown-field": ("clusters/nyc3-prod-01/cluster.yaml", "region: nyc3", "region: nyc3\nreigon: fra1",
                      ["clusters/nyc3-prod-01/cluster.yaml:3:1", "unknown field 'reigon'", "$"]),
    "wrong-type": ("regions/nyc3/region.yaml", "port: 24224", "port: many",
                   ["regions/nyc3/region.yaml:9:11", "wrong type", "$.endpoints.vector.port", "expected integer"]),
    "missing-region": ("clusters/nyc3-prod-01/cluster.yaml", "region: nyc3", "region: sfo3",
                       ["clusters/nyc3-prod-01/cluster.yaml:2:9", "region 'sfo3', which does not exist"]),
    "missing-overlay": ("clusters/nyc3-prod-01/cluster.yaml", "environment: production", "environment: qa",
                        ["clusters/nyc3-prod-01/cluster.yaml:3:14", "environment 'qa', which has no overlay"]),
    "bad-id": ("clusters/nyc3-prod-01/cluster.yaml", "id: nyc3-prod-01", "id: ../x",
               ["clusters/nyc3-prod-01/cluster.yaml:1:5", "'../x' is not valid", "$.id"]),
    "unknown-component-patch": ("overlays/staging/overlay.yaml", "  vmagent:", "  vmagnet:",
                                ["overlays/staging/overlay.yaml:", "patch for unknown component 'vmagnet'"]),
    "bad-relabel-action": ("clusters/fra1-prod-01/cluster.yaml", "    - action: drop", "    - action: dorp",
                           ["clusters/fra1-prod-01/cluster.yaml:9:7", "unknown `action` \"dorp\""]),
    "bad-relabel-regex": ("base/relabel/customer.yaml", "regex: id|image_id|uid|container_id", "regex: id|(image_id",
                          ["base/relabel/customer.yaml:6:3", "cannot parse `regex`"]),
    # Strings pasted into text configs (Fluent Bit's outputs, config.alloy) cannot carry a newline.
    "vector-host-injection": ("regions/nyc3/region.yaml", "host: vector.nyc3.starform.internal",
                              'host: "vector.nyc3.starform.internal\\n    Name null"',
                              ["regions/nyc3/region.yaml:8:11", "$.endpoints.vector.host", "RFC 1123 hostname"]),
    "vector-host-trailing-newline": ("regions/fra1/region.yaml", "host: vector.fra1.starform.internal",
                                     'host: "vector.fra1.starform.internal\\n"',
                                     ["regions/fra1/region.yaml:8:11", "$.endpoints.vector.host"]),
    "vector-host-space": ("regions/fra1/region.yaml", "host: vector.fra1.starform.internal",
                          'host: "vector.fra1.starform.internal Name"', ["regions/fra1/region.yaml:8:11"]),
    "platform-job-injection": ("base/components/alloy/platform-jobs.yaml", "- job: shuttle", '- job: "shuttle\\n}"',
                               ["base/components/alloy/platform-jobs.yaml:4:8", "$[0].job"]),
    "platform-job-label-value": ("base/components/alloy/platform-jobs.yaml", "value: shuttle}", 'value: "shuttle|.*"}',
                                 ["base/components/alloy/platform-jobs.yaml:6:", "$[0].podLabel.value"]),
    "remote-write-url-newline": ("base/fleet.yaml", "remoteWriteUrl: https://prometheus-prod-24-prod-eu-west-2.grafana.net/api/prom/push",
                                 'remoteWriteUrl: "https://x.grafana.net/push\\n"',
                                 ["base/fleet.yaml:20:19", "$.platformMonitoring.remoteWriteUrl"]),
    "secret-value-field": ("clusters/nyc3-prod-01/cluster.yaml", "tokenSecretName: shuttle-registration",
                           "tokenSecretName: shuttle-registration\n  token: s3cr3t",
                           ["clusters/nyc3-prod-01/cluster.yaml:", "unknown field 'token'"]),
    "platform-job-wrong-type": ("base/components/alloy/platform-jobs.yaml", "  port: metrics\n", "  port: [metrics]\n",
                                ["platform-jobs.yaml:7:", "wrong type", "$[0].port"]),
    "platform-job-unknown-field": ("base/components/alloy/platform-jobs.yaml", "  port: metrics\n",
                                   "  port: metrics\n  colour: red\n", ["platform-jobs.yaml:8:3", "unknown field 'colour'"]),
    "duplicate-nested-key": ("clusters/nyc3-prod-01/cluster.yaml", "  tokenSecretName: shuttle-registration",
                             "  tokenSecretName: shuttle-registration\n  tokenSecretName: b",
                             ["cluster.yaml:6:3", "duplicate key 'tokenSecretName' (at $.shuttle)"]),
    "vmagent-queue-too-small": ("regions/nyc3/region.yaml", "volumeSize: 10Gi", "volumeSize: 1Gi",
                                ["regions/nyc3/region.yaml:14:15", "$.vmagentQueue.volumeSize", "from 2Gi to 9999Gi"]),
    "vmagent-queue-decimal-unit": ("regions/nyc3/region.yaml", "volumeSize: 10Gi", "volumeSize: 10G",
                                   ["regions/nyc3/region.yaml:14:15", "$.vmagentQueue.volumeSize"]),
    "vmagent-queue-missing": ("regions/nyc3/region.yaml", "vmagentQueue:\n  volumeSize: 10Gi\n", "",
                              ["regions/nyc3/region.yaml:1:1", "vmagentQueue"]),
    # The control-plane profile: its probes name real clusters, its settings exist, and only there.
    "control-plane-without-settings": ("clusters/nyc3-control-01/cluster.yaml", "controlPlane:\n", "unused:\n",
                                       ["clusters/nyc3-control-01/cluster.yaml:", "controlPlane"]),
    "control-plane-settings-on-customer": ("clusters/nyc3-control-01/cluster.yaml", "profile: control-plane\n", "",
                                           ["clusters/nyc3-control-01/cluster.yaml:"]),
    "probe-of-unknown-cluster": ("clusters/nyc3-control-01/cluster.yaml", "- cluster: fra1-prod-01", "- cluster: fra1-prod-09",
                                 ["clusters/nyc3-control-01/cluster.yaml:17:16", "names cluster 'fra1-prod-09'",
                                  "$.controlPlane.loadBalancers[3].cluster"]),
    "probe-url-injection": ("clusters/nyc3-control-01/cluster.yaml", "url: https://edge.fra1-prod-01.starform.cloud/healthz",
                            'url: "https://edge.fra1-prod-01.starform.cloud/healthz\\n}"',
                            ["clusters/nyc3-control-01/cluster.yaml:18:", "$.controlPlane.loadBalancers[3].url"]),
    # keepLabels is pasted into a labelkeep regex: a name, never a pattern that widens it.
    "keep-labels-pattern": ("base/components/alloy/platform-jobs.yaml", "keepLabels: [instance, namespace, pod, le, quantile, method,",
                            "keepLabels: [\".*\", namespace, pod, le, quantile, method,",
                            ["base/components/alloy/platform-jobs.yaml:", ".keepLabels[0]"]),
    "tab-indentation": ("clusters/nyc3-prod-01/cluster.yaml", "  tokenSecretName", "\ttokenSecretName",
                        ["cluster.yaml:5:1", "YAML syntax error", "expected spaces for indentation"]),
    # Issue 16 instances; tests/test_hostile_input.py covers each class over every loader and input kind.
    "id-trailing-newline": ("clusters/nyc3-prod-01/cluster.yaml", "id: nyc3-prod-01", 'id: "nyc3-prod-01\\n"',
                            ["clusters/nyc3-prod-01/cluster.yaml:1:5", "is not valid", "$.id"]),
    "token-secret-trailing-newline": ("clusters/nyc3-prod-01/cluster.yaml", "tokenSecretName: shuttle-registration",
                                      'tokenSecretName: "shuttle-registration\\n"', ["cluster.yaml:5:20", "$.shuttle.tokenSecretName"]),
    "vpc-cidr-octet": ("regions/nyc3/region.yaml", "vpcCidr: 10.110.0.0/20", "vpcCidr: 10.999.0.0/20",
                       ["regions/nyc3/region.yaml:3:10", "Octet 999", "$.vpcCidr", "CIDR"]),
    "python-tag": ("clusters/nyc3-prod-01/cluster.yaml", "shuttle:", "shuttle: !!python/object:os.system",
                   ["cluster.yaml:4:10", "unsupported YAML tag"]),
    "alias-bomb": ("clusters/nyc3-prod-01/cluster.yaml", "region: nyc3",
                   "region: nyc3\nx: [&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
                   "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], [*d,*d,*d,*d,*d]]",
                   ["cluster.yaml:3:", "aliases expand to more than"]),
    "shuttle-image-patch": ("clusters/nyc3-prod-01/cluster.yaml", "region: nyc3",
                            "region: nyc3\ncomponents: {shuttle: {image: evil/shuttle:1}}",
                            ["cluster.yaml:3:24", "unknown field 'image'"]),
    "credentials-in-url": ("base/fleet.yaml", "remoteWriteUrl: https://", "remoteWriteUrl: https://u:glc_t@",
                           ["base/fleet.yaml:20:19", "userinfo"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exit_2_and_rendered_untouched(fleet_copy: Path, case: str) -> None:
    assert _render(fleet_copy).exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    rel, old, new, expected = CASES[case]
    _edit(fleet_copy / rel, old, new)
    result = _render(fleet_copy)
    assert result.exit_code == 2, result.output
    for text in expected:
        assert text in result.output, f"{text!r} not in:\n{result.output}"
    assert "error:" in result.output
    assert read_tree(fleet_copy / "rendered") == before


def test_duplicate_cluster_id_names_both_files(fleet_copy: Path) -> None:
    shutil.copytree(fleet_copy / "clusters/nyc3-prod-01", fleet_copy / "clusters/nyc3-prod-09")
    result = _render(fleet_copy)
    assert result.exit_code == 2
    assert "duplicate cluster id 'nyc3-prod-01'" in result.output
    assert "clusters/nyc3-prod-09/cluster.yaml:1:5" in result.output
    assert "also in clusters/nyc3-prod-01/cluster.yaml:1:5" in result.output


def test_folder_name_that_is_not_a_dns_label(fleet_copy: Path) -> None:
    shutil.copytree(fleet_copy / "clusters/nyc3-prod-01", fleet_copy / "clusters/NYC_bad")
    result = _render(fleet_copy)
    assert result.exit_code == 2
    assert "clusters/NYC_bad/cluster.yaml" in result.output and "DNS-1123" in result.output


def test_all_errors_reported_in_one_run(fleet_copy: Path) -> None:
    _edit(fleet_copy / "clusters/nyc3-prod-01/cluster.yaml", "region: nyc3", "region: sfo3")
    _edit(fleet_copy / "clusters/fra1-prod-01/cluster.yaml", "environment: production", "environment: qa")
    with pytest.raises(InputError) as info:
        model.load(fleet_copy)
    text = str(info.value)
    assert "clusters/nyc3-prod-01/cluster.yaml" in text and "clusters/fra1-prod-01/cluster.yaml" in text


#: Ways the probed cluster nyc3-prod-01 fails to load: (old, new, where its own error is).
PROBED_CLUSTER_BROKEN = {
    "yaml-syntax": ("region: nyc3", "region: [nyc3", "clusters/nyc3-prod-01/cluster.yaml:3:12: error: YAML syntax error"),
    "schema": ("region: nyc3", "region: nyc3\nreigon: fra1",
               "clusters/nyc3-prod-01/cluster.yaml:3:1: error: unknown field 'reigon'"),
    "id-not-folder": ("id: nyc3-prod-01", "id: nyc3-prod-77",
                      "clusters/nyc3-prod-01/cluster.yaml:1:5: error: cluster id 'nyc3-prod-77' differs from its folder"),
}


@pytest.mark.parametrize("case", sorted(PROBED_CLUSTER_BROKEN))
@pytest.mark.parametrize("command", ["render", "lint"])
def test_a_probed_cluster_that_fails_to_load_is_one_error(fleet_copy: Path, case: str, command: str) -> None:
    """nyc3-control-01 probes nyc3-prod-01: when that cluster's own file is refused, its error is
    the one to fix; the probe is not also reported as naming a cluster that does not exist."""
    old, new, expected = PROBED_CLUSTER_BROKEN[case]
    _edit(fleet_copy / "clusters/nyc3-prod-01/cluster.yaml", old, new)
    result = CliRunner().invoke(cli, [command, "--root", str(fleet_copy)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith(expected), result.output
    # `lint --changed` loads only the changed clusters and the clusters their probes name.
    with pytest.raises(InputError) as info:
        inputs.load(fleet_copy, clusters={"nyc3-control-01"})
    assert [str(e.source) for e in info.value.errors] == [expected.split(": error:")[0]]


def test_a_probe_of_a_cluster_folder_without_cluster_yaml_is_one_error(fleet_copy: Path) -> None:
    (fleet_copy / "clusters/nyc3-prod-01/cluster.yaml").unlink()
    result = _render(fleet_copy)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    assert errors == ["clusters/nyc3-prod-01: error: cluster folder without cluster.yaml"], result.output


def test_a_broken_region_file_does_not_hide_its_clusters_other_errors(fleet_copy: Path) -> None:
    """nyc3's region.yaml is refused with its own error; nyc3-control-01 (in nyc3) still has its
    unknown probe and unknown environment reported in the same run, not after the region is fixed."""
    _edit(fleet_copy / "regions/nyc3/region.yaml", "port: 24224", "port: many")
    control = fleet_copy / "clusters/nyc3-control-01/cluster.yaml"
    _edit(control, "- cluster: nyc3-prod-02", "- cluster: nyc3-prod-99")
    _edit(control, "environment: production", "environment: qa")
    result = _render(fleet_copy)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    assert [e.split(": error: ")[0].split(":")[0] for e in errors] == [
        "clusters/nyc3-control-01/cluster.yaml", "clusters/nyc3-control-01/cluster.yaml",
        "regions/nyc3/region.yaml"], result.output
    assert any("'nyc3-prod-99', which does not exist" in e for e in errors)
    assert any("environment 'qa', which has no overlay" in e for e in errors)
    assert not any("names region 'nyc3'" in e for e in errors)


def test_usage_error_is_exit_2(fleet_copy: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--no-such-flag"])
    assert result.exit_code == 2


def test_yaml_file_fleet_never_reads_is_an_error(fleet_copy: Path) -> None:
    """`cluster.yml` or a stray `vmagent.yaml` in a cluster folder would look merged and do nothing."""
    assert _render(fleet_copy).exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    (fleet_copy / "clusters/nyc3-prod-01/cluster.yml").write_text("components: {}\n")
    result = _render(fleet_copy)
    assert result.exit_code == 2, result.output
    assert "clusters/nyc3-prod-01/cluster.yml: error: file 'cluster.yml' in a cluster folder is not read" in result.output
    assert "expected only cluster.yaml" in result.output
    assert read_tree(fleet_copy / "rendered") == before
