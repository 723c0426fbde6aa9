"""End to end, the customer metrics path on real servers (the pinned builds, tools/upstream.lock).

victoria-metrics stands for the region's store, behind vmauth with the region's *rendered*
vmauth.yaml (its loopback store address pointed at the test's store); vmagent runs one cluster's
*rendered* scrape configuration, remote-write relabeling and per-URL flags (basic auth with a
password file standing for the mounted Secret), external labels and extraArgs; a loopback exporter serves
realistic Envoy, cAdvisor (kubelet proxy path), kube-state-metrics and customer-pod series. What
the test changes, and only that: each job's Kubernetes service discovery becomes a static target
carrying the `__meta_kubernetes_*` labels that discovery would give it (so every rendered
relabel rule runs), the kubelet's API-server proxy address becomes the exporter, TLS and token
files go, the scrape interval is 1 s, and retries back off at most 2 s.

Asserted: customer series arrive with their tenant labels and the cluster's external labels; the
rendered remote write has one destination, the region's store; the store is stopped (gracefully)
for 30 s mid-run and, once it is back, holds exactly one sample per successful scrape of every
series (vmagent's disk queue), counted against the exporter's own count; then vmalert replays the
region's *rendered* recording rules over the stored range and produces per-project results.
"""
from __future__ import annotations

import copy
import glob
import http.server
import json
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from _binaries import require_binary
from conftest import REPO
from differential import servers

pytestmark = [pytest.mark.binary, pytest.mark.e2e]

CLUSTER = "nyc3-prod-01"
REGION = "nyc3"
OUTAGE_SECONDS = 30
TENANT = {"project_id": "acme", "service_id": "api", "workspace_id": "ws-1"}
POD = {"namespace": "p-acme", "pod": "api-0"}
NODE = "node-1"
CADVISOR_PATH = f"/api/v1/nodes/{NODE}/proxy/metrics/cadvisor"
#: every series the store must hold, and the exporter path it is scraped from (one sample a scrape)
PATH_OF = {"envoy_cluster_upstream_rq_xx": "/stats/prometheus", "container_cpu_usage_seconds_total": CADVISOR_PATH,
           "container_memory_working_set_bytes": CADVISOR_PATH, "kube_pod_labels": "/metrics",
           "kube_pod_container_status_restarts_total": "/metrics", "app_requests_total": "/custom"}
SELECTOR = '{__name__!~"scrape_.*|up"}'


class Exporter:
    """One loopback HTTP server for every job; counts successful scrapes per path."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.frozen = False
        self._lock = threading.Lock()
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path = urllib.parse.urlparse(self.path).path
                with exporter._lock:
                    body = None if exporter.frozen else exporter.page(path)
                    if body is not None:
                        exporter.hits[path] = exporter.hits.get(path, 0) + 1
                if body is None:
                    self.send_response(404 if not exporter.frozen else 503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, path: str) -> str | None:
        n = self.hits.get(path, 0) + 1  # counters grow with every scrape
        pod = 'namespace="{namespace}",pod="{pod}"'.format(**POD)
        if path == "/stats/prometheus":  # Envoy
            return (f'envoy_cluster_upstream_rq_xx{{envoy_cluster_name="{POD["namespace"]}/api/8080",'
                    f'envoy_response_code_class="2"}} {10 * n}\n')
        if path == CADVISOR_PATH:
            return (f'container_cpu_usage_seconds_total{{{pod},container="api",id="/kubepods/x",image="app:1"}} {0.5 * n}\n'
                    f'container_memory_working_set_bytes{{{pod},container="api",id="/kubepods/x"}} 1048576\n'
                    f'container_fs_usage_bytes{{{pod},container="api"}} 1\n')  # not kept by the job
        if path == "/metrics":  # kube-state-metrics (honor_labels: its own labels win)
            labels = ",".join(f'label_starform_io_{k.removesuffix("_id")}_id="{v}"' for k, v in TENANT.items())
            return (f'kube_pod_labels{{{pod},{labels}}} 1\n'
                    f'kube_pod_container_status_restarts_total{{{pod},container="api"}} 0\n')
        if path == "/custom":  # the customer's own pod
            return f'app_requests_total{{route="/"}} {n}\n'
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _meta(exporter: Exporter) -> dict[str, dict[str, str]]:
    """Per rendered job: the labels its Kubernetes discovery would give the exporter's target."""
    host, port = exporter.address.split(":")
    return {
        "envoy": {"__meta_kubernetes_pod_label_app_kubernetes_io_component": "proxy",
                  # Envoy Gateway labels each proxy with the Gateway it serves (the shared one)
                  "__meta_kubernetes_pod_label_gateway_envoyproxy_io_owning_gateway_namespace": "envoy-gateway-system",
                  "__meta_kubernetes_pod_label_gateway_envoyproxy_io_owning_gateway_name": "starform",
                  "__meta_kubernetes_pod_container_port_name": "metrics",
                  "__meta_kubernetes_namespace": "envoy-gateway-system", "__meta_kubernetes_pod_name": "envoy-0"},
        "kubelet-cadvisor": {"__meta_kubernetes_node_name": NODE},
        "kube-state-metrics": {"__meta_kubernetes_service_label_app_kubernetes_io_name": "kube-state-metrics",
                               "__meta_kubernetes_endpointslice_port_name": "http"},
        "customer-pods": {"__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                          "__meta_kubernetes_pod_annotation_prometheus_io_path": "/custom",
                          "__meta_kubernetes_pod_annotation_prometheus_io_port": port,
                          "__meta_kubernetes_pod_ip": host,
                          "__meta_kubernetes_namespace": POD["namespace"], "__meta_kubernetes_pod_name": POD["pod"],
                          **{f"__meta_kubernetes_pod_label_starform_io_{k.removesuffix('_id')}_id": v
                             for k, v in TENANT.items()}},
    }


def vmagent_values(rendered: Path) -> dict:
    path = rendered / "rendered/clusters" / CLUSTER / "stages/03-telemetry/vmagent.yaml"
    (release,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "HelmRelease"]
    return release["spec"]["values"]


def loopback_scrape_config(config: dict, exporter: Exporter) -> dict:
    """The rendered scrape config with discovery replaced by static targets (module docstring)."""
    out = copy.deepcopy(config)
    meta = _meta(exporter)
    assert {job["job_name"] for job in out["scrape_configs"]} == set(meta), "a new job needs its target labels here"
    out["global"]["scrape_interval"] = "1s"
    for job in out["scrape_configs"]:
        job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": [exporter.address], "labels": meta[job["job_name"]]}]
        for key in ("bearer_token_file", "tls_config"):
            job.pop(key, None)
        job["scheme"] = "http"
        for rule in job.get("relabel_configs") or []:
            if rule.get("replacement") == "kubernetes.default.svc:443":
                rule["replacement"] = exporter.address
    return out


def _flags(extra_args: dict) -> list[str]:
    return [f"-{k}" if v is True else f"-{k}={v}" for k, v in sorted(extra_args.items()) if v is not None]


def _samples(store: servers.Server, selector: str) -> list[dict]:
    servers.http("GET", store.url + "/internal/force_flush")
    return servers.export(store, selector)


def _restart_store(binary: str, workdir: Path, port: int) -> servers.Server:
    args = [binary, f"-storageDataPath={workdir / 'vm-data'}", f"-httpListenAddr=127.0.0.1:{port}",
            "-loggerLevel=ERROR", "-search.latencyOffset=0s", "-search.cacheTimestampOffset=0s", "-retentionPeriod=100y"]
    server = servers.Server("victoria-metrics", args, port, workdir / f"victoria-metrics-{time.monotonic_ns()}.log")
    server.wait_ready()
    return server


def _graceful_stop(server: servers.Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=30)
    server.stop()


def _remote_write_flags(remote: dict, password_file: Path) -> list[str]:
    """The per-URL flags the chart makes of a remoteWrite item's scalar keys; the password file
    is the test's copy of the Secret the pod mounts."""
    return [f"-remoteWrite.{k}={password_file if k == 'basicAuth.passwordFile' else v}"
            for k, v in sorted(remote.items()) if k not in ("url", "urlRelabelConfig")]


def _start_vmauth(binary: str, rendered: Path, store_url: str, workdir: Path) -> servers.Server:
    """The region's rendered vmauth.yaml with its loopback store address pointed at `store_url`."""
    text = (rendered / "rendered/regions" / REGION / "victoria-metrics/vmauth.yaml").read_text()
    assert "http://127.0.0.1:8428" in text and "unauthorized_user" not in text
    config = workdir / "vmauth.yaml"
    config.write_text(text.replace("http://127.0.0.1:8428", store_url))
    port = servers.free_port()
    server = servers.Server("vmauth", [binary, f"-auth.config={config}", f"-httpListenAddr=127.0.0.1:{port}",
                                       "-loggerLevel=ERROR"], port, workdir / "vmauth.log")
    server.wait_ready()
    return server


def test_customer_metrics_reach_the_region_store_through_an_outage(rendered_root, tmp_path, monkeypatch):
    vm_bin, vmagent_bin, vmalert_bin, vmauth_bin = (require_binary(n) for n in
                                                    ("victoria-metrics", "vmagent", "vmalert", "vmauth"))
    values = vmagent_values(rendered_root)
    region = yaml.safe_load((REPO / "regions" / REGION / "region.yaml").read_text())
    (remote,) = values["remoteWrite"]  # the customer path has one destination: the region's store
    assert remote["url"].startswith(region["endpoints"]["victoriaMetrics"]["url"].rstrip("/") + "/"), remote["url"]
    exporter = Exporter()
    port = servers.free_port()
    store = _restart_store(vm_bin, tmp_path, port)
    password = "p" * 24
    monkeypatch.setenv("VMAUTH_VMAGENT_PASSWORD", password)  # what vmauth.env gives the unit
    monkeypatch.setenv("VMAUTH_CONTROL_PLANE_PASSWORD", "c" * 24)
    password_file = tmp_path / "vmagent-remote-write-password"
    password_file.write_text(password)
    agent = proxy = None
    try:
        proxy = _start_vmauth(vmauth_bin, rendered_root, store.url, tmp_path)
        scrape = tmp_path / "scrape.yml"
        scrape.write_text(yaml.safe_dump(loopback_scrape_config(values["config"], exporter)))
        relabel = tmp_path / "remote-write-relabel.yml"
        relabel.write_text(yaml.safe_dump(remote.get("urlRelabelConfig") or []))
        agent_port = servers.free_port()
        args = [vmagent_bin, f"-httpListenAddr=127.0.0.1:{agent_port}", f"-promscrape.config={scrape}",
                f"-remoteWrite.url={proxy.url}{urllib.parse.urlsplit(remote['url']).path}",
                f"-remoteWrite.urlRelabelConfig={relabel}", *_remote_write_flags(remote, password_file),
                f"-remoteWrite.tmpDataPath={tmp_path / 'queue'}", "-remoteWrite.retryMaxInterval=2s",
                "-promscrape.noStaleMarkers", "-loggerLevel=ERROR", *_flags(values.get("extraArgs") or {})]
        agent = servers.Server("vmagent", args, agent_port, tmp_path / "vmagent.log")
        agent.wait_ready()
        start = time.time()
        time.sleep(5)
        _graceful_stop(store)
        time.sleep(OUTAGE_SECONDS)
        store = _restart_store(vm_bin, tmp_path, port)
        time.sleep(3)
        with exporter._lock:
            exporter.frozen = True  # no scrape succeeds from here on: the count is final
            hits = dict(exporter.hits)
        deadline = time.monotonic() + 60  # the queue drains (in-memory blocks flush every second)
        while time.monotonic() < deadline:
            stored = {s["metric"]["__name__"]: len(s["values"]) for s in _samples(store, SELECTOR)}
            if set(stored) == set(PATH_OF) and all(stored[n] >= hits.get(p, 0) for n, p in PATH_OF.items()):
                break
            time.sleep(1)
        time.sleep(2)  # anything extra (a duplicate) would show up now
        series = _samples(store, SELECTOR)
    finally:
        for server in (agent, proxy):
            if server is not None:
                server.stop()
        exporter.close()

    by_name = {s["metric"]["__name__"]: s for s in series}
    assert len(by_name) == len(series) and set(by_name) == set(PATH_OF), sorted(by_name)
    external = {"cluster_id": CLUSTER, "region": REGION}
    for s in series:
        assert s["metric"].items() >= external.items(), s["metric"]
    customer = by_name["app_requests_total"]["metric"]
    assert customer.items() >= {**TENANT, **POD, "job": "customer-pods"}.items(), customer
    assert "id" not in by_name["container_cpu_usage_seconds_total"]["metric"]  # remote-write labeldrop
    # KSM's series carry the customer pod's namespace/pod (honor_labels) and not KSM's own
    # instance, so they stay one series when KSM is rescheduled (issue 20); other jobs keep theirs
    for name in ("kube_pod_labels", "kube_pod_container_status_restarts_total"):
        assert "instance" not in by_name[name]["metric"], by_name[name]["metric"]
    assert "instance" in by_name["app_requests_total"]["metric"]
    missing = {name: hits[PATH_OF[name]] - len(s["values"]) for name, s in by_name.items()
               if len(s["values"]) != hits[PATH_OF[name]]}
    assert hits["/custom"] > OUTAGE_SECONDS  # scraped all through the outage
    assert not missing, f"samples missing (scrapes - stored) per series: {missing}"

    # The region's recording rules, as rendered, replayed over what the store holds: one vmalert
    # run per file, in order (a later file reads what an earlier one recorded), each group
    # evaluated every 5 s instead of every minute so the ~45 s of data hold several evaluations.
    try:
        for rule_file in sorted(glob.glob(str(rendered_root / "rendered/regions" / REGION / "vmalert/rules/*.yaml"))):
            doc = yaml.safe_load(Path(rule_file).read_text())
            for group in doc["groups"]:
                group["interval"] = "5s"
            fast = tmp_path / Path(rule_file).name
            fast.write_text(yaml.safe_dump(doc, sort_keys=False))
            replay = subprocess.run(
                [vmalert_bin, f"-rule={fast}", f"-datasource.url={store.url}", f"-remoteWrite.url={store.url}",
                 f"-replay.timeFrom={_rfc3339(start)}", f"-replay.timeTo={_rfc3339(time.time())}",
                 # chained rules in a group: each waits until the one before is stored and searchable
                 "-replay.rulesDelay=1500ms", "-remoteWrite.flushInterval=200ms", "-loggerLevel=ERROR"],
                capture_output=True, text=True, timeout=180)
            assert replay.returncode == 0, replay.stdout[-1000:] + replay.stderr[-2000:]
            servers.http("GET", store.url + "/internal/force_flush")
        results = _samples(store, '{__name__=~"project:.+"}')
        recorded = sorted({r["metric"]["__name__"] for r in _samples(store, '{__name__=~".+:.+"}')})
        assert results, f"no per-project recording rule result; recorded: {recorded}; last replay: {replay.stdout[-1500:]}"
        for result in results:
            assert result["metric"].items() >= {"project_id": "acme", "workspace_id": "ws-1", "region": REGION}.items()
        names = {r["metric"]["__name__"] for r in results}
        assert {"project:container_cpu_usage_seconds:rate5m", "project:container_memory_working_set_bytes:sum"} <= names
    finally:
        store.stop()


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def test_loopback_config_keeps_every_rendered_relabel_rule(rendered_root):
    """The harness only swaps discovery, TLS and the proxy address: the rules are the rendered ones."""
    values = vmagent_values(rendered_root)
    exporter = Exporter()
    try:
        changed = loopback_scrape_config(values["config"], exporter)
    finally:
        exporter.close()
    for before, after in zip(values["config"]["scrape_configs"], changed["scrape_configs"]):
        assert after.get("metric_relabel_configs") == before.get("metric_relabel_configs")
        rules = [json.dumps(r, sort_keys=True) for r in before.get("relabel_configs") or []]
        kept = [json.dumps(r, sort_keys=True) for r in after.get("relabel_configs") or []]
        assert sum(a != b for a, b in zip(rules, kept)) == (before["job_name"] == "kubelet-cadvisor")
