"""namespace-prune: Namespaces that hold out-of-band Secrets carry Flux's prune: disabled annotation."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from fleet import model
from fleet.checks import CheckContext, namespace_prune
from fleet.cli import cli

ANNOTATION = "    kustomize.toolkit.fluxcd.io/prune: disabled\n"


def _render(root: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--root", str(root)])
    assert result.exit_code == 0, result.output


def _findings(root: Path) -> list:
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered")
    return list(namespace_prune.check(ctx))


def _line(root: Path, rel: str, prefix: str) -> int:
    lines = (root / rel).read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if line.startswith(prefix))


def test_every_namespace_with_out_of_band_secrets_is_kept(fleet_copy: Path) -> None:
    _render(fleet_copy)
    assert _findings(fleet_copy) == []


def test_namespace_without_the_annotation_is_found_at_its_component(fleet_copy: Path) -> None:
    _render(fleet_copy)
    for path in (fleet_copy / "rendered/clusters").glob("*/stages/*/*.yaml"):
        text = path.read_text()
        path.write_text(text.replace("  annotations:\n" + ANNOTATION, ""))
    found = _findings(fleet_copy)
    where = {(f.details["namespace"], f.source.file, f.source.line) for f in found}
    expected = {(ns, f"base/components/{c}/component.yaml",
                 _line(fleet_copy, f"base/components/{c}/component.yaml", "namespace:"))
                for ns, c in (("starform-system", "shuttle"), ("starform-logging", "fluent-bit"),
                              ("starform-alloy", "alloy"),
                              # vmagent's vmauth password (Secret vmagent-remote-write); the Namespace is
                              # rendered with kube-state-metrics, the first stage that uses it
                              ("starform-metrics", "kube-state-metrics"))}
    # envoy-gateway-system references no Secret: not reported
    assert where == expected
    # per-environment token Secret names: one finding per distinct set, each naming its clusters
    shuttle = sorted((f.message.split("(")[1].split(")")[0], tuple(f.details["clusters"]))
                     for f in found if f.details["namespace"] == "starform-system")
    assert shuttle == [("shuttle-registration", ("fra1-prod-01", "nyc3-prod-01", "nyc3-prod-02")),
                       ("shuttle-registration-staging", ("fra1-staging-01", "nyc3-staging-01"))]
    result = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--only", "namespace-prune"])
    assert result.exit_code == 1 and "base/components/alloy/component.yaml:" in result.output
