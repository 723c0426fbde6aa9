"""Regular-language algebra over RE2 patterns, for proofs about relabel rules.

Why this exists: the GDPR proof must answer questions such as "which label names match the
forbidden pattern but survive this labeldrop?" — with a concrete witness.  Testing a few sample
strings cannot prove absence, so we compile RE2 patterns into deterministic finite automata and
decide emptiness / inclusion exactly.

Design:
- The alphabet is every Unicode scalar value (U+0000..U+10FFFF without surrogates).  Transitions
  are labelled with *classes* of a partition of that alphabet into code-point intervals, so `.`,
  negated classes and `\\pL` cost a handful of intervals, not a million edges.
- A pattern is parsed by our own RE2 parser (after google-re2 itself has accepted it), turned into
  a Thompson NFA with assertion edges, determinized by subset construction and minimized.
  Assertions (`^ $ \\A \\z \\b \\B`, multi-line or not) are modelled exactly: a DFA state remembers
  the lookahead each NFA state still needs ("next is a newline / word char / other / end"), and
  the closure after each character knows the kind of that character (the lookbehind).
- Boolean operations are product constructions explored from the start pair only (never the
  full cross product), then minimized; complement flips acceptance of a complete DFA.

Exactness: `Lang.from_re2(p)` is the set of strings s with `re2.fullmatch(p, s)`.  Unicode
classes (`\\pL`, `\\p{Greek}`, ...) are read from google-re2 itself, so they agree with the
oracle.  Case folding uses simple case-folding orbits derived from Python's Unicode data
(`str.casefold`, plus `str.lower` for the few characters whose full folding is multi-character);
tests check every code point against google-re2.  Prometheus uses Go's `regexp`, which follows the
same syntax and simple folding; Unicode-version differences between Go, RE2 and Python only touch
exotic code points, never the ASCII label-name alphabet.  Anything we cannot model raises
`UnsupportedRegex` (callers must then be conservative); patterns RE2 rejects raise
`InvalidRegex`, a subclass.
"""

from __future__ import annotations

import bisect
import functools
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Lang", "UnsupportedRegex", "InvalidRegex"]

MAX_CP = 0x10FFFF
SURR_LO, SURR_HI = 0xD800, 0xDFFF
# Guards against pathological patterns (e.g. nested counted repetition): beyond these sizes we
# refuse rather than hang; the caller then treats the rule conservatively.
MAX_NFA_STATES = 50_000
MAX_DFA_STATES = 20_000


class UnsupportedRegex(Exception):
    """The pattern uses something this module cannot model exactly; be conservative."""


class InvalidRegex(UnsupportedRegex, ValueError):
    """RE2 itself rejects the pattern (Prometheus/vmagent would refuse the config)."""


# --------------------------------------------------------------------------------------------
# Interval sets: sorted tuples of disjoint, non-adjacent (lo, hi) code-point ranges.
# --------------------------------------------------------------------------------------------

IvSet = tuple[tuple[int, int], ...]
SIGMA: IvSet = ((0, SURR_LO - 1), (SURR_HI + 1, MAX_CP))
NO_CHARS: IvSet = ()


def _norm(ranges: Iterable[tuple[int, int]]) -> IvSet:
    """Sort, merge and clip ranges to the alphabet (surrogates are not characters)."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1][1] = hi
        else:
            out.append([lo, hi])
    clipped: list[tuple[int, int]] = []
    for lo, hi in out:
        if lo < SURR_LO <= hi or lo <= SURR_HI < hi or SURR_LO <= lo <= SURR_HI:
            if lo < SURR_LO:
                clipped.append((lo, SURR_LO - 1))
            if hi > SURR_HI:
                clipped.append((SURR_HI + 1, hi))
        else:
            clipped.append((lo, hi))
    return tuple(clipped)


def _union(*sets: IvSet) -> IvSet:
    return _norm(r for s in sets for r in s)


def _complement(s: IvSet) -> IvSet:
    """Alphabet minus s."""
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in s:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CP:
        out.append((nxt, MAX_CP))
    return _norm(out)


def _iv_contains(s: IvSet, cp: int) -> bool:
    i = bisect.bisect_right(s, (cp, MAX_CP + 1)) - 1
    return i >= 0 and s[i][0] <= cp <= s[i][1]


def _chars(text: str) -> IvSet:
    return _norm((ord(c), ord(c)) for c in text)


_ASCII = {
    "digit": ((0x30, 0x39),),
    "word": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
    "perlspace": _chars("\t\n\f\r "),
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0, 0x7F),),
    "blank": _chars("\t "),
    "cntrl": ((0, 0x1F), (0x7F, 0x7F)),
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": _chars("\t\n\v\f\r "),
    "upper": ((0x41, 0x5A),),
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_PERL = {"d": _ASCII["digit"], "s": _ASCII["perlspace"], "w": _ASCII["word"]}
WORD_CHARS: IvSet = _ASCII["word"]


# --------------------------------------------------------------------------------------------
# Case folding and Unicode classes
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _fold_orbits() -> tuple[tuple[int, ...], dict[int, tuple[int, ...]]]:
    """Simple case-folding orbits (what RE2's (?i) treats as equal), e.g. {K, k, U+212A}.

    Built from Unicode simple folding: `casefold()` when it yields one character (status C),
    else `lower()` when that is one other character (status S, e.g. U+1E9E -> ß).  Turkish
    dotless ı / dotted İ have no simple folding and stay alone, as in RE2.
    """
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for cp in range(0x20000):
        if SURR_LO <= cp <= SURR_HI:
            continue
        ch = chr(cp)
        target = ch.casefold()
        if len(target) != 1:
            target = ch.lower()
        if len(target) == 1 and target != ch:
            a, b = find(cp), find(ord(target))
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for cp in parent:
        groups.setdefault(find(cp), []).append(cp)
    orbits: dict[int, tuple[int, ...]] = {}
    for root, members in groups.items():
        orbit = tuple(sorted(set(members) | {root}))
        for cp in orbit:
            orbits[cp] = orbit
    return tuple(sorted(orbits)), orbits


@functools.lru_cache(maxsize=4096)
def _fold(s: IvSet) -> IvSet:
    """Close a set under case folding."""
    foldable, orbits = _fold_orbits()
    extra: list[tuple[int, int]] = []
    for lo, hi in s:
        i = bisect.bisect_left(foldable, lo)
        while i < len(foldable) and foldable[i] <= hi:
            extra.extend((m, m) for m in orbits[foldable[i]])
            i += 1
    return _union(s, tuple(extra)) if extra else s


@functools.lru_cache(maxsize=1)
def _all_chars() -> tuple[str, str]:
    """Every scalar value as two strings (below / above the surrogate gap)."""
    return "".join(map(chr, range(SURR_LO))), "".join(map(chr, range(SURR_HI + 1, MAX_CP + 1)))


def _re2_options():  # type: ignore[no-untyped-def]
    import re2

    opts = re2.Options()
    opts.log_errors = False
    return opts


@functools.lru_cache(maxsize=256)
def _re2_class(text: str) -> IvSet:
    """The set of characters a single-character RE2 class (e.g. `\\p{Greek}`) matches.

    Read from google-re2 itself by scanning all code points once (~15 ms), so the Unicode tables
    are exactly the oracle's.
    """
    import re2

    try:
        rx = re2.compile("(?:" + text + ")+", _re2_options())
    except re2.error as exc:
        raise InvalidRegex(f"RE2 rejects class {text!r}: {exc}") from None
    out: list[tuple[int, int]] = []
    for chunk in _all_chars():
        for run in rx.findall(chunk):
            lo = ord(run[0])
            out.append((lo, lo + len(run) - 1))
    return _norm(out)


# --------------------------------------------------------------------------------------------
# Parser: RE2 syntax -> AST
# --------------------------------------------------------------------------------------------
# AST nodes are tuples: ("set", IvSet) | ("cat", [n..]) | ("alt", [n..]) | ("rep", n, lo, hi|None)
# | ("assert", kind) with kind in bot/eot/bol/eol/wb/nwb | ("empty",)

FLAG_I, FLAG_M, FLAG_S = 1, 2, 4
_FLAG_BITS = {"i": FLAG_I, "m": FLAG_M, "s": FLAG_S, "U": 0}
_EMPTY = ("empty",)


def _cat(items: list) -> tuple:
    items = [x for x in items if x != _EMPTY]
    if not items:
        return _EMPTY
    return items[0] if len(items) == 1 else ("cat", items)


def _alt(items: list) -> tuple:
    return items[0] if len(items) == 1 else ("alt", items)


class _Parser:
    """Recursive-descent RE2 parser.  Runs only on patterns RE2 accepted, so it can be strict:
    anything unexpected is an UnsupportedRegex, never a silent guess."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.p = pattern
        self.i = 0
        self.flags = flags

    # -- helpers
    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.p[j] if j < len(self.p) else ""

    def _fail(self, what: str) -> UnsupportedRegex:
        return UnsupportedRegex(f"{what} at offset {self.i} in {self.p!r}")

    def _charset(self, s: IvSet) -> tuple:
        return ("set", _fold(s) if self.flags & FLAG_I else s)

    # -- grammar
    def parse(self) -> tuple:
        node = self._body()
        if self.i != len(self.p):
            raise self._fail("unbalanced ')'")
        return node

    def _body(self) -> tuple:
        """Alternation up to ')' or end; `(?flags)` changes flags for the rest of the group."""
        alts: list[tuple] = []
        seq: list[tuple] = []
        while self.i < len(self.p) and self._peek() != ")":
            if self._peek() == "|":
                self.i += 1
                alts.append(_cat(seq))
                seq = []
                continue
            atoms = self._atom()
            if not atoms:
                continue
            seq.extend(atoms[:-1])
            seq.append(self._repeats(atoms[-1]))
        alts.append(_cat(seq))
        return _alt(alts)

    def _repeats(self, node: tuple) -> tuple:
        while True:
            c = self._peek()
            if c in ("*", "+", "?"):
                self.i += 1
                lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
            elif c == "{":
                spec = self._repeat_spec()
                if spec is None:
                    return node
                lo, hi = spec
            else:
                return node
            if self._peek() == "?":  # non-greedy: same language
                self.i += 1
            node = ("rep", node, lo, hi)

    def _repeat_spec(self) -> tuple[int, int | None] | None:
        """Parse `{n}`, `{n,}`, `{n,m}` at self.i; None (nothing consumed) if `{` is literal."""
        j = self.i + 1
        p = self.p

        def digits(k: int) -> int:
            while k < len(p) and p[k].isascii() and p[k].isdigit():
                k += 1
            return k

        k = digits(j)
        if k == j:
            return None
        lo = int(p[j:k])
        hi: int | None = lo
        if k < len(p) and p[k] == ",":
            m = digits(k + 1)
            hi = int(p[k + 1 : m]) if m > k + 1 else None
            k = m
        if k >= len(p) or p[k] != "}":
            return None
        self.i = k + 1
        return lo, hi

    def _atom(self) -> list[tuple]:
        c = self._peek()
        if c == "(":
            return self._group()
        if c == "[":
            return [self._charset(self._bracket())]
        if c == ".":
            self.i += 1
            return [("set", SIGMA if self.flags & FLAG_S else _complement(_chars("\n")))]
        if c == "^":
            self.i += 1
            return [("assert", "bol" if self.flags & FLAG_M else "bot")]
        if c == "$":
            self.i += 1
            return [("assert", "eol" if self.flags & FLAG_M else "eot")]
        if c in "*+?":
            raise self._fail("repetition without operand")
        if c == "{" and self._repeat_spec() is not None:
            raise self._fail("repetition without operand")
        if c == "\\":
            return self._escape_atom()
        self.i += 1
        return [self._charset(((ord(c), ord(c)),))]

    def _group(self) -> list[tuple]:
        p = self.p
        self.i += 1  # '('
        saved = self.flags
        if self._peek() == "?":
            rest = p[self.i + 1 :]
            if rest.startswith("P<") or rest.startswith("<"):
                end = p.find(">", self.i)
                if end < 0:
                    raise self._fail("unterminated group name")
                self.i = end + 1
            else:
                self.i += 1
                flags, neg = self.flags, False
                while True:
                    ch = self._peek()
                    if ch == "-" and not neg:
                        neg = True
                    elif ch in _FLAG_BITS:
                        bit = _FLAG_BITS[ch]
                        flags = flags & ~bit if neg else flags | bit
                    elif ch in (")", ":"):
                        break
                    else:
                        raise self._fail(f"unsupported group syntax (?{ch}")
                    self.i += 1
                self.i += 1
                if ch == ")":  # (?flags): applies to the rest of the enclosing group
                    self.flags = flags
                    return []
                self.flags = flags
        node = self._body()
        if self._peek() != ")":
            raise self._fail("missing ')'")
        self.i += 1
        self.flags = saved
        return [node]

    def _escape_atom(self) -> list[tuple]:
        p = self.p
        nxt = self._peek(1)
        if nxt == "Q":
            end = p.find("\\E", self.i + 2)
            text = p[self.i + 2 :] if end < 0 else p[self.i + 2 : end]
            self.i = len(p) if end < 0 else end + 2
            return [self._charset(((ord(ch), ord(ch)),)) for ch in text]
        if nxt == "E":  # stray \E is ignored by RE2
            self.i += 2
            return []
        simple = {"A": "bot", "z": "eot", "b": "wb", "B": "nwb"}
        if nxt in simple:
            self.i += 2
            return [("assert", simple[nxt])]
        if nxt == "C":
            raise self._fail("\\C (any byte) cannot be modelled over characters")
        group = self._class_escape()
        if group is not None:
            return [("set", group)]
        cp = self._escape_char()
        return [self._charset(((cp, cp),))]

    def _class_escape(self) -> IvSet | None:
        """\\d \\s \\w (and negations) and \\p / \\P classes, folded per RE2 if (?i); else None."""
        nxt = self._peek(1)
        fold = bool(self.flags & FLAG_I)
        if nxt.lower() in _PERL:
            self.i += 2
            return self._signed(_PERL[nxt.lower()], nxt.isupper(), fold)
        if nxt in ("p", "P"):
            neg = nxt == "P"
            start = self.i
            if self._peek(2) == "{":
                end = self.p.find("}", self.i)
                if end < 0:
                    raise self._fail("unterminated \\p{")
                name = self.p[self.i + 3 : end]
                self.i = end + 1
            else:
                name = self._peek(2)
                self.i += 3
            if name.startswith("^"):
                neg, name = not neg, name[1:]
            if not name:
                raise self._fail(f"bad Unicode class {self.p[start:self.i]!r}")
            return self._signed(_re2_class("\\p{" + name + "}"), neg, fold)
        return None

    @staticmethod
    def _signed(positive: IvSet, negate: bool, fold: bool) -> IvSet:
        """RE2: a negated class under (?i) is the complement of the *folded* positive class."""
        base = _fold(positive) if fold else positive
        return _complement(base) if negate else base

    def _escape_char(self) -> int:
        """A single-character escape at self.i (pointing at the backslash)."""
        p = self.p
        c = self._peek(1)
        self.i += 2
        if not c:
            raise self._fail("trailing backslash")
        if c in "01234567":
            if c != "0" and not ("0" <= self._peek() <= "7"):
                raise self._fail("backreference")
            code = int(c)
            for _ in range(2):
                if "0" <= self._peek() <= "7":
                    code = code * 8 + int(self._peek())
                    self.i += 1
                else:
                    break
            return code
        if c == "x":
            if self._peek() == "{":
                end = p.find("}", self.i)
                if end < 0:
                    raise self._fail("unterminated \\x{")
                text = p[self.i + 1 : end]
                self.i = end + 1
            else:
                text = p[self.i : self.i + 2]
                self.i += 2
            try:
                code = int(text, 16)
            except ValueError:
                raise self._fail("bad hex escape") from None
            if code > MAX_CP:
                raise self._fail("hex escape out of range")
            return code
        named = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
        if c in named:
            return named[c]
        if c.isascii() and not c.isalnum():
            return ord(c)
        raise self._fail(f"unsupported escape \\{c}")

    def _bracket(self) -> IvSet:
        """A bracket class `[...]` at self.i; returns the *unfolded-by-caller* set.

        RE2 folds each positive item, takes negated items as the complement of their folded
        positive form, and negates the whole class last; the caller's _charset then folds the
        result, which is a no-op on fold-closed sets (every such set here is fold-closed under
        (?i)).
        """
        p = self.p
        self.i += 1
        negate = self._peek() == "^"
        if negate:
            self.i += 1
        fold = bool(self.flags & FLAG_I)
        parts: list[IvSet] = []
        first = True
        while True:
            c = self._peek()
            if not c:
                raise self._fail("unterminated class")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[" and self._peek(1) == ":":
                end = p.find(":]", self.i + 2)
                name = p[self.i + 2 : end] if end >= 0 else ""
                neg = name.startswith("^")
                if end >= 0 and name.lstrip("^") in _ASCII and name.lstrip("^") != "perlspace":
                    self.i = end + 2
                    parts.append(self._signed(_ASCII[name.lstrip("^")], neg, fold))
                    continue
            if c == "\\":
                group = self._class_escape()
                if group is not None:
                    parts.append(group)
                    continue
                lo = self._escape_char()
            else:
                lo = ord(c)
                self.i += 1
            hi = lo
            if self._peek() == "-" and self._peek(1) not in ("]", ""):
                self.i += 1
                if self._peek() == "\\":
                    hi = self._escape_char()
                else:
                    hi = ord(self._peek())
                    self.i += 1
                if hi < lo:
                    raise self._fail("bad range")
            item: IvSet = _norm([(lo, hi)])
            parts.append(_fold(item) if fold else item)
        result = _union(*parts)
        return _complement(result) if negate else result


# --------------------------------------------------------------------------------------------
# NFA with assertion edges
# --------------------------------------------------------------------------------------------

# Character kinds for assertions; a lookahead mask is a subset of {NL, WORD, OTHER, END}.
K_NL, K_WORD, K_OTHER, K_END = 1, 2, 4, 8
K_ALL = 15
P_START = 0  # "previous kind" at the start of the text


def _assert_mask(kind: str, prev: int) -> int:
    """Which next-kinds an assertion allows, given the kind of the previous character."""
    if kind == "bot":
        return K_ALL if prev == P_START else 0
    if kind == "bol":
        return K_ALL if prev in (P_START, K_NL) else 0
    if kind == "eot":
        return K_END
    if kind == "eol":
        return K_END | K_NL
    prev_word = prev == K_WORD
    boundary = (K_NL | K_OTHER | K_END) if prev_word else K_WORD
    if kind == "wb":
        return boundary
    return (K_ALL & ~boundary)  # nwb


class _NFA:
    def __init__(self) -> None:
        self.edges: list[list[tuple[IvSet, int]]] = []
        self.eps: list[list[tuple[str | None, int]]] = []

    def state(self) -> int:
        if len(self.edges) >= MAX_NFA_STATES:
            raise UnsupportedRegex("pattern too large to analyse")
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def build(self, node: tuple) -> tuple[int, int]:
        """Thompson fragment (start, end) for an AST node."""
        tag = node[0]
        if tag == "empty" or tag == "assert":
            s, e = self.state(), self.state()
            self.eps[s].append((node[1] if tag == "assert" else None, e))
            return s, e
        if tag == "set":
            s, e = self.state(), self.state()
            if node[1]:
                self.edges[s].append((node[1], e))
            return s, e
        if tag == "cat":
            s, e = self.build(node[1][0])
            for child in node[1][1:]:
                cs, ce = self.build(child)
                self.eps[e].append((None, cs))
                e = ce
            return s, e
        if tag == "alt":
            s, e = self.state(), self.state()
            for child in node[1]:
                cs, ce = self.build(child)
                self.eps[s].append((None, cs))
                self.eps[ce].append((None, e))
            return s, e
        if tag == "rep":
            return self._repeat(node[1], node[2], node[3])
        raise AssertionError(tag)

    def _repeat(self, child: tuple, lo: int, hi: int | None) -> tuple[int, int]:
        s = e = self.state()
        for _ in range(lo):
            cs, ce = self.build(child)
            self.eps[e].append((None, cs))
            e = ce
        if hi is None:
            cs, ce = self.build(child)
            loop = self.state()
            self.eps[e].append((None, loop))
            self.eps[loop].append((None, cs))
            self.eps[ce].append((None, loop))
            e = loop
        else:
            end = self.state()
            for _ in range(hi - lo):
                cs, ce = self.build(child)
                self.eps[e].append((None, cs))
                self.eps[e].append((None, end))
                e = ce
            self.eps[e].append((None, end))
            e = end
        return s, e

    def add_sigma_loop(self) -> tuple[int, int]:
        """Fragment for Σ* (used for search semantics and concatenations)."""
        s = self.state()
        self.edges[s].append((SIGMA, s))
        return s, s


# --------------------------------------------------------------------------------------------
# DFA over an interval partition
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DFA:
    """Complete DFA.  Elementary interval i is [cuts[i], cuts[i+1]-1]; elem[i] is its class or
    -1 (surrogates, outside the alphabet).  delta[state][class] -> state."""

    cuts: tuple[int, ...]
    elem: tuple[int, ...]
    ncls: int
    delta: tuple[tuple[int, ...], ...]
    accept: tuple[bool, ...]
    start: int

    def __hash__(self) -> int:
        """Hashed once: automata are memo keys (see `_memo`), and their tuples can be large."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((self.cuts, self.elem, self.ncls, self.delta, self.accept, self.start))
            object.__setattr__(self, "_hash", cached)
        return cached

    def cls_of(self, cp: int) -> int:
        return self.elem[bisect.bisect_right(self.cuts, cp) - 1]

    def class_ranges(self) -> list[list[tuple[int, int]]]:
        out: list[list[tuple[int, int]]] = [[] for _ in range(self.ncls)]
        for i, c in enumerate(self.elem):
            if c >= 0:
                hi = self.cuts[i + 1] - 1 if i + 1 < len(self.cuts) else MAX_CP
                out[c].append((self.cuts[i], hi))
        return out


def _base_cuts() -> set[int]:
    """Boundaries every partition keeps: surrogate gap, newline, ASCII word chars (assertions)."""
    cuts = {0, SURR_LO, SURR_HI + 1, 0x0A, 0x0B}
    for lo, hi in WORD_CHARS:
        cuts.update((lo, hi + 1))
    return cuts


def _kind(cp: int) -> int:
    if cp == 0x0A:
        return K_NL
    return K_WORD if _iv_contains(WORD_CHARS, cp) else K_OTHER


def _determinize(nfa: _NFA, start: int, final: int) -> _DFA:
    """Subset construction with lookahead masks (see module docstring), then minimization."""
    cuts_set = _base_cuts()
    for edges in nfa.edges:
        for ivs, _ in edges:
            for lo, hi in ivs:
                cuts_set.add(lo)
                if hi < MAX_CP:
                    cuts_set.add(hi + 1)
    cuts = sorted(cuts_set)
    n_elem = len(cuts)
    valid = [not (SURR_LO <= c <= SURR_HI) for c in cuts]
    kinds = [_kind(c) for c in cuts]
    # For each NFA edge, the elementary intervals it covers.
    edge_elems: list[list[tuple[list[int], int]]] = []
    for edges in nfa.edges:
        lst = []
        for ivs, tgt in edges:
            idx: list[int] = []
            for lo, hi in ivs:
                a = bisect.bisect_left(cuts, lo)
                b = bisect.bisect_right(cuts, hi)
                idx.extend(range(a, b))
            lst.append((idx, tgt))
        edge_elems.append(lst)

    def closure(seeds: dict[int, int], prev: int) -> frozenset[tuple[int, int]]:
        masks = dict(seeds)
        work = list(seeds)
        while work:
            s = work.pop()
            m = masks[s]
            for kind, t in nfa.eps[s]:
                nm = m if kind is None else m & _assert_mask(kind, prev)
                if nm and (masks.get(t, 0) | nm) != masks.get(t, 0):
                    masks[t] = masks.get(t, 0) | nm
                    work.append(t)
        return frozenset((s, m) for s, m in masks.items() if nfa.edges[s] or s == final)

    ids: dict[frozenset[tuple[int, int]], int] = {}
    table: list[list[int]] = []
    accept: list[bool] = []

    def intern(st: frozenset[tuple[int, int]]) -> int:
        got = ids.get(st)
        if got is None:
            if len(ids) >= MAX_DFA_STATES:
                raise UnsupportedRegex("pattern too large to analyse (DFA)")
            got = ids[st] = len(table)
            table.append([])
            accept.append(any(s == final and m & K_END for s, m in st))
            queue.append(st)
        return got

    queue: deque[frozenset[tuple[int, int]]] = deque()
    start_id = intern(closure({start: K_ALL}, P_START))
    dead = intern(frozenset())
    closure_cache: dict[tuple[frozenset[int], int], int] = {}
    while queue:
        st = queue.popleft()
        sid = ids[st]
        moves: dict[int, set[int]] = {}
        for s, m in st:
            for idx, tgt in edge_elems[s]:
                for i in idx:
                    if kinds[i] & m:
                        moves.setdefault(i, set()).add(tgt)
        row = [dead] * n_elem
        for i, tg in moves.items():
            key = (frozenset(tg), kinds[i])
            nid = closure_cache.get(key)
            if nid is None:
                nid = closure_cache[key] = intern(closure({t: K_ALL for t in tg}, kinds[i]))
            row[i] = nid
        table[sid] = row
    elem = tuple(i if valid[i] else -1 for i in range(n_elem))
    # Classes == elementary intervals here; the surrogate column is never used.
    dfa = _DFA(tuple(cuts), elem, n_elem, tuple(tuple(r) for r in table), tuple(accept), start_id)
    return _minimize(dfa)


def _hopcroft(
    states: list[int], classes: list[int], delta: tuple[tuple[int, ...], ...], accept: tuple[bool, ...]
) -> dict[int, int]:
    """Hopcroft's partition refinement: state -> block id of the coarsest bisimulation.

    O(k n log n), so long chains (e.g. a 3000-character literal) stay fast."""
    inv: list[dict[int, list[int]]] = [{} for _ in range(max(classes, default=-1) + 1)]
    for s in states:
        row = delta[s]
        for c in classes:
            inv[c].setdefault(row[c], []).append(s)
    blocks = [b for b in ({s for s in states if accept[s]}, {s for s in states if not accept[s]}) if b]
    block_of = {s: i for i, b in enumerate(blocks) for s in b}
    work = set(range(len(blocks)))
    while work:
        splitter = list(blocks[work.pop()])
        for c in classes:
            inv_c = inv[c]
            touched: dict[int, set[int]] = {}
            for t in splitter:
                for s in inv_c.get(t, ()):
                    touched.setdefault(block_of[s], set()).add(s)
            for y, part in touched.items():
                whole = blocks[y]
                if len(part) == len(whole):
                    continue
                rest = whole - part
                blocks[y] = part
                blocks.append(rest)
                new_id = len(blocks) - 1
                for s in rest:
                    block_of[s] = new_id
                if y in work or len(rest) <= len(part):
                    work.add(new_id)
                else:
                    work.add(y)
    return block_of


def _minimize(dfa: _DFA) -> _DFA:
    """Reachable part, Moore partition refinement, class merging; canonical BFS numbering."""
    used_cls = sorted({c for c in dfa.elem if c >= 0})
    # reachable states
    seen = {dfa.start}
    order = [dfa.start]
    for s in order:
        for c in used_cls:
            t = dfa.delta[s][c]
            if t not in seen:
                seen.add(t)
                order.append(t)
    block = _hopcroft(order, used_cls, dfa.delta, dfa.accept)
    # Merge classes with identical columns (over blocks).
    col_id: dict[tuple[int, ...], int] = {}
    cls_map: dict[int, int] = {}
    reps = {}
    for s in order:
        reps.setdefault(block[s], s)
    rep_list = [reps[b] for b in sorted(reps)]
    for c in used_cls:
        col = tuple(block[dfa.delta[s][c]] for s in rep_list)
        cls_map[c] = col_id.setdefault(col, len(col_id))
    ncls = len(col_id)
    cls_rep = {v: c for c, v in reversed(list(cls_map.items()))}
    # canonical renumbering by BFS over (new) classes
    start_b = block[dfa.start]
    num = {start_b: 0}
    bq = [start_b]
    for b in bq:
        s = reps[b]
        for k in range(ncls):
            tb = block[dfa.delta[s][cls_rep[k]]]
            if tb not in num:
                num[tb] = len(num)
                bq.append(tb)
    delta = []
    accept = []
    for b in bq:
        s = reps[b]
        delta.append(tuple(num[block[dfa.delta[s][cls_rep[k]]]] for k in range(ncls)))
        accept.append(dfa.accept[s])
    # elementary intervals: remap and merge adjacent ones with equal class
    cuts: list[int] = []
    elem: list[int] = []
    for i, c in enumerate(dfa.elem):
        nc = cls_map[c] if c >= 0 else -1
        if elem and elem[-1] == nc:
            continue
        cuts.append(dfa.cuts[i])
        elem.append(nc)
    return _DFA(tuple(cuts), tuple(elem), ncls, tuple(delta), tuple(accept), 0)


def _product(a: _DFA, b: _DFA, op: Callable[[bool, bool], bool]) -> _DFA:
    """Product automaton, exploring only pairs reachable from the start pair."""
    cuts = sorted(set(a.cuts) | set(b.cuts))
    pair_cls: dict[tuple[int, int], int] = {}
    elem: list[int] = []
    for c in cuts:
        ca, cb = a.cls_of(c), b.cls_of(c)
        elem.append(-1 if ca < 0 or cb < 0 else pair_cls.setdefault((ca, cb), len(pair_cls)))
    pairs = list(pair_cls)
    ids = {(a.start, b.start): 0}
    order = [(a.start, b.start)]
    delta: list[tuple[int, ...]] = []
    for sa, sb in order:
        row_a, row_b = a.delta[sa], b.delta[sb]
        row = []
        for ca, cb in pairs:
            key = (row_a[ca], row_b[cb])
            t = ids.get(key)
            if t is None:
                t = ids[key] = len(order)
                order.append(key)
            row.append(t)
        delta.append(tuple(row))
    accept = tuple(op(a.accept[sa], b.accept[sb]) for sa, sb in order)
    return _minimize(_DFA(tuple(cuts), tuple(elem), len(pairs), tuple(delta), accept, 0))


def _dfa_into_nfa(dfa: _DFA, nfa: _NFA) -> tuple[int, int]:
    """Copy a DFA into an NFA (for concatenation / star); returns (start, final)."""
    base = [nfa.state() for _ in dfa.delta]
    final = nfa.state()
    ranges = dfa.class_ranges()
    for s, row in enumerate(dfa.delta):
        by_target: dict[int, list[tuple[int, int]]] = {}
        for c, t in enumerate(row):
            by_target.setdefault(t, []).extend(ranges[c])
        for t, rs in by_target.items():
            nfa.edges[base[s]].append((_norm(rs), base[t]))
        if dfa.accept[s]:
            nfa.eps[base[s]].append((None, final))
    return base[dfa.start], final


# --------------------------------------------------------------------------------------------
# Readable witnesses
# --------------------------------------------------------------------------------------------

_PREFERRED = "abcdefghijklmnopqrstuvwxyz0123456789_ABCDEFGHIJKLMNOPQRSTUVWXYZ-.:/"


def _char_rank(cp: int) -> int:
    """Lower is more readable: [a-z0-9_] first, then printable ASCII, then letters, then rest."""
    ch = chr(cp)
    pos = _PREFERRED.find(ch)
    if pos >= 0:
        return pos
    if 0x20 < cp < 0x7F:
        return 100 + cp
    cat = unicodedata.category(ch)
    if cat[0] in "LNPS":
        return 1000 + (cp if cp < 0x10000 else 0x10000)
    if cp == 0x20:
        return 900
    return 200_000 + cp


def _class_representatives(dfa: _DFA) -> list[tuple[int, int]]:
    """For every class, (rank, code point) of its most readable member."""
    best: list[tuple[int, int]] = [(1 << 30, 0)] * dfa.ncls
    for ch in _PREFERRED + "".join(map(chr, range(0x20, 0x7F))):
        c = dfa.cls_of(ord(ch))
        cand = (_char_rank(ord(ch)), ord(ch))
        if c >= 0 and cand < best[c]:
            best[c] = cand
    for c, ranges in enumerate(dfa.class_ranges()):
        if best[c][0] < 1000:
            continue
        tried = 0
        for lo, hi in ranges:
            for cp in range(lo, min(hi, lo + 64) + 1):
                cand = (_char_rank(cp), cp)
                if cand < best[c]:
                    best[c] = cand
                tried += 1
            if tried > 512:
                break
    return best


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _validate_with_re2(pattern: str) -> None:
    import re2

    try:
        re2.compile(pattern, _re2_options())
    except re2.error as exc:
        msg = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidRegex(f"RE2 rejects {pattern!r}: {msg}") from None
    except (TypeError, UnicodeEncodeError) as exc:
        raise InvalidRegex(f"RE2 rejects {pattern!r}: {exc}") from None


def _dfa_from_pattern(pattern: str, search: bool) -> _DFA:
    _validate_with_re2(pattern)
    ast = _Parser(pattern).parse()
    nfa = _NFA()
    start, end = nfa.build(ast)
    if search:
        pre_s, _ = nfa.add_sigma_loop()
        post_s, _ = nfa.add_sigma_loop()
        nfa.eps[pre_s].append((None, start))
        nfa.eps[end].append((None, post_s))
        start, end = pre_s, post_s
    return _determinize(nfa, start, end)


@functools.lru_cache(maxsize=8192)
def _cached_re2(pattern: str) -> "Lang":
    return Lang(_dfa_from_pattern(pattern, search=False))


@functools.lru_cache(maxsize=8192)
def _cached_relabel(pattern: str, dotall: bool) -> "Lang":
    wrapped = ("^(?s:" if dotall else "^(?:") + pattern + ")$"
    return Lang(_dfa_from_pattern(wrapped, search=True))


class Lang:
    """A regular language over Unicode strings (a minimal DFA over character-class partitions).

    Immutable; all operations return new languages.  Construct with `from_re2`, `from_relabel`,
    `literal`, `any`, `empty`, `chars`; combine with `& | - ~`, `concat`, `star`.
    """

    __slots__ = ("_dfa",)

    def __init__(self, dfa: _DFA) -> None:
        self._dfa = dfa

    # -- constructors
    @staticmethod
    def from_re2(pattern: str) -> "Lang":
        """Strings s with re2.fullmatch(pattern, s) (memoized).

        Raises InvalidRegex if RE2 rejects the pattern, UnsupportedRegex if it uses a construct
        that cannot be modelled over characters (\\C)."""
        return _cached_re2(pattern)

    @staticmethod
    def from_relabel(pattern: str, dotall: bool = True) -> "Lang":
        """Values a Prometheus relabel `regex` matches: Go's MatchString of `^(?s:PATTERN)$`.

        Same as from_re2 for well-formed patterns; exact even for a pattern that breaks out of the
        wrapper (e.g. `a)|(b` matches any value starting with "a" or ending with "b").  Use
        dotall=False for a `^(?:...)$` wrapper (`.` excludes newline: vmagent's capture groups)."""
        return _cached_relabel(pattern, dotall)

    @staticmethod
    def literal(s: str) -> "Lang":
        """Exactly the one string s."""
        nfa = _NFA()
        start = end = nfa.state()
        for ch in s:
            nxt = nfa.state()
            nfa.edges[end].append((_chars(ch), nxt))
            end = nxt
        return Lang(_determinize(nfa, start, end))

    @staticmethod
    def chars(ranges: Iterable[tuple[int, int]]) -> "Lang":
        """All one-character strings whose code point lies in one of the (lo, hi) ranges."""
        nfa = _NFA()
        s, e = nfa.state(), nfa.state()
        ivs = _norm(ranges)
        if ivs:
            nfa.edges[s].append((ivs, e))
        return Lang(_determinize(nfa, s, e))

    @staticmethod
    def any() -> "Lang":
        """Σ*: every string of Unicode scalar values."""
        return _ANY

    @staticmethod
    def empty() -> "Lang":
        """The empty language (no strings at all)."""
        return _EMPTY_LANG

    # -- boolean algebra
    def __and__(self, other: "Lang") -> "Lang":
        return _memo("and", self, other, lambda: _product(self._dfa, other._dfa, lambda x, y: x and y))

    def __or__(self, other: "Lang") -> "Lang":
        return _memo("or", self, other, lambda: _product(self._dfa, other._dfa, lambda x, y: x or y))

    def __sub__(self, other: "Lang") -> "Lang":
        return _memo("sub", self, other, lambda: _product(self._dfa, other._dfa, lambda x, y: x and not y))

    def __xor__(self, other: "Lang") -> "Lang":
        return _memo("xor", self, other, lambda: _product(self._dfa, other._dfa, lambda x, y: x != y))

    def complement(self) -> "Lang":
        d = self._dfa
        return Lang(_DFA(d.cuts, d.elem, d.ncls, d.delta, tuple(not a for a in d.accept), d.start))

    __invert__ = complement

    def concat(self, other: "Lang") -> "Lang":
        """{xy : x in self, y in other}."""
        return _memo("concat", self, other, lambda: _concat(self._dfa, other._dfa))

    def star(self) -> "Lang":
        """Kleene star."""
        return _memo("star", self, self, lambda: _star(self._dfa))

    def strip_prefix(self, prefix: str) -> "Lang":
        """{x : prefix + x in self} (the left quotient by one string)."""
        d = self._dfa
        state = d.start
        for ch in prefix:
            c = d.cls_of(ord(ch))
            if c < 0:
                return _EMPTY_LANG
            state = d.delta[state][c]
        return Lang(_minimize(_DFA(d.cuts, d.elem, d.ncls, d.delta, d.accept, state)))

    def prefixes(self) -> "Lang":
        """All prefixes of members (every state that can still reach acceptance accepts)."""
        d = self._dfa
        live = self._co_reachable()
        return Lang(_minimize(_DFA(d.cuts, d.elem, d.ncls, d.delta, tuple(live), d.start)))

    # -- queries
    def contains(self, s: str) -> bool:
        d = self._dfa
        state = d.start
        for ch in s:
            c = d.cls_of(ord(ch))
            if c < 0:
                return False
            state = d.delta[state][c]
        return d.accept[state]

    __contains__ = contains

    def is_empty(self) -> bool:
        return self._distances()[self._dfa.start] is None

    def is_subset(self, other: "Lang") -> bool:
        return (self - other).is_empty()

    def equivalent(self, other: "Lang") -> bool:
        return (self ^ other).is_empty()

    def is_finite(self) -> bool:
        return self._count(limit=None) is not None

    def members(self, limit: int = 100) -> list[str] | None:
        """All members, sorted, if the language is finite with at most `limit` strings; else None."""
        total = self._count(limit)
        if total is None or total > limit:
            return None
        d = self._dfa
        live = self._co_reachable()
        ranges = d.class_ranges()
        out: list[str] = []
        stack = [(d.start, "")] if live[d.start] else []
        while stack:
            state, prefix = stack.pop()
            if d.accept[state]:
                out.append(prefix)
            for c, t in enumerate(d.delta[state]):
                if live[t]:
                    for lo, hi in ranges[c]:
                        stack.extend((t, prefix + chr(cp)) for cp in range(lo, hi + 1))
        return sorted(out)

    def example(self, prefer: Iterable[str] = ()) -> str | None:
        """A member: the first of `prefer` that is one, else a shortest member, choosing the most
        readable character ([a-z0-9_] before other ASCII before exotic code points) at each step.
        None if the language is empty."""
        for s in prefer:
            if self.contains(s):
                return s
        dist = self._distances()
        d = self._dfa
        if dist[d.start] is None:
            return None
        reps = _class_representatives(d)
        state, out = d.start, []
        while dist[state]:
            want = dist[state] - 1
            best = min(
                (reps[c], t) for c, t in enumerate(d.delta[state]) if dist[t] == want
            )
            out.append(chr(best[0][1]))
            state = best[1]
        return "".join(out)

    @property
    def num_states(self) -> int:
        return len(self._dfa.delta)

    def __repr__(self) -> str:
        ex = self.example()
        return f"<Lang states={self.num_states} classes={self._dfa.ncls} example={ex!r}>"

    # -- internals
    def _distances(self) -> list[int | None]:
        """Shortest distance from each state to acceptance (backward BFS), None if unreachable."""
        d = self._dfa
        preds: list[set[int]] = [set() for _ in d.delta]
        for s, row in enumerate(d.delta):
            for t in row:
                preds[t].add(s)
        dist: list[int | None] = [0 if a else None for a in d.accept]
        queue = deque(s for s, a in enumerate(d.accept) if a)
        while queue:
            t = queue.popleft()
            for s in preds[t]:
                if dist[s] is None:
                    dist[s] = dist[t] + 1  # type: ignore[operator]
                    queue.append(s)
        return dist

    def _co_reachable(self) -> list[bool]:
        return [x is not None for x in self._distances()]

    def _count(self, limit: int | None) -> int | None:
        """Number of members if finite (capped just above `limit`), None if infinite.

        Kahn's topological sort over live states reachable from the start: a leftover state
        means a cycle, i.e. infinitely many members.  Iterative, so long strings are fine."""
        d = self._dfa
        live = self._co_reachable()
        if not live[d.start]:
            return 0
        sizes = [sum(hi - lo + 1 for lo, hi in r) for r in d.class_ranges()]
        nodes = {d.start}
        stack = [d.start]
        while stack:
            s = stack.pop()
            for t in d.delta[s]:
                if live[t] and t not in nodes:
                    nodes.add(t)
                    stack.append(t)
        indeg = dict.fromkeys(nodes, 0)
        for s in nodes:
            for t in d.delta[s]:
                if live[t]:
                    indeg[t] += 1
        order = [s for s in nodes if indeg[s] == 0]
        for s in order:
            for t in d.delta[s]:
                if live[t]:
                    indeg[t] -= 1
                    if indeg[t] == 0:
                        order.append(t)
        if len(order) != len(nodes):
            return None
        cap = None if limit is None else limit + 1
        total: dict[int, int] = {}
        for s in reversed(order):
            n = int(d.accept[s])
            for c, t in enumerate(d.delta[s]):
                if live[t]:
                    n += sizes[c] * total[t]
            total[s] = n if cap is None else min(n, cap)
        return total[d.start]


def _concat(a: _DFA, b: _DFA) -> _DFA:
    nfa = _NFA()
    s1, f1 = _dfa_into_nfa(a, nfa)
    s2, f2 = _dfa_into_nfa(b, nfa)
    nfa.eps[f1].append((None, s2))
    return _determinize(nfa, s1, f2)


def _star(a: _DFA) -> _DFA:
    nfa = _NFA()
    s, f = _dfa_into_nfa(a, nfa)
    hub = nfa.state()
    nfa.eps[hub].append((None, s))
    nfa.eps[f].append((None, hub))
    return _determinize(nfa, hub, hub)


#: Results of the language operations by (operation, operand automata). The analysis of every
#: path of every cluster repeats the same operations on the same languages (the shared relabel
#: stages); an automaton is its language, so a repeated operation costs a dictionary lookup.
_MEMO: dict[tuple[str, _DFA, _DFA], Lang] = {}
MEMO_LIMIT = 50_000


def _memo(op: str, a: Lang, b: Lang, compute: Callable[[], _DFA]) -> Lang:
    key = (op, a._dfa, b._dfa)
    got = _MEMO.get(key)
    if got is None:
        if len(_MEMO) >= MEMO_LIMIT:
            _MEMO.clear()
        got = _MEMO[key] = Lang(compute())
    return got


def _make_const(accepting: bool) -> Lang:
    cuts = tuple(sorted(_base_cuts()))
    elem = tuple(-1 if SURR_LO <= c <= SURR_HI else 0 for c in cuts)
    return Lang(_minimize(_DFA(cuts, elem, 1, ((0,),), (accepting,), 0)))


_ANY = _make_const(True)
_EMPTY_LANG = _make_const(False)
