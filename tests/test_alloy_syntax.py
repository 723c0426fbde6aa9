"""Scanner, parser and printer of the Alloy syntax (fleet.alloy.syntax).

Expected tokens, positions and messages follow upstream grafana/alloy syntax/scanner and
syntax/parser (see the module docstring for what was checked).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.alloy.syntax import (
    Access, Array, Attribute, Binary, Block, Call, Index, Literal, NotLiteral, Object, Ref, Tok,
    Unary, duplicate_attribute, format_body, format_expr, is_valid_identifier, literal_value,
    parse, parse_file, parse_module, scan, unquote,
)
from fleet.errors import InputError, SourceRef

FIXTURES = Path(__file__).parent / "fixtures" / "alloy"


def kinds(text: str) -> list[Tok]:
    return [t.kind for t in scan(text)]


def expr_of(text: str):
    """The expression assigned in `x = <text>`."""
    (stmt,) = parse(f"x = {text}\n", "t.alloy")
    return stmt.value


def error_of(text: str, name: str = "t.alloy") -> InputError:
    with pytest.raises(InputError) as info:
        parse(text, name)
    return info.value


# ---------------------------------------------------------------------------------------------
# Scanner
# ---------------------------------------------------------------------------------------------

# Every token kind, from upstream's scanner test table.
TOKENS = [
    (Tok.COMMENT, "/* a comment */"), (Tok.COMMENT, "// a comment "),
    (Tok.IDENT, "foobar"), (Tok.IDENT, "a۰۱۸"), (Tok.IDENT, "foo६४"), (Tok.IDENT, "bar９８７６"),
    (Tok.IDENT, "ŝ"), (Tok.IDENT, "ŝfoo"), (Tok.IDENT, "_x1"),
    (Tok.NUMBER, "0"), (Tok.NUMBER, "1"), (Tok.NUMBER, "123456789012345678890"), (Tok.NUMBER, "01234567"),
    (Tok.FLOAT, "0."), (Tok.FLOAT, ".0"), (Tok.FLOAT, "3.14159265"), (Tok.FLOAT, "1e0"),
    (Tok.FLOAT, "1e+100"), (Tok.FLOAT, "1e-100"), (Tok.FLOAT, "2.71828e-1000"), (Tok.FLOAT, "1E5"),
    (Tok.STRING, '"Hello, world!"'), (Tok.STRING, "`Hello, world!\\\\`"),
    (Tok.ADD, "+"), (Tok.SUB, "-"), (Tok.MUL, "*"), (Tok.DIV, "/"), (Tok.MOD, "%"), (Tok.POW, "^"),
    (Tok.AND, "&&"), (Tok.OR, "||"), (Tok.EQ, "=="), (Tok.LT, "<"), (Tok.GT, ">"), (Tok.ASSIGN, "="),
    (Tok.NOT, "!"), (Tok.NEQ, "!="), (Tok.LTE, "<="), (Tok.GTE, ">="),
    (Tok.LPAREN, "("), (Tok.LBRACK, "["), (Tok.LCURLY, "{"), (Tok.COMMA, ","), (Tok.DOT, "."),
    (Tok.RPAREN, ")"), (Tok.RBRACK, "]"), (Tok.RCURLY, "}"),
    (Tok.NULL, "null"), (Tok.BOOL, "true"), (Tok.BOOL, "false"),
]


def test_every_token_kind_with_positions():
    """Tokens separated by blanks and blank lines: kind, text and line/col of each."""
    source = "".join(lit + "  \t  \n\n\n" for _, lit in TOKENS)
    toks = [t for t in scan(source) if t.kind is not Tok.TERMINATOR]
    assert [t.kind for t in toks] == [k for k, _ in TOKENS] + [Tok.EOF]
    line = 1
    for (kind, lit), tok in zip(TOKENS, toks):
        text = lit + "  \t  " if lit.startswith("//") else lit  # a line comment runs to the newline
        assert (tok.text, tok.line, tok.col) == (text, line, 1)
        line += 3 + lit.count("\n")


@pytest.mark.parametrize("text, expected", [
    ("a\n", [Tok.IDENT, Tok.TERMINATOR, Tok.EOF]),
    ("1\n2.5\n\"s\"\n`r`\ntrue\nnull\n", [Tok.NUMBER, Tok.TERMINATOR, Tok.FLOAT, Tok.TERMINATOR,
                                           Tok.STRING, Tok.TERMINATOR, Tok.STRING, Tok.TERMINATOR,
                                           Tok.BOOL, Tok.TERMINATOR, Tok.NULL, Tok.TERMINATOR, Tok.EOF]),
    (")\n]\n}\n", [Tok.RPAREN, Tok.TERMINATOR, Tok.RBRACK, Tok.TERMINATOR, Tok.RCURLY, Tok.TERMINATOR, Tok.EOF]),
    # No terminator after an opening bracket, a comma or an operator.
    ("(\n[\n{\n,\n+\n=\n.\n", [Tok.LPAREN, Tok.LBRACK, Tok.LCURLY, Tok.COMMA, Tok.ADD, Tok.ASSIGN, Tok.DOT, Tok.EOF]),
    # At EOF without a newline, and blank lines collapse into one terminator.
    ("a", [Tok.IDENT, Tok.TERMINATOR, Tok.EOF]),
    ("a\n\n\n  \nb", [Tok.IDENT, Tok.TERMINATOR, Tok.IDENT, Tok.TERMINATOR, Tok.EOF]),
    # A comment running to the line end: the terminator comes before it.
    ("a // c\nb", [Tok.IDENT, Tok.TERMINATOR, Tok.COMMENT, Tok.IDENT, Tok.TERMINATOR, Tok.EOF]),
    ("a /* c */\nb", [Tok.IDENT, Tok.TERMINATOR, Tok.COMMENT, Tok.IDENT, Tok.TERMINATOR, Tok.EOF]),
    ("a /* c */ /* d */ // e\nb", [Tok.IDENT, Tok.TERMINATOR, Tok.COMMENT, Tok.COMMENT, Tok.COMMENT,
                                   Tok.IDENT, Tok.TERMINATOR, Tok.EOF]),
    ("a /* multi\nline */ b", [Tok.IDENT, Tok.TERMINATOR, Tok.COMMENT, Tok.IDENT, Tok.TERMINATOR, Tok.EOF]),
    # A comment followed by a token on the same line: no terminator at all.
    ("a /* c */ b", [Tok.IDENT, Tok.COMMENT, Tok.IDENT, Tok.TERMINATOR, Tok.EOF]),
    ("\r\na\r\n", [Tok.IDENT, Tok.TERMINATOR, Tok.EOF]),
    ("..", [Tok.DOT, Tok.DOT, Tok.EOF]),
])
def test_terminator_insertion(text, expected):
    assert kinds(text) == expected


def test_terminator_position_is_the_newline_or_the_comment():
    toks = scan("ab = 1 // x\n")
    term = toks[3]
    assert (term.kind, term.line, term.col) == (Tok.TERMINATOR, 1, 8)
    toks = scan("ab\n")
    assert (toks[1].line, toks[1].col) == (1, 3)


def test_leading_byte_order_mark_is_ignored():
    assert [t.kind for t in scan("\ufeffa")] == [Tok.IDENT, Tok.TERMINATOR, Tok.EOF]


@pytest.mark.parametrize("text, message, line, col", [
    ("\a", "illegal character U+0007", 1, 1),
    ("x = …", "illegal character U+2026 '…'", 1, 5),
    ("x = 'illegal string'", "illegal single-quoted string; use double quotes", 1, 5),
    ('x = "abc', "string literal not terminated", 1, 5),
    ('x = "abc\ndef"', "string literal not terminated", 1, 5),
    ("x = `abc", "string literal not terminated", 1, 5),
    ('x = "abc\x00def"', "illegal character NUL", 1, 9),
    ("\ufeff\ufeff", "illegal byte order mark", 1, 2),
    ("abc\x00def", "illegal character NUL", 1, 4),
    ("x = 10E", "exponent has no digits", 1, 5),
    ("x = 1 | 2", "missing second | in ||", 1, 8),
    ("x = a & b", "missing second & in &&", 1, 8),
    ('x = "\\q"', "unknown escape sequence", 1, 7),
    ("x = \"\\'\"", "unknown escape sequence", 1, 7),
    ('x = "\\xZZ"', "illegal character U+005A 'Z' in escape sequence", 1, 7),
    ('x = "\\400"', "escape sequence is invalid Unicode code point", 1, 7),
    ('x = "\\ud800"', "escape sequence is invalid Unicode code point", 1, 7),
    ('x = "\\U00110000"', "escape sequence is invalid Unicode code point", 1, 7),
    ("x = 1 /* open", "block comment not terminated", 1, 7),
])
def test_lexical_errors(text, message, line, col):
    err = error_of(text)
    assert err.message == message
    assert err.source == SourceRef("t.alloy", line, col)


@pytest.mark.parametrize("raw, value", [
    (r'"plain"', "plain"),
    (r'"a\nb\tc\\d\"e"', 'a\nb\tc\\d"e'),
    (r'"\a\b\f\r\v"', "\a\b\f\r\v"),
    (r'"\x41\101\u00e9\U0001F600"', "AAé😀"),
    (r'"\xc3\xa9"', "é"),  # hex escapes are bytes, as in Go
    ('"héllo wörld ✓"', "héllo wörld ✓"),
    ("`raw \\n \"quoted\"\nsecond line`", 'raw \\n "quoted"\nsecond line'),
    ("`cr\r\nlf`", "cr\nlf"),
])
def test_string_values(raw, value):
    assert unquote(raw) == value
    assert expr_of(raw) == Literal(value)


def test_string_with_invalid_utf8_bytes_round_trips():
    lit = expr_of(r'"\xff"')
    assert lit.value.encode("utf-8", "surrogateescape") == b"\xff"
    assert format_expr(lit) == r'"\xff"'


@pytest.mark.parametrize("raw, value, kind", [
    ("0", 0, "int"), ("42", 42, "int"), ("017", 15, "int"),  # ParseInt base 0: octal
    ("08", 8.0, "float"),  # not octal: Alloy falls back to ParseFloat
    ("18446744073709551615", 2**64 - 1, "int"), ("18446744073709551616", 1.8446744073709552e19, "float"),
    ("1.5", 1.5, "float"), (".5", 0.5, "float"), ("1.", 1.0, "float"), ("1e3", 1000.0, "float"),
    ("2.5E-2", 0.025, "float"),
])
def test_number_values(raw, value, kind):
    lit = expr_of(raw)
    assert (lit.value, lit.kind) == (value, kind)


def test_float_overflow_is_rejected():
    assert "out of range" in error_of("x = 1e400\n").message


def test_unicode_identifiers_and_positions_count_characters():
    stmts = parse('ŝ = "é"\nblock "lab" { ü = 1 }\n', "t.alloy")
    assert stmts[0].name == "ŝ"
    assert stmts[1].body[0].pos == SourceRef("t.alloy", 2, 15)
    assert error_of('x = "é" + ,').source == SourceRef("t.alloy", 1, 11)


def test_is_valid_identifier():
    assert is_valid_identifier("platform_1")
    assert is_valid_identifier("ŝfoo")
    for bad in ("", "1a", "a-b", "true", "null", "a.b", "a b"):
        assert not is_valid_identifier(bad)


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------


def test_blocks_attributes_and_nesting():
    stmts = parse(
        'logging {\n  level = "info"\n}\n'
        'prometheus.remote_write "grafana" {\n'
        '  endpoint {\n    url = "http://x"\n    basic_auth { username = "u" }\n  }\n}\n',
        "t.alloy",
    )
    logging, rw = stmts
    assert (logging.name, logging.label) == ("logging", None)
    assert logging.attrs()["level"].value == Literal("info")
    assert (rw.name, rw.label, rw.id) == ("prometheus.remote_write", "grafana", "prometheus.remote_write.grafana")
    (endpoint,) = rw.blocks("endpoint")
    assert endpoint.attrs()["url"].value == Literal("http://x")
    assert endpoint.blocks("basic_auth")[0].attrs()["username"].value == Literal("u")
    assert rw.blocks("nope") == []
    assert rw.pos == SourceRef("t.alloy", 4, 1)
    assert endpoint.pos == SourceRef("t.alloy", 5, 3)


def test_empty_bodies_and_empty_file():
    assert parse("", "t") == []
    assert parse("// only a comment\n\n", "t") == []
    assert parse("a {}\nb \"l\" {\n}\n", "t") == [Block("a", None, []), Block("b", "l", [])]


def test_empty_label_means_no_label():
    (block,) = parse('a "" {}\n', "t")
    assert block.label is None


def test_trailing_commas_and_multiline_collections():
    assert expr_of("[1, 2,]") == expr_of("[1, 2]") == Array([Literal(1), Literal(2)])
    assert expr_of("[\n  1,\n  2,\n]") == Array([Literal(1), Literal(2)])
    obj = expr_of('{\n  a = 1,\n  "b c" = [],\n}')
    assert obj == Object([("a", Literal(1)), ("b c", Array([]))])
    assert expr_of("{}") == Object([]) and expr_of("[]") == Array([])


def test_multiline_collection_without_trailing_comma_is_rejected():
    err = error_of("x = [\n  1,\n  2\n]\n")
    assert (err.message, err.source) == ("missing ',' in expression list", SourceRef("t.alloy", 3, 4))
    err = error_of("x = {\n  a = 1\n}\n")
    assert (err.message, err.source) == ("missing ',' in field list", SourceRef("t.alloy", 2, 8))


def test_references_access_index_and_calls():
    assert expr_of("prometheus.relabel.platform.receiver") == Ref("prometheus.relabel.platform.receiver")
    assert expr_of('sys.env("HOME")') == Call("sys.env", [Literal("HOME")])
    assert expr_of("f()") == Call("f", [])
    assert expr_of("f(1, [2,],)") == Call("f", [Literal(1), Array([Literal(2)])])
    assert expr_of("a.b[0].c") == Access(Index(Ref("a.b"), Literal(0)), "c")
    assert expr_of("a[0][1]") == Index(Index(Ref("a"), Literal(0)), Literal(1))
    assert expr_of("(a).b") == Ref("a.b")
    assert expr_of("f(x).y") == Access(Call("f", [Ref("x")]), "y")


def test_operator_precedence_and_associativity():
    assert expr_of("1 + 2 * 3") == Binary("+", Literal(1), Binary("*", Literal(2), Literal(3)))
    assert expr_of("1 - 2 - 3") == Binary("-", Binary("-", Literal(1), Literal(2)), Literal(3))
    assert expr_of("2 ^ 3 ^ 2") == Binary("^", Literal(2), Binary("^", Literal(3), Literal(2)))
    assert expr_of("-2 ^ 2") == Binary("^", Unary("-", Literal(2)), Literal(2))
    assert expr_of("!a || b && c == d") == Binary(
        "||", Unary("!", Ref("a")), Binary("&&", Ref("b"), Binary("==", Ref("c"), Ref("d"))))
    assert expr_of("(1 + 2) * 3") == Binary("*", Binary("+", Literal(1), Literal(2)), Literal(3))
    assert expr_of("a < b != c >= d") == Binary(">=", Binary("!=", Binary("<", Ref("a"), Ref("b")), Ref("c")), Ref("d"))
    assert expr_of("7 % 3 / 1") == Binary("/", Binary("%", Literal(7), Literal(3)), Literal(1))


def test_expression_continues_over_newline_after_operator():
    assert expr_of("1 +\n  2") == Binary("+", Literal(1), Literal(2))


def test_comments_everywhere():
    text = (
        "/* head */ // more\n"
        "a /* between */ \"l\" /* x */ { // after brace\n"
        "  // own line\n"
        "  b = [ /* in array */ 1, // after element\n"
        "    2, /* end */ ] // trailing\n"
        "  c = { /* in object */ k = /* before value */ 1, } /* trailing block comment */\n"
        "} // after block\n"
        "/* last */"
    )
    mod = parse_module(text, "t.alloy")
    (block,) = mod.body
    assert block.attrs()["b"].value == Array([Literal(1), Literal(2)])
    assert block.attrs()["c"].value == Object([("k", Literal(1))])
    assert len(mod.comments) == 15
    assert mod.comments[0].pos == SourceRef("t.alloy", 1, 1)
    assert block.attrs()["b"].comments[0].text == "// own line"


def test_leading_comments_attach_to_the_statement_below():
    mod = parse_module(
        "x {\n"
        "  a = 1 // trailing, not leading\n"
        "  // source: base/relabel/platform.yaml:12\n"
        "  // second line\n"
        "  rule {\n  }\n"
        "  // detached\n"
        "\n"
        "  rule {}\n"
        "}\n",
        "t.alloy",
    )
    first, second = mod.body[0].blocks("rule")
    assert [c.text for c in first.comments] == ["// source: base/relabel/platform.yaml:12", "// second line"]
    assert first.comments[0].pos == SourceRef("t.alloy", 3, 3)
    assert second.comments == []


def test_duplicate_attributes_are_not_a_syntax_error():
    """Upstream's parser accepts them; its block decoder rejects them (see graph)."""
    (block,) = parse("rule {\n  a = 1\n  a = 2\n}\n", "t")
    assert block.attrs()["a"].value == Literal(1)
    assert duplicate_attribute(block.body).pos == SourceRef("t", 3, 3)
    assert duplicate_attribute(parse("a = 1\nb = 1\n", "t")) is None


def test_seed002_example_is_rejected_at_the_comma():
    err = error_of((FIXTURES / "seed002_original.alloy").read_text(), "seed002.alloy")
    assert err.message == "expected TERMINATOR, got ,"
    assert err.source == SourceRef("seed002.alloy", 11, 33)


def test_seed002_fixed_parses():
    stmts = parse_file(FIXTURES / "seed002_fixed.alloy", "rendered/config.alloy")
    assert [s.id for s in stmts] == [
        "discovery.kubernetes.pods", "prometheus.scrape.platform",
        "prometheus.relabel.platform", "prometheus.remote_write.grafana",
    ]
    rules = stmts[2].blocks("rule")
    assert literal_value(rules[0].attrs()["source_labels"].value) == ["job"]
    assert rules[1].pos == SourceRef("rendered/config.alloy", 23, 3)


@pytest.mark.parametrize("text, message, line, col", [
    ('rule { a = "x", b = "y" }', "expected TERMINATOR, got ,", 1, 15),
    ("a = 1 b = 2", "expected TERMINATOR, got IDENT", 1, 7),
    ("a = 1 /* c */ b = 2", "expected TERMINATOR, got IDENT", 1, 15),
    ("a.b = 1", 'attribute names may only consist of a single identifier with no "."', 1, 1),
    ('a "l" = 1', "attribute names may not have labels", 1, 3),
    ("a", "expected block label, got TERMINATOR", 1, 2),  # as upstream: the label check comes first
    ('a.b "l"\n{}', "expected block body, got TERMINATOR", 1, 8),
    ("a.b 1 {}", "expected block label, got NUMBER", 1, 5),
    ("a `l` {}", 'expected block label to be a double quoted string, but got "`l`"', 1, 3),
    ('a "not valid" {}', 'expected block label to be a valid identifier, but got "not valid"', 1, 3),
    ('a "true" {}', 'expected block label to be a valid identifier, but got "true"', 1, 3),
    ("true = 1", "expected identifier, got BOOL", 1, 1),
    ("a. = 1", "expected identifier, got =", 1, 4),
    ("= 1", "expected identifier, got =", 1, 1),
    ("a = ", "expected expression, got EOF", 1, 5),
    ("a = }", "expected expression, got }", 1, 5),
    ("a = [1 2]", "missing ',' in expression list", 1, 8),
    ("a = {b = 1 c = 2}", "missing ',' in field list", 1, 12),
    ("a = {1 = 2}", "expected field name (string or identifier), got NUMBER", 1, 6),
    ("a = {b 1}", "expected =, got NUMBER", 1, 8),
    ("a = (1", "expected ), got TERMINATOR", 1, 7),
    ("a = x.true", "expected IDENT, got BOOL", 1, 7),
    ("a = x.1", "expected TERMINATOR, got FLOAT", 1, 6),  # `.1` scans as a float
    ("a = f(1", "missing ',' in expression list", 1, 8),
    ("a = f(1,", "expected ), got EOF", 1, 9),
    ("a = b { c = 1 }", "cannot use a block as an expression", 1, 5),
    ('a = b "l" { }', "cannot use a block as an expression", 1, 5),
    ("a = [0][0](1)", "cannot call an index expression; only named functions can be called", 1, 11),
    ("a {\n  b = 1\n", "expected }, got EOF", 3, 1),
    ("a {\n  b = 1\n}}", "expected TERMINATOR, got }", 3, 2),
])
def test_syntax_errors(text, message, line, col):
    err = error_of(text)
    assert err.message == message
    assert err.source == SourceRef("t.alloy", line, col)


def test_parse_file_reports_invalid_utf8_position(tmp_path):
    path = tmp_path / "c.alloy"
    path.write_bytes(b'a = 1\nb = "\xff"\n')
    with pytest.raises(InputError) as info:
        parse_file(path, "c.alloy")
    assert info.value.source == SourceRef("c.alloy", 2, 6)
    assert parse_file(FIXTURES / "seed002_fixed.alloy")[0].pos.file.endswith("seed002_fixed.alloy")


# ---------------------------------------------------------------------------------------------
# literal_value
# ---------------------------------------------------------------------------------------------


def test_literal_value():
    assert literal_value(expr_of('["a", 1, 2.5, true, null, {k = [-1], "q r" = !false}]')) == \
        ["a", 1, 2.5, True, None, {"k": [-1], "q r": True}]


@pytest.mark.parametrize("text, fragment", [
    ("a.b", "a reference to a.b"), ('sys.env("X")', "a call to sys.env()"), ("1 + 2", "+"),
    ('[1, x]', "a reference to x"), ('-"s"', "cannot apply -"),
])
def test_literal_value_rejects_expressions(text, fragment):
    with pytest.raises(NotLiteral) as info:
        literal_value(expr_of(text))
    assert fragment in info.value.message
    assert isinstance(info.value, InputError) and info.value.source.line == 1


# ---------------------------------------------------------------------------------------------
# Printer round trip (property test)
# ---------------------------------------------------------------------------------------------

_names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(is_valid_identifier)
_strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
_literals = st.one_of(
    st.builds(Literal, _strings),
    st.builds(Literal, st.integers(min_value=0, max_value=2**63)),
    st.builds(Literal, st.floats(min_value=0, allow_nan=False, allow_infinity=False)),
    st.builds(Literal, st.booleans()),
    st.just(Literal(None)),
)
_refs = st.lists(_names, min_size=1, max_size=4).map(lambda parts: Ref(".".join(parts)))
_keys = st.one_of(_names, st.from_regex(r"[a-z][a-z .:/-]{0,6}", fullmatch=True))


def _compound(children):
    not_ref = children.filter(lambda e: not isinstance(e, Ref))
    return st.one_of(
        st.builds(Array, st.lists(children, max_size=3)),
        st.builds(Object, st.lists(st.tuples(_keys, children), max_size=3)),
        st.builds(Call, _refs.map(lambda r: r.path), st.lists(children, max_size=3)),
        st.builds(Index, children, children),
        st.builds(Access, not_ref, _names),
        st.builds(Unary, st.sampled_from(["!", "-"]), children),
        st.builds(Binary, st.sampled_from(sorted(["||", "&&", "==", "!=", "<", "<=", ">", ">=",
                                                  "+", "-", "*", "/", "%", "^"])), children, children),
    )


_exprs = st.recursive(st.one_of(_literals, _refs), _compound, max_leaves=12)


def _stmts(depth: int):
    attr = st.builds(Attribute, _names, _exprs)
    if depth == 0:
        return st.lists(attr, max_size=3)
    block = st.builds(Block, st.lists(_names, min_size=1, max_size=3).map(".".join),
                      st.one_of(st.none(), _names), st.deferred(lambda: _stmts(depth - 1)))
    return st.lists(st.one_of(attr, block), max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stmts(2))
def test_printed_ast_reparses_to_the_same_ast(stmts):
    text = format_body(stmts)
    assert parse(text, "gen.alloy") == stmts, text


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_exprs)
def test_printed_expression_reparses_to_the_same_expression(expr):
    text = format_expr(expr)
    assert expr_of(text) == expr, text


@pytest.mark.parametrize("expr, text", [
    (Binary("-", Ref("a"), Binary("-", Ref("b"), Ref("c"))), "a - (b - c)"),
    (Binary("^", Binary("^", Ref("a"), Ref("b")), Ref("c")), "(a ^ b) ^ c"),
    (Binary("^", Ref("a"), Binary("^", Ref("b"), Ref("c"))), "a ^ b ^ c"),
    (Binary("*", Binary("+", Ref("a"), Ref("b")), Unary("-", Ref("c"))), "(a + b) * -c"),
    (Access(Literal(1), "x"), "(1).x"),
    (Index(Unary("!", Ref("a")), Literal(0)), "(!a)[0]"),
    (Literal('q"\\\n\t\x01é'), r'"q\"\\\n\t\u0001é"'),
])
def test_printer_parenthesises_where_needed(expr, text):
    assert format_expr(expr) == text
    assert expr_of(text) == expr
