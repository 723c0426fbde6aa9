"""pinned-versions: every chart version and every container image the fleet runs is pinned.

A chart `version` must be one exact SemVer (Flux would resolve a range such as `^1.2` or `*` to
whatever is newest). An image must name an exact tag or a digest: not `latest`, not a moving
name (`stable`, `main`, …), not a bare major or major.minor (`v1`, `1.2`), and a string image
must carry a tag at all. Images are found under every `image` key of a component's effective
values (all layers over the pinned chart's defaults, so a chart default that floats counts too
when we run it) — except images of a switched-off part (a sibling `enabled` not true) and of
Helm test hooks (`testFramework`: Flux runs no Helm tests here) — and in a manifests component's
`image`. An empty tag is the chart's appVersion, fixed by the pinned chart version.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from ..cache import by_identity
from ..errors import Finding, Severity, SourceRef
from ..model import Cluster, Component
from . import CheckContext
from ._workloads import effective_values
from .resources import value_source

NAME = "pinned-versions"
DESCRIPTION = "Chart versions are exact SemVer; every image runs an exact tag or digest (no latest, no floating tags)"
ORDER = 49
SCOPE = "cluster"

EXACT_SEMVER = re.compile(r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
MOVING_TAGS = re.compile(r"(^|[-_.])(latest|stable|main|master|edge|nightly|dev|head|canary|release)([-_.]|$)", re.I)
MAJOR_OR_MINOR = re.compile(r"^v?[0-9]+(\.[0-9]+)?$")
SKIPPED_PARENTS = {"testFramework"}

#: Chart parts rendered only under a condition other than a sibling `enabled`: chart → {top-level
#: values key: whether the templates render it}. prometheus-node-exporter 4.56.1
#: templates/daemonset.yaml adds the `permission-fix` init container only when a fix is on.
CONDITIONAL_PARTS: dict[str, dict[str, Any]] = {
    "prometheus-node-exporter": {
        "permissionInitContainer": lambda v: bool((v.get("fixes") or {}).get("rapl") or (v.get("fixes") or {}).get("slabinfo")
                                                 or v.get("extraCommands")),
    },
}


def floating_tag(tag: str) -> str | None:
    """Why a tag floats, or None when it names one build."""
    if "@sha256:" in tag:
        return None
    if MOVING_TAGS.search(tag):
        return f"tag {tag!r} moves"
    if MAJOR_OR_MINOR.match(tag):
        return f"tag {tag!r} is a major/minor line, not a release"
    return None


def image_string_problem(image: str) -> str | None:
    """A string image reference (`repo[:tag][@digest]`); '' means the component's own default."""
    if not image or "@sha256:" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"image {image!r} has no tag (pulls latest)"
    return floating_tag(name.split(":", 1)[1])


def image_map_problem(image: dict) -> str | None:
    if image.get("digest") or image.get("sha"):
        return None
    tag = image.get("tag")
    if tag in (None, ""):
        return None  # the chart's appVersion: pinned with the chart version
    return floating_tag(str(tag))


def images(values: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, image value) of every `image` key in use."""
    if isinstance(values, dict):
        if "enabled" in values and values["enabled"] is not True and path:
            return
        for key, value in values.items():
            if key in SKIPPED_PARENTS:
                continue
            if key == "image" and isinstance(value, (str, dict)):
                yield path + (key,), value
            else:
                yield from images(value, path + (key,))
    elif isinstance(values, list):
        for i, item in enumerate(values):
            yield from images(item, path + (i,))


def images_in_use(ctx: CheckContext, cluster: Cluster, component: Component) -> list[tuple[tuple, Any]]:
    """`images()` of the component's effective values, walked once per lint run and set of
    values (licenses reads it too; clusters sharing the values share the walk)."""
    values, _ = effective_values(ctx, cluster, component)
    chart_name = component.chart.name if component.chart else None
    parts = CONDITIONAL_PARTS.get(chart_name, {}) if chart_name else {}
    return by_identity(ctx.cache, ("images-in-use", chart_name), values, lambda: [
        (path, image) for path, image in images(values)
        if not (path[0] in parts and not parts[path[0]](values.get(path[0]) or {}))])


def component_problems(ctx: CheckContext, cluster: Cluster, component: Component) -> Iterator[tuple[SourceRef, str]]:
    fallback = component.source_of() or SourceRef(cluster.source)
    if component.chart is not None and not EXACT_SEMVER.match(component.chart.version):
        yield (component.source_of("chart", "version") or fallback,
               f"{component.name}: chart version {component.chart.version!r} is not one exact SemVer version")
    if component.image is not None:
        problem = image_string_problem(component.image)
        if problem:
            yield component.source_of("image") or fallback, f"{component.name}: {problem}"
    for path, image in images_in_use(ctx, cluster, component):
        problem = image_string_problem(image) if isinstance(image, str) else image_map_problem(image)
        if problem:
            dotted = ".".join(map(str, path))
            tag_path = dotted + ("" if isinstance(image, str) else ".tag")
            source = value_source(component, tag_path) or component.source_of("chart", "version") or fallback
            yield source, f"{component.name}: values.{dotted}: {problem}"


def check(ctx: CheckContext) -> Iterable[Finding]:
    found: dict[tuple, list[str]] = {}
    for cluster in ctx.fleet.clusters.values():
        for component in cluster.components.values():
            for source, message in component_problems(ctx, cluster, component):
                found.setdefault((source, message), []).append(cluster.id)
    for (source, message), clusters in sorted(found.items()):
        yield Finding(NAME, Severity.ERROR, source, f"{message}; cluster(s): {', '.join(sorted(clusters))}",
                      details={"clusters": sorted(clusters)})
