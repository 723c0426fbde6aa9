"""Every Kubernetes object under rendered/clusters/, fast enough for a fleet of 1,000 clusters.

A fleet renders ~30,000 documents, most of them byte-identical across clusters. Reading them is
therefore split in two: the text is cut into documents at `---` lines (cheap) and each document
is hashed; only documents with a new digest are parsed (libyaml via PyYAML, YAML 1.1 like the
Go parsers of kubectl and Flux). Checks then cache their verdicts by the same digest.

`skeleton=True` replaces the one subtree no schema looks into — a HelmRelease's `spec.values`
(`x-kubernetes-preserve-unknown-fields` in the CRD, an open object in our schema) — by `{}`
before hashing and parsing. Per-cluster values are what makes most HelmReleases unique, so this
turns thousands of parses and validations into a handful. Checks that read values use
`skeleton=False`.

Positions: the digest path never builds ruamel nodes (too slow for the whole fleet); when a
check reports a problem, `RenderedObject.source(path)` re-reads that one document with ruamel
(`fleet.yamlio`) and returns the file:line:col of the offending field.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from .. import yamlio
from ..errors import InputError, SourceRef

KUSTOMIZE_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
YAML_SUFFIXES = (".yaml", ".yml")
CACHE_KEY = "fleet.k8s.objects"

_DOC_START = re.compile(r"^---(?=[ \t\r]|$)", re.M)
_LEADING_NOISE = re.compile(r"\A(?:[ \t]*(?:#[^\n]*)?\r?\n)*")
_HELM_RELEASE = re.compile(r"^kind:[ \t]*HelmRelease[ \t]*\r?$", re.M)
_VALUES_LINE = re.compile(r"^  values:[ \t]*\r?\n", re.M)
_TOP_KEY = re.compile(r"^([^\s#][^:\n]*):", re.M)
_BLANK_OR_INDENTED = re.compile(r"(?:[ \t]*\r?\n|   [^\n]*(?:\n|\Z))*")
_MAPPING_KEY = re.compile(r"""^(?:"[^"]*"|'[^']*'|[^\s\-?:,\[\]{}#&*!|>'"%@`][^\n]*?)[ \t]*:(?:[ \t]|$)""")


class FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml when available; timestamps stay strings, as in sigs.k8s.io/yaml (YAML → JSON)."""


FastLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True, eq=False)
class RenderedObject:
    """One YAML document of a rendered file.

    `obj` is shared between documents with the same digest: treat it as read-only.
    """

    path: str            # file, relative to the repo root (e.g. rendered/clusters/c1/stages.yaml)
    index: int           # 0-based among the file's non-empty documents
    line: int            # 1-based line of the document's first content line
    obj: Any             # the parsed document (a dict for a Kubernetes object)
    digest: str          # hash of the parsed text: same digest → same object
    text: str            # the document's own text, as written (for positions)
    text_line: int       # 1-based file line where `text` starts
    skeleton: bool = False  # opaque subtrees (HelmRelease spec.values) replaced by {}

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion", "")) if isinstance(self.obj, dict) else ""

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", "")) if isinstance(self.obj, dict) else ""

    @property
    def metadata(self) -> dict:
        meta = self.obj.get("metadata") if isinstance(self.obj, dict) else None
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "") or "")

    @property
    def cluster(self) -> str | None:
        """The cluster id for files under rendered/clusters/<id>/."""
        parts = self.path.split("/")
        if "clusters" in parts:
            i = parts.index("clusters")
            if i + 2 < len(parts):
                return parts[i + 1]
        return None

    def describe(self) -> str:
        """`Kind namespace/name`, how findings name the object."""
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind or '<no kind>'} {ns}{self.name or '<no name>'}"

    def source(self, path: Sequence[str | int] = ()) -> SourceRef:
        """File:line:col of the deepest node of `path` (JSON path parts) that exists in the text."""
        try:
            doc = _ruamel_doc(self.text, self.path)
        except InputError:
            return SourceRef(self.path, self.line)
        node, (line, col) = doc, yamlio.position(doc)
        for part in path:
            try:
                pos = yamlio.position(node, part)
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
            line, col = pos
        if not line:
            return SourceRef(self.path, self.line)
        return SourceRef(self.path, self.text_line + line - 1, col)


@lru_cache(maxsize=256)
def _ruamel_doc(text: str, name: str) -> Any:
    return yamlio.load_text(text, name)


# Parsed documents by digest, shared by every call in this process (lint runs several checks).
_PARSED: dict[str, Any] = {}
_PARSED_LIMIT = 200_000


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _parse(body: str, digest: str) -> Any:
    try:
        return _PARSED[digest]
    except KeyError:
        pass
    obj = yaml.load(body, Loader=FastLoader)  # noqa: S506 - a SafeLoader subclass
    if len(_PARSED) >= _PARSED_LIMIT:
        _PARSED.clear()
    _PARSED[digest] = obj
    return obj


def strip_opaque(body: str) -> str | None:
    """`body` with a HelmRelease's block-mapping `spec.values` replaced by `{}`, or None.

    Only the exact dumper shape is touched: a `  values:` line directly under the top-level
    `spec:` key, followed by deeper-indented lines that form a mapping (not a sequence, not
    empty). Anything else is left alone and parsed in full.
    """
    if "HelmRelease" not in body or "\n  values:" not in body or not _HELM_RELEASE.search(body):
        return None
    for match in _VALUES_LINE.finditer(body):
        keys = _TOP_KEY.findall(body, 0, match.start())
        if not keys or keys[-1] != "spec":
            continue
        block = _BLANK_OR_INDENTED.match(body, match.end())
        content = block.group(0) if block else ""
        first = next((ln.strip() for ln in content.splitlines() if ln.strip()), "")
        if not _MAPPING_KEY.match(first):
            return None  # a sequence, a scalar, a comment or nothing: parse it as written
        return body[:match.start()] + "  values: {}\n" + body[match.end() + len(content):]
    return None


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line of the chunk start, chunk text) for the document chunks between `---` lines."""
    starts = [0] + [m.end() for m in _DOC_START.finditer(text)]
    ends = [m.start() for m in _DOC_START.finditer(text)] + [len(text)]
    line = 1
    previous = 0
    for start, end in zip(starts, ends):
        line += text.count("\n", previous, start)
        previous = start
        yield line, text[start:end]


def _file_objects(text: str, rel: str, skeleton: bool) -> list[RenderedObject]:
    """The non-empty documents of one file, parsed chunk by chunk (whole file on any doubt)."""
    out: list[RenderedObject] = []
    try:
        for chunk_line, chunk in _chunks(text):
            lead = _LEADING_NOISE.match(chunk)
            body = chunk[lead.end():] if lead else chunk
            if not body.strip():
                continue
            first_line = chunk_line + chunk.count("\n", 0, lead.end() if lead else 0)
            stripped = strip_opaque(body) if skeleton else None
            parsed_text = stripped if stripped is not None else body
            digest = _digest(parsed_text)
            obj = _parse(parsed_text, digest)
            if obj is None:
                continue
            out.append(RenderedObject(rel, len(out), first_line, obj, digest, chunk, chunk_line,
                                      stripped is not None))
    except yaml.YAMLError:
        return _whole_file_objects(text, rel)
    return out


def _whole_file_objects(text: str, rel: str) -> list[RenderedObject]:
    """Slow path for files the chunker cannot handle: ruamel over the whole stream.

    Syntax errors surface here as InputError with the file position.
    """
    out: list[RenderedObject] = []
    for doc in yamlio.load_all_text(text, rel):
        if doc is None:
            continue
        line, _ = yamlio.position(doc)
        plain = yamlio.plain(doc)
        out.append(RenderedObject(rel, len(out), line or 1, plain, _digest(repr(plain)), text, 1))
    return out


def _yaml_files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(YAML_SUFFIXES) and name not in KUSTOMIZE_FILES:
                yield Path(dirpath) / name


def iter_objects(rendered: Path, *, root: Path | None = None, skeleton: bool = False,
                 subdir: str = "clusters") -> Iterator[RenderedObject]:
    """Every non-empty YAML document under `rendered/<subdir>/`, in path order.

    kustomize's own kustomization.yaml files and non-YAML files (config.alloy) are skipped.
    Paths are reported relative to `root` (default: the folder holding `rendered/`).
    Raises InputError (with file:line:col) for a file that is not valid YAML.
    """
    rendered = Path(rendered)
    root = Path(root) if root is not None else rendered.parent
    folder = rendered / subdir if subdir else rendered
    if not folder.is_dir():
        return
    for path in _yaml_files(folder):
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            rel = path.as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read rendered file: {exc}", SourceRef(rel)) from None
        yield from _file_objects(text, rel, skeleton)


def rendered_objects(ctx: Any) -> list[RenderedObject]:
    """The skeleton objects of `ctx.rendered`, read once per lint run (shared via ctx.cache)."""
    cached = ctx.cache.get(CACHE_KEY)
    if cached is None:
        cached = list(iter_objects(ctx.rendered, root=ctx.root, skeleton=True))
        ctx.cache[CACHE_KEY] = cached
    return cached
