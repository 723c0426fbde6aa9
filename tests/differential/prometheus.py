"""Replay relabel cases through real Prometheus 2.42 (agent mode) for Prometheus semantics.

A tiny exporter thread serves every case's series (text format, marker `zz_case=<i>`);
Prometheus scrapes it every second and remote-writes to a fresh VictoriaMetrics through one
`remote_write` entry per case whose `write_relabel_configs` are the same wrapped rule list as
for vmagent (keep own case, drop the marker, the case's rules, add `zz_out`). The scrape adds
`job` and `instance`; the engine side gets them too. The store is polled (bounded) until it
holds what the engine predicts, then read once more after another scrape, so late extra series
still show up as a disagreement.

Prometheus 2.42 differs from the current Prometheus/Alloy semantics the engine models in two
known places, which the cases here avoid: regexes are `^(?:re)$` (`.` does not match a
newline), and a `replace` whose result is empty deletes the *unexpanded* `target_label`.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from fleet.relabel.engine import apply, rule_from_mapping

from . import servers
from .vmagent import CASE_LABEL, OUT_LABEL, Case, Series, _canonical, wrapped_rules

JOB = "relabel-diff"
WAIT = 30.0


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(cases: Sequence[Case]) -> str:
    """All cases' series in the Prometheus text format (a name is required there)."""
    lines = []
    for index, case in enumerate(cases):
        for series in case.series:
            labels = {**series, CASE_LABEL: str(index)}
            name = labels.pop("__name__")
            body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{body}}} 1")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def exporter(text: str) -> Iterator[str]:
    """Serve `text` at http://127.0.0.1:PORT/metrics from a daemon thread; yields host:port."""
    payload = text.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def engine_case(index: int, case: Case, target: str) -> list[Series]:
    """The engine's (flavor="prometheus") prediction for one case scraped from `target`."""
    rules = [rule_from_mapping(r, flavor="prometheus") for r in wrapped_rules(index, case.rules)]
    outputs = []
    for series in case.series:
        scraped = {**series, CASE_LABEL: str(index), "job": JOB, "instance": target}
        out = apply(rules, scraped, flavor="prometheus")
        if out is not None:
            out.pop(OUT_LABEL, None)
            outputs.append(out)
    return _canonical(outputs)


def _config(cases: Sequence[Case], target: str, store: servers.Server) -> dict:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        "remote_write": [{"url": store.url + "/api/v1/write", "name": f"case-{i}",
                          "queue_config": {"batch_send_deadline": "100ms", "min_backoff": "50ms"},
                          "write_relabel_configs": wrapped_rules(i, case.rules)}
                         for i, case in enumerate(cases)],
    }


def run_cases(cases: Sequence[Case], *, prometheus_bin: str = "/usr/bin/prometheus",
              victoria_metrics_bin: str = "/usr/bin/victoria-metrics") -> tuple[list[list[Series]], list[list[Series]]]:
    """Run the cases through Prometheus; returns (engine predictions, what the store holds)."""
    with servers.tempdir("relabel-prom-") as tmp:
        base = Path(tmp)
        with servers.victoria_metrics(victoria_metrics_bin, base) as store, \
                exporter(exposition(cases)) as target:
            expected = [engine_case(i, c, target) for i, c in enumerate(cases)]
            config = base / "prometheus.yml"
            config.write_text(json.dumps(_config(cases, target, store)))
            port = servers.free_port()
            args = [prometheus_bin, "--enable-feature=agent", f"--config.file={config}",
                    f"--storage.agent.path={base / 'agent'}", f"--web.listen-address=127.0.0.1:{port}"]
            with servers.running("prometheus", args, port, base, ready_path="/-/ready"):
                actual = _poll(store, len(cases), expected)
    return expected, actual


def _read(store: servers.Server, count: int) -> list[list[Series]]:
    servers.http("GET", store.url + "/internal/force_flush")
    by_case: dict[str, list[Series]] = {}
    for item in servers.export(store, '{%s=~".+"}' % OUT_LABEL):
        metric = dict(item["metric"])
        by_case.setdefault(metric.pop(OUT_LABEL), []).append(metric)
    return [_canonical(by_case.get(str(i), [])) for i in range(count)]


def _poll(store: servers.Server, count: int, expected: list[list[Series]]) -> list[list[Series]]:
    deadline = time.monotonic() + WAIT
    actual = _read(store, count)
    while actual != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        actual = _read(store, count)
    time.sleep(2.5)  # two more scrapes: anything extra must show up now
    return _read(store, count)
