"""`rule-jobs`: a rule reading a job that no rendered scrape config produces is an error at its line."""
from __future__ import annotations

from pathlib import Path

from fleet import model
from fleet.checks import CheckContext, rule_jobs
from fleet.render.fleet import render_fleet
from fleet.writer import write_tree


def _findings(root: Path, render: bool = True):
    fleet = model.load(root)
    if render:
        write_tree(root / "rendered", render_fleet(fleet))
    return list(rule_jobs.check(CheckContext(root=root, fleet=fleet, rendered=root / "rendered")))


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_shipped_rules_read_only_rendered_jobs(repo_root: Path) -> None:
    assert _findings(repo_root, render=False) == []


def test_jobs_come_from_the_rendered_configs(repo_root: Path) -> None:
    rendered = repo_root / "rendered"
    platform = rule_jobs.alloy_jobs(rendered)
    assert {"shuttle", "node-exporter", "alloy", "starbase-api", "starbase-worker", "postgres",
            "do-loadbalancer"} <= platform
    # The regional stores and aggregator are scraped by their droplets' Alloy only.
    assert {"clickhouse", "victoriametrics", "vector"} <= platform
    assert not {"clickhouse", "victoriametrics", "vector"} & rule_jobs.alloy_jobs(rendered, rule_jobs.PLATFORM_ALLOY[:1])
    assert {"envoy", "kubelet-cadvisor", "kube-state-metrics", "customer-pods"} == rule_jobs.vmagent_jobs(rendered)


def test_alert_on_an_unscraped_job_fails_at_its_line(fleet_copy: Path) -> None:
    alerts = fleet_copy / "base/rules/alerts/starform-platform.yaml"
    alerts.write_text(alerts.read_text() + """  - name: stores
    rules:
      - alert: RedisDown
        expr: up{job=~"redis|postgres"} == 0
        for: 2m
        labels: {severity: warning}
        annotations: {summary: s, description: d}
""")
    found = _findings(fleet_copy)
    assert [(f.source.file, f.source.line) for f in found] == [
        ("base/rules/alerts/starform-platform.yaml", _line_of(alerts, "alert: RedisDown"))]
    assert "'redis'" in found[0].message and found[0].severity.value == "error"


def test_control_plane_jobs_need_a_control_plane_cluster(fleet_copy: Path) -> None:
    """Without a control-plane cluster nothing scrapes Starbase, Postgres or the load balancers."""
    (fleet_copy / "clusters/nyc3-control-01/cluster.yaml").unlink()
    (fleet_copy / "clusters/nyc3-control-01").rmdir()
    found = _findings(fleet_copy)
    jobs = {f.message.split("reads job ")[1].split("'")[1] for f in found}
    assert jobs == {"starbase-api", "starbase-worker", "postgres", "do-loadbalancer"}
    alerts = fleet_copy / "base/rules/alerts/starform-platform.yaml"
    assert {f.source.line for f in found if "'StarbaseAPIDown'" in f.message} == {
        _line_of(alerts, "alert: StarbaseAPIDown")}


def test_customer_rule_on_a_job_vmagent_does_not_scrape(fleet_copy: Path) -> None:
    rules = fleet_copy / "base/rules/recording/10-resources.yaml"
    text = rules.read_text()
    assert 'job="kubelet-cadvisor"' in text
    rules.write_text(text.replace('job="kubelet-cadvisor"', 'job="cadvisor"', 1))
    found = _findings(fleet_copy)
    assert found and all("'cadvisor'" in f.message and "vmagent" in f.message for f in found)
    assert found[0].source.file == "base/rules/recording/10-resources.yaml"


def test_a_job_only_a_regional_droplet_scrapes_feeds_alerts(fleet_copy: Path) -> None:
    """ClickHouseDown reads job "clickhouse", which only the droplets' own Alloy scrapes: fed."""
    assert _findings(fleet_copy) == []
    droplets = sorted((fleet_copy / "rendered/regions").glob("*/alloy/clickhouse.alloy"))
    assert droplets and all('job_name     = "clickhouse"' in p.read_text() for p in droplets)


def test_alert_fails_when_the_droplet_config_does_not_scrape_its_job(fleet_copy: Path) -> None:
    """The same alerts once no droplet's Alloy scrapes "clickhouse": an error at each alert's line."""
    _findings(fleet_copy)
    for path in (fleet_copy / "rendered/regions").glob("*/alloy/clickhouse.alloy"):
        text = path.read_text()
        start = text.index('prometheus.scrape "job_clickhouse"')
        path.write_text(text[:start] + text[text.index("}\n", start) + 2:])
    found = _findings(fleet_copy, render=False)
    alerts = fleet_copy / "base/rules/alerts/starform-regional-stores.yaml"
    assert sorted((f.source.file, f.source.line) for f in found) == sorted(
        ("base/rules/alerts/starform-regional-stores.yaml", _line_of(alerts, f"alert: {name}"))
        for name in ("ClickHouseDown", "ClickHouseTargetMissing"))
    assert all("'clickhouse'" in f.message and f.severity.value == "error" for f in found)


def test_a_platform_agent_without_the_environment_label_is_found(fleet_copy: Path) -> None:
    """Severities derive from `environment`: a droplet agent that does not set it is an error at
    its remote_write block (the catalogue says every platform series carries it)."""
    _findings(fleet_copy)
    path = fleet_copy / "rendered/regions/fra1/alloy/vector.alloy"
    text = path.read_text()
    assert 'environment = "production",\n' in text
    path.write_text(text.replace('environment = "production",\n', ""))
    found = _findings(fleet_copy, render=False)
    assert [(f.source.file, f.source.line) for f in found] == [
        ("rendered/regions/fra1/alloy/vector.alloy", _line_of(path, 'prometheus.remote_write "grafana_cloud"'))]
    assert "'environment'" in found[0].message and found[0].severity.value == "error"
