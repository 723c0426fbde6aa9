"""Every rendered/clusters/<id> folder (and each stage folder) builds with `kubectl kustomize`,
exactly as kustomize-controller will build it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

from ..cache import ResultCache, digest
from ..errors import Finding, Severity, SourceRef
from ..normalize import normalized_digest
from . import CheckContext

NAME = "kustomize-build"
DESCRIPTION = "kubectl kustomize builds every rendered cluster and stage folder"
ORDER = 30
SCOPE = "cluster"
READS = ()  # only the rendered folders


def kustomize_dirs(rendered: Path, clusters: frozenset[str] | None = None) -> list[Path]:
    """Every folder with a kustomization.yaml under rendered/clusters/ (of `clusters` only, if given)."""
    tops = [rendered / "clusters"] if clusters is None else [rendered / "clusters" / c for c in sorted(clusters)]
    return sorted(p.parent for top in tops if top.is_dir() for p in top.rglob("kustomization.yaml"))


def _folder_digest(folder: Path, root: Path, cache: dict) -> str:
    """Content key of a kustomize folder, cluster-ID-normalized (see fleet.normalize): folders of
    different clusters with the same shape build, or fail, the same way. Each file's key is read
    once per lint run (`normalized_digest`; yamllint shares it, and a cluster folder holds its
    stage folders)."""
    parts: list[tuple[str, str]] = []
    prefix, top = os.path.join(str(folder), ""), len(str(root)) + 1
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = full[top:].replace(os.sep, "/")
            parts.append((full[len(prefix):].replace(os.sep, "/"), normalized_digest(cache, root, rel)))
    return digest(*(piece for rel, file_key in sorted(parts) for piece in (rel, file_key)))


def build(folder: Path) -> str | None:
    """None if the folder builds; otherwise kustomize's error text."""
    proc = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit code {proc.returncode}")


#: kustomize names the entry it could not accumulate: "accumulating resources from 'x.yaml'".
_FAILED_ENTRY = re.compile(r"accumulating (?:resources|components) from '([^']+)'")


def entry_position(text: str, error: str) -> tuple[int, int]:
    """(line, col) of the kustomization list entry the error names (`- x.yaml`); (1, 1), the
    file, when it names none the file lists."""
    match = _FAILED_ENTRY.search(error)
    if match:
        for number, line in enumerate(text.splitlines(), 1):
            item = line.strip()
            if item.startswith("- ") and item[2:].strip().strip("'\"") == match.group(1):
                return number, line.index("-") + 1
    return 1, 1


def check(ctx: CheckContext) -> Iterable[Finding]:
    folders = kustomize_dirs(ctx.rendered, ctx.clusters)
    if not folders:
        return
    if shutil.which("kubectl") is None:
        yield Finding(NAME, Severity.ERROR, SourceRef("rendered/clusters"),
                      "kubectl not found: cannot prove the rendered folders build",
                      hint="run `make setup` (installs Debian's kubernetes-client when kubectl is missing)")
        return
    cache = ResultCache(ctx.root, "kustomize-build")
    keys = {f: digest("kubectl-kustomize", _folder_digest(f, ctx.root, ctx.cache)) for f in folders}
    todo: dict[str, Path] = {}
    for folder in folders:  # one build per distinct key
        if keys[folder] not in cache._data:
            todo.setdefault(keys[folder], folder)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for key, error in zip(todo, pool.map(build, todo.values())):
            cache.get_or_compute(key, lambda e=error: e)
    cache.save()
    for folder in folders:
        error = cache.get_or_compute(keys[folder], lambda f=folder: build(f))
        if error:
            error = build(folder) or error  # the message names this folder, not the one built first
            path = folder / "kustomization.yaml"
            rel = path.relative_to(ctx.root).as_posix()
            line, col = entry_position(path.read_text(encoding="utf-8"), error)
            yield Finding(NAME, Severity.ERROR, SourceRef(rel, line, col), f"kubectl kustomize fails: {error}")
