"""Layer merging: base ← overlay(environment) ← region ← cluster.

Rules (the same for every layer, documented in README.md):
- mappings merge deeply, key by key;
- lists replace the earlier list whole (no index merging: a relabel list is an ordered program);
- scalars replace;
- `null` removes the key from the result.

Every value remembers where it was last set (`Provenance`: JSON-ish path → SourceRef), so a
check about a merged value can point at the line in base/, overlays/, regions/ or clusters/
that produced it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import yamlio
from .errors import SourceRef

Path_ = tuple  # a path of keys/indices into a document


@dataclass
class Layered:
    """A merged document and the source position of each of its nodes."""

    data: Any
    provenance: dict[Path_, SourceRef] = field(default_factory=dict)
    _stripped: Any = field(default=None, repr=False, compare=False)

    def source_of(self, path: Path_) -> SourceRef | None:
        """The position that set `path`, or its nearest ancestor's."""
        for cut in range(len(path), -1, -1):
            ref = self.provenance.get(tuple(path[:cut]))
            if ref is not None:
                return ref
        return None


def from_node(node: Any, name: str, prefix: Path_ = ()) -> Layered:
    """Wrap a loaded ruamel node: plain data plus the position of every key and item."""
    prov: dict[Path_, SourceRef] = {}

    def walk(n: Any, path: Path_) -> None:
        if isinstance(n, dict):
            for k in n:
                line, col = yamlio.position(n, k)
                prov[path + (str(k),)] = SourceRef(name, line, col)
                walk(n[k], path + (str(k),))
        elif isinstance(n, list):
            for i, item in enumerate(n):
                line, col = yamlio.position(n, i)
                prov[path + (i,)] = SourceRef(name, line, col)
                walk(item, path + (i,))

    line, col = yamlio.position(node)
    prov[prefix] = SourceRef(name, line, col)
    walk(node, prefix)
    return Layered(yamlio.plain(node), prov)


def from_indexed(ix: "yamlio.Indexed", prefix: Path_ = ()) -> Layered:
    """Wrap a positionally loaded document (see yamlio.load_indexed); paths get `prefix`."""
    prov = {prefix + path: SourceRef(ix.name, *pos) for path, pos in ix.keys.items()}
    root = ix.values.get(())
    prov[prefix] = SourceRef(ix.name, *root) if root else SourceRef(ix.name)
    return Layered(ix.data, prov)


def _drop_under(prov: dict[Path_, SourceRef], path: Path_) -> None:
    for key in [k for k in prov if k[: len(path)] == path and len(k) > len(path)]:
        del prov[key]


def merge_into(base: Any, patch: Any, path: Path_, prov: dict, patch_prov: dict) -> Any:
    """Merge `patch` onto `base` (both plain data) following the rules above."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            sub = path + (key,)
            if value is None:
                out.pop(key, None)
                _drop_under(prov, sub)
                prov.pop(sub, None)
                continue
            if key in out and isinstance(out[key], dict) and isinstance(value, dict):
                out[key] = merge_into(out[key], value, sub, prov, patch_prov)
                if sub in patch_prov and sub not in prov:
                    prov[sub] = patch_prov[sub]
            else:
                out[key] = _strip_nulls(value)
                _drop_under(prov, sub)
                _copy_prov(patch_prov, prov, sub)
        return out
    _drop_under(prov, path)
    _copy_prov(patch_prov, prov, path)
    return _strip_nulls(patch)


def _strip_nulls(value: Any) -> Any:
    """A `null` inside a newly introduced mapping also means "absent"."""
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _copy_prov(src: dict, dst: dict, path: Path_) -> None:
    n = len(path)
    for key, ref in src.items():
        if key[:n] == path:
            dst[key] = ref


def merge_layers(layers: list[Layered]) -> Layered:
    """Fold layers left to right; later layers win.

    The result shares untouched subtrees with the layers (no copies): treat merged data as
    read-only, as the model does (renderers deep-copy before they change anything)."""
    if not layers:
        return Layered({}, {})
    first = layers[0]
    if first._stripped is None:  # the base layer is shared by every cluster: strip it once
        first._stripped = _strip_nulls(first.data)
    result = Layered(first._stripped, dict(first.provenance))
    for layer in layers[1:]:
        result.data = merge_into(result.data, layer.data, (), result.provenance, layer.provenance)
    return result


def deep_merge(*docs: Any) -> Any:
    """Plain-data merge without provenance (same rules), for callers that need only values."""
    return merge_layers([Layered(d, {}) for d in docs]).data
