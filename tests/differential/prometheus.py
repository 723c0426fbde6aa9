"""Replay relabel cases through real Prometheus (agent mode) for Prometheus semantics: the pinned
build of tools/upstream.lock, the release Grafana Alloy vendors.

A tiny exporter thread serves every case's series (text format, marker `zz_case=<i>`);
Prometheus scrapes it every second and remote-writes to a fresh VictoriaMetrics through one
`remote_write` entry per case whose `write_relabel_configs` are the same wrapped rule list as
for vmagent (keep own case, drop the marker, the case's rules, add `zz_out`). The scrape adds
`job` and `instance`; the engine side gets them too. The store is polled (bounded) until it
holds what the engine predicts, then read once more after another scrape, so late extra series
still show up as a disagreement.

The scrape is modelled, not assumed away: by default the series is scraped like any target's
(`honor_labels: false`, the target labels `job`, `instance` and optional `static_configs`
labels win and a shadowed sample value moves to `exported_<name>`), which the engine side
reproduces with the proof's `scraped_series`. `Scrape(honor_labels=True)` scrapes with
honor_labels; `Scrape(verbatim=True)` makes the store receive the exposed series exactly
(honor_labels, and metric_relabel_configs delete the `job`/`instance` the scrape added), e.g.
to replay a proof witness as written; there a series without `__name__` is exposed as
`zz_noname` and the name is deleted by the first write relabel rule.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet import upstream
from fleet.relabel.engine import apply, rule_from_mapping
from fleet.relabel.proof import TargetChain, scraped_series

from . import servers
from .vmagent import CASE_LABEL, OUT_LABEL, Case, Series, _canonical, _smaller, render_case, wrapped_rules

JOB = "relabel-diff"
WAIT = 30.0
NONAME = "zz_noname"
#: first write relabel rule of a case with a nameless series: delete the placeholder name
_UNNAME = {"source_labels": ["__name__"], "regex": NONAME, "target_label": "__name__", "replacement": ""}


@dataclass(frozen=True)
class Scrape:
    """How Prometheus scrapes the exporter (see the module docstring)."""

    honor_labels: bool = False
    #: static_configs `labels` of the target (besides `job` and `instance`)
    labels: Mapping[str, str] = field(default_factory=dict)
    verbatim: bool = False
    #: global external_labels: the queue adds them (where absent) before write_relabel_configs
    external_labels: Mapping[str, str] = field(default_factory=dict)
    #: Prometheus 3's label name validation scheme (global `metric_name_validation_scheme`), which
    #: relabeling also uses: "legacy" skips a replace whose expanded target_label is no legacy
    #: name, as the engine and Alloy's remote_write write_relabel_config do; "utf8" (Prometheus 3's
    #: default, and what Alloy's prometheus.relabel component uses) writes any non-empty name.
    validation_scheme: str = "legacy"


def prometheus_rules(index: int, case: Case) -> list[dict]:
    """The write_relabel_configs of case `index`: `wrapped_rules`, plus `_UNNAME` if needed."""
    unname = [_UNNAME] if any("__name__" not in s for s in case.series) else []
    return wrapped_rules(index, unname + [dict(r) for r in case.rules])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(cases: Sequence[Case], offset: int = 0) -> str:
    """All cases' series in the Prometheus text format (a nameless one is named `zz_noname`)."""
    lines = []
    for index, case in enumerate(cases, offset):
        for series in case.series:
            labels = {**series, CASE_LABEL: str(index)}
            name = labels.pop("__name__", NONAME)
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


def engine_case(index: int, case: Case, target: str, scrape: Scrape = Scrape()) -> list[Series]:
    """The engine's (flavor="prometheus") prediction for one case scraped from `target`."""
    rules = [rule_from_mapping(r, flavor="prometheus") for r in prometheus_rules(index, case)]
    chain = TargetChain([], honor_labels=scrape.honor_labels)
    target_labels = {"job": JOB, "instance": target, **scrape.labels}
    outputs = []
    for series in case.series:
        sample = {**series, CASE_LABEL: str(index)}
        scraped = sample if scrape.verbatim else scraped_series(chain, target_labels, sample)
        scraped = {**{k: v for k, v in scrape.external_labels.items() if v}, **{k: v for k, v in scraped.items() if v}}
        out = apply(rules, scraped, flavor="prometheus")
        if out is not None:
            out.pop(OUT_LABEL, None)
            outputs.append(as_stored(out))
    return _canonical(outputs)


def as_stored(series: Series) -> Series:
    """VictoriaMetrics reads a label with an empty name as the metric name (and a real
    `__name__` wins over it): what the store can show of a series Prometheus sent."""
    if "" not in series:
        return series
    out = {k: v for k, v in series.items() if k != ""}
    out.setdefault("__name__", series[""])
    return out


def _scrape_config(target: str, scrape: Scrape) -> dict:
    job: dict = {"job_name": JOB, "honor_labels": scrape.honor_labels or scrape.verbatim,
                 "static_configs": [{"targets": [target], "labels": dict(scrape.labels)}]}
    if scrape.verbatim:  # honor_labels keeps the exposed ones; delete what the scrape added
        job["metric_relabel_configs"] = [
            {"source_labels": [name], "regex": re.escape(value), "target_label": name, "replacement": ""}
            for name, value in (("job", JOB), ("instance", target))]
    return job


def _config(cases: Sequence[Case], offset: int, target: str, store: servers.Server, scrape: Scrape) -> dict:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms",
                   "metric_name_validation_scheme": scrape.validation_scheme,
                   **({"external_labels": dict(scrape.external_labels)} if scrape.external_labels else {})},
        "scrape_configs": [_scrape_config(target, scrape)],
        "remote_write": [{"url": store.url + "/api/v1/write", "name": f"case-{offset + i}",
                          "queue_config": {"batch_send_deadline": "100ms", "min_backoff": "50ms"},
                          "write_relabel_configs": prometheus_rules(offset + i, case)}
                         for i, case in enumerate(cases)],
    }


def run_cases(cases: Sequence[Case], *, prometheus_bin: str | None = None,
              victoria_metrics_bin: str | None = None, scrape: Scrape = Scrape(),
              batch_size: int = 1000) -> tuple[list[list[Series]], list[list[Series]]]:
    """Run the cases through Prometheus; returns (engine predictions, what the store holds).

    One VictoriaMetrics; one Prometheus (one remote_write per case) per `batch_size` cases.
    """
    prometheus_bin = prometheus_bin or upstream.binary("prometheus")
    victoria_metrics_bin = victoria_metrics_bin or upstream.binary("victoria-metrics")
    expected: list[list[Series]] = []
    actual: list[list[Series]] = []
    with servers.tempdir("relabel-prom-") as tmp:
        base = Path(tmp)
        with servers.victoria_metrics(victoria_metrics_bin, base) as store:
            for offset in range(0, len(cases), batch_size):
                batch = list(cases[offset:offset + batch_size])
                want, got = _run_batch(batch, offset, store, scrape, prometheus_bin, base / f"batch-{offset}")
                expected += want
                actual += got
    return expected, actual


def _run_batch(batch: list[Case], offset: int, store: servers.Server, scrape: Scrape, prometheus_bin: str,
               base: Path) -> tuple[list[list[Series]], list[list[Series]]]:
    base.mkdir(parents=True)
    with exporter(exposition(batch, offset)) as target:
        expected = [engine_case(offset + i, c, target, scrape) for i, c in enumerate(batch)]
        config = base / "prometheus.yml"
        config.write_text(json.dumps(_config(batch, offset, target, store, scrape)))
        port = servers.free_port()
        args = [prometheus_bin, "--agent", f"--config.file={config}",
                f"--storage.agent.path={base / 'agent'}", f"--web.listen-address=127.0.0.1:{port}"]
        with servers.running("prometheus", args, port, base, ready_path="/-/ready"):
            actual = _poll(store, offset, expected)
    return expected, actual


def render(case: Case, expected: list[Series], actual: list[Series]) -> str:
    """A disagreement, worded for Prometheus (input = the exposed series, before the scrape)."""
    return (render_case(case, expected, actual)
            .replace("rules (vmagent -remoteWrite.urlRelabelConfig)", "rules (write_relabel_configs)")
            .replace("input series:", "exposed series (scraped, then relabeled):")
            .replace("engine (flavor=vmagent): ", "engine (flavor=prometheus):")
            .replace(f"real vmagent {upstream.version('vmagent')}:  ",
                     f"real prometheus {upstream.version('prometheus')}: "))


def shrink(case: Case, rounds: int = 12, **kwargs) -> tuple[Case, list[Series], list[Series]]:
    """Greedy, batched delta-debugging of a disagreeing case against the real Prometheus."""
    current = case
    for _ in range(rounds):
        variants = [v for v in _smaller(current, "prometheus") if all("__name__" in s for s in v.series)]
        if not variants:
            break
        expected, actual = run_cases(variants, **kwargs)
        for variant, want, got in zip(variants, expected, actual):
            if want != got:
                current = variant
                break
        else:
            break
    (want,), (got,) = run_cases([current], **kwargs)
    return current, want, got


def _read(store: servers.Server, offset: int, count: int) -> list[list[Series]]:
    servers.http("GET", store.url + "/internal/force_flush")
    by_case: dict[str, list[Series]] = {}
    for item in servers.export(store, '{%s=~".+"}' % OUT_LABEL):
        metric = dict(item["metric"])
        by_case.setdefault(metric.pop(OUT_LABEL), []).append(metric)
    return [_canonical(by_case.get(str(offset + i), [])) for i in range(count)]


def _poll(store: servers.Server, offset: int, expected: list[list[Series]]) -> list[list[Series]]:
    deadline = time.monotonic() + WAIT
    actual = _read(store, offset, len(expected))
    while actual != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        actual = _read(store, offset, len(expected))
    time.sleep(2.5)  # two more scrapes: anything extra must show up now
    return _read(store, offset, len(expected))
