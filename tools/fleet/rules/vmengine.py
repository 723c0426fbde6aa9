"""Run a rule unit test on the real VictoriaMetrics and vmalert the regions run.

promtool evaluates with Prometheus' engine; the regions evaluate the customer recording rules
with vmalert against VictoriaMetrics (MetricsQL), whose rollups differ (`increase` of a series
that starts inside the window, `rate` without extrapolation, ...). So each test group is
replayed on the pinned builds (tools/upstream.lock):

1. a loopback victoria-metrics with its own data folder, the region's query-relevant flags;
2. the group's `input_series` written through remote write (staleness markers included) at
   BASE + i * interval (promtool's t=0 is BASE: VictoriaMetrics keeps no samples from 1970);
3. `vmalert -replay.timeFrom/-replay.timeTo` over the rule groups, in runs with a forced flush
   of the store in between, so a rule that reads an earlier rule's series sees all of its
   results (what `-replay.rulesDelay` does with a sleep): the results of one run per rule, in
   as few runs as the rules' reads allow (`replay_batches`);
4. each `promql_expr_test` as an instant query at BASE + eval_time with `step` = the interval of
   the group that records the selected series: VictoriaMetrics' lookbehind for raw samples, so
   the query sees that group's result *of this evaluation*, as promtool does, and not an older
   one.

Replay evaluates with range queries where a live vmalert sends instant queries; both go
through the same rollup code. Chained rules see the same evaluation's results here, while live
vmalert sees an earlier one (base/rules/README.md): values are compared, the lag is the
`rules-ratio-inputs` check's business.
"""
from __future__ import annotations

import contextlib
import json
import math
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..loopback import STARTUP_TIMEOUT, Server, free_port
from . import promql
from .loader import Group, Rule
from .render import rules_text
from .vmseries import Series, snappy_literal, write_request

BASE_SECONDS = 1_767_225_600  # 2026-01-01T00:00:00Z: promtool's t=0 (aligned to every interval)
# Flags of the region's victoria-metrics that change what a query returns (the others are paths,
# addresses, retention: replaced by the loopback instance's own).
QUERY_FLAGS = ("-dedup.minScrapeInterval", "-search.")


class EngineError(RuntimeError):
    """The store or vmalert failed (not a difference in results)."""


def _http(url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 30.0) -> bytes:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise EngineError(f"{url.split('?')[0]}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc


class Store(Server):
    """A running loopback victoria-metrics."""

    def __init__(self, binary: str, workdir: Path, flags: list[str]):
        port = free_port()
        super().__init__("victoria-metrics", [
            binary, f"-storageDataPath={workdir / 'data'}", f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y", "-loggerLevel=ERROR", "-search.disableCache",
            "-search.latencyOffset=0s", *flags], port, workdir / "victoria-metrics.log")

    def wait_ready(self, path: str = "/health", timeout: float = STARTUP_TIMEOUT) -> None:
        """As Server's, failing with a one-line EngineError (it becomes a finding's message)."""
        try:
            super().wait_ready(path, timeout)
        except (RuntimeError, TimeoutError) as exc:
            first, *log = str(exc).splitlines()
            raise EngineError(" | ".join([first, *log[-5:]])) from None

    def write(self, series: list[Series]) -> None:
        if series:
            _http(self.url + "/api/v1/write", snappy_literal(write_request(series)),
                  {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                   "X-Prometheus-Remote-Write-Version": "0.1.0"})
        self.flush()

    def flush(self) -> None:
        """Make everything written so far searchable (it is buffered for up to a few seconds)."""
        _http(self.url + "/internal/force_flush")

    def instant(self, expr: str, at_seconds: float, step_seconds: float) -> list[tuple[dict[str, str], float]]:
        query = urllib.parse.urlencode({"query": expr, "time": f"{at_seconds:.3f}", "step": f"{step_seconds:g}s"})
        doc = json.loads(_http(f"{self.url}/api/v1/query?{query}"))
        data = doc.get("data") or {}
        if data.get("resultType") == "scalar":
            return [({}, float(data["result"][1]))]
        return [(dict(item["metric"]), float(item["value"][1])) for item in data.get("result") or []]



@contextlib.contextmanager
def store(binary: str, flags: list[str]) -> Iterator[Store]:
    with tempfile.TemporaryDirectory(prefix="fleet-vm-") as tmp:
        running = Store(binary, Path(tmp), flags)
        try:
            running.wait_ready()
            yield running
        finally:
            running.stop()


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Replay:
    """How vmalert replays rule groups into a store."""

    vmalert: str
    evaluation_interval: str = "1m"

    def run(self, target: Store, groups: list[Group], start: float, end: float) -> None:
        """Every rule of every group evaluated at its group's interval over (start, end], with
        the results of one vmalert run per rule in order (a rule sees every earlier rule's
        series, no later one's), in as few runs as that allows (`replay_batches`); the store
        is flushed after each run, for the next."""
        with tempfile.TemporaryDirectory(prefix="fleet-vmalert-") as tmp:
            for i, batch in enumerate(replay_batches(groups)):
                path = Path(tmp) / f"{i:03d}.yaml"
                path.write_text(rules_text(batch, [g.file for g in batch]), encoding="utf-8")
                self._replay(target, path, start, end, ", ".join(r.name for g in batch for r in g.rules))
                target.flush()

    def _replay(self, target: Store, path: Path, start: float, end: float, name: str) -> None:
        args = [self.vmalert, f"-rule={path}", f"-datasource.url={target.url}", f"-remoteWrite.url={target.url}",
                f"-replay.timeFrom={_rfc3339(start)}", f"-replay.timeTo={_rfc3339(end)}",
                f"-evaluationInterval={self.evaluation_interval}", "-replay.disableProgressBar",
                "-replay.rulesDelay=0", "-replay.ruleRetryAttempts=1", "-remoteWrite.flushInterval=50ms",
                f"-httpListenAddr=127.0.0.1:{free_port()}", "-loggerLevel=ERROR"]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise EngineError(f"vmalert replay of {name!r} failed ({proc.returncode}): "
                              f"{(proc.stdout + proc.stderr).strip()[-600:]}")


#: What an alerting rule writes through remote write when replayed.
ALERT_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE"})


def _writes(rule: Rule) -> frozenset[str]:
    return ALERT_SERIES if rule.kind == "alert" else frozenset({rule.name})


def _reads(rule: Rule) -> frozenset[str] | None:
    """The metric names `rule` reads; None when unknown (unparsable, or a selector without a
    fixed name such as `{__name__=~"..."}`)."""
    try:
        uses = promql.selectors(promql.parse(str(rule.data.get("expr", ""))))
    except ValueError:
        return None
    names = [u.name for u in uses]
    return None if None in names else frozenset(n for n in names if n is not None)


def replay_batches(groups: list[Group]) -> list[list[Group]]:
    """The rules of `groups` split into vmalert runs that give what one run per rule, in order,
    gives: a rule runs after every earlier rule whose series it reads (it must see them) and
    after every earlier rule that reads its own series (they must not see it); so no rule of a
    run reads another's. A rule whose reads are unknown runs after all earlier ones, and all
    later ones after it. Each run keeps the rules' groups (interval, labels) and a group name
    once per file, as vmalert requires."""
    flat = [(gi, rule) for gi, group in enumerate(groups) for rule in group.rules]
    writes = [_writes(rule) for _, rule in flat]
    reads = [_reads(rule) for _, rule in flat]
    levels: list[int] = []
    for i in range(len(flat)):
        level = 0
        for j in range(i):
            if reads[i] is None or reads[j] is None or reads[i] & writes[j] or reads[j] & writes[i]:
                level = max(level, levels[j] + 1)
        levels.append(level)
    runs: list[list[Group]] = []
    for level in sorted(set(levels)):
        by_group: dict[int, list[Rule]] = {}
        for (gi, rule), rule_level in zip(flat, levels):
            if rule_level == level:
                by_group.setdefault(gi, []).append(rule)
        run: list[Group] = []
        for gi, rules in by_group.items():
            group = groups[gi]
            if any(g.name == group.name for g in run):
                runs.append(run)
                run = []
            run.append(Group(group.name, group.settings, rules, group.source, group.file))
        runs.append(run)
    return runs


def same_value(expected: float, got: float) -> bool:
    """promtool's comparison: NaN equals NaN, otherwise equal within a relative 1e-6."""
    if math.isnan(expected) or math.isnan(got):
        return math.isnan(expected) and math.isnan(got)
    return math.isclose(expected, got, rel_tol=1e-6, abs_tol=1e-12)
