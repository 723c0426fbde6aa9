"""The `cluster:` customer rules reach Grafana Cloud: the VictoriaMetrics droplet's Alloy federates
them from the region's store (job customer-rules), proved against the real VictoriaMetrics.

Every recording rule the region's vmalert writes is stored with a sample; the rendered scrape's
own path and parameters are then asked of the real store's /federate. Only the `cluster:` series
come back (per cluster and region: the rules-project-id bound), among them the one
EnvoyTrafficUnattributed reads; no tenant series does.
"""
from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import yaml

from _binaries import require_binary
from differential import servers
from fleet.alloy import syntax

REGION = "nyc3"
UNATTRIBUTED = "cluster:envoy_cluster_upstream_rq_unattributed:rate5m"


def _federation_scrape(rendered: Path) -> dict:
    """metrics_path and params of the rendered `customer-rules` scrape of the region's VM droplet."""
    path = rendered / f"rendered/regions/{REGION}/alloy/victoria-metrics.alloy"
    blocks = [s for s in syntax.parse(path.read_text(), path.name)
              if isinstance(s, syntax.Block) and s.name == "prometheus.scrape"]
    (block,) = [b for b in blocks if syntax.literal_value(b.attrs()["job_name"].value) == "customer-rules"]
    attrs = block.attrs()
    (target,) = syntax.literal_value(attrs["targets"].value)
    assert target["__address__"] == "127.0.0.1:8428"     # the store itself, on the droplet's loopback
    return {"path": syntax.literal_value(attrs["metrics_path"].value),
            "params": syntax.literal_value(attrs["params"].value)}


def _recorded_names(rendered: Path) -> set[str]:
    names = set()
    for path in (rendered / f"rendered/regions/{REGION}/vmalert/rules").glob("*.yaml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def test_federation_returns_exactly_the_cluster_rules(rendered_root, tmp_path):
    binary = require_binary("victoria-metrics")
    scrape = _federation_scrape(rendered_root)
    recorded = _recorded_names(rendered_root)
    cluster_level = {n for n in recorded if n.startswith("cluster:")}
    assert UNATTRIBUTED in cluster_level and recorded - cluster_level
    now_ms = int(time.time() * 1000)
    lines = []
    for name in sorted(recorded):
        tenant = "" if name.startswith("cluster:") else ',project_id="p1",service_id="s1",workspace_id="w1"'
        lines.append(f'{name}{{cluster_id="c1",region="{REGION}"{tenant}}} 7 {now_ms}')
    with servers.victoria_metrics(binary, tmp_path) as store:
        servers.http("POST", store.url + "/api/v1/import/prometheus", "\n".join(lines).encode())
        servers.http("GET", store.url + "/internal/force_flush")
        query = urllib.parse.urlencode(scrape["params"], doseq=True)
        deadline, body = time.monotonic() + 10, ""
        while time.monotonic() < deadline:
            body = servers.http("GET", f"{store.url}{scrape['path']}?{query}").decode()
            if body.count("\n") >= len(cluster_level):
                break
            time.sleep(0.2)
    series = [line.rsplit(" ", 2)[0] for line in body.splitlines() if line and not line.startswith("#")]
    assert sorted(series) == sorted(f'{n}{{cluster_id="c1",region="{REGION}"}}' for n in cluster_level), body
