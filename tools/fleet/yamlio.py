"""YAML in and out.

Input: ruamel.yaml round-trip loading keeps line/column of every key and item, rejects
duplicate keys, and turns syntax errors into `InputError` with the position. Every loader here
first passes the text through `check_structure`: one streaming pass over the parser's events
(no recursion, nothing built) that refuses what no fleet input needs and an attacker would use —
nesting deeper than MAX_DEPTH (a Python RecursionError at ~400 levels, a C stack overflow at
100,000), aliases that expand to more than MAX_ALIAS_NODES nodes (a "billion laughs" bomb) and
any tag outside YAML's core schema (`!!python/object:...` would otherwise be dropped silently).
Output: one deterministic dumper (sorted keys, block style, fixed width) so the same data
always gives the same bytes.
"""
from __future__ import annotations


import yaml
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import InputError, SourceRef, clip


def _loader() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _mark_ref(name: str, mark: Any) -> SourceRef:
    if mark is None:
        return SourceRef(name)
    return SourceRef(name, mark.line + 1, mark.column + 1)


def _syntax_error(exc: Any, name: str, text: str) -> InputError:
    """A YAML syntax error at its mark; a tab where indentation goes gets said plainly."""
    mark = exc.problem_mark or exc.context_mark
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    expected = ""
    if mark is not None:
        lines = text.split("\n")
        line = lines[mark.line] if mark.line < len(lines) else ""
        if "\t" in line[:mark.column + 1]:
            expected = "spaces for indentation (YAML does not allow tabs there)"
    return InputError(f"YAML syntax error: {problem}", _mark_ref(name, mark), expected=expected)


#: Deepest nesting of mappings and sequences any input may have (Helm values reach ~15).
MAX_DEPTH = 100
#: Most nodes that aliases may add to a YAML stream by expansion (anchors are legal, bombs are not).
MAX_ALIAS_NODES = 10_000
#: The tags of YAML's core schema: the only ones an input may spell out (`!!str "yes"`).
CORE_TAGS = frozenset({"!"} | {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")})
_COLLECTION_START = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_COLLECTION_END = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def check_structure(text: str, name: str) -> None:
    """Refuse deep nesting, alias bombs, recursive aliases and non-core tags, where they start.

    Streams the C parser's events: sizes are counted, never built, so the check itself is safe
    on any input (a syntax error it meets is reported as the loaders report one)."""
    open_sizes: list[list] = []        # per open collection: [node count so far, anchor]
    anchored: dict[str, int] = {}      # anchor → expanded node count of the node it names
    added = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in CORE_TAGS:
                raise InputError(f"unsupported YAML tag {clip(tag)}", _mark_ref(name, event.start_mark),
                                 expected="plain YAML data (tags limited to !!str, !!int, !!float, !!bool, "
                                          "!!null, !!map, !!seq)")
            size = 0
            if isinstance(event, _COLLECTION_START):
                if len(open_sizes) >= MAX_DEPTH:
                    raise InputError(f"YAML nesting deeper than {MAX_DEPTH} levels", _mark_ref(name, event.start_mark),
                                     expected=f"at most {MAX_DEPTH} nested mappings or sequences")
                open_sizes.append([1, event.anchor])
                continue
            if isinstance(event, _COLLECTION_END):
                size, anchor = open_sizes.pop()
                if anchor is not None:
                    anchored[anchor] = size
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor is not None:
                    anchored[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for _, anchor in open_sizes):
                    raise InputError(f"recursive YAML alias *{event.anchor[:40]}",
                                     _mark_ref(name, event.start_mark),
                                     expected="an alias to a node that is complete (a node cannot contain itself)")
                size = anchored.get(event.anchor, 1)
                added += size
                if added > MAX_ALIAS_NODES:
                    raise InputError(f"YAML aliases expand to more than {MAX_ALIAS_NODES} nodes",
                                     _mark_ref(name, event.start_mark),
                                     expected="no alias bombs: write the data out, or reuse less of it")
            elif isinstance(event, yaml.DocumentStartEvent):
                anchored.clear()
            if open_sizes:
                open_sizes[-1][0] += size
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name, text) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {clip(str(exc))}", SourceRef(name)) from None


def _json_path(parts: tuple) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def load_text(text: str, name: str) -> Any:
    """Parse one YAML document; positions stay available through `position()`."""
    check_structure(text, name)
    try:
        return _loader().load(text)
    except DuplicateKeyError as exc:
        key = str(exc.problem).split('"')[1] if '"' in str(exc.problem) else str(exc.problem)
        raise InputError(f"duplicate key {key!r}", _mark_ref(name, exc.problem_mark),
                         expected="each key once per mapping") from None
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, name, text) from None
    except YAMLError as exc:  # pragma: no cover - ruamel raises Marked errors for syntax
        raise InputError(f"YAML error: {exc}", SourceRef(name)) from None


def read_text(path: Path, name: str) -> str:
    """A file's text, or InputError naming it (missing, unreadable, not UTF-8 — at the bad byte)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or type(exc).__name__}", SourceRef(name)) from None
    return decode_utf8(data, name)


def decode_utf8(data: bytes, name: str) -> str:
    """UTF-8 text, or InputError at the line and column of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise InputError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", SourceRef(name, line, col),
                         expected="a UTF-8 encoded file") from None


def load_file(path: Path, name: str | None = None) -> Any:
    """Load a YAML file; `name` is how the file is reported (repo-relative path)."""
    name = name or str(path)
    return load_text(read_text(path, name), name)


def load_all_text(text: str, name: str) -> list[Any]:
    """Parse a multi-document YAML stream."""
    check_structure(text, name)
    try:
        return list(_loader().load_all(text))
    except DuplicateKeyError as exc:
        raise InputError("duplicate key", _mark_ref(name, exc.problem_mark),
                         expected="each key once per mapping") from None
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, name, text) from None


def position(node: Any, key: Any = None, value: bool = False) -> tuple[int, int]:
    """1-based (line, col) of a mapping key / sequence index inside `node`, or of the node itself.

    With `value=True`, the position of the key's value (where a wrong scalar is written)."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return (0, 0)
    try:
        if key is None:
            return (lc.line + 1, lc.col + 1)
        if isinstance(node, CommentedMap):
            line, col = lc.value(key) if value else lc.key(key)
        elif isinstance(node, CommentedSeq):
            line, col = lc.item(key)
        else:
            return (lc.line + 1, lc.col + 1)
        return (line + 1, col + 1)
    except (KeyError, IndexError, TypeError):
        return (lc.line + 1, lc.col + 1)


def plain(node: Any) -> Any:
    """Round-trip nodes → plain dict/list/scalars (positions dropped)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _sorted(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _sorted(data[k]) for k in sorted(data)}
    if isinstance(data, list):
        return [_sorted(v) for v in data]
    return data


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """PyYAML's C emitter: ~20x faster than a pure-Python one, and YAML 1.1 like Go's parsers
    (Helm, kustomize, the controllers), so `yes`/`on`/`010` get quoted when they are strings."""


def _represent_str(dumper: Any, data: str) -> Any:
    # Multi-line text (Fluent Bit config, rule expressions) reads best as a literal block;
    # the emitter falls back to quoting by itself when a block cannot hold the text.
    if "\n" in data and not any(line != line.rstrip() for line in data.split("\n")):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _represent_str)


def dump_documents(docs: list[Any], header: str = "") -> str:
    """Dump documents deterministically: keys sorted, multi-line strings as `|` blocks."""
    body = yaml.dump_all([_sorted(plain(d)) for d in docs], Dumper=_Dumper, default_flow_style=False,
                         sort_keys=True, allow_unicode=True, width=4096)
    return header + body.removeprefix("---\n") if body.startswith("---\n") else header + body


def dump(doc: Any, header: str = "") -> str:
    return dump_documents([doc], header)


# --- Fast positional loading for fleet inputs -------------------------------------------------
# Input files are many (one per cluster) and small; PyYAML's C composer gives every node's
# position ~10x faster than a pure-Python round-trip loader. Values follow YAML 1.1, as Helm
# (and every Go tool reading these values) does.

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.constructor.SafeConstructor()
_STR = "tag:yaml.org,2002:str"


class Indexed:
    """A loaded document as plain data plus the (line, col) of every key/item and every value."""

    __slots__ = ("name", "data", "keys", "values")

    def __init__(self, name: str, data: Any, keys: dict, values: dict):
        self.name, self.data, self.keys, self.values = name, data, keys, values

    def key_ref(self, path: tuple) -> SourceRef:
        """Where the key (or list item) at `path` is written; nearest ancestor if absent."""
        for cut in range(len(path), -1, -1):
            pos = self.keys.get(path[:cut]) if cut else self.values.get(())
            if pos:
                return SourceRef(self.name, *pos)
        return SourceRef(self.name)

    def value_ref(self, path: tuple) -> SourceRef:
        pos = self.values.get(path)
        return SourceRef(self.name, *pos) if pos else self.key_ref(path)

    def sub(self, base: tuple) -> "Indexed":
        """The part under `base`, with paths relative to it."""
        n = len(base)
        data = self.data
        for part in base:
            data = data[part]
        keys = {k[n:]: v for k, v in self.keys.items() if k[:n] == base and len(k) > n}
        values = {k[n:]: v for k, v in self.values.items() if k[:n] == base}
        return Indexed(self.name, data, keys, values)


def _pos(node: Any) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _scalar(node: Any) -> Any:
    if node.tag == _STR:
        return node.value
    value = _constructor.construct_object(node)
    if hasattr(value, "isoformat"):  # YAML 1.1 timestamps stay the text that was written
        return node.value
    return value


def _index(node: Any, path: tuple, name: str, keys: dict, values: dict) -> Any:
    values[path] = _pos(node)
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                raise InputError("unsupported mapping key (complex key or `<<` merge)", SourceRef(name, *_pos(key_node)))
            key = _scalar(key_node)
            key = key if isinstance(key, str) else str(key)
            if key in out:
                raise InputError(f"duplicate key {key!r}", SourceRef(name, *_pos(key_node)),
                                 path=_json_path(path), expected="each key once per mapping")
            keys[path + (key,)] = _pos(key_node)
            out[key] = _index(value_node, path + (key,), name, keys, values)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            keys[path + (i,)] = _pos(item)
            items.append(_index(item, path + (i,), name, keys, values))
        return items
    return _scalar(node)


def load_indexed(text: str, name: str) -> Indexed:
    """Parse one YAML document into plain data with positions; InputError on bad YAML."""
    check_structure(text, name)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name, text) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {exc}", SourceRef(name)) from None
    keys: dict = {}
    values: dict = {}
    if node is None:
        return Indexed(name, None, keys, {(): (1, 1)})
    try:
        data = _index(node, (), name, keys, values)
    except yaml.constructor.ConstructorError as exc:
        raise InputError(f"invalid value: {exc.problem}", _mark_ref(name, exc.problem_mark)) from None
    return Indexed(name, data, keys, values)


class UnsafeStructure(yaml.YAMLError):
    """check_structure's refusal as a PyYAML error, for fast paths that fall back on YAMLError."""


def load_all_fast(text: str, loader: Any) -> list[Any]:
    """Every document of `text` through PyYAML `loader` (a SafeLoader subclass), after
    check_structure: the fast path for rendered output and reference CRDs. Raises yaml.YAMLError
    (UnsafeStructure for a refused structure) so callers keep one error path."""
    try:
        check_structure(text, "")
    except InputError as exc:
        raise UnsafeStructure(exc.message) from None
    return list(yaml.load_all(text, Loader=loader))  # noqa: S506 - a SafeLoader subclass


def load_fast(text: str, loader: Any) -> Any:
    """The one document of `text`, as load_all_fast."""
    docs = load_all_fast(text, loader)
    if len(docs) > 1:
        raise yaml.YAMLError("expected a single document in the stream")
    return docs[0] if docs else None


def load_indexed_file(path: Path, name: str | None = None) -> Indexed:
    name = name or str(path)
    return load_indexed(read_text(path, name), name)
