"""Tests for fleet.relabel.regexlang: RE2 patterns as finite automata, checked against google-re2."""

from __future__ import annotations

import time

import pytest
import re2
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fleet.relabel.regexlang import InvalidRegex, Lang, UnsupportedRegex, _fold_orbits, _Parser

_OPTS = re2.Options()
_OPTS.log_errors = False


def fullmatch(pattern: str, s: str) -> bool:
    return re2.compile(pattern, _OPTS).fullmatch(s) is not None


def compiles(pattern: str) -> bool:
    try:
        re2.compile(pattern, _OPTS)
    except re2.error:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Motivating examples (the GDPR proof)
# ---------------------------------------------------------------------------------------------


def test_forbidden_minus_dropped_has_witness():
    forbidden = Lang.from_re2("label_starform_io_.+")
    dropped = Lang.from_re2("label_starform_io_(project|service)_id")
    leak = forbidden - dropped
    assert not leak.is_empty()
    ex = leak.example()
    assert fullmatch("label_starform_io_.+", ex)
    assert not fullmatch("label_starform_io_(project|service)_id", ex)
    assert ex == "label_starform_io_a"  # shortest, most readable
    known = ["label_starform_io_project_id", "label_starform_io_workspace_id"]
    assert leak.example(prefer=known) == "label_starform_io_workspace_id"


def test_case_insensitive_drop_covers_all_ids():
    ids = Lang.from_re2("project_id|service_id|workspace_id")
    dropped = Lang.from_re2("(?i)PROJECT_ID|service_id|workspace_id")
    assert (ids - dropped).is_empty()
    assert ids.is_subset(dropped)
    # ... but not the other way round: the (?i) drop also removes PROJECT_ID.
    assert (dropped - ids).example(prefer=["PROJECT_ID"]) == "PROJECT_ID"


def test_anchoring_is_full_match():
    assert not Lang.from_re2("project").contains("project_id")
    assert Lang.from_re2("project").members() == ["project"]
    leak = Lang.from_re2("project_id") - Lang.from_re2("project")
    assert leak.members() == ["project_id"]


# ---------------------------------------------------------------------------------------------
# Constructs, one by one
# ---------------------------------------------------------------------------------------------

CASES = [
    # pattern, members, non-members
    ("abc", ["abc"], ["ab", "abcd", "ABC"]),
    ("a|b|", ["a", "b", ""], ["ab"]),
    ("a*", ["", "a", "aaaa"], ["b"]),
    ("a+?", ["a", "aa"], [""]),
    ("a{2,3}", ["aa", "aaa"], ["a", "aaaa"]),
    ("a{2}", ["aa"], ["a", "aaa"]),
    ("a{2,}", ["aa", "aaaaa"], ["a"]),
    ("a{,2}", ["a{,2}"], ["aa"]),
    ("x{0}y", ["y"], ["xy"]),
    (".", ["a", "é", "\U0001F600"], ["\n", ""]),
    ("(?s).", ["\n"], [""]),
    ("(?s:.)x.", ["\nxa"], ["\nx\n"]),
    ("[a-c]", ["a", "c"], ["d"]),
    ("[^a-c]", ["d", "\n"], ["a"]),
    ("[]a]", ["]", "a"], ["b"]),
    ("[^]a]", ["b"], ["]"]),
    ("[a-]", ["-", "a"], ["b"]),
    (r"[\d-z]", ["1", "-", "z"], ["y"]),
    (r"\d\s\w", ["1 _", "9\tz"], ["a a", "1\va"]),
    (r"\D\S\W", ["a-!"], ["1-!"]),
    ("[[:alpha:]][[:^digit:]]", ["ab", "Z-"], ["a1", "1a"]),
    ("[[:word:]]+", ["a_1"], ["a-"]),
    (r"\pL\p{Greek}\PN\p{^Lu}", ["aαxy", "aαx1"], ["aαxA", "aax1", "aα1y"]),
    (r"\pN+", ["12٣"], ["a"]),
    (r"\Qa.b*\E+", ["a.b*", "a.b**"], ["axb", "a.b*a.b*"]),
    (r"\x41\x{1F600}\101\0", ["A\U0001F600A\0"], ["A"]),
    (r"\.\*\+\?\(\)\[\]\{\}\|\^\$\\", [".*+?()[]{}|^$\\"], []),
    (r"\a\f\t\n\r\v", ["\a\f\t\n\r\v"], []),
    ("(?P<x>a)(?<y>b)", ["ab"], ["a"]),
    ("(?i)abc", ["abc", "ABC", "aBc"], ["abd"]),
    ("(?i:a)b", ["Ab", "ab"], ["AB"]),
    ("a(?i)b|c", ["aB", "C"], ["AB"]),
    ("(?:a(?i)b)|c", ["aB", "c"], ["C"]),
    ("(?i)a(?-i)b", ["Ab"], ["AB"]),
    ("(?i)k", ["k", "K", "\u212a"], ["x"]),
    ("(?i)s", ["s", "S", "\u017f"], ["x"]),
    ("(?i)[^k]", ["a"], ["k", "K", "\u212a"]),
    (r"(?i)\W", ["-"], ["k", "\u212a", "\u017f"]),
    ("(?i)i", ["i", "I"], ["\u0131", "\u0130"]),
    ("(?U)a+", ["aa"], [""]),
    ("^abc$", ["abc"], ["abc\n"]),
    ("a^b", [], ["ab", "a\nb"]),
    ("a$b", [], ["ab"]),
    ("(?m)a$\n^b", ["a\nb"], ["ab"]),
    ("(?m)^a$", ["a"], ["a\n"]),
    (r"\Aab\z", ["ab"], ["ab\n"]),
    (r"a\b-", ["a-"], []),
    (r"a\b", ["a"], []),
    (r"-\B", ["-"], []),
    (r"a\bb", [], ["ab"]),
    (r"a\Bb", ["ab"], []),
    (r"\b", [], ["", "a"]),
    (r"\B", [""], ["a"]),
    (r"^*a", ["a"], []),
    ("()", [""], ["a"]),
    ("(|a)+", ["", "aaa"], ["b"]),
]


@pytest.mark.parametrize(("pattern", "members", "non_members"), CASES)
def test_construct(pattern, members, non_members):
    lang = Lang.from_re2(pattern)
    for s in members:
        assert fullmatch(pattern, s), f"test data wrong: {pattern!r} ~ {s!r}"
        assert lang.contains(s), (pattern, s)
    for s in non_members:
        assert not fullmatch(pattern, s), f"test data wrong: {pattern!r} !~ {s!r}"
        assert not lang.contains(s), (pattern, s)
    if not members:
        assert lang.is_empty()
    else:
        assert fullmatch(pattern, lang.example())


@pytest.mark.parametrize("pattern", [r"a\Z", "a++", r"\1", "(?P=n)", "x{1001}", "(", "[a", r"\cA"])
def test_invalid_patterns_raise_invalid_regex(pattern):
    assert not compiles(pattern)
    with pytest.raises(InvalidRegex):
        Lang.from_re2(pattern)
    with pytest.raises(UnsupportedRegex):  # InvalidRegex is also an UnsupportedRegex
        Lang.from_re2(pattern)


def test_any_byte_is_unsupported():
    assert compiles(r"\C")
    with pytest.raises(UnsupportedRegex):
        Lang.from_re2(r"a\Cb")


def test_relabel_wrapper_semantics():
    # Prometheus compiles ^(?s:PATTERN)$ and calls MatchString.
    assert Lang.from_relabel("a.b").contains("a\nb")
    assert not Lang.from_relabel("a.b", dotall=False).contains("a\nb")
    broken = Lang.from_relabel("a)|(b")  # breaks out of the wrapper: unanchored alternatives
    for s in ["a", "axx", "xxb", "b"]:
        assert re2.search("^(?s:a)|(b)$", s) and broken.contains(s)
    assert not broken.contains("xax")
    assert Lang.from_relabel("foo.*").equivalent(Lang.from_re2("(?s)foo.*"))


# ---------------------------------------------------------------------------------------------
# Algebra and queries
# ---------------------------------------------------------------------------------------------


def test_constants_and_literal():
    assert Lang.empty().is_empty() and Lang.empty().example() is None
    assert Lang.any().contains("") and Lang.any().contains("\n\U0010ffff")
    assert not Lang.any().contains("\ud800")  # surrogates are not characters
    assert Lang.literal("a.b").members() == ["a.b"]
    assert Lang.literal("").members() == [""]
    assert Lang.any().complement().is_empty()
    assert (~Lang.empty()).equivalent(Lang.any())


def test_boolean_ops():
    a, b = Lang.from_re2("[ab]c"), Lang.from_re2("a[cd]")
    assert (a & b).members() == ["ac"]
    assert (a | b).members() == ["ac", "ad", "bc"]
    assert (a - b).members() == ["bc"]
    assert (a ^ b).members() == ["ad", "bc"]
    assert (~a).contains("x") and not (~a).contains("ac")


def test_finite_and_members():
    assert Lang.from_re2("[0-9]{2}").members(limit=100) is not None
    assert len(Lang.from_re2("[0-9]{2}").members(limit=100)) == 100
    assert Lang.from_re2("[0-9]{3}").members(limit=100) is None
    assert Lang.from_re2("[0-9]{3}").is_finite()
    assert not Lang.from_re2("a+").is_finite()
    assert Lang.empty().members() == [] and Lang.empty().is_finite()
    assert Lang.literal("x" * 3000).members() == ["x" * 3000]  # no recursion limit


def test_concat_star_prefixes():
    ab = Lang.literal("a").concat(Lang.from_re2("b+"))
    assert ab.equivalent(Lang.from_re2("ab+"))
    assert Lang.from_re2("ab").star().equivalent(Lang.from_re2("(ab)*"))
    assert Lang.from_re2("abc|x").prefixes().members() == ["", "a", "ab", "abc", "x"]


def test_example_prefers_readable_characters():
    assert Lang.from_re2(r"[^\x00-\x{2FF}]").example() is not None
    assert Lang.from_re2(r"\W\pL").example() == "-a"
    assert Lang.from_re2("[^a-z0-9_]x").example() == "Ax"
    assert Lang.from_re2(r"\p{Greek}").example() in "αβγδεΑΒΓΔ" or fullmatch(
        r"\p{Greek}", Lang.from_re2(r"\p{Greek}").example()
    )


def test_fold_orbits_match_re2_for_every_code_point():
    """Our simple-fold orbits against google-re2, complete over all scalar values."""
    foldable, orbits = _fold_orbits()
    fold_text = "".join(map(chr, foldable))
    for orbit in {orbits[c] for c in foldable}:
        cls = "(?i)[" + "".join(f"\\x{{{c:x}}}" for c in orbit) + "]"
        got = {ord(ch) for ch in re2.compile(cls, _OPTS).findall(fold_text)}
        assert got == set(orbit), orbit
    # No code point outside our foldable set folds onto anything else.
    below = "".join(chr(c) for c in range(0xD800) if c not in orbits)
    above = "".join(chr(c) for c in range(0xE000, 0x110000) if c not in orbits)
    rx = re2.compile("(?i)[" + "".join(f"\\x{{{c:x}}}" for c in foldable) + "]", _OPTS)
    assert rx.search(below) is None and rx.search(above) is None


def test_performance_of_motivating_query():
    forbidden, dropped = "label_starform_io_.+", "label_starform_io_(project|service)_id"
    Lang.from_re2(forbidden)  # warm the caches
    t0 = time.perf_counter()
    n = 200
    for _ in range(n):
        (Lang.from_re2(forbidden) - Lang.from_re2(dropped)).example()
    per_op = (time.perf_counter() - t0) / n
    assert per_op < 0.05, per_op


# ---------------------------------------------------------------------------------------------
# Property tests against google-re2
# ---------------------------------------------------------------------------------------------

ALPHABET = ["a", "b", "A", "B", "k", "K", "\u212a", "s", "\u017f", "_", "1", "-", " ", "\n",
            "\u00e9", "\u00c9", "\u03b1", "\u03a9", ".", "*"]

_LITERALS = ["a", "b", "A", "k", "s", "S", "_", "1", "-", " ", r"\n", r"\.", r"\*", "\u00e9",
             "\u03b1", r"\x{212A}", r"\141", r"\Qa.\E"]
_CLASSES = [".", "[ab]", "[^a]", "[a-c]", "[^a-zA-Z]", "[[:alpha:]]", "[[:^digit:]]", r"\d",
            r"\w", r"\W", r"\s", r"\S", r"\pL", r"\p{Greek}", r"\PL", r"[\w-]", r"[^\n]",
            r"[K\x{212A}]", r"[^\W_]", "[[:upper:]]"]
_ASSERTS = ["^", "$", r"\A", r"\z", r"\b", r"\B"]
_FLAGS = ["(?i)", "(?s)", "(?m)", "(?-i)", "(?is)"]
_GROUPS = ["(", "(?:", "(?i:", "(?s:", "(?m:", "(?-i:", "(?P<g>", "(?<h>"]
_REPEATS = ["*", "+", "?", "{2}", "{1,2}", "{0,}", "*?", "+?", "{0,1}?", "{3,}"]

atoms = st.one_of(st.sampled_from(_LITERALS), st.sampled_from(_CLASSES),
                  st.sampled_from(_ASSERTS))


def _extend(inner):
    group = st.tuples(st.sampled_from(_GROUPS), inner).map(lambda t: t[0] + t[1] + ")")
    repeated = st.tuples(inner, st.sampled_from(_REPEATS)).map(lambda t: "(?:" + t[0] + ")" + t[1])
    concat = st.lists(st.one_of(inner, st.sampled_from(_FLAGS)), min_size=2, max_size=4).map("".join)
    alt = st.lists(inner, min_size=2, max_size=3).map("|".join)
    return st.one_of(group, repeated, concat, alt)


patterns = st.recursive(atoms, _extend, max_leaves=12).filter(compiles)


def texts(pattern: str):
    """Strings biased toward the pattern's own characters, so that matches happen."""
    chars = sorted(set(ALPHABET) | {c for c in pattern if c not in "\\()[]{}?*+|^$"})
    return st.lists(st.sampled_from(chars), max_size=7).map("".join)


def _generate(data, node) -> str:
    """A random string from the parsed pattern, ignoring assertions: a likely member (or a near
    miss when an assertion fails), built independently of the automaton construction."""
    tag = node[0]
    if tag == "set":
        ranges = node[1]
        if not ranges:
            return ""
        nice = [c for c in ALPHABET if any(lo <= ord(c) <= hi for lo, hi in ranges)]
        lo, hi = data.draw(st.sampled_from(ranges))
        pool = nice + [chr(lo), chr(hi)]
        return data.draw(st.sampled_from(pool))
    if tag == "cat":
        return "".join(_generate(data, n) for n in node[1])
    if tag == "alt":
        return _generate(data, data.draw(st.sampled_from(node[1])))
    if tag == "rep":
        hi = node[3] if node[3] is not None else node[2] + 2
        k = data.draw(st.integers(node[2], hi))
        return "".join(_generate(data, node[1]) for _ in range(k))
    return ""


PROP = settings(max_examples=1000, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@PROP
@given(st.data())
def test_membership_agrees_with_re2(data):
    pattern = data.draw(patterns, label="pattern")
    lang = Lang.from_re2(pattern)
    for _ in range(4):
        s = data.draw(texts(pattern), label="s")
        assert lang.contains(s) == fullmatch(pattern, s), (pattern, s)
    ast = _Parser(pattern).parse()
    for _ in range(3):
        s = _generate(data, ast)
        assert lang.contains(s) == fullmatch(pattern, s), (pattern, s)
    ex = lang.example()
    if ex is None:
        assert lang.is_empty()
    else:
        assert fullmatch(pattern, ex), (pattern, ex)
        # Near misses of a member probe the boundary of the language.
        i = data.draw(st.integers(0, len(ex)), label="i")
        c = data.draw(st.sampled_from(ALPHABET), label="c")
        for s in (ex[:i] + c + ex[i:], ex[:i] + ex[i + 1 :], ex[:i] + c + ex[i + 1 :], ex + ex):
            assert lang.contains(s) == fullmatch(pattern, s), (pattern, s)
    non_member = lang.complement().example()
    if non_member is None:
        assert lang.equivalent(Lang.any())
    else:
        assert not fullmatch(pattern, non_member), (pattern, non_member)


@settings(PROP, max_examples=300)
@given(st.data())
def test_relabel_semantics_agree_with_re2_search(data):
    pattern = data.draw(patterns, label="pattern")
    wrapped = "^(?s:" + pattern + ")$"
    assume(compiles(wrapped))
    lang = Lang.from_relabel(pattern)
    for _ in range(3):
        s = data.draw(texts(pattern), label="s")
        assert lang.contains(s) == (re2.compile(wrapped, _OPTS).search(s) is not None)


@settings(PROP, max_examples=400)
@given(st.data())
def test_difference_witness_and_de_morgan(data):
    pa = data.draw(patterns, label="a")
    pb = data.draw(patterns, label="b")
    a, b = Lang.from_re2(pa), Lang.from_re2(pb)
    diff = a - b
    ex = diff.example()
    if ex is not None:
        assert fullmatch(pa, ex) and not fullmatch(pb, ex), (pa, pb, ex)
    else:
        assert a.is_subset(b)
    assert (~(a | b)).equivalent(~a & ~b)
    assert (~(a & b)).equivalent(~a | ~b)
    for _ in range(3):
        s = data.draw(texts(pa + pb), label="s")
        in_a, in_b = fullmatch(pa, s), fullmatch(pb, s)
        assert (~(a | b)).contains(s) == (not in_a and not in_b)
        assert (~(a & b)).contains(s) == (not in_a or not in_b)
        assert diff.contains(s) == (in_a and not in_b)


@settings(PROP, max_examples=150)
@given(st.data())
def test_memoized_operations_answer_for_their_own_operation_and_operands(data):
    """Language operations are memoized by (operation, operand automata): a repeated operation
    returns the same language, and no operation is ever answered with another's result."""
    from fleet.relabel import regexlang

    pa = data.draw(patterns, label="a")
    pb = data.draw(patterns, label="b")
    a, b = Lang.from_re2(pa), Lang.from_re2(pb)
    ops = {"and": lambda x, y: x & y, "or": lambda x, y: x | y, "sub": lambda x, y: x - y,
           "rsub": lambda x, y: y - x, "xor": lambda x, y: x ^ y}
    first = {name: op(a, b) for name, op in ops.items()}
    assert all(op(a, b) is first[name] for name, op in ops.items())
    regexlang._MEMO.clear()
    for name, op in ops.items():
        assert op(a, b).equivalent(first[name]), name
    for _ in range(3):
        s = data.draw(texts(pa + pb), label="s")
        in_a, in_b = fullmatch(pa, s), fullmatch(pb, s)
        expected = {"and": in_a and in_b, "or": in_a or in_b, "sub": in_a and not in_b,
                    "rsub": in_b and not in_a, "xor": in_a != in_b}
        assert {name: lang.contains(s) for name, lang in first.items()} == expected, s
        pair = a.concat(b)
        assert pair is a.concat(b) and (pair.contains(s) == any(
            fullmatch(pa, s[:i]) and fullmatch(pb, s[i:]) for i in range(len(s) + 1)))
        assert a.star().contains(s) == (s == "" or a.concat(a.star()).contains(s))
