"""Errors and findings shared by every stage.

Bad input is an `InputError` carrying the file and position; the CLI edge turns it into
exit code 2. Findings are what checks report; they too carry a source position so that a
reviewer (or a SARIF viewer) lands on the line to change, not on generated output.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator


@dataclass(frozen=True, order=True)
class SourceRef:
    """A place in a repository file: path relative to the repo root (or as given), 1-based line/col."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line and self.col:
            return f"{self.file}:{self.line}:{self.col}"
        if self.line:
            return f"{self.file}:{self.line}"
        return self.file


#: Longest quoted input value a message shows, and longest message: bad input may be huge.
CLIP_VALUE, CLIP_MESSAGE = 80, 1000


def clip(value: object, limit: int = CLIP_VALUE) -> str:
    """`repr(value)` cut to `limit` characters, saying how much was left out: an error names the
    value, it does not echo a 50 MB one back."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def _bounded(text: str, limit: int = CLIP_MESSAGE) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


class InputError(Exception):
    """Invalid input: a message, where it is, and (optionally) what was expected.

    Message and expectation are bounded (CLIP_MESSAGE) whatever a caller put in them."""

    def __init__(self, message: str, source: SourceRef | None = None, *, path: str = "", expected: str = ""):
        self.message = _bounded(message)
        self.source = source
        self.path = _bounded(path, CLIP_VALUE * 2)  # JSON path inside the document, e.g. "$.components.vmagent.values"
        self.expected = _bounded(expected)
        super().__init__(self.render())

    def __reduce__(self):
        """Survive pickling (the parallel render's worker processes) with every field intact."""
        return (_rebuild_input_error, (self.message, self.source, self.path, self.expected))

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        text = f"{where}error: {self.message}"
        if self.path:
            text += f" (at {self.path})"
        if self.expected:
            text += f"; expected {self.expected}"
        return text


def _rebuild_input_error(message: str, source: SourceRef | None, path: str, expected: str) -> InputError:
    return InputError(message, source, path=path, expected=expected)


class InputErrors(InputError):
    """Several input errors found in one pass, reported together."""

    def __init__(self, errors: list[InputError]):
        unique = {(e.source, e.message, e.path, e.expected): e for e in errors}  # a base file's error, once
        self.errors = sorted(unique.values(), key=lambda e: (e.source or SourceRef(""), e.message))
        Exception.__init__(self, self.render())
        self.message = "\n".join(e.render() for e in self.errors)
        self.source = None
        self.path = ""
        self.expected = ""

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


@contextmanager
def processing(what: str) -> Iterator[None]:
    """Name the input being worked on. An unexpected exception (a bug: exit 3) leaving the block
    carries the innermost name, so its one-line report says which input to attach to the bug."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        if not getattr(exc, "fleet_input", None):
            try:
                exc.fleet_input = what  # type: ignore[attr-defined]
            except AttributeError:  # an exception type without attributes: report without
                pass
        raise


def input_of(exc: BaseException) -> str:
    """The input an unexpected exception was raised while processing (see `processing`)."""
    return getattr(exc, "fleet_input", "") or ""


class Severity(str, Enum):
    """A small closed set, as in pint: the CLI decides which ones fail a run."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    """One problem a check found, at a source position."""

    check: str
    severity: Severity
    source: SourceRef
    message: str
    hint: str = ""
    details: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        """Bounded like InputError: a finding quoting hostile input stays readable."""
        object.__setattr__(self, "message", _bounded(self.message, 2 * CLIP_MESSAGE))
        object.__setattr__(self, "hint", _bounded(self.hint))

    def sort_key(self) -> tuple:
        return (self.source.file, self.source.line, self.source.col, self.check, self.message)
