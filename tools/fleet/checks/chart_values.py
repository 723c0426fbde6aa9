"""Every Helm values key we set exists in the pinned chart's values.yaml (Helm ignores typos).

Free-form maps are exempt: where the chart's default is an empty map/list or null, and the
paths a component declares in `freeFormValues` (e.g. vmagent's whole scrape `config`).
Findings point at the layer (base/overlay/region/cluster file and line) that set the key.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

from .. import yamlio
from ..cache import parsed_once
from ..errors import Finding, Severity, SourceRef
from ..model import Component
from ..render.wiring import wired_values
from . import CheckContext

NAME = "chart-values"
DESCRIPTION = "Helm values keys exist in the pinned chart's defaults"
ORDER = 40
SCOPE = "cluster"


@lru_cache(maxsize=None)
def chart_defaults(charts: Path, chart: str, version: str, cache_dir: Path | None = None) -> Any:
    """The chart's pinned values.yaml as plain data (kept parsed in `cache_dir`, see cache.parsed_once)."""
    path = charts / chart / version / "values.yaml"
    if not path.exists():
        return None
    rel = str(path)
    return parsed_once(cache_dir, yamlio.read_text(path, rel), lambda text: yamlio.plain(yamlio.load_text(text, rel)))


def defaults_cache(ctx: CheckContext) -> Path:
    return ctx.root / ".cache" / "chart-defaults"


def unknown_keys(values: Any, defaults: Any, free: set[str], path: tuple = ()) -> Iterator[tuple]:
    """Paths in `values` that the chart's defaults do not have."""
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return
    if ".".join(map(str, path)) in free:
        return
    for key, value in values.items():
        sub = path + (key,)
        if ".".join(map(str, sub)) in free:
            continue
        if key not in defaults:
            yield sub
            continue
        yield from unknown_keys(value, defaults[key], free, sub)


def _suggest(key: str, defaults: dict) -> str:
    import difflib
    close = difflib.get_close_matches(key, [str(k) for k in defaults], n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def _lookup(defaults: Any, path: tuple) -> Any:
    for part in path:
        defaults = defaults.get(part, {}) if isinstance(defaults, dict) else {}
    return defaults


def check(ctx: CheckContext) -> Iterable[Finding]:
    charts = ctx.options.get("charts")
    if charts is None:
        yield Finding(NAME, Severity.INFO, SourceRef("base/components"),
                      "no --charts folder given: Helm values keys not checked")
        return
    seen: set[tuple] = set()
    for cluster in ctx.fleet.clusters.values():
        for component in cluster.components.values():
            if component.chart is None:
                continue
            defaults = chart_defaults(charts, component.chart.name, component.chart.version, defaults_cache(ctx))
            if defaults is None:
                key = ("missing", component.chart.name, component.chart.version)
                if key not in seen:
                    seen.add(key)
                    yield Finding(NAME, Severity.WARNING, component.source_of("chart", "version") or SourceRef(""),
                                  f"no pinned defaults for chart {component.chart.name} {component.chart.version} "
                                  f"in {charts}: values keys not checked")
                continue
            yield from _component_findings(ctx, cluster, component, defaults, seen)


def _component_findings(ctx: CheckContext, cluster: Any, component: Component, defaults: Any,
                        seen: set[tuple]) -> Iterator[Finding]:
    free = set(component.merged.data.get("freeFormValues") or [])
    values = wired_values(ctx, cluster, component)
    for path in unknown_keys(values, defaults, free):
        source = component.source_of("values", *path) or SourceRef(cluster.source)
        key = (source, path)
        if key in seen:
            continue
        seen.add(key)
        parent = _lookup(defaults, path[:-1])
        hint = _suggest(str(path[-1]), parent) if isinstance(parent, dict) else ""
        yield Finding(NAME, Severity.ERROR, source,
                      f"{component.name}: values key {'.'.join(map(str, path))!r} does not exist in chart "
                      f"{component.chart.name} {component.chart.version}; Helm would ignore it silently",
                      hint=hint)
