"""Every Kubernetes object under rendered/clusters/, fast enough for a fleet of 1,000 clusters.

A fleet renders ~30,000 documents, most of them byte-identical across clusters. Reading them is
therefore split in two: the text is cut into documents at `---` lines (cheap) and each document
is hashed; only documents with a new digest are parsed (libyaml via PyYAML, YAML 1.1 like the
Go parsers of kubectl and Flux). Checks then cache their verdicts by the same digest.

Most of the remaining documents differ between clusters only by the cluster id (a Kustomization's
`path`, an env value): those are parsed once per *template* (id replaced by a placeholder) and
the id is put back into the parsed strings — exact, see `parse_templated`. A 1,000-cluster fleet
(32,000 documents) thus costs ~10 YAML parses plus reading and hashing the text.

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
        return _cluster_of(self.path)

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


def _parse_document(body: str, digest: str, cluster: str | None) -> Any:
    """Parse one document, through its cluster template when it mentions the cluster id."""
    found = _PARSED.get(digest)
    if found is not None or digest in _PARSED:
        return found
    if cluster and len(cluster) >= 3 and cluster in body and TOKEN not in body:
        try:
            obj = parse_templated(body, cluster)
        except (_NotExact, yaml.YAMLError):
            pass
        else:
            _PARSED[digest] = obj
            return obj
    return _parse(body, digest)


def _parse(body: str, digest: str) -> Any:
    try:
        return _PARSED[digest]
    except KeyError:
        pass
    obj = yamlio.load_fast(body, FastLoader)
    if len(_PARSED) >= _PARSED_LIMIT:
        _PARSED.clear()
    _PARSED[digest] = obj
    return obj


# A printable private-use character: never a YAML indicator, never part of a non-string scalar.
TOKEN = "\ue000"
_STR_TAG = "tag:yaml.org,2002:str"


class _NotExact(Exception):
    """A substituted scalar might have parsed differently as written (e.g. an id like `yes`)."""


def _plain_is_str(value: str) -> bool:
    """Would this text, written as a plain scalar, load as a string? (YAML 1.1 resolvers.)"""
    return FastLoader.resolve(FastLoader, yaml.ScalarNode, value, (True, False)) == _STR_TAG


def _token_tree(value: Any) -> Any:
    """Where TOKEN occurs in a parsed template: {key/index: subtree}, True for a string leaf,
    None when nowhere. Raises _NotExact for a mapping key holding it (kept simple: parse as written)."""
    if isinstance(value, str):
        return True if TOKEN in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    tree = {}
    for key, sub in items:
        if isinstance(key, str) and TOKEN in key:
            raise _NotExact(key)
        found = _token_tree(sub)
        if found is not None:
            tree[key] = found
    return tree or None


def _substitute(value: Any, tree: Any, cluster: str) -> Any:
    """Copy `value` along `tree` only (other subtrees are shared), putting the cluster id back."""
    if tree is True:
        out = value.replace(TOKEN, cluster)
        if not _plain_is_str(out):
            raise _NotExact(out)
        return out
    copy = dict(value) if isinstance(value, dict) else list(value)
    for key, sub in tree.items():
        copy[key] = _substitute(value[key], sub, cluster)
    return copy


_TEMPLATES: dict[str, tuple[Any, Any]] = {}


def parse_templated(body: str, cluster: str) -> Any:
    """Parse `body` through its cluster-independent template, or raise _NotExact/YAMLError.

    Most per-cluster documents differ from each other only by the cluster id (a Kustomization's
    path, an env value). The id is replaced by TOKEN, the template is parsed once for the whole
    fleet, and the id is put back into the parsed strings. This is exact because the id can only
    occur inside scalars (it has no YAML indicator characters; anything else fails to parse and
    falls back), TOKEN makes every scalar holding it a string, and each string that got the id
    back is re-checked to be a string as written (`_plain_is_str`), else the caller parses `body`.
    """
    template = body.replace(cluster, TOKEN)
    key = _digest(template)
    entry = _TEMPLATES.get(key)
    if entry is None:
        parsed = yamlio.load_fast(template, FastLoader)
        try:
            entry = (parsed, _token_tree(parsed))
        except _NotExact:
            entry = (parsed, False)
        if len(_TEMPLATES) >= _PARSED_LIMIT:
            _TEMPLATES.clear()
        _TEMPLATES[key] = entry
    parsed, tree = entry
    if tree is False:
        raise _NotExact("id in a mapping key")
    return parsed if tree is None else _substitute(parsed, tree, cluster)


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
    """(1-based line of the chunk start, chunk text) for the document chunks between `---` lines.

    A chunk after a separator starts right after the `---` (on the separator's line).
    """
    line, start = 1, 0
    for sep in _separators(text):
        chunk = text[start:sep]
        yield line, chunk
        line += chunk.count("\n")
        start = sep + 3
    yield line, text[start:]


def _separators(text: str) -> Iterator[int]:
    """Offsets of `---` document markers: at a line start, followed by blank, CR/LF or the end."""
    pos = 0 if text.startswith("---") else text.find("\n---")
    while pos != -1:
        at = pos if pos == 0 and text.startswith("---") else pos + 1
        after = text[at + 3:at + 4]
        if after in ("", " ", "\t", "\r", "\n"):
            yield at
        pos = text.find("\n---", at + 3)


def _file_objects(text: str, rel: str, skeleton: bool, cluster: str | None = None) -> list[RenderedObject]:
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
            obj = _parse_document(parsed_text, digest, cluster)
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


def _cluster_of(rel: str) -> str | None:
    parts = rel.split("/")
    if "clusters" in parts:
        i = parts.index("clusters")
        if i + 2 < len(parts):
            return parts[i + 1]
    return None


def _yaml_files(folder: Path, root: Path) -> Iterator[tuple[str, str]]:
    """(absolute path, path relative to root) of the YAML files to read, in sorted order."""
    prefix = os.path.join(str(root), "")
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(YAML_SUFFIXES) and name not in KUSTOMIZE_FILES:
                full = os.path.join(dirpath, name)
                rel = full[len(prefix):] if full.startswith(prefix) else full
                yield full, rel.replace(os.sep, "/")


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
    for full, rel in _yaml_files(folder, root):
        text = yamlio.read_text(Path(full), rel)
        yield from _file_objects(text, rel, skeleton, _cluster_of(rel))


def rendered_objects(ctx: Any) -> list[RenderedObject]:
    """The skeleton objects of `ctx.rendered`, read once per lint run (shared via ctx.cache);
    only those of `ctx.clusters` when the run is narrowed to some clusters (`lint --changed`)."""
    only = getattr(ctx, "clusters", None)
    key = CACHE_KEY if only is None else (CACHE_KEY, only)
    cached = ctx.cache.get(key)
    if cached is None:
        if only is None:
            cached = list(iter_objects(ctx.rendered, root=ctx.root, skeleton=True))
        else:
            cached = [obj for cid in sorted(only)
                      for obj in iter_objects(ctx.rendered, root=ctx.root, skeleton=True, subdir=f"clusters/{cid}")]
        ctx.cache[key] = cached
    return cached
