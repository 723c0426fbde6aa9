"""Series in PromQL selector syntax: `metric{a="b", c='d'}` ⇄ a label dict.

Used by `fleet explain --series` and by relabel unit tests. The metric name is optional;
values are quoted with `"`, `'` or a backtick; `\\"`, `\\\\`, `\\n`, `\\t` escapes as in PromQL.
"""
from __future__ import annotations

from ..errors import InputError, SourceRef

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "`": "`", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}


def _name_char(c: str, first: bool, colon: bool) -> bool:
    return c == "_" or ("a" <= c.lower() <= "z") or (not first and c.isdigit() and c.isascii()) or (colon and c == ":")


class _Reader:
    def __init__(self, text: str, where: SourceRef):
        self.text, self.i, self.where = text, 0, where

    def fail(self, message: str) -> InputError:
        return InputError(f"{message} at column {self.i + 1} of series {self.text!r}", self.where,
                          expected='metric{label="value", ...}')

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def name(self, colon: bool) -> str:
        start = self.i
        while self.i < len(self.text) and _name_char(self.text[self.i], self.i == start, colon):
            self.i += 1
        return self.text[start:self.i]

    def string(self) -> str:
        quote = self.peek()
        if quote not in "\"'`" or not quote:
            raise self.fail("expected a quoted value")
        self.i += 1
        out = []
        while True:
            if self.i >= len(self.text):
                raise self.fail("unterminated string")
            c = self.text[self.i]
            self.i += 1
            if c == quote:
                return "".join(out)
            if c == "\\" and quote != "`":
                if self.i >= len(self.text):
                    raise self.fail("unterminated escape")
                e = self.text[self.i]
                self.i += 1
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                elif e in "xuU":
                    width = {"x": 2, "u": 4, "U": 8}[e]
                    digits = self.text[self.i:self.i + width]
                    try:
                        out.append(chr(int(digits, 16)))
                    except ValueError:
                        raise self.fail(f"bad escape \\{e}{digits}") from None
                    self.i += width
                else:
                    raise self.fail(f"unknown escape \\{e}")
            else:
                out.append(c)


def parse_series(text: str, where: SourceRef | None = None) -> dict[str, str]:
    """`up{job="x"}` → {"__name__": "up", "job": "x"}; empty values are dropped (= absent)."""
    r = _Reader(text, where or SourceRef("<series>"))
    r.skip()
    labels: dict[str, str] = {}
    metric = r.name(colon=True)
    if metric:
        labels["__name__"] = metric
    r.skip()
    if r.peek() == "{":
        r.i += 1
        while True:
            r.skip()
            if r.peek() == "}":
                r.i += 1
                break
            name = r.name(colon=False) if r.peek() not in "\"'" else r.string()
            if not name:
                raise r.fail("expected a label name")
            r.skip()
            if r.peek() != "=":
                raise r.fail("expected '='")
            r.i += 1
            r.skip()
            value = r.string()
            if name in labels:
                raise r.fail(f"label {name!r} given twice")
            labels[name] = value
            r.skip()
            if r.peek() == ",":
                r.i += 1
                continue
            if r.peek() == "}":
                r.i += 1
                break
            raise r.fail("expected ',' or '}'")
    r.skip()
    if r.i != len(r.text):
        raise r.fail("unexpected text")
    if not labels:
        raise r.fail("empty series")
    return {k: v for k, v in labels.items() if v != ""}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_series(labels: dict[str, str] | None) -> str:
    """The inverse of `parse_series` (sorted labels); None → "<dropped>"."""
    if labels is None:
        return "<dropped>"
    name = labels.get("__name__", "")
    simple = name and all(_name_char(c, i == 0, True) for i, c in enumerate(name))
    rest = {k: v for k, v in sorted(labels.items()) if not (simple and k == "__name__")}
    body = ", ".join(f"{k}={_quote(v)}" for k, v in rest.items())
    return f"{name if simple else ''}{{{body}}}"
