"""Real `vmagent -dryRun` on every cluster's vmagent scrape config, remote-write relabeling and
per-URL remote-write flags (a `remoteWrite` item's scalar keys, which the chart turns into
`-remoteWrite.<key>` flags: a name v1.150 does not know stops vmagent at start).

The scrape config lives inside HelmRelease values, where nothing but vmagent itself can say
whether it parses: vmagent's config parsing is strict (unknown fields are errors). In-cluster
file references (service-account token, CA) are removed first, since -dryRun opens them.
The vmagent is the pinned build of tools/upstream.lock, the release the clusters run (the
chart's image tag is held to it), so a field it rejects is one the cluster's vmagent rejects.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..cache import ResultCache, digest
from ..errors import Finding, Severity, SourceRef
from ..normalize import normalize
from ..render.wiring import wired_values
from .. import upstream, yamlio
from . import CheckContext

NAME = "vmagent-config"
DESCRIPTION = "vmagent -dryRun accepts each cluster's scrape config, remote-write relabeling and per-URL flags"
ORDER = 45
SCOPE = "cluster"
FILE_KEYS = {"bearer_token_file", "ca_file", "cert_file", "key_file", "password_file", "credentials_file"}


def _without_files(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_files(v) for k, v in node.items() if k not in FILE_KEYS}
    if isinstance(node, list):
        return [_without_files(v) for v in node]
    return node


#: Where vmagent's YAML decoder says a scrape config goes wrong ("line 67: field x not found").
_ERROR_LINE = re.compile(r"\bline (\d+): ")


def _entries(node: Any) -> list[tuple[int, Any]]:
    """(first line, key or index) of each entry of a loaded mapping or sequence, in order."""
    keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
    return [(yamlio.position(node, key)[0], key) for key in keys]


def _path_at(node: Any, line: int, path: tuple = ()) -> tuple:
    """Keys and indexes down to the deepest entry holding `line` (1-based) of the block-style
    document `node` was loaded from: the last entry starting at or before the line."""
    before = [key for start, key in _entries(node) if start <= line]
    if not before:
        return path
    child = node[before[-1]]
    inside = any(start <= line for start, _key in _entries(child))
    return _path_at(child, line, path + (before[-1],)) if inside else path + (before[-1],)


def error_path(scrape: dict, error: str) -> tuple:
    """The path inside `scrape` (as dry_run wrote it) of the line vmagent's error names; () when
    the error names no line."""
    match = _ERROR_LINE.search(error)
    if not match:
        return ()
    return _path_at(yamlio.load_text(yaml.safe_dump(scrape, sort_keys=True), "scrape.yml"), int(match.group(1)))


def url_flags(item: dict) -> dict[str, Any]:
    """A remoteWrite item's keys the chart passes as `-remoteWrite.<key>=<value>` (not the URL,
    not the lists and maps it writes to files)."""
    return {k: v for k, v in item.items() if k != "url" and not isinstance(v, (list, dict))}


def dry_run(scrape: dict, relabels: list[list], vmagent: str | None = None,
            flags: list[dict] | None = None) -> str | None:
    """None when vmagent accepts the configs (and each URL's `flags`), else its fatal message."""
    vmagent = vmagent or upstream.binary("vmagent")
    with tempfile.TemporaryDirectory(prefix="fleet-vmagent-") as tmp:
        cfg = Path(tmp) / "scrape.yml"
        cfg.write_text(yaml.safe_dump(scrape, sort_keys=True))
        args = [vmagent, "-dryRun", f"-promscrape.config={cfg}"]
        for i, rules in enumerate(relabels):
            rw = Path(tmp) / f"rw-{i}.yml"
            rw.write_text(yaml.safe_dump(rules, sort_keys=True))
            args += [f"-remoteWrite.url=http://127.0.0.1:1/api/v1/write/{i}", f"-remoteWrite.urlRelabelConfig={rw}"]
            per_url = flags[i] if flags and i < len(flags) else {}
            args += [f"-remoteWrite.{k}={v}" for k, v in sorted(per_url.items())]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    if proc.returncode == 0:
        # v1.150 skips a scrape_config it cannot parse (e.g. a broken relabel regex) with an
        # error line, and -dryRun still exits 0: the cluster's vmagent would drop that job.
        errors = [line.split("\t")[-1] for line in lines if "\terror\t" in line]
        return " ".join(errors).replace(tmp, "<tmp>").strip() or None
    start = next((i for i, line in enumerate(lines) if "\tfatal\t" in line), None)
    if start is None:
        unknown = next((line for line in lines if line.startswith("flag provided but not defined")), None)
        return unknown or f"exit code {proc.returncode}"
    message = " ".join([lines[start].split("\t")[-1]] + [line.strip() for line in lines[start + 1:]])
    return message.replace(tmp, "<tmp>").strip()


def check(ctx: CheckContext) -> Iterable[Finding]:
    try:
        vmagent = upstream.binary("vmagent")
    except upstream.MissingUpstream as exc:
        yield Finding(NAME, Severity.ERROR, SourceRef("base/components/vmagent/values.yaml"),
                      f"cannot prove the scrape configs parse: {exc}", hint="run `make setup`")
        return
    cache = ResultCache(ctx.root, "vmagent-config")
    reported: set[tuple] = set()
    for cid, cluster in sorted(ctx.fleet.clusters.items()):
        component = cluster.components.get("vmagent")
        if component is None:
            continue
        values = wired_values(ctx, cluster, component)
        config = values.get("config") or {}
        scrape = _without_files({k: v for k, v in config.items() if k in ("global", "scrape_configs")})
        relabels = [copy.deepcopy(rw.get("urlRelabelConfig") or []) for rw in values.get("remoteWrite") or []]
        flags = [url_flags(rw) for rw in values.get("remoteWrite") or []]
        key = digest("vmagent-dry-run", vmagent, normalize(json.dumps([scrape, relabels, flags], sort_keys=True), cid))
        error = cache.get_or_compute(key, lambda s=scrape, r=relabels, f=flags: dry_run(s, r, vmagent, f))
        if error:
            # at the field vmagent names (its line in the scrape.yml dry_run wrote, mapped back
            # to the layer that set it), else at the scrape configs
            path = error_path(scrape, error) or ("scrape_configs",)
            source = component.source_of("values", "config", *path) or SourceRef(cluster.source)
            if (source, error) in reported:
                continue
            reported.add((source, error))
            yield Finding(NAME, Severity.ERROR, source, f"vmagent rejects the config of cluster {cid}: {error}")
    cache.save()
