"""Stage 1: load and validate every input file of the fleet repo.

Reads base/fleet.yaml, base/components/*/component.yaml (+ values.yaml beside it),
base/relabel/*.yaml, overlays/*/overlay.yaml, regions/*/region.yaml and
clusters/*/cluster.yaml. Each file is checked against its JSON Schema; then the cross-file
rules (IDs, references) are checked. All errors of a run are collected and raised together,
so an author fixes them in one go. Nothing is written here.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import schema, yamlio
from .errors import InputError, InputErrors, SourceRef, processing
from .merge import Layered, from_indexed
from .tier.model import check_regions

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")  # \Z: `$` accepts a final newline


@dataclass
class Document:
    """One loaded input file: its repo-relative name, its positions and its Layered form."""

    name: str
    ix: yamlio.Indexed
    layered: Layered
    digest: str = ""       # hash of the file's name and text (and of values.yaml, for components)

    @property
    def data(self) -> Any:
        return self.layered.data

    def ref(self, *path: Any) -> SourceRef:
        return self.layered.source_of(tuple(path)) or SourceRef(self.name)

    def value_ref(self, *path: Any) -> SourceRef:
        """Where the value at `path` is written (for "this value is wrong" errors)."""
        return self.ix.value_ref(tuple(path))


@dataclass
class RawInputs:
    root: Path
    settings: Document
    components: dict[str, Document]          # name → component.yaml (values.yaml folded in)
    relabel: dict[str, Document]             # "customer"/"platform" → base/relabel/<name>.yaml
    overlays: dict[str, Document]
    regions: dict[str, Document]
    clusters: dict[str, Document]
    files: list[str] = field(default_factory=list)  # every input file read, repo-relative


class _Collector:
    """Accumulates errors so one run reports every problem it can find."""

    def __init__(self, root: Path):
        self.root = root
        self.errors: list[InputError] = []
        self.files: list[str] = []
        self.invalid: set[str] = set()   # input files that exist but failed to load
        # Cluster folders refused with an error of their own (broken or missing cluster.yaml, id
        # not the folder name, ...): a probe naming one is not also "a cluster that does not exist".
        self.refused_clusters: set[str] = set()

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def load(self, path: Path, kind: str | None) -> Document | None:
        name = self.rel(path)
        self.files.append(name)
        with processing(name):
            return self._load(path, name, kind)

    def _load(self, path: Path, name: str, kind: str | None) -> Document | None:
        try:
            text = yamlio.read_text(path, name)
            ix = yamlio.load_indexed(text, name)
        except InputError as exc:
            self.errors.append(exc)
            self.invalid.add(name)
            return None
        if ix.data is None:
            ix.data = {}
        if kind is not None:
            problems = schema.validate(ix, kind, name)
            if problems:
                self.errors.extend(problems)
                self.invalid.add(name)
                return None
        return Document(name, ix, from_indexed(ix), hashlib.sha256(f"{name}\0{text}".encode()).hexdigest())


def _children(folder: Path, filename: str) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        return []
    return sorted((p.name, p / filename) for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


#: Folders whose files fleet reads (inputs, templates, rules, policy, rule and relabel tests).
INPUT_DIRS = ("base", "overlays", "regions", "clusters", "policies", "tests/rules", "tests/relabel")


def escaping_links(root: Path) -> list[InputError]:
    """Every symlink under the input folders that resolves outside the repository: such a file or
    folder is refused before anything reads it, so nothing of it is rendered or echoed."""
    errors = []
    root = root.resolve()
    pending = [root / top for top in INPUT_DIRS if (root / top).is_dir()]
    while pending:   # scandir's entries know whether they are links without a stat per file
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    path = Path(entry.path)
                    try:
                        inside = path.resolve().is_relative_to(root)
                    except (OSError, RuntimeError):   # a symlink loop
                        inside = False
                    if not inside:
                        errors.append(InputError("a symlink that resolves outside the repository",
                                                 SourceRef(path.relative_to(root).as_posix()),
                                                 expected="inputs that live inside the repository"))
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
    return sorted(errors, key=lambda e: str(e.source))


def refuse_escaping_links(root: Path) -> None:
    """InputErrors for escaping_links (the fleet's loaders call this before reading any input)."""
    errors = escaping_links(root)
    if errors:
        raise InputErrors(errors)


def load(root: Path, clusters: set[str] | None = None) -> RawInputs:
    """Load and validate everything under `root`; raise InputErrors listing every problem.

    `clusters`: load only these cluster folders (and those their control-plane probes name), for
    `fleet lint --changed`; None loads every cluster."""
    root = root.resolve()
    refuse_escaping_links(root)
    c = _Collector(root)
    settings = c.load(root / "base" / "fleet.yaml", "fleet")
    components = _load_components(c, root)
    relabel = {p.stem: d for p in sorted((root / "base" / "relabel").glob("*.yaml"))
               if (d := c.load(p, None)) is not None}
    overlays = _load_folder(c, root / "overlays", "overlay.yaml", "overlay", "environment")
    regions = _load_folder(c, root / "regions", "region.yaml", "region", "region")
    clusters = _load_clusters(c, root, clusters)
    if settings is not None:
        _check_stages(c, settings, components)
    _check_references(c, clusters, regions, overlays)
    c.errors.extend(check_regions(regions))
    if c.errors:
        raise InputErrors(c.errors)
    assert settings is not None
    return RawInputs(root, settings, components, relabel, overlays, regions, clusters, sorted(c.files))


def _load_components(c: _Collector, root: Path) -> dict[str, Document]:
    out: dict[str, Document] = {}
    for folder_name, path in _children(root / "base" / "components", "component.yaml"):
        if not path.exists():
            c.errors.append(InputError("component folder without component.yaml", SourceRef(c.rel(path.parent))))
            continue
        doc = c.load(path, "component")
        if doc is None:
            continue
        if doc.data["name"] != folder_name:
            c.errors.append(InputError(f"component name {doc.data['name']!r} differs from its folder {folder_name!r}",
                                       doc.ref("name"), path="$.name", expected=repr(folder_name)))
            continue
        values_path = path.parent / "values.yaml"
        if values_path.exists():
            values = c.load(values_path, None)
            if values is None:
                continue
            if "values" in doc.data:
                c.errors.append(InputError("values given both inline and in values.yaml", doc.ref("values")))
                continue
            vl = from_indexed(values.ix, ("values",))
            doc.digest = hashlib.sha256(f"{doc.digest}\0{values.digest}".encode()).hexdigest()
            doc.layered.data["values"] = vl.data
            doc.layered.provenance.update(vl.provenance)
        out[folder_name] = doc
    return out


def _load_folder(c: _Collector, folder: Path, filename: str, kind: str, key: str) -> dict[str, Document]:
    out: dict[str, Document] = {}
    for folder_name, path in _children(folder, filename):
        if not path.exists():
            c.errors.append(InputError(f"folder without {filename}", SourceRef(c.rel(path.parent))))
            continue
        doc = c.load(path, kind)
        if doc is None:
            continue
        if doc.data[key] != folder_name:
            c.errors.append(InputError(f"{key} {doc.data[key]!r} differs from its folder name {folder_name!r}",
                                       doc.ref(key), path=f"$.{key}", expected=repr(folder_name)))
            continue
        out[folder_name] = doc
    return out


def _load_clusters(c: _Collector, root: Path, only: set[str] | None = None) -> dict[str, Document]:
    folder = root / "clusters"
    out: dict[str, Document] = {}
    seen: dict[str, Document] = {}
    children = _children(folder, "cluster.yaml")
    if only is not None:
        return _load_some_clusters(c, children, only)
    for folder_name, path in children:
        doc = _unique_cluster_doc(c, folder_name, path, seen)
        if doc is not None and _named_after_folder(c, doc, folder_name):
            out[doc.data["id"]] = doc
        else:
            c.refused_clusters.add(folder_name)
    return out


def _unique_cluster_doc(c: _Collector, folder_name: str, path: Path, seen: dict[str, Document]) -> Document | None:
    """A cluster folder's document unless it is missing, invalid or repeats an id (errors in `c`)."""
    if not path.exists():
        c.errors.append(InputError("cluster folder without cluster.yaml", SourceRef(c.rel(path.parent))))
        return None
    doc = _cluster_doc(c, folder_name, path)
    if doc is None:
        return None
    cid = doc.data["id"]
    if cid in seen:
        c.errors.append(InputError(f"duplicate cluster id {cid!r} (also in {seen[cid].value_ref('id')})",
                                   doc.value_ref("id"), path="$.id", expected="a fleet-unique cluster id"))
        return None
    seen[cid] = doc
    return doc


def _cluster_doc(c: _Collector, folder_name: str, path: Path) -> Document | None:
    """A cluster folder's cluster.yaml, loaded and validated (None: its errors are in `c`)."""
    if not DNS1123_LABEL.match(folder_name) or len(folder_name) > 63:
        c.errors.append(InputError(f"cluster folder {folder_name!r} is not a DNS-1123 label",
                                   SourceRef(c.rel(path)), expected="lower-case letters, digits and '-', at most 63"))
        return None
    _check_cluster_folder(c, path.parent)
    return c.load(path, "cluster")


def _named_after_folder(c: _Collector, doc: Document, folder_name: str) -> bool:
    if doc.data["id"] == folder_name:
        return True
    c.errors.append(InputError(f"cluster id {doc.data['id']!r} differs from its folder name {folder_name!r}",
                               doc.value_ref("id"), path="$.id", expected=repr(folder_name)))
    return False


def _load_some_clusters(c: _Collector, children: list[tuple[str, Path]], only: set[str]) -> dict[str, Document]:
    """The cluster documents of `only`, and of every cluster a loaded control plane probes."""
    paths = dict(children)
    out: dict[str, Document] = {}
    pending = sorted(only)
    while pending:
        name = pending.pop()
        if name in out or name not in paths or not paths[name].exists():
            continue
        doc = _cluster_doc(c, name, paths[name])
        if doc is None or not _named_after_folder(c, doc, name):
            c.refused_clusters.add(name)
            continue
        out[name] = doc
        pending += [str(lb.get("cluster")) for lb in (doc.data.get("controlPlane") or {}).get("loadBalancers") or []
                    if isinstance(lb, dict)]
    return dict(sorted(out.items()))


#: What a cluster folder may hold: its one input file, extra rules, notes for humans.
CLUSTER_FOLDER_ENTRIES = frozenset({"cluster.yaml", "rules", "README.md"})


def _check_cluster_folder(c: _Collector, folder: Path) -> None:
    """A YAML file the renderer would never read (`cluster.yml`, `vmagent.yaml`) is an error, so
    a change put there cannot look merged while doing nothing."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name not in CLUSTER_FOLDER_ENTRIES and entry.name.endswith((".yaml", ".yml")):
                c.errors.append(InputError(f"file {entry.name!r} in a cluster folder is not read by fleet",
                                           SourceRef(c.rel(Path(entry.path))),
                                           expected="only cluster.yaml (with components:/relabel: patches) "
                                                    "and rules/recording/*.yaml"))


def _check_stages(c: _Collector, settings: Document, components: dict[str, Document]) -> None:
    stages = settings.data["stages"]
    for name, doc in components.items():
        if doc.data["stage"] not in stages:
            c.errors.append(InputError(f"component {name!r} names unknown stage {doc.data['stage']!r}",
                                       doc.ref("stage"), path="$.stage", expected=f"one of {stages}"))


def _check_references(c: _Collector, clusters: dict[str, Document], regions: dict[str, Document],
                      overlays: dict[str, Document]) -> None:
    for cid, doc in clusters.items():
        region = doc.data["region"]
        # A region or overlay file refused with its own error is not also "missing"; the
        # cluster's other references are still checked.
        if region not in regions and f"regions/{region}/region.yaml" not in c.invalid:
            c.errors.append(InputError(f"cluster {cid!r} names region {region!r}, which does not exist",
                                       doc.value_ref("region"), path="$.region",
                                       expected=f"a folder regions/<region>/ (have: {', '.join(sorted(regions)) or 'none'})"))
        for i, lb in enumerate((doc.data.get("controlPlane") or {}).get("loadBalancers") or []):
            if lb["cluster"] not in clusters and lb["cluster"] not in c.refused_clusters:
                c.errors.append(InputError(f"load balancer probe names cluster {lb['cluster']!r}, which does not exist",
                                           doc.value_ref("controlPlane", "loadBalancers", i, "cluster"),
                                           path=f"$.controlPlane.loadBalancers[{i}].cluster",
                                           expected="a folder clusters/<cluster-id>/"))
        env = doc.data["environment"]
        if env not in overlays and f"overlays/{env}/overlay.yaml" not in c.invalid:
            c.errors.append(InputError(f"cluster {cid!r} names environment {env!r}, which has no overlay",
                                       doc.value_ref("environment"), path="$.environment",
                                       expected=f"a folder overlays/<environment>/ (have: {', '.join(sorted(overlays)) or 'none'})"))
    for slug, doc in regions.items():
        env = (doc.data.get("tier") or {}).get("environment")
        if env is not None and env not in overlays and f"overlays/{env}/overlay.yaml" not in c.invalid:
            # A misspelt environment would silently stop the stores' alerts from paging.
            c.errors.append(InputError(f"region {slug!r}: tier environment {env!r} has no overlay",
                                       doc.value_ref("tier", "environment"), path="$.tier.environment",
                                       expected=f"a folder overlays/<environment>/ (have: {', '.join(sorted(overlays)) or 'none'})"))
