"""Scanner, parser and AST of the Grafana Alloy configuration syntax (formerly River).

Why our own parser: the GDPR proof has to see the exact component graph Alloy will run, so a
config that Alloy refuses must be refused here too, at the same place, with a message close to
Alloy's. The grammar follows upstream `syntax/scanner/scanner.go`, `syntax/parser/internal.go`
and `syntax/token/token.go` of grafana/alloy (checked against that source):

* Tokens: identifiers (a Unicode letter or `_`, then letters/Unicode digits), `true`/`false`
  (BOOL), `null`, NUMBER (`digits`), FLOAT (`digits.digits`, `.5`, `1.`, exponents), STRING
  (`"..."` with Go escapes, or a raw `` `...` `` that may span lines), comments `//` and `/* */`,
  the operators `|| && ! != = == < <= > >= + - * / % ^ { } ( ) [ ] , .`.
* A TERMINATOR is inserted at a newline (or at the end of the file) when the last token was an
  identifier, a literal, `)`, `]` or `}`. A comma therefore never ends a statement:
  `rule { a = "x", b = "y" }` fails with "expected TERMINATOR, got ,".
* Body = [ Statement { TERMINATOR Statement } ]; Statement = Attribute (`name = expr`) or Block
  (`a.b.c "label" { Body }`). Arrays and objects take a trailing comma; a multi-line array or
  object therefore needs one after its last element (the newline after it is a TERMINATOR).
* Precedence (low to high): `||`, `&&`, comparisons, `+ -`, `* / %`, `^` (right-associative),
  then unary `!`/`-`, then postfix `.name`, `[index]`, `(args)`.
* Evaluation rules that make a literal's value: NUMBER goes through Go's `ParseInt(lit, 0, 64)`
  (so a leading 0 means octal, and `08` falls back to the float 8.0), then uint64, then float;
  strings are `strconv.Unquote`d (raw strings lose their carriage returns).

Duplicate attribute names in one body are NOT a syntax error upstream: Alloy's block decoder
rejects them ("attribute %q may only be provided once"). So `parse` accepts them and
`fleet.alloy.graph` (which decodes components) rejects them.

Deviations, on purpose: the first error is raised (Alloy collects several); columns count
Unicode code points (Alloy counts bytes; the same on ASCII lines); a call of anything other than
a dotted name (e.g. `x[0](1)`) is rejected, since Alloy has no way to produce such a function.
"""
from __future__ import annotations

import bisect
import json
import re
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, Union

from fleet.errors import InputError, SourceRef


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


class Tok(Enum):
    """Alloy's token kinds; the value is what Alloy prints for the token in messages."""

    ILLEGAL = "ILLEGAL"
    EOF = "EOF"
    COMMENT = "COMMENT"
    IDENT = "IDENT"
    NUMBER = "NUMBER"
    FLOAT = "FLOAT"
    STRING = "STRING"
    BOOL = "BOOL"
    NULL = "NULL"
    OR = "||"
    AND = "&&"
    NOT = "!"
    ASSIGN = "="
    EQ = "=="
    NEQ = "!="
    LT = "<"
    LTE = "<="
    GT = ">"
    GTE = ">="
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MOD = "%"
    POW = "^"
    LCURLY = "{"
    RCURLY = "}"
    LPAREN = "("
    RPAREN = ")"
    LBRACK = "["
    RBRACK = "]"
    COMMA = ","
    DOT = "."
    TERMINATOR = "TERMINATOR"

    def __str__(self) -> str:
        return self.value


BINARY_PRECEDENCE = {
    Tok.OR: 1,
    Tok.AND: 2,
    Tok.EQ: 3, Tok.NEQ: 3, Tok.LT: 3, Tok.LTE: 3, Tok.GT: 3, Tok.GTE: 3,
    Tok.ADD: 4, Tok.SUB: 4,
    Tok.MUL: 5, Tok.DIV: 5, Tok.MOD: 5,
    Tok.POW: 6,
}
BINARY_OPS = {tok.value: tok for tok in BINARY_PRECEDENCE}
UNARY_OPS = {"!": Tok.NOT, "-": Tok.SUB}

# Tokens after which a newline (or EOF) becomes a TERMINATOR.
_TERMINATING = {Tok.IDENT, Tok.BOOL, Tok.NULL, Tok.NUMBER, Tok.FLOAT, Tok.STRING,
                Tok.RCURLY, Tok.RPAREN, Tok.RBRACK}

_SINGLE = {
    "+": Tok.ADD, "-": Tok.SUB, "*": Tok.MUL, "%": Tok.MOD, "^": Tok.POW,
    "{": Tok.LCURLY, "}": Tok.RCURLY, "(": Tok.LPAREN, ")": Tok.RPAREN,
    "[": Tok.LBRACK, "]": Tok.RBRACK, ",": Tok.COMMA, ".": Tok.DOT,
}
_DOUBLE = {"!": (Tok.NOT, Tok.NEQ), "=": (Tok.ASSIGN, Tok.EQ), "<": (Tok.LT, Tok.LTE), ">": (Tok.GT, Tok.GTE)}

_BOM = "\ufeff"


@dataclass(frozen=True)
class Token:
    """One scanned token: kind, literal text (as written) and its 1-based position."""

    kind: Tok
    text: str
    line: int
    col: int
    offset: int


@dataclass(frozen=True)
class Comment:
    """A comment as written (`// ...` or `/* ... */`), where it starts and ends, and whether it
    stands on a line of its own (nothing but blanks before it on its first line)."""

    text: str
    pos: SourceRef
    end_line: int
    own_line: bool


def is_letter(ch: str) -> bool:
    """Alloy's isLetter: ASCII letters, `_`, or any Unicode letter (category L*)."""
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ch == "_" or (ord(ch) >= 0x80 and ch.isalpha())


def is_digit(ch: str) -> bool:
    """Alloy's isDigit: ASCII digits or a Unicode decimal digit (category Nd)."""
    return ("0" <= ch <= "9") or (ord(ch) >= 0x80 and unicodedata.category(ch) == "Nd")


def is_valid_identifier(text: str) -> bool:
    """True when `text` scans as exactly one identifier (so `true`/`null` are not)."""
    if not text or not is_letter(text[0]) or not all(is_letter(c) or is_digit(c) for c in text[1:]):
        return False
    return text not in ("true", "false", "null")


def _go_char(ch: str) -> str:
    """Go's %#U rendering of a character, as in Alloy's "illegal character" message."""
    code = f"U+{ord(ch):04X}"
    return f"{code} '{ch}'" if ch.isprintable() else code


def go_quote(text: str) -> str:
    """Go's %q rendering of a string (close enough for messages)."""
    return json.dumps(text, ensure_ascii=False)


class Scanner:
    """Turns Alloy source text into tokens, inserting TERMINATORs as Alloy's scanner does.

    Comments are returned as COMMENT tokens so that the parser can keep them (the rendered
    config carries `// source: FILE:LINE` provenance comments above generated blocks).
    """

    def __init__(self, text: str, filename: str):
        self.src = text
        self.filename = filename
        self.i = 1 if text.startswith(_BOM) else 0
        self.insert_term = False
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    # positions ------------------------------------------------------------------------------

    def line_col(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def ref(self, offset: int) -> SourceRef:
        line, col = self.line_col(offset)
        return SourceRef(self.filename, line, col)

    def error(self, offset: int, message: str) -> InputError:
        return InputError(message, self.ref(offset))

    def line_is_blank_before(self, offset: int) -> bool:
        line, _ = self.line_col(offset)
        return self.src[self._line_starts[line - 1]:offset].strip(" \t\r" + _BOM) == ""

    # characters -----------------------------------------------------------------------------

    def _ch(self, i: int) -> str:
        """Character at i ('' at EOF); NUL and stray byte order marks are errors, as upstream."""
        if i >= len(self.src):
            return ""
        ch = self.src[i]
        if ch == "\0":
            raise self.error(i, "illegal character NUL")
        if ch == _BOM and i > 0:
            raise self.error(i, "illegal byte order mark")
        return ch

    # scanning -------------------------------------------------------------------------------

    def tokens(self) -> Iterator[Token]:
        """All tokens up to and including EOF."""
        while True:
            tok = self.scan()
            yield tok
            if tok.kind is Tok.EOF:
                return

    def _make(self, kind: Tok, start: int, text: str) -> Token:
        line, col = self.line_col(start)
        return Token(kind, text, line, col, start)

    def _skip_whitespace(self) -> None:
        while True:
            ch = self._ch(self.i)
            if ch in (" ", "\t", "\r") or (ch == "\n" and not self.insert_term):
                self.i += 1
            else:
                return

    def scan(self) -> Token:
        """Next token; raises InputError on a lexical error."""
        self._skip_whitespace()
        start = self.i
        ch = self._ch(start)
        if ch == "":
            if self.insert_term:
                self.insert_term = False
                return self._make(Tok.TERMINATOR, start, "\n")
            return self._make(Tok.EOF, start, "")
        if ch == "\n":  # only reached when a terminator is due
            self.i += 1
            self.insert_term = False
            return self._make(Tok.TERMINATOR, start, "\n")
        if ch == "/" and self._ch(start + 1) in ("/", "*"):
            if self.insert_term and self._comment_reaches_line_end(start):
                self.insert_term = False
                return self._make(Tok.TERMINATOR, start, "\n")
            text = self._scan_comment(start)
            self.insert_term = False
            return self._make(Tok.COMMENT, start, text)
        tok = self._scan_token(start, ch)
        self.insert_term = tok.kind in _TERMINATING
        return tok

    def _scan_token(self, start: int, ch: str) -> Token:
        if is_letter(ch):
            return self._scan_identifier(start)
        if "0" <= ch <= "9" or (ch == "." and "0" <= self._ch(start + 1) <= "9" and self._ch(start + 1) != ""):
            return self._scan_number(start)
        if ch == '"':
            return self._make(Tok.STRING, start, self._scan_string(start, '"', escapes=True, multiline=False))
        if ch == "`":
            return self._make(Tok.STRING, start, self._scan_string(start, "`", escapes=False, multiline=True))
        if ch == "'":
            raise self.error(start, "illegal single-quoted string; use double quotes")
        if ch in ("|", "&"):
            if self._ch(start + 1) != ch:
                raise self.error(start + 1, f"missing second {ch} in {ch}{ch}")
            self.i = start + 2
            return self._make(Tok.OR if ch == "|" else Tok.AND, start, ch * 2)
        if ch in _DOUBLE:
            single, double = _DOUBLE[ch]
            if self._ch(start + 1) == "=":
                self.i = start + 2
                return self._make(double, start, ch + "=")
            self.i = start + 1
            return self._make(single, start, ch)
        if ch == "/":
            self.i = start + 1
            return self._make(Tok.DIV, start, ch)
        if ch in _SINGLE:
            self.i = start + 1
            return self._make(_SINGLE[ch], start, ch)
        raise self.error(start, f"illegal character {_go_char(ch)}")

    def _scan_identifier(self, start: int) -> Token:
        i = start + 1
        while (c := self._ch(i)) and (is_letter(c) or is_digit(c)):
            i += 1
        self.i = i
        text = self.src[start:i]
        kind = Tok.BOOL if text in ("true", "false") else Tok.NULL if text == "null" else Tok.IDENT
        return self._make(kind, start, text)

    def _digits(self, i: int) -> int:
        while "0" <= self._ch(i) <= "9" and self._ch(i) != "":
            i += 1
        return i

    def _scan_number(self, start: int) -> Token:
        kind = Tok.NUMBER
        i = start
        if self._ch(i) != ".":
            i = self._digits(i)
        if self._ch(i) == ".":
            kind = Tok.FLOAT
            i = self._digits(i + 1)
        if self._ch(i) in ("e", "E"):
            kind = Tok.FLOAT
            i += 1
            if self._ch(i) in ("+", "-"):
                i += 1
            end = self._digits(i)
            if end == i:
                raise self.error(start, "exponent has no digits")
            i = end
        self.i = i
        return self._make(kind, start, self.src[start:i])

    def _scan_string(self, start: int, quote: str, *, escapes: bool, multiline: bool) -> str:
        i = start + 1
        while True:
            ch = self._ch(i)
            if ch == "" or (ch == "\n" and not multiline):
                raise self.error(start, "string literal not terminated")
            i += 1
            if ch == quote:
                break
            if escapes and ch == "\\":
                i = self._scan_escape(i)
        self.i = i
        return self.src[start:i]

    def _scan_escape(self, i: int) -> int:
        """Validate the escape whose letter is at i (Go's rules); return the offset after it."""
        ch = self._ch(i)
        if ch in ("a", "b", "f", "n", "r", "t", "v", "\\", '"'):
            return i + 1
        if ch and ch in "01234567":
            n, base, top, j = 3, 8, 255, i
        elif ch == "x":
            n, base, top, j = 2, 16, 255, i + 1
        elif ch == "u":
            n, base, top, j = 4, 16, 0x10FFFF, i + 1
        elif ch == "U":
            n, base, top, j = 8, 16, 0x10FFFF, i + 1
        else:
            raise self.error(i, "escape sequence not terminated" if ch == "" else "unknown escape sequence")
        value = 0
        for _ in range(n):
            c = self._ch(j)
            digit = int(c, 16) if c and c in "0123456789abcdefABCDEF" else 16
            if digit >= base:
                if c == "":
                    raise self.error(i, "escape sequence not terminated")
                raise self.error(i, f"illegal character {_go_char(c)} in escape sequence")
            value = value * base + digit
            j += 1
        if value > top or 0xD800 <= value < 0xE000:
            raise self.error(i, "escape sequence is invalid Unicode code point")
        return j

    def _scan_comment(self, start: int) -> str:
        if self._ch(start + 1) == "/":
            i = start + 2
            while (c := self._ch(i)) not in ("\n", ""):
                i += 1
            self.i = i
            return self.src[start:i].replace("\r", "")
        i = start + 2
        while True:
            c = self._ch(i)
            if c == "":
                raise self.error(start, "block comment not terminated")
            if c == "*" and self._ch(i + 1) == "/":
                self.i = i + 2
                return self.src[start:i + 2].replace("\r", "")
            i += 1

    def _comment_reaches_line_end(self, start: int) -> bool:
        """Alloy's findLineEnd: do the comments starting here run into a newline (or EOF)
        before any other token? Then the pending terminator goes before the comment."""
        i = start
        while self._ch(i) == "/" and self._ch(i + 1) in ("/", "*"):
            if self._ch(i + 1) == "/":
                return True
            i += 2
            while True:
                c = self._ch(i)
                if c == "":
                    return True
                if c == "\n":
                    return True
                if c == "*" and self._ch(i + 1) == "/":
                    i += 2
                    break
                i += 1
            while self._ch(i) in (" ", "\t", "\r") and self._ch(i) != "":
                i += 1
            if self._ch(i) in ("", "\n"):
                return True
        return False


def scan(text: str, filename: str = "<input>") -> list[Token]:
    """All tokens of `text`, comments included, ending with EOF (handy for tests and tools)."""
    return list(Scanner(text, filename).tokens())


# --------------------------------------------------------------------------------------------
# AST
# --------------------------------------------------------------------------------------------
# Node equality ignores positions and comments, so that two parses of the same config written
# differently (e.g. re-formatted) compare equal.


def _literal_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    raise TypeError(f"not an Alloy literal value: {value!r}")


@dataclass
class Literal:
    """A string, number, bool or null literal, with its Python value. `kind` is one of
    string/int/float/bool/null (kept because 1 == 1.0 == True in Python)."""

    value: Any
    pos: SourceRef = field(default=SourceRef(""), compare=False)
    kind: str = ""
    raw: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = _literal_kind(self.value)


@dataclass
class Array:
    items: list["Expr"]
    pos: SourceRef = field(default=SourceRef(""), compare=False)


@dataclass
class Object:
    """`{ key = v, "key" = v }`: fields in source order (a later duplicate key wins on
    evaluation). A quoted key is stored without its quotes and, as upstream, not unescaped."""

    fields: list[tuple[str, "Expr"]]
    pos: SourceRef = field(default=SourceRef(""), compare=False)


@dataclass
class Ref:
    """An identifier or a chain of field accesses on one, e.g.
    `prometheus.relabel.platform.receiver`."""

    path: str
    pos: SourceRef = field(default=SourceRef(""), compare=False)

    @property
    def parts(self) -> list[str]:
        return self.path.split(".")


@dataclass
class Access:
    """`value.name` where value is not itself a name chain (e.g. `x[0].name`, `f(x).name`)."""

    value: "Expr"
    name: str
    pos: SourceRef = field(default=SourceRef(""), compare=False)


@dataclass
class Call:
    """`func(args...)`, e.g. `sys.env("X")`: func is the dotted callee name."""

    func: str
    args: list["Expr"]
    pos: SourceRef = field(default=SourceRef(""), compare=False)


@dataclass
class Index:
    value: "Expr"
    index: "Expr"
    pos: SourceRef = field(default=SourceRef(""), compare=False)


@dataclass
class Unary:
    op: str  # "!" or "-"
    value: "Expr"
    pos: SourceRef = field(default=SourceRef(""), compare=False)


@dataclass
class Binary:
    op: str  # one of BINARY_OPS
    left: "Expr"
    right: "Expr"
    pos: SourceRef = field(default=SourceRef(""), compare=False)
    op_pos: SourceRef = field(default=SourceRef(""), compare=False)


Expr = Union[Literal, Array, Object, Ref, Access, Call, Index, Unary, Binary]


@dataclass
class Attribute:
    """`name = value` inside a body."""

    name: str
    value: Expr
    pos: SourceRef = field(default=SourceRef(""), compare=False)
    comments: list[Comment] = field(default_factory=list, compare=False)


@dataclass
class Block:
    """`a.b.c "label" { body }`. `comments` are the comment lines directly above the block."""

    name: str
    label: str | None
    body: list["Stmt"]
    pos: SourceRef = field(default=SourceRef(""), compare=False)
    comments: list[Comment] = field(default_factory=list, compare=False)

    @property
    def id(self) -> str:
        """Alloy's block id: the name, plus `.label` when labelled."""
        return f"{self.name}.{self.label}" if self.label else self.name

    def attrs(self) -> dict[str, Attribute]:
        """The body's attributes by name (the first one wins if a name repeats; see
        `duplicate_attribute` for the check Alloy's decoder makes)."""
        out: dict[str, Attribute] = {}
        for stmt in self.body:
            if isinstance(stmt, Attribute):
                out.setdefault(stmt.name, stmt)
        return out

    def blocks(self, name: str | None = None) -> list["Block"]:
        """Nested blocks, in source order, optionally only those called `name`."""
        return [s for s in self.body if isinstance(s, Block) and (name is None or s.name == name)]


Stmt = Union[Attribute, Block]


@dataclass
class Module:
    """A parsed file: its statements and every comment in it."""

    body: list[Stmt]
    comments: list[Comment]
    filename: str


def duplicate_attribute(body: list[Stmt]) -> Attribute | None:
    """The second occurrence of the first repeated attribute name in `body`, if any. Alloy's
    decoder rejects such a body with "attribute %q may only be provided once"."""
    seen: set[str] = set()
    for stmt in body:
        if isinstance(stmt, Attribute):
            if stmt.name in seen:
                return stmt
            seen.add(stmt.name)
    return None


# --------------------------------------------------------------------------------------------
# Literal values
# --------------------------------------------------------------------------------------------

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", '"': '"'}


def unquote(raw: str) -> str:
    """Go's strconv.Unquote for a scanned STRING token. `\\x`/octal escapes produce bytes, as in
    Go; bytes that are not valid UTF-8 survive as surrogate escapes (lossless)."""
    if raw.startswith("`"):
        return raw[1:-1].replace("\r", "")
    body = raw[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        esc = body[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[esc].encode()
            i += 2
        elif esc == "x":
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
        elif esc in "01234567":
            out.append(int(body[i + 1:i + 4], 8))
            i += 4
        else:
            width = 4 if esc == "u" else 8
            out += chr(int(body[i + 2:i + 2 + width], 16)).encode()
            i += 2 + width
    return out.decode("utf-8", "surrogateescape")


def number_value(raw: str) -> int | float:
    """Value of a NUMBER token as Alloy computes it (ParseInt base 0, then uint64, then float)."""
    if len(raw) > 1 and raw[0] == "0":
        if all(c in "01234567" for c in raw):
            value = int(raw, 8)
        else:
            return float(raw)
    else:
        value = int(raw)
    if value < 2**64:
        return value
    return float(raw)


class NotLiteral(InputError):
    """An expression that needs evaluation (a reference, a call, an operator) where a plain
    literal value was expected."""


def literal_value(expr: Expr) -> Any:
    """The Python value of a literal-only expression: literals, arrays and objects of them, and
    unary `-`/`!` applied to a number/bool. Raises NotLiteral (with position) otherwise."""
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Array):
        return [literal_value(item) for item in expr.items]
    if isinstance(expr, Object):
        return {key: literal_value(value) for key, value in expr.fields}
    if isinstance(expr, Unary):
        inner = literal_value(expr.value)
        if expr.op == "-" and isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner
        if expr.op == "!" and isinstance(inner, bool):
            return not inner
        raise NotLiteral(f"cannot apply {expr.op} to {type(inner).__name__}", expr.pos)
    raise NotLiteral(f"expected a literal value, got {describe(expr)}", expr.pos)


def describe(expr: Expr) -> str:
    """Short human description of an expression for messages."""
    if isinstance(expr, Ref):
        return f"a reference to {expr.path}"
    if isinstance(expr, Call):
        return f"a call to {expr.func}()"
    if isinstance(expr, (Binary, Unary)):
        return f"an expression using {expr.op}"
    if isinstance(expr, Index):
        return "an index expression"
    if isinstance(expr, Access):
        return f"a field access .{expr.name}"
    if isinstance(expr, Literal):
        return f"a {expr.kind}"
    return type(expr).__name__.lower()


def walk_exprs(expr: Expr) -> Iterator[Expr]:
    """Every expression node inside `expr`, itself included (pre-order)."""
    yield expr
    if isinstance(expr, Array):
        for item in expr.items:
            yield from walk_exprs(item)
    elif isinstance(expr, Object):
        for _, value in expr.fields:
            yield from walk_exprs(value)
    elif isinstance(expr, Access):
        yield from walk_exprs(expr.value)
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from walk_exprs(arg)
    elif isinstance(expr, Index):
        yield from walk_exprs(expr.value)
        yield from walk_exprs(expr.index)
    elif isinstance(expr, Unary):
        yield from walk_exprs(expr.value)
    elif isinstance(expr, Binary):
        yield from walk_exprs(expr.left)
        yield from walk_exprs(expr.right)


def walk_stmts(body: list[Stmt]) -> Iterator[Stmt]:
    """Every statement in `body` and in nested blocks (pre-order)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, Block):
            yield from walk_stmts(stmt.body)


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


#: Deepest nesting of blocks and expressions the parser follows. Upstream (Go) grows its stack;
#: a Python recursive descent hits RecursionError, so deeper input is refused at its position.
MAX_NESTING = 100


class Parser:
    """Recursive-descent parser mirroring upstream's LL(1) grammar; raises at the first error."""

    def __init__(self, text: str, filename: str):
        self.scanner = Scanner(text, filename)
        self.filename = filename
        self.depth = 0
        self.comments: list[Comment] = []
        self.tok: Token = self.scanner.scan()
        self._skip_comments()

    # token handling -------------------------------------------------------------------------

    def _skip_comments(self) -> None:
        while self.tok.kind is Tok.COMMENT:
            end_line = self.tok.line + self.tok.text.count("\n")
            own = self.scanner.line_is_blank_before(self.tok.offset)
            self.comments.append(Comment(self.tok.text, self.pos(), end_line, own))
            self.tok = self.scanner.scan()

    def next(self) -> None:
        self.tok = self.scanner.scan()
        self._skip_comments()

    def pos(self, tok: Token | None = None) -> SourceRef:
        tok = tok or self.tok
        return SourceRef(self.filename, tok.line, tok.col)

    def fail(self, message: str, at: SourceRef | None = None) -> InputError:
        return InputError(message, at or self.pos())

    def expect(self, kind: Tok) -> Token:
        tok = self.tok
        if tok.kind is not kind:
            raise self.fail(f"expected {kind}, got {tok.kind}")
        self.next()
        return tok

    def _leading_comments(self, line: int) -> list[Comment]:
        """The run of own-line comments ending on the line just above `line`."""
        found: list[Comment] = []
        want = line - 1
        for comment in reversed(self.comments):
            if comment.end_line > want:
                continue
            if comment.end_line < want or not comment.own_line:
                break
            found.append(comment)
            want = comment.pos.line - 1
        return list(reversed(found))

    # statements -----------------------------------------------------------------------------

    def parse_file(self) -> list[Stmt]:
        return self.parse_body(Tok.EOF)

    def _enter(self) -> None:
        """One level deeper (a block, a bracket, a unary or `^` operand); bounded by MAX_NESTING."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"nesting deeper than {MAX_NESTING} levels")

    def parse_body(self, until: Tok) -> list[Stmt]:
        """Body = [ Statement { TERMINATOR Statement } ]"""
        body: list[Stmt] = []
        while self.tok.kind is not until and self.tok.kind is not Tok.EOF:
            body.append(self.parse_statement())
            if self.tok.kind is until:
                break
            if self.tok.kind is not Tok.TERMINATOR:
                raise self.fail(f"expected {Tok.TERMINATOR}, got {self.tok.kind}")
            self.next()
        return body

    def parse_statement(self) -> Stmt:
        """Statement = identifier "=" Expression | BlockName "{" Body "}" """
        start = self.tok
        comments = self._leading_comments(start.line)
        fragments, label, label_pos = self.parse_block_name()
        if self.tok.kind is Tok.ASSIGN:
            if len(fragments) != 1:
                raise self.fail('attribute names may only consist of a single identifier with no "."', self.pos(start))
            if label_pos is not None:
                raise self.fail("attribute names may not have labels", label_pos)
            self.next()
            return Attribute(fragments[0], self.parse_expression(), self.pos(start), comments)
        if self.tok.kind is Tok.LCURLY:
            self.next()
            self._enter()
            body = self.parse_body(Tok.RCURLY)
            self.depth -= 1
            self.expect(Tok.RCURLY)
            return Block(".".join(fragments), label or None, body, self.pos(start), comments)
        if len(fragments) == 1 and label_pos is None:
            raise self.fail(f"expected attribute assignment or block body, got {self.tok.kind}")
        raise self.fail(f"expected block body, got {self.tok.kind}")

    def parse_block_name(self) -> tuple[list[str], str, SourceRef | None]:
        """BlockName = identifier { "." identifier } [ string ]"""
        if self.tok.kind is not Tok.IDENT:
            raise self.fail(f"expected identifier, got {self.tok.kind}")
        fragments = [self.tok.text]
        self.next()
        while self.tok.kind is Tok.DOT:
            self.next()
            if self.tok.kind is not Tok.IDENT:
                raise self.fail(f"expected identifier, got {self.tok.kind}")
            fragments.append(self.tok.text)
            self.next()
        label, label_pos = "", None
        if self.tok.kind not in (Tok.ASSIGN, Tok.LCURLY):
            if self.tok.kind is not Tok.STRING:
                raise self.fail(f"expected block label, got {self.tok.kind}")
            raw = self.tok.text
            if raw[0] != '"':
                raise self.fail(f"expected block label to be a double quoted string, but got {go_quote(raw)}")
            if len(raw) > 2:
                label = raw[1:-1]
                if not is_valid_identifier(label):
                    raise self.fail(f"expected block label to be a valid identifier, but got {go_quote(label)}")
            label_pos = self.pos()
            self.next()
        return fragments, label, label_pos

    # expressions ----------------------------------------------------------------------------

    def parse_expression(self) -> Expr:
        self._enter()
        expr = self.parse_binop(1)
        self.depth -= 1
        return expr

    def parse_binop(self, in_prec: int) -> Expr:
        """OrExpr .. MulExpr, left-associative, by precedence climbing (as upstream)."""
        lhs = self.parse_pow()
        entered = self.depth
        while True:
            op = self.tok
            prec = BINARY_PRECEDENCE.get(op.kind, 0)
            if prec < in_prec:
                self.depth = entered
                return lhs
            self.next()
            self._enter()  # each operator of a chain nests the tree built so far one level deeper
            rhs = self.parse_binop(prec + 1)
            lhs = Binary(op.kind.value, lhs, rhs, lhs.pos, self.pos(op))

    def parse_pow(self) -> Expr:
        """PowExpr = UnaryExpr [ "^" PowExpr ] (right-associative)"""
        lhs = self.parse_unary()
        if self.tok.kind is Tok.POW:
            op = self.tok
            self.next()
            self._enter()
            rhs = self.parse_pow()
            self.depth -= 1
            return Binary("^", lhs, rhs, lhs.pos, self.pos(op))
        return lhs

    def parse_unary(self) -> Expr:
        """UnaryExpr = OperExpr | ("!" | "-") UnaryExpr"""
        if self.tok.kind in (Tok.NOT, Tok.SUB):
            op = self.tok
            self.next()
            self._enter()
            operand = self.parse_unary()
            self.depth -= 1
            return Unary(op.kind.value, operand, self.pos(op))
        return self.parse_postfix(self.parse_primary())

    def parse_postfix(self, primary: Expr) -> Expr:
        """OperExpr = PrimaryExpr { "." identifier | "[" Expression "]" | "(" [ ExpressionList ] ")" }"""
        entered = self.depth
        while True:
            kind = self.tok.kind
            if kind in (Tok.LBRACK, Tok.LPAREN) or (kind is Tok.DOT and not isinstance(primary, Ref)):
                self._enter()  # a postfix wraps the expression built so far
            if kind is Tok.DOT:
                self.next()
                name = self.expect(Tok.IDENT).text
                if isinstance(primary, Ref):
                    primary = Ref(f"{primary.path}.{name}", primary.pos)
                else:
                    primary = Access(primary, name, primary.pos)
            elif kind is Tok.LBRACK:
                self.next()
                index = self.parse_expression()
                self.expect(Tok.RBRACK)
                primary = Index(primary, index, primary.pos)
            elif kind is Tok.LPAREN:
                paren = self.pos()
                self.next()
                args = self.parse_expression_list(Tok.RPAREN) if self.tok.kind is not Tok.RPAREN else []
                self.expect(Tok.RPAREN)
                if not isinstance(primary, Ref):
                    raise self.fail(f"cannot call {describe(primary)}; only named functions can be called", paren)
                primary = Call(primary.path, args, primary.pos)
            elif kind in (Tok.STRING, Tok.LCURLY):
                # Someone wrote a block where an expression goes (`a = foo "x" { }`).
                if kind is Tok.STRING:
                    self.next()
                self.expect(Tok.LCURLY)
                self.parse_body(Tok.RCURLY)
                self.expect(Tok.RCURLY)
                raise self.fail("cannot use a block as an expression", primary.pos)
            else:
                self.depth = entered
                return primary

    def parse_primary(self) -> Expr:
        """PrimaryExpr = identifier | literal | "(" Expression ")" | ArrayExpr | ObjectExpr"""
        tok = self.tok
        pos = self.pos()
        kind = tok.kind
        if kind is Tok.IDENT:
            self.next()
            return Ref(tok.text, pos)
        if kind is Tok.STRING:
            self.next()
            return Literal(unquote(tok.text), pos, "string", tok.text)
        if kind in (Tok.NUMBER, Tok.FLOAT):
            value = number_value(tok.text) if kind is Tok.NUMBER else float(tok.text)
            if value == float("inf"):
                raise self.fail(f"value out of range: {tok.text}", pos)
            self.next()
            return Literal(value, pos, "", tok.text)
        if kind is Tok.BOOL:
            self.next()
            return Literal(tok.text == "true", pos, "bool", tok.text)
        if kind is Tok.NULL:
            self.next()
            return Literal(None, pos, "null", tok.text)
        if kind is Tok.LPAREN:
            self.next()
            inner = self.parse_expression()
            self.expect(Tok.RPAREN)
            return inner
        if kind is Tok.LBRACK:
            self.next()
            items = self.parse_expression_list(Tok.RBRACK) if self.tok.kind is not Tok.RBRACK else []
            self.expect(Tok.RBRACK)
            return Array(items, pos)
        if kind is Tok.LCURLY:
            self.next()
            fields = self.parse_field_list(Tok.RCURLY)
            self.expect(Tok.RCURLY)
            return Object(fields, pos)
        raise self.fail(f"expected expression, got {kind}")

    def parse_expression_list(self, until: Tok) -> list[Expr]:
        """ExpressionList = Expression { "," Expression } [ "," ]"""
        exprs: list[Expr] = []
        while self.tok.kind is not until and self.tok.kind is not Tok.EOF:
            exprs.append(self.parse_expression())
            if self.tok.kind is until:
                break
            if self.tok.kind is not Tok.COMMA:
                raise self.fail("missing ',' in expression list")
            self.next()
        return exprs

    def parse_field_list(self, until: Tok) -> list[tuple[str, Expr]]:
        """FieldList = Field { "," Field } [ "," ]; Field = ( string | identifier ) "=" Expression"""
        fields: list[tuple[str, Expr]] = []
        while self.tok.kind is not until and self.tok.kind is not Tok.EOF:
            if self.tok.kind not in (Tok.STRING, Tok.IDENT):
                raise self.fail(f"expected field name (string or identifier), got {self.tok.kind}")
            raw = self.tok.text
            name = raw[1:-1] if self.tok.kind is Tok.STRING and len(raw) > 2 else raw
            self.next()
            self.expect(Tok.ASSIGN)
            fields.append((name, self.parse_expression()))
            if self.tok.kind is until:
                break
            if self.tok.kind is not Tok.COMMA:
                raise self.fail("missing ',' in field list")
            self.next()
        return fields


def parse_module(text: str, filename: str) -> Module:
    """Parse a whole file, keeping its comments."""
    parser = Parser(text, filename)
    body = parser.parse_file()
    return Module(body, parser.comments, filename)


def parse(text: str, filename: str) -> list[Stmt]:
    """Parse Alloy source; raises InputError(message, SourceRef(filename, line, col))."""
    return parse_module(text, filename).body


def decode_source(data: bytes, filename: str) -> str:
    """UTF-8 text of a config file; invalid UTF-8 is an error at its position, as upstream."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise InputError("illegal UTF-8 encoding", SourceRef(filename, line, col)) from None


def parse_file(path: Path, name: str | None = None) -> list[Stmt]:
    """Parse a file; `name` is the file name to report (defaults to the path as given)."""
    filename = name if name is not None else str(path)
    return parse(decode_source(Path(path).read_bytes(), filename), filename)


# --------------------------------------------------------------------------------------------
# Printer
# --------------------------------------------------------------------------------------------


def quote_string(value: str) -> str:
    """A double-quoted Alloy string literal that unquotes back to `value`."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif 0xDC80 <= code <= 0xDCFF:  # a raw byte kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == _BOM or not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _format_number(value: int | float, kind: str) -> str:
    if kind == "int":
        return str(value)
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        raise ValueError(f"cannot write {text} as an Alloy literal")
    return text


def _prec(expr: Expr) -> int:
    if isinstance(expr, Binary):
        return BINARY_PRECEDENCE[BINARY_OPS[expr.op]]
    if isinstance(expr, Unary):
        return 7
    return 8


def format_expr(expr: Expr, indent: str = "") -> str:
    """Alloy text for an expression, parenthesised only where precedence needs it."""
    if isinstance(expr, Literal):
        if expr.kind == "string":
            return quote_string(expr.value)
        if expr.kind in ("int", "float"):
            return _format_number(expr.value, expr.kind)
        if expr.kind == "bool":
            return "true" if expr.value else "false"
        return "null"
    if isinstance(expr, Ref):
        return expr.path
    if isinstance(expr, Array):
        if not expr.items:
            return "[]"
        inner = indent + "  "
        items = "".join(f"{inner}{format_expr(item, inner)},\n" for item in expr.items)
        return f"[\n{items}{indent}]"
    if isinstance(expr, Object):
        if not expr.fields:
            return "{}"
        inner = indent + "  "
        fields = "".join(f"{inner}{_format_key(k)} = {format_expr(v, inner)},\n" for k, v in expr.fields)
        return f"{{\n{fields}{indent}}}"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(format_expr(a, indent) for a in expr.args)})"
    if isinstance(expr, Index):
        return f"{_postfix_operand(expr.value, indent)}[{format_expr(expr.index, indent)}]"
    if isinstance(expr, Access):
        return f"{_postfix_operand(expr.value, indent, access=True)}.{expr.name}"
    if isinstance(expr, Unary):
        operand = format_expr(expr.value, indent)
        if isinstance(expr.value, Binary):
            operand = f"({operand})"
        return f"{expr.op}{operand}"
    if isinstance(expr, Binary):
        prec = BINARY_PRECEDENCE[BINARY_OPS[expr.op]]
        left, right = format_expr(expr.left, indent), format_expr(expr.right, indent)
        right_assoc = expr.op == "^"
        if _prec(expr.left) < prec or (right_assoc and _prec(expr.left) == prec):
            left = f"({left})"
        if _prec(expr.right) < prec or (not right_assoc and _prec(expr.right) == prec):
            right = f"({right})"
        return f"{left} {expr.op} {right}"
    raise TypeError(f"not an expression: {expr!r}")


def _postfix_operand(expr: Expr, indent: str, access: bool = False) -> str:
    text = format_expr(expr, indent)
    needs = isinstance(expr, (Binary, Unary))
    if access and isinstance(expr, Literal) and expr.kind in ("int", "float"):
        needs = True  # `1.x` would scan as the float `1.` followed by `x`
    return f"({text})" if needs else text


def _format_key(key: str) -> str:
    return key if is_valid_identifier(key) else f'"{key}"'


def format_body(body: list[Stmt], indent: str = "") -> str:
    """Alloy text for a list of statements (comments are not reproduced)."""
    lines: list[str] = []
    for stmt in body:
        if isinstance(stmt, Attribute):
            lines.append(f"{indent}{stmt.name} = {format_expr(stmt.value, indent)}\n")
        else:
            label = f' "{stmt.label}"' if stmt.label else ""
            inner = format_body(stmt.body, indent + "  ")
            lines.append(f"{indent}{stmt.name}{label} {{\n{inner}{indent}}}\n")
    return "".join(lines)
