"""Issue 15, class 2: the proof's witnesses through a YAML scrape job, replayed through the real
agents (the pinned Prometheus in agent mode, vmagent with -promscrape.config: tools/upstream.lock).

The witness target's labels (the pod label `__meta_kubernetes_pod_label_starform_io_project_id`
among them) become a static target's labels, its exposed sample is served by a tiny exporter,
and the job's relabel_configs / metric_relabel_configs run as written. The store must then hold
a series carrying the customer id in a label the witness names: the leak is real.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fleet import yamlio
from fleet.relabel import policy as pol
from fleet.relabel.pipeline import paths_for_file
from fleet.relabel.proof import prove
from _binaries import require_binary
from differential import servers
from differential.prometheus import exporter

ROOT = Path(__file__).resolve().parents[1]
SCRAPE = ROOT / "tests" / "fixtures" / "relabel" / "scrape"
POLICY = pol.load_policy(ROOT / "policies" / "gdpr-labeldrop.yaml")
CASES = [("job_two_programs_leak.yaml", "metric_relabel_configs", "tenant"),
         ("report_series_leak.yaml", "report series", "tenant")]


def _witness(name: str, path_kind: str, label: str, flavor: str):
    paths = [p for p in paths_for_file(SCRAPE / name, name, POLICY, flavor) if path_kind in p.description]
    (path,) = paths
    leaks = [lk for lk in prove(path.pipeline, POLICY) if lk.label == label]
    assert leaks and leaks[0].verified, [lk.to_json() for lk in leaks]
    return leaks[0]


def _job(name: str, leak, target: str) -> dict:
    """The fixture's job, its discovery replaced by one static target with the witness's labels."""
    (job,) = yamlio.plain(yamlio.load_file(SCRAPE / name))["scrape_configs"]
    labels = dict(leak.witness_target if leak.witness_target is not None else leak.witness_input)
    labels.pop("__address__", None)
    labels.pop("__name__", None)
    labels.pop("job", None)  # the scrape sets it from job_name
    job = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
    job["static_configs"] = [{"targets": [target], "labels": labels}]
    return job


def _exposed(leak) -> str:
    sample = dict(leak.witness_sample or {"__name__": "zz_sample"})
    name = sample.pop("__name__", "zz_sample")
    body = ",".join(f'{k}="{v}"' for k, v in sample.items())
    return f"{name}{{{body}}} 1\n"


def _customer_ids(leak) -> set[str]:
    source = leak.witness_target if leak.witness_target is not None else leak.witness_input
    return {v for n, v in source.items() if POLICY.is_discovery_origin(n)}


def _stored_leak(store, label: str, ids: set[str]) -> list[dict]:
    servers.http("GET", store.url + "/internal/force_flush")
    return [item["metric"] for item in servers.export(store, '{__name__=~".+"}')
            if item["metric"].get(label) in ids]


def _wait_for_leak(store, label: str, ids: set[str]) -> list[dict]:
    deadline = time.monotonic() + 30
    found = _stored_leak(store, label, ids)
    while not found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = _stored_leak(store, label, ids)
    return found


def _config(job: dict, store) -> dict:
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms"}, "scrape_configs": [job],
            "remote_write": [{"url": store.url + "/api/v1/write",
                              "queue_config": {"batch_send_deadline": "100ms", "min_backoff": "50ms"}}]}


@pytest.mark.binary
@pytest.mark.parametrize("name, path_kind, label", CASES)
def test_scrape_job_witness_leaks_through_real_prometheus(tmp_path, name, path_kind, label):
    leak = _witness(name, path_kind, label, "prometheus")
    ids = _customer_ids(leak)
    assert ids
    prometheus = require_binary("prometheus")
    with servers.victoria_metrics(require_binary("victoria-metrics"), tmp_path) as store, \
            exporter(_exposed(leak)) as target:
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps(_config(_job(name, leak, target), store)))
        port = servers.free_port()
        args = [prometheus, "--agent", f"--config.file={config}",
                f"--storage.agent.path={tmp_path / 'agent'}", f"--web.listen-address=127.0.0.1:{port}"]
        with servers.running("prometheus", args, port, tmp_path, ready_path="/-/ready"):
            found = _wait_for_leak(store, label, ids)
    assert found, f"{name}: Prometheus stored no series with {label} in {ids}"
    if path_kind == "report series":
        assert any(s["__name__"] == "up" for s in found), found


@pytest.mark.binary
@pytest.mark.parametrize("name, path_kind, label", CASES)
def test_scrape_job_witness_leaks_through_real_vmagent(tmp_path, name, path_kind, label):
    leak = _witness(name, path_kind, label, "vmagent")
    ids = _customer_ids(leak)
    vmagent = require_binary("vmagent")
    with servers.victoria_metrics(require_binary("victoria-metrics"), tmp_path) as store, \
            exporter(_exposed(leak)) as target:
        config = tmp_path / "promscrape.yml"
        scrape_only = {k: v for k, v in _config(_job(name, leak, target), store).items() if k != "remote_write"}
        config.write_text(json.dumps(scrape_only))
        port = servers.free_port()
        args = [vmagent, f"-httpListenAddr=127.0.0.1:{port}", f"-promscrape.config={config}",
                f"-remoteWrite.url={store.url}/api/v1/write", f"-remoteWrite.tmpDataPath={tmp_path / 'vmagent-data'}",
                "-remoteWrite.flushInterval=100ms", "-loggerLevel=ERROR"]
        with servers.running("vmagent", args, port, tmp_path):
            found = _wait_for_leak(store, label, ids)
    assert found, f"{name}: vmagent stored no series with {label} in {ids}"
    if path_kind == "report series":
        assert any(s["__name__"] == "up" for s in found), found
