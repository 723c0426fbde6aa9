"""The producer catalogue and the configured scrape jobs agree; a renamed job is caught."""
from __future__ import annotations

from pathlib import Path

from fleet import model
from fleet.checks import CheckContext, producers_sync


def _findings(root: Path):
    fleet = model.load(root)
    return list(producers_sync.check(CheckContext(root=root, fleet=fleet, rendered=root / "rendered")))


def test_shipped_catalogue_matches_scrape_jobs(repo_root: Path) -> None:
    assert _findings(repo_root) == []


def test_renamed_vmagent_job_is_reported_at_catalogue_line(fleet_copy: Path) -> None:
    values = fleet_copy / "base/components/vmagent/values.yaml"
    values.write_text(values.read_text().replace("- job_name: envoy\n", "- job_name: envoy-proxy\n"))
    found = _findings(fleet_copy)
    errors = [f for f in found if f.severity.value == "error"]
    assert errors and all("'envoy'" in f.message for f in errors)
    assert errors[0].source.file == "base/rules/producers.yaml" and errors[0].source.line > 0
    assert any("'envoy-proxy'" in f.message and f.severity.value == "warning" for f in found)


def test_alloy_job_missing_from_catalogue(fleet_copy: Path) -> None:
    jobs = fleet_copy / "base/components/alloy/platform-jobs.yaml"
    jobs.write_text(jobs.read_text() + "- job: extra-agent\n  namespaces: [kube-system]\n"
                    "  podLabel: {name: app, value: x}\n  port: metrics\n")
    (found,) = [f for f in _findings(fleet_copy) if "'extra-agent'" in f.message]
    line = next(i for i, text in enumerate(jobs.read_text().splitlines(), 1) if text == "- job: extra-agent")
    assert (found.source.file, found.source.line) == ("base/components/alloy/platform-jobs.yaml", line)


def test_droplet_job_missing_from_catalogue(fleet_copy: Path) -> None:
    """The regional droplets' Alloy jobs (clickhouse, victoriametrics, vector) are platform jobs too."""
    catalogue = fleet_copy / "base/rules/producers.yaml"
    text = catalogue.read_text()
    start = text.index("    vector:\n")
    end = text.index("\n    victoriametrics:\n", start) + 1
    catalogue.write_text(text[:start] + text[end:])
    found = [f for f in _findings(fleet_copy) if f.severity.value == "error"]
    from fleet.tier import render
    renderer = Path(render.__file__).read_text().splitlines()
    line = next(i for i, text in enumerate(renderer, 1) if text.startswith("AGENT_JOBS = {"))
    assert [(f.source.file, f.source.line, "'vector'" in f.message) for f in found] == [
        ("tools/fleet/tier/render.py", line, True)]
