"""Every rendered/clusters/<id> folder (and each stage folder) builds with `kubectl kustomize`,
exactly as kustomize-controller will build it."""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

from ..cache import ResultCache, digest
from ..errors import Finding, Severity, SourceRef
from . import CheckContext

NAME = "kustomize-build"
DESCRIPTION = "kubectl kustomize builds every rendered cluster and stage folder"
ORDER = 30


def kustomize_dirs(rendered: Path) -> list[Path]:
    return sorted(p.parent for p in (rendered / "clusters").rglob("kustomization.yaml"))


def _folder_digest(folder: Path) -> str:
    parts: list[bytes | str] = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            parts += [p.relative_to(folder).as_posix(), p.read_bytes()]
    return digest(*parts)


def build(folder: Path) -> str | None:
    """None if the folder builds; otherwise kustomize's error text."""
    proc = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit code {proc.returncode}")


def check(ctx: CheckContext) -> Iterable[Finding]:
    folders = kustomize_dirs(ctx.rendered)
    if not folders:
        return
    if shutil.which("kubectl") is None:
        yield Finding(NAME, Severity.ERROR, SourceRef("rendered/clusters"),
                      "kubectl not found: cannot prove the rendered folders build",
                      hint="run `make setup` (installs Debian's kubernetes-client when kubectl is missing)")
        return
    cache = ResultCache(ctx.root, "kustomize-build")
    keys = {f: digest("kubectl-kustomize", _folder_digest(f)) for f in folders}
    todo = [f for f in folders if keys[f] not in cache._data]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for folder, error in zip(todo, pool.map(build, todo)):
            cache.get_or_compute(keys[folder], lambda e=error: e)
    cache.save()
    for folder in folders:
        error = cache.get_or_compute(keys[folder], lambda f=folder: build(f))
        if error:
            rel = (folder / "kustomization.yaml").relative_to(ctx.root).as_posix()
            yield Finding(NAME, Severity.ERROR, SourceRef(rel, 1, 1), f"kubectl kustomize fails: {error}")
