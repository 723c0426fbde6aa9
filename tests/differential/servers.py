"""Start the real Debian binaries on loopback for differential tests, and always stop them.

Each server gets a free 127.0.0.1 port and its own temporary data directory; readiness and
every later wait are bounded, and the process is killed on exit even when a test fails.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from fleet.loopback import STARTUP_TIMEOUT, Server, free_port  # noqa: F401 - this module's API


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0) -> bytes:
    request = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def metric_sum(base_url: str, name: str, **match: str) -> float:
    """Sum of a counter on a VictoriaMetrics-style /metrics page over series matching `match`."""
    total = 0.0
    for line in http("GET", base_url + "/metrics").decode().splitlines():
        if not line.startswith(name) or line[len(name):len(name) + 1] not in ("{", " "):
            continue
        labels, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in labels for k, v in match.items()):
            total += float(value)
    return total


@contextlib.contextmanager
def running(name: str, args: list[str], port: int, workdir: Path, ready_path: str = "/health") -> Iterator[Server]:
    server = Server(name, args, port, workdir / f"{name}.log")
    try:
        server.wait_ready(ready_path)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def victoria_metrics(binary: str, workdir: Path) -> Iterator[Server]:
    """Single-node VictoriaMetrics storing into `workdir`."""
    port = free_port()
    args = [binary, f"-storageDataPath={workdir / 'vm-data'}", f"-httpListenAddr=127.0.0.1:{port}",
            "-loggerLevel=ERROR", "-search.latencyOffset=0s", "-search.cacheTimestampOffset=0s",
            "-retentionPeriod=100y"]
    with running("victoria-metrics", args, port, workdir) as server:
        yield server


@contextlib.contextmanager
def vmagent(binary: str, workdir: Path, remote_write: list[tuple[str, Path | None]],
            global_config: Path | None = None) -> Iterator[Server]:
    """vmagent with one -remoteWrite.url per entry, each with its optional urlRelabelConfig."""
    port = free_port()
    args = [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-remoteWrite.tmpDataPath={workdir / 'vmagent-data'}",
            "-remoteWrite.flushInterval=100ms", "-loggerLevel=ERROR", "-remoteWrite.queues=1"]
    if global_config is not None:
        args.append(f"-remoteWrite.relabelConfig={global_config}")
    for url, config in remote_write:
        args.append(f"-remoteWrite.url={url}")
        args.append(f"-remoteWrite.urlRelabelConfig={config or ''}")
    with running("vmagent", args, port, workdir) as server:
        yield server


def import_json_lines(agent: Server, rows: list[dict]) -> None:
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    http("POST", agent.url + "/api/v1/import", body, timeout=30)


def export(store: Server, selector: str) -> list[dict]:
    query = urllib.parse.urlencode({"match[]": selector, "start": "0"})
    text = http("GET", f"{store.url}/api/v1/export?{query}", timeout=30).decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def tempdir(prefix: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=prefix)
