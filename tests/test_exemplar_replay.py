"""Issue 15, class 1, against the real agent: what a remote write sends besides the relabeled
series. Prometheus 2.42 (whose remote-write queue Alloy's prometheus.remote_write wraps) scrapes
an OpenMetrics exemplar carrying a customer id and a metric family named after one; the write's
relabel rules drop `project_id` and the family's series, yet the exemplar's labels and the
family's metadata reach the wire unchanged. With `send_exemplars: false` and metadata off,
neither does. This is why the proof reports exemplar/metadata findings and the shipped Alloy
endpoint switches both off.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

from _binaries import require_binary
from differential import servers
from differential.remote_write import receiver

CUSTOMER = "p7c1a9"
EXPOSED = (
    "# TYPE http_requests counter\n"
    f'http_requests_total{{code="200"}} 1 # {{project_id="{CUSTOMER}",trace_id="4bf92f3577b34da6"}} 1.0\n'
    f"# TYPE requests_{CUSTOMER} counter\n"
    f"# HELP requests_{CUSTOMER} requests of project {CUSTOMER}\n"
    f"requests_{CUSTOMER}_total 1\n"
    "# EOF\n")
GATE = [{"action": "labeldrop", "regex": "project_id|service_id|workspace_id|label_starform_io_.+"},
        {"action": "drop", "source_labels": ["__name__"], "regex": f"requests_{CUSTOMER}.*"}]


@contextlib.contextmanager
def openmetrics_exporter() -> Iterator[str]:
    payload = EXPOSED.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self.send_response(200)
            self.send_header("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _run(tmp_path, send: bool):
    prometheus = require_binary("prometheus")
    with openmetrics_exporter() as target, receiver() as (url, got):
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [{"job_name": "shuttle", "static_configs": [{"targets": [target]}]}],
            "remote_write": [{"url": url, "send_exemplars": send, "write_relabel_configs": GATE,
                              "metadata_config": {"send": send, "send_interval": "1s"},
                              "queue_config": {"batch_send_deadline": "100ms", "min_backoff": "50ms"}}],
        }
        path = tmp_path / "prometheus.yml"
        path.write_text(json.dumps(config))
        port = servers.free_port()
        args = [prometheus, f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                "--enable-feature=exemplar-storage", f"--web.listen-address=127.0.0.1:{port}"]
        with servers.running("prometheus", args, port, tmp_path, ready_path="/-/ready"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                scraped = sum(s.get("__name__") == "http_requests_total" for s in got.series)
                if scraped >= 3 and (not send or (got.exemplars and got.metadata)):
                    break
                time.sleep(0.5)
            time.sleep(1.5)
        return got


@pytest.mark.binary
def test_exemplar_labels_and_metadata_bypass_write_relabeling(tmp_path):
    got = _run(tmp_path, send=True)
    assert got.series and all("project_id" not in s for s in got.series)       # the gate works on series
    assert not any(s.get("__name__", "").startswith(f"requests_{CUSTOMER}") for s in got.series)
    assert any(e.get("project_id") == CUSTOMER for _, e in got.exemplars), got.exemplars
    assert any(CUSTOMER in str(m.get("family")) or CUSTOMER in str(m.get("help")) for m in got.metadata), got.metadata


@pytest.mark.binary
def test_nothing_but_relabeled_series_when_switched_off(tmp_path):
    got = _run(tmp_path, send=False)
    assert sum(s.get("__name__") == "http_requests_total" for s in got.series) >= 3
    assert got.exemplars == [] and got.metadata == []
