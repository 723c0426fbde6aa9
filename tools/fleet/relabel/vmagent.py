"""What vmagent v1.150.0 (`lib/promrelabel`, `lib/regexutil`) adds to a relabel rule.

The engine's vmagent flavour (`engine._vm_action`) runs rules with these pieces, each written
from reading upstream and held against the real binary (tests/test_relabel_differential.py):

* `VmRegex`: one rule's regex the three ways vmagent uses it. *Whether* a value matches is
  `regexutil.PromRegex`, which re-prints a simplified form of the regex parsed with `.` matching
  a newline (dotall); the *capture groups* come from `^(?:re)$` compiled without that flag, so a
  value with a newline can match while the groups are found nowhere (the replacement is then
  the value itself). Anchors at the ends are removed first (`RemoveStartEndAnchors`), and a
  regex that simplifies to `.*` is the default `(.*)` (`isDefaultRegex`): `$1` is the whole value.
* `IfExpr`: `if:` series selectors (`name{label op "value", ...}`, `or` groups, lists).
* graphite `match`/`labels` templates.

Anything of the selector language beyond plain selectors (MetricsQL WITH templates, string
concatenation) is refused with a clear message rather than guessed.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import re2

from ..errors import InputError, SourceRef

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def remove_start_end_anchors(regex: str) -> str:
    """`regexutil.RemoveStartEndAnchors`: every leading `^` and trailing `$` (not `\\$`), as text."""
    while regex.startswith("^"):
        regex = regex[1:]
    while regex.endswith("$") and not regex.endswith("\\$"):
        regex = regex[:-1]
    return regex


# --------------------------------------------------------------------------------------------
# isDefaultRegex: a regex Go's simplifier reduces to `.*`

_FLAG_ONLY = re2.compile(r"\(\?[is-]+:?\)")
_FLAG_CHARS = set("ims")


def _closing(regex: str, start: int) -> int:
    """Index of the `)` closing the group opened at `start` (escapes and classes skipped), or -1."""
    from .engine import plain_positions  # engine imports this module

    depth = 0
    for offset in plain_positions(regex[start:]):
        c = regex[start + offset]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return start + offset
    return -1


def _group_body(regex: str) -> tuple[str, str] | None:
    """(body, what follows) when `regex` starts with a group whose flags keep `.*` what it is."""
    if not regex.startswith("("):
        return None
    end = _closing(regex, 0)
    if end < 0:
        return None
    inner = regex[1:end]
    if inner.startswith("?P<") or inner.startswith("?<"):
        close = inner.find(">")
        inner = inner[close + 1:] if close > 0 else None
    elif inner.startswith("?"):
        colon = inner.find(":")
        if colon < 0 or not set(inner[1:colon]) <= _FLAG_CHARS | {"-"}:
            return None
        inner = inner[colon + 1:]
    return (inner, regex[end + 1:]) if inner is not None else None


def _reduce(regex: str, depth: int = 0) -> str:
    """A normal form that is `.*` exactly for the spellings Go reduces to `.*`: groups, anchors
    at the ends, `(?flags)` that do not touch greediness, `(X)*`/`{1}` over `.`/`.*`, empty groups."""
    if depth > 20:
        return regex
    prev = None
    while prev != regex:
        prev = regex
        for flag in ("(?s)", "(?i)", "(?m)", "(?is)", "(?si)", "(?ms)", "(?sm)", "(?im)", "(?mi)"):
            if regex.startswith(flag):
                regex = regex[len(flag):]
        for empty in ("()", "(?:)"):
            regex = regex.replace(empty, "") if regex != empty else ""
        regex = _FLAG_ONLY.sub("", regex)  # `(?i)`, `(?s:)`: no node of their own
        while regex.startswith(("^", "\\A")):
            regex = regex[1:] if regex[0] == "^" else regex[2:]
        while (regex.endswith("$") and not regex.endswith("\\$")) or (
                regex.endswith("\\z") and not regex.endswith("\\\\z")):
            regex = regex[:-1] if regex.endswith("$") else regex[:-2]
        body = _group_body(regex)
        if body is not None:
            inner, rest = body
            inner = _reduce(inner, depth + 1)
            if inner not in (".", ".*") and ("|" in inner or "[" in inner) and _prefix_then_any(inner) == "":
                inner = "."  # Go merges `.|1`, `[\s\S]`, ... into one any-character node
            if inner in (".", ".*") and rest in ("", "*", "{1}", "{1,1}") or inner == ".*" and rest.startswith(("*", "{1}")):
                if rest in ("", "{1}", "{1,1}"):
                    regex = inner
                else:
                    regex = ".*" + rest[1:]
            elif rest == "" and "|" not in inner:
                regex = inner
        if regex.startswith(".*") and regex[2:] in ("*", "{1}", "{1,1}"):
            regex = ".*"
        if regex in (".{1}", ".{1,1}"):
            regex = "."
    return regex


def is_default_regex(regex: str) -> bool:
    """`isDefaultRegex`: the regex simplifies to `.*` (then vmagent runs the default `(.*)`)."""
    try:
        re2.compile(regex, _RE2_OPTIONS)
    except re2.error:
        return False
    if _MULTILINE.search(regex) and ("$" in regex or "^" in regex):
        return False  # (?m): `^`/`$` are line anchors, which the simplification keeps
    return _reduce(regex) == ".*"


_MULTILINE = re2.compile(r"\(\?[a-zA-Z-]*m")


# --------------------------------------------------------------------------------------------
# The regex of one rule


@dataclass(frozen=True)
class VmRegex:
    """One rule's regex as vmagent v1.150 holds it (see the module docstring)."""

    default: bool
    anchored: Any        # RegexAnchored: `^(?:re)$` (or `^(.*)$`), not dotall: capture groups
    original: Any        # regexOriginal: the regex unanchored (`.*` by default): *_all, prefixes
    matcher: Any         # PromRegex: whether a value matches
    text: str            # the regex after anchor removal, as vmagent wraps it
    dotall: bool = True  # whether the PromRegex lets `.` match a newline (see `_prom_regex`)
    match_text: str = ".*"  # what PromRegex matches, fully: `^(?s:match_text)$` (or `(?:` if not dotall)

    def matches(self, value: str) -> bool:
        return self.matcher.search(value) is not None

    def groups(self, value: str) -> Any:
        """The match of `^(?:re)$` (None when it misses: a newline, say)."""
        return self.anchored.search(value)


_DEFAULT = None


def default_regex() -> VmRegex:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = VmRegex(True, re2.compile("^(.*)$", _RE2_OPTIONS), re2.compile(".*", _RE2_OPTIONS),
                           re2.compile("^(?s:.*)$", _RE2_OPTIONS), ".*")
    return _DEFAULT


def compile_vm_regex(regex: str | None, raw_action: str, source: SourceRef | None) -> VmRegex:
    """`parseRelabelConfig`'s regex handling: default, anchors, compile errors as vmagent words them."""
    if regex is None or is_default_regex(regex):
        return default_regex()
    text = regex
    whole = raw_action in ("replace_all", "labelmap_all")  # upstream compares the action as written
    if not whole:
        text = remove_start_end_anchors(regex)
    anchored_text = text if whole else "^(?:" + text + ")$"
    anchored = _go_compile(anchored_text, source)
    original = _go_compile(text, source)
    matcher = _prom_regex(drop_edge_anchors(text))
    return VmRegex(False, anchored, original, re2.compile(matcher, _RE2_OPTIONS), text,
                   matcher.startswith("^(?s:"), matcher[5:-2] if matcher.startswith("^(?s:") else matcher[4:-2])


def _go_compile(regex: str, source: SourceRef | None) -> Any:
    if _has_byte_escape(regex):
        raise InputError(f"cannot parse `regex` {_goquote(regex)}: error parsing regexp: invalid escape "
                         "sequence: `\\C`", source, expected="an RE2 regular expression Go accepts")
    try:
        return re2.compile(regex, _RE2_OPTIONS)
    except re2.error as exc:
        msg = exc.args[0] if exc.args else str(exc)
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        raise InputError(f"cannot parse `regex` {_goquote(regex)}: error parsing regexp: {msg}", source,
                         expected="an RE2 regular expression") from None


def _prom_regex(text: str) -> str:
    """The full-match pattern `PromRegex.MatchString` amounts to: dotall, except where the
    simplified regex is a literal prefix then one lone `.` — printed `(?s:.)`, which upstream
    rewrites to a plain `.` (no newline)."""
    prefix = _prefix_then_any(text)
    if prefix is not None and not _ends_in_bare_class(text):
        # upstream's own rewrite: the literal, then a `.` without newline
        return "^(?:" + re2.escape(prefix) + ".)$"
    conflicted = conflict_dots(text)
    if conflicted is not None:
        return "^(?s:" + conflicted + ")$"
    return "^(?s:" + text + ")$"


def _ends_in_bare_class(text: str) -> bool:
    """Whether the any-character part is a `[...]` class straight in the top concatenation after
    other items: Go turns a full class into `.` only where it cleans an alternation (a group's
    body, the whole regex), so `x[\\s\\S]` keeps its class (and matches a newline)."""
    try:
        tree, end = _Tree(text).alternation(0)
    except (_Unparsed, ValueError):
        return False
    if end != len(text) or len(tree[1]) != 1:
        return False
    items = [item for item in tree[1][0][1] if item[0] != "empty"]
    return len(items) > 1 and items[-1][0] == "atom" and text[items[-1][1]] == "[" and not items[-1][3]


def _prefix_then_any(text: str) -> str | None:
    """The literal when `text` (dotall) matches exactly: one fixed literal, then any one
    character (Go's parser makes such a regex a literal and one `OpAnyChar`); else None."""
    if "." not in text and "\\" not in text and "[" not in text:
        return None
    from .regexlang import Lang, UnsupportedRegex

    try:
        lang = Lang.from_relabel(text, dotall=True)
        sample = lang.example()
        if not sample:
            return None
        prefix = sample[:-1]
        if "(?i" in text and prefix:
            return None  # a case-folded prefix is not split off as a literal upstream
        if lang.equivalent(Lang.literal(prefix).concat(Lang.chars([(0, 0x10FFFF)]))):
            return prefix
        return None
    except (UnsupportedRegex, RecursionError):
        return None


def _has_byte_escape(regex: str) -> bool:
    """`\\C` (any byte): see engine._has_byte_escape (engine imports this module)."""
    from .engine import _has_byte_escape as has_byte_escape

    return has_byte_escape(regex)


def _goquote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def literal_prefix(regex: str) -> tuple[str, bool]:
    """Go's `Regexp.LiteralPrefix` for the common shapes: the leading literal characters (no
    meta character, no case folding) and whether they are the whole regex."""
    if regex.startswith("(?i") or "|" in regex:
        return "", False
    out = []
    i = 0
    meta = set("\\.+*?()|[]{}^$")
    while i < len(regex) and regex[i] not in meta:
        out.append(regex[i])
        i += 1
    if i < len(regex) and regex[i] in "*?{" and out:
        out.pop()  # the last literal is repeated: not part of the prefix
    return "".join(out), i == len(regex)


# --------------------------------------------------------------------------------------------
# `if:` series selectors


@dataclass(frozen=True)
class LabelFilter:
    label: str          # "" for the metric name (`__name__`)
    op: str             # "=", "!=", "=~", "!~"
    value: str
    regex: Any = None   # the PromRegex of =~ / !~

    def matches(self, labels: list[list[str]]) -> bool:
        if self.op in ("=", "!="):
            return self._equal(labels) == (self.op == "=")
        return self._regex(labels) == (self.op == "=~")

    def _equal(self, labels: list[list[str]]) -> bool:
        if self.label == "":
            for name, value in labels:
                if name == "__name__":
                    return value == self.value
            return False
        seen = 0
        for name, value in labels:
            if name != self.label:
                continue
            seen += 1
            if value == self.value:
                return True
        return seen == 0 and self.value == ""

    def _regex(self, labels: list[list[str]]) -> bool:
        seen = 0
        for name, value in labels:
            if ("" if name == "__name__" else name) != self.label:
                continue
            seen += 1
            if self.regex.search(value) is not None:
                return True
        return seen == 0 and self.regex.search("") is not None


@dataclass(frozen=True)
class IfExpr:
    """`if:` — a list of selectors (any matches); each selector is `or` groups of filters."""

    texts: tuple[str, ...]
    selectors: tuple[tuple[tuple[LabelFilter, ...], ...], ...]

    def matches(self, labels: list[list[str]]) -> bool:
        if not self.selectors:
            return True
        return any(any(all(f.matches(labels) for f in group) for group in groups)
                   for groups in self.selectors)

    def filters(self) -> list[LabelFilter]:
        return [f for groups in self.selectors for group in groups for f in group]


def parse_if(value: Any, source: SourceRef | None) -> IfExpr | None:
    """`if:` as vmagent reads it: one selector or a list of them."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    if not isinstance(value, (list, tuple, str)):
        raise InputError(f"unexpected `match` type; got {value!r}; want string or an array of strings",
                         source)
    selectors = []
    for item in items:
        if not isinstance(item, str):
            raise InputError(f"unexpected `match` item type; got {item!r}; want string", source)
        selectors.append(_Selector(item, source).parse())
    return IfExpr(tuple(items), tuple(selectors))


def _is_first_ident(c: str) -> bool:
    return c.isalpha() and unicodedata.category(c).startswith("L") or c in "_:"


def _is_ident(c: str) -> bool:
    return _is_first_ident(c) or c in "0123456789."


class _Selector:
    """A MetricsQL series selector: `name`, `name{...}` or `{...}`; filters `label op "value"`
    separated by `,`, groups separated by `or`."""

    def __init__(self, text: str, source: SourceRef | None):
        self.text, self.source, self.i = text, source, 0

    def fail(self, what: str) -> InputError:
        return InputError(f"cannot parse `if` series selector {_goquote(self.text)}: {what}", self.source,
                          expected='a series selector such as metric{label="value"} (MetricsQL)')

    def skip(self) -> None:
        while self.i < len(self.text):
            c = self.text[self.i]
            if c in " \t\n\r\v\f":
                self.i += 1
            elif c == "#":
                while self.i < len(self.text) and self.text[self.i] != "\n":
                    self.i += 1
            else:
                break

    def peek(self, s: str) -> bool:
        self.skip()
        return self.text.startswith(s, self.i)

    def ident(self) -> str | None:
        """An identifier; `\\c`, `\\xNN`, `\\uNNNN` escapes are part of it (MetricsQL's scanIdent)."""
        self.skip()
        t, j, out = self.text, self.i, []
        while j < len(t):
            c = t[j]
            if (_is_first_ident(c) if not out else _is_ident(c)):
                out.append(c)
                j += 1
                continue
            if c != "\\":
                break
            decoded = _escape(t[j + 1:])
            if decoded is None:
                break
            out.append(decoded[0])
            j += 1 + decoded[1]
        if not out:
            return None
        self.i = j
        return "".join(out)

    def string(self) -> str:
        self.skip()
        if self.i >= len(self.text) or self.text[self.i] not in "\"'`":
            raise self.fail("expecting a quoted string")
        quote = self.text[self.i]
        j = self.i + 1
        while True:
            k = self.text.find(quote, j)
            if k < 0:
                raise self.fail(f"cannot find closing quote {quote}")
            backslashes = 0
            while k - backslashes - 1 > self.i and self.text[k - backslashes - 1] == "\\":
                backslashes += 1
            if backslashes % 2 == 0 or quote == "`":
                break
            j = k + 1
        token, self.i = self.text[self.i:k + 1], k + 1
        return _unquote(token, self.fail)

    def parse(self) -> tuple[tuple[LabelFilter, ...], ...]:
        name = self.ident()
        if name is not None and name.lower() in ("with", "or", "and", "unless", "by", "without"):
            raise self.fail(f"{name!r} expressions are not series selectors the engine models")
        name_filter = LabelFilter("", "=", name) if name is not None else None
        groups: list[tuple[LabelFilter, ...]] = []
        if self.peek("{"):
            self.i += 1
            if self.peek("}"):
                self.i += 1
                groups = [(name_filter,)] if name_filter else []
            else:
                while True:
                    group = [name_filter] if name_filter else []
                    while True:
                        group.append(self.label_filter())
                        if self.peek(","):
                            self.i += 1
                            if self.peek("}"):
                                break
                            continue
                        break
                    groups.append(tuple(group))
                    if self.peek("}"):
                        self.i += 1
                        break
                    if self.text[self.i:self.i + 2].lower() == "or":
                        self.i += 2
                        continue
                    raise self.fail('unexpected token; want ",", "or", "}"')
        elif name_filter is not None:
            groups = [(name_filter,)]
        else:
            raise self.fail("expecting series selector")
        self.skip()
        if self.i != len(self.text):
            raise self.fail(f"unparsed tail {self.text[self.i:]!r} (only plain series selectors are modelled)")
        return self.metric_names(groups)

    def metric_names(self, groups: list[tuple[LabelFilter, ...]]) -> tuple[tuple[LabelFilter, ...], ...]:
        """MetricsQL's expansion: in each `or` group `__name__="x"` is the metric name (a second,
        different one is an error; duplicates of a filter go); when every group that names a
        metric names the same one, groups without any `__name__` filter get it too."""
        out, names = [], []
        for group in groups:
            local = None
            kept: list[LabelFilter] = []
            for f in group:
                if f.label == "" and f.op == "=":
                    if local is not None and local != f.value:
                        raise self.fail(f"metric name must not be set twice: {_goquote(local)} or {_goquote(f.value)}")
                    local = f.value
                if f not in kept:
                    kept.append(f)
            names.append(local or "")
            out.append(kept)
        common = {n for n in names if n}
        if len(common) == 1:
            name = common.pop()
            out = [g if any(f.label == "" for f in g) else [LabelFilter("", "=", name)] + g for g in out]
        return tuple(tuple(g) for g in out)

    def label_filter(self) -> LabelFilter:
        self.skip()
        if self.i < len(self.text) and self.text[self.i] in "\"'`":
            label = self.string()
            self.skip()
            if self.text.startswith((",", "}"), self.i) or self.text[self.i:self.i + 2].lower() == "or":
                return LabelFilter("", "=", label)  # {"metric"}: a quoted metric name (Prometheus 3)
        else:
            label = self.ident()
            if label is None:
                raise self.fail('unexpected token; want "ident"')
        self.skip()
        for op in ("=~", "!~", "!=", "="):
            if self.text.startswith(op, self.i):
                self.i += len(op)
                break
        else:
            raise self.fail(f"label filter {label!r} without a value (WITH templates are not modelled)")
        value = self.string()
        label = "" if label == "__name__" else label
        regex = None
        if op in ("=~", "!~"):
            try:
                re2.compile(value, _RE2_OPTIONS)
            except re2.error as exc:
                raise self.fail(f"cannot parse regexp {value!r}: {exc}") from None
            if _has_byte_escape(value):
                raise self.fail(f"cannot parse regexp {value!r}: invalid escape sequence `\\C`")
            regex = re2.compile(_prom_regex(drop_edge_anchors(value)), _RE2_OPTIONS) if not is_default_regex(value) \
                else re2.compile("^(?s:.*)$", _RE2_OPTIONS)
        return LabelFilter(label, op, value, regex)


def _escape(s: str) -> tuple[str, int] | None:
    """MetricsQL's decodeEscapeSequence: (character, length) of the escape after a backslash."""
    hexdigits = "0123456789abcdefABCDEF"
    if s[:1] in ("x", "X"):
        return (chr(int(s[1:3], 16)), 3) if len(s) >= 3 and all(c in hexdigits for c in s[1:3]) else None
    if s[:1] in ("u", "U"):
        return (chr(int(s[1:5], 16)), 5) if len(s) >= 5 and all(c in hexdigits for c in s[1:5]) else None
    if s and s[0].isprintable():
        return s[0], 1
    return None


def _unquote(token: str, fail: Any) -> str:
    """MetricsQL string literals: Go's strconv.Unquote of "..." and `...`; '...' like "..."."""
    quote = token[0]
    body = token[1:-1]
    if quote == "`":
        if "`" in body:
            raise fail("backquoted string with a backquote")
        return body
    if quote == "'":
        body = body.replace("\\'", "'")
    out, i = [], 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
              '"': '"', "'": "'"}
    while i < len(body):
        c = body[i]
        if c == "\n":
            raise fail("newline in a string literal")
        if c == '"' and quote == '"':
            raise fail("unescaped quote in a string literal")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise fail("string literal ends in a backslash")
        e = body[i]
        if e in simple:
            out.append(simple[e])
            i += 1
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 1:i + 1 + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise fail(f"invalid escape \\{e}{digits}")
            out.append(chr(int(digits, 16)))
            i += 1 + width
        elif e in "01234567":
            digits = body[i:i + 3]
            if len(digits) != 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise fail(f"invalid octal escape \\{digits}")
            out.append(chr(int(digits, 8)))
            i += 3
        else:
            raise fail(f"invalid escape \\{e}")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# graphite


def graphite_match_parts(template: str) -> tuple[str, ...]:
    """`newGraphiteMatchTemplate`: literal parts and `*` parts, empty ones skipped."""
    parts: list[str] = []
    while True:
        n = template.find("*")
        if n < 0:
            if template:
                parts.append(template)
            break
        if n:
            parts.append(template[:n])
        parts.append("*")
        template = template[n + 1:]
    return tuple(parts)


def graphite_match(parts: tuple[str, ...], name: str) -> list[str] | None:
    """`graphiteMatchTemplate.Match`: [name, capture1, ...] or None; a `*` never spans a dot."""
    out = [name]
    s = name
    if parts and parts[-1] != "*" and not s.endswith(parts[-1]):
        return None
    i = 0
    while i < len(parts):
        p = parts[i]
        if p != "*":
            if not s.startswith(p):
                return None
            s = s[len(p):]
            i += 1
            continue
        if i + 1 >= len(parts):
            if "." in s:
                return None
            out.append(s)
            return out
        nxt = parts[i + 1]
        i += 2
        n = s.find(nxt)
        if n < 0 or "." in s[:n]:
            return None
        out.append(s[:n])
        s = s[n + len(nxt):]
    return out if s == "" else None


def _go_atoi(s: str) -> int | None:
    body = s[1:] if s[:1] in "+-" else s
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(s)
    return value if -(1 << 63) <= value < (1 << 63) else None


def graphite_replace_parts(template: str) -> tuple[tuple[int, str], ...]:
    """`newGraphiteReplaceTemplate`: (capture index or -1, text) parts of `$1`/`${1}` templates."""
    parts: list[tuple[int, str]] = []

    def add(text: str, n: int) -> None:
        if text:
            parts.append((n, text))

    s = template
    while True:
        n = s.find("$")
        if n < 0:
            add(s, -1)
            break
        if n > 0:
            add(s[:n], -1)
        s = s[n + 1:]
        if s.startswith("{"):
            close = s.find("}")
            if close < 0:
                add("$" + s, -1)
                break
            idx_text = s[1:close]
            s = s[close + 1:]
            idx = _go_atoi(idx_text)
            add("${" + idx_text + "}", -1 if idx is None else idx)
        else:
            k = 0
            while k < len(s) and s[k] in "0123456789":
                k += 1
            idx_text, s = s[:k], s[k:]
            idx = _go_atoi(idx_text)
            add("$" + idx_text, -1 if idx is None else idx)
    return tuple(parts)


def graphite_expand(parts: tuple[tuple[int, str], ...], matches: list[str]) -> str:
    return "".join(matches[n] if 0 <= n < len(matches) else text for n, text in parts)


def fill_label_references(template: str, get: Any) -> str:
    """`fillLabelReferences`: `{{name}}` in a replacement becomes that label's value ("" if absent)."""
    out = []
    s = template
    while s:
        n = s.find("{{")
        if n < 0:
            out.append(s)
            break
        out.append(s[:n])
        s = s[n + 2:]
        n = s.find("}}")
        if n < 0:
            out.append("{{" + s)
            break
        out.append(get(s[:n]))
        s = s[n + 2:]
    return "".join(out)


# --------------------------------------------------------------------------------------------
# The anchors `regexutil.simplifyRegexpExt` drops


def drop_edge_anchors(regex: str) -> str:
    """The regex without the `^`/`\\A` and `$`/`\\z` that PromRegex's simplification drops:
    those at the start (end) of the pattern, where "at the end" reaches into the last element's
    group, alternation branches and repeated body — so `(?:[a-z]$){1,2}` becomes `[a-z]{1,2}`
    and matches "ab". Multi-line mode (`(?m)`) is left alone (its `^`/`$` are line anchors)."""
    if "(?" in regex and any(f in regex for f in ("(?m", "(?im", "(?sm", "(?ism", "(?ims", "(?-")):
        return regex
    try:
        tree, end = _Tree(regex).alternation(0)
    except _Unparsed:
        return regex
    if end != len(regex):
        return regex
    drop: set[int] = set()
    _mark(tree, False, False, drop, top=True)
    out, i = [], 0
    while i < len(regex):
        if i in drop:
            i += 2 if regex[i] == "\\" else 1
            continue
        out.append(regex[i])
        i += 1
    return "".join(out)


class _Unparsed(Exception):
    pass


class _Tree:
    """A syntax tree of just what anchor removal needs: ("alt", [concat]), ("cat", [item]),
    item = (kind, start, children, quantified): kind "group" (children = [alt]), "begin",
    "end", "atom", "empty" (a flag group)."""

    def __init__(self, text: str):
        self.t = text

    def alternation(self, i: int) -> tuple[tuple, int]:
        branches = []
        while True:
            cat, i = self.concat(i)
            branches.append(cat)
            if i < len(self.t) and self.t[i] == "|":
                i += 1
                continue
            return ("alt", branches), i

    def concat(self, i: int) -> tuple[tuple, int]:
        items = []
        t = self.t
        while i < len(t) and t[i] not in "|)":
            start = i
            c = t[i]
            if c == "(":
                close = _closing(t, i)
                if close < 0:
                    raise _Unparsed()
                j = i + 1
                if t.startswith("?P<", j) or t.startswith("?<", j):
                    j = t.index(">", j) + 1
                elif t.startswith("?", j):
                    k = j + 1
                    while k < len(t) and t[k] not in ":)":
                        k += 1
                    if k < len(t) and t[k] == ")":  # (?flags): no node
                        items.append(("empty", start, [], False))
                        i = k + 1
                        continue
                    j = k + 1
                inner, end = self.alternation(j)
                if end != close:
                    raise _Unparsed()
                item = ["group", start, [inner], False]
                i = close + 1
            elif c == "[":
                close = _class_end(t, i)
                item, i = ["atom", start, [], False], close + 1
            elif c == "\\":
                nxt = t[i + 1:i + 2]
                if nxt in ("A",):
                    item, i = ["begin", start, [], False], i + 2
                elif nxt == "z":
                    item, i = ["end", start, [], False], i + 2
                elif nxt in ("p", "P") and t[i + 2:i + 3] == "{":
                    item, i = ["atom", start, [], False], t.index("}", i) + 1
                elif nxt == "Q":
                    end = t.find("\\E", i + 2)
                    item, i = ["atom", start, [], False], (len(t) if end < 0 else end + 2)
                elif nxt == "x" and t[i + 2:i + 3] == "{":
                    item, i = ["atom", start, [], False], t.index("}", i) + 1
                elif nxt == "x":
                    item, i = ["atom", start, [], False], i + 4
                elif nxt in ("p", "P"):
                    item, i = ["atom", start, [], False], i + 3
                elif nxt in "01234567":
                    k = i + 1
                    while k < len(t) and k < i + 4 and t[k] in "01234567":
                        k += 1
                    item, i = ["atom", start, [], False], k
                else:
                    item, i = ["atom", start, [], False], i + 2
            elif c == "^":
                item, i = ["begin", start, [], False], i + 1
            elif c == "$":
                item, i = ["end", start, [], False], i + 1
            else:
                item, i = ["atom", start, [], False], i + 1
            while i < len(t) and (t[i] in "*+?" or (t[i] == "{" and _repeat_end(t, i) > 0)):
                i = i + 1 if t[i] in "*+?" else _repeat_end(t, i)
                if i < len(t) and t[i] == "?":
                    i += 1
                item[3] = True
            items.append(tuple(item))
        return ("cat", items), i


def _class_end(t: str, i: int) -> int:
    j = i + 1
    if t.startswith("^", j):
        j += 1
    if t.startswith("]", j):
        j += 1
    while j < len(t):
        if t[j] == "\\":
            j += 2
            continue
        if t.startswith("[:", j):
            k = t.find(":]", j + 2)
            if k > 0:
                j = k + 2
                continue
        if t[j] == "]":
            return j
        j += 1
    raise _Unparsed()


def _repeat_end(t: str, i: int) -> int:
    """The index after `{n}`, `{n,}`, `{n,m}` at i, or -1 when `{` is a literal there."""
    j = i + 1
    k = j
    while k < len(t) and t[k].isdigit():
        k += 1
    if k == j:
        return -1
    if k < len(t) and t[k] == ",":
        k += 1
        while k < len(t) and t[k].isdigit():
            k += 1
    return k + 1 if k < len(t) and t[k] == "}" else -1


def _mark(node: tuple, keep_begin: bool, keep_end: bool, drop: set[int], top: bool = False) -> bool:
    """Mark anchors to drop under `simplifyRegexpExt`'s rules; True when the node is empty.

    Only a concatenation (two nodes or more, as Go's parser builds it) loses anchors at its
    edges; a lone anchor (a group's whole body, an alternation branch) stays, except at the top,
    and a repeated anchor (`^*`) is no anchor node."""
    if node[0] == "alt":
        empties = [_mark(b, keep_begin, keep_end, drop, top and len(node[1]) == 1) for b in node[1]]
        return len(empties) == 1 and empties[0]
    items = [item for item in node[1] if item[0] != "empty"]
    if len(items) == 1:
        item = items[0]
        if item[0] == "group":
            return _mark(item[2][0], keep_begin, keep_end, drop, top and not item[3]) and True
        anchor = (item[0] == "begin" and not keep_begin) or (item[0] == "end" and not keep_end)
        if top and anchor and not item[3]:
            drop.add(item[1])
            return True
        return False
    kept: list[tuple] = []
    for i, item in enumerate(items):
        if item[0] == "group":
            if _mark(item[2][0], keep_begin or bool(kept), keep_end or i + 1 < len(items), drop):
                continue
        kept.append(item)
    if not keep_begin:
        while kept and kept[0][0] == "begin" and not kept[0][3]:
            drop.add(kept.pop(0)[1])
    if not keep_end:
        while kept and kept[-1][0] == "end" and not kept[-1][3]:
            drop.add(kept.pop()[1])
    return not kept


# --------------------------------------------------------------------------------------------
# A `.` Go prints as `(?s:.)` between (?i) flag conflicts (PromRegex then drops its dotall)

_SIMPLE_ESCAPES = set("dDwWsS")
_FLAG_I, _FLAG_S, _FLAG_M = 1, 2, 4


def _flat_atoms(text: str) -> list[tuple[str, str, bool, str]] | None:
    """(kind, text, case-folded, quantifier) atoms of a regex without alternation, counted
    repetition or repeated groups, groups flattened; None when it has any of those."""
    atoms: list[tuple[str, str, bool, str]] = []
    stack = [False]  # (?i) active, per group
    i = 0
    while i < len(text):
        c = text[i]
        fold = stack[-1]
        if c in "|{":
            return None
        if c == "(":
            if text.startswith("(?", i) and not text.startswith(("(?P<", "(?<"), i):
                j = i + 2
                while j < len(text) and text[j] not in ":)":
                    j += 1
                flags = text[i + 2:j]
                if not set(flags) <= set("is-") or j >= len(text):
                    return None
                on = "i" in flags.split("-")[0]
                off = "-" in flags and "i" in flags.split("-")[1]
                new = (fold or on) and not off
                if text[j] == ")":
                    stack[-1] = new
                else:
                    stack.append(new)
                i = j + 1
                continue
            j = text.find(">", i) + 1 if text.startswith(("(?P<", "(?<"), i) else i + 1
            stack.append(fold)
            i = j
            continue
        if c == ")":
            if len(stack) == 1:
                return None
            stack.pop()
            if i + 1 < len(text) and text[i + 1] in "*+?":
                return None
            i += 1
            continue
        if c == "[":
            j = _class_end(text, i) + 1
            kind, atom = "class", text[i:j]
        elif c == "\\":
            nxt = text[i + 1:i + 2]
            if nxt in _SIMPLE_ESCAPES:
                kind, atom, j = "class", text[i:i + 2], i + 2
            elif nxt and not nxt.isalnum():
                kind, atom, j = "lit", text[i:i + 2], i + 2
            else:
                return None
        elif c == ".":
            kind, atom, j = "dot", c, i + 1
        elif c in "^$":
            kind, atom, j = "anchor", c, i + 1
        else:
            kind, atom, j = "lit", c, i + 1
        k = j
        while k < len(text) and text[k] in "*+?":
            k += 1
        atoms.append((kind, atom, fold, text[j:k]))
        i = k
    return atoms


def _fold_sensitive(ch: str) -> bool:
    return ch.lower() != ch.upper() or ch.casefold() != ch


def _atom_flags(kind: str, atom: str, fold: bool) -> tuple[int, int]:
    """Go's calcFlags of one atom: (must, cant)."""
    if kind == "dot":
        return _FLAG_S, 0
    if kind == "anchor":
        return (0, _FLAG_M) if atom == "$" else (0, 0)
    if kind == "lit":
        ch = atom[-1]
        if not _fold_sensitive(ch):
            return 0, 0
        return (_FLAG_I, 0) if fold else (0, _FLAG_I)
    if fold or atom[:2] in ("\\d", "\\D", "\\w", "\\W", "\\s", "\\S"):
        return 0, 0
    try:
        compiled = re2.compile("^" + atom + "$", _RE2_OPTIONS)
    except re2.error:
        return 0, 0
    for cp in range(0x41, 0x250):  # Latin letters: where the generated and real classes live
        ch = chr(cp)
        if compiled.search(ch) is not None and _fold_sensitive(ch):
            for other in {ch.lower(), ch.upper()} - {ch}:
                if compiled.search(other) is None:
                    return 0, _FLAG_I
    return 0, 0


def conflict_dots(text: str) -> str | None:
    """`text` with each `.` that Go prints alone as `(?s:.)` — isolated by (?i) flag conflicts in
    the simplified concatenation — written `(?-s:.)`; None when there is none (or the regex is
    beyond this model: alternation, counted repetition, repeated groups)."""
    if "(?i" not in text or "." not in text:
        return None
    atoms = _flat_atoms(text)
    if not atoms:
        return None
    k = 0  # the literal prefix upstream splits off (no case folding, not repeated)
    while k < len(atoms) and atoms[k][0] == "lit" and not atoms[k][3] and not (
            atoms[k][2] and _fold_sensitive(atoms[k][1][-1])):
        if k + 1 < len(atoms) and atoms[k + 1][3]:
            break  # `ab*`: the literal before a quantifier is not in the prefix
        k += 1
    rest = atoms[k:]
    isolated: set[int] = set()
    must = cant = 0
    start = last = 0
    conflict = False
    for i, (kind, atom, fold, quantified) in enumerate(rest):
        sub_must, sub_cant = _atom_flags(kind, atom, fold)
        if must & sub_cant or sub_must & cant:
            if must and start == last and rest[start][0] == "dot" and not rest[start][3] and must == _FLAG_S:
                isolated.add(start)
            must = cant = 0
            start = i
            conflict = True
        must |= sub_must
        cant |= sub_cant
        if sub_must:
            last = i
        if must == 0 and start == i:
            start += 1
    if conflict and must and start == last and start < len(rest) and rest[start][0] == "dot" \
            and not rest[start][3] and must == _FLAG_S:
        isolated.add(start)
    if not isolated:
        return None
    return "".join(("(?i:" if fold else "(?-i:") + ("(?-s:.)" if i - k in isolated else atom) + ")" + quant
                   for i, (kind, atom, fold, quant) in enumerate(atoms))
