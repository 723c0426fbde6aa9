"""promtool's unit-test input notation, read for another engine, and the remote-write body that
carries it into VictoriaMetrics.

Why a reader of our own: the rule unit tests are promtool files (`input_series` with series
descriptors and expanding value notation, `exp_samples` labels). To run the same test on the
real VictoriaMetrics the fleet deploys, the samples must be written there exactly as promtool
sees them, staleness markers included. JSON import cannot carry a staleness marker (a NaN with a
special bit pattern), so samples go through Prometheus remote write: a protobuf WriteRequest in a
snappy frame, both small enough to write here from their wire formats.

Notation (Prometheus' unit-testing docs): `a+bxn` is a, a+b, ..., a+n*b (n+1 values); `a-bxn`
likewise downwards; `axn` is `a+0xn`; `_` is a missing sample and `_xn` n missing samples;
`stale` is a staleness marker. Native histograms (`{{...}}`) are refused.
"""
from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass

STALE_NAN_BITS = 0x7FF0000000000002  # Prometheus' staleness marker (value.StaleNaN)
_NUMBER = r"[-+]?(?:Inf|inf|NaN|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|0x[0-9a-fA-F]+)"
_EXPANDING = re.compile(rf"^(?P<a>{_NUMBER})(?:(?P<op>[-+])(?P<b>{_NUMBER}))?x(?P<n>\d+)$")
_SINGLE = re.compile(rf"^{_NUMBER}$")
_MISSING_RUN = re.compile(r"^_x(?P<n>\d+)$")
_NAME = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*")
_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,)?')


class NotationError(ValueError):
    """A series or value the reader does not accept (with what was expected)."""


class Stale:
    """The staleness marker of one sample."""

    def __repr__(self) -> str:
        return "stale"


STALE = Stale()
Value = float | Stale | None  # None: no sample at this step


def _number(text: str) -> float:
    lowered = text.lower().lstrip("+-")
    if lowered == "inf":
        return -math.inf if text.startswith("-") else math.inf
    if lowered == "nan":
        return math.nan
    if lowered.startswith("0x"):
        return float(int(text, 16))
    return float(text)


MAX_SAMPLES = 100_000  # per series: a test spans hours, not years (and a typo must not eat the memory)


def expand(values: str) -> list[Value]:
    """One value per step, as promtool expands the notation."""
    out: list[Value] = []
    for item in str(values).split():
        run = re.search(r"x(\d+)$", item)
        if run and len(out) + int(run[1]) > MAX_SAMPLES:
            raise NotationError(f"value {item[:40]!r}: more than {MAX_SAMPLES} samples in one series")
        if item == "_":
            out.append(None)
        elif item == "stale":
            out.append(STALE)
        elif m := _MISSING_RUN.match(item):
            out += [None] * int(m["n"])
        elif m := _EXPANDING.match(item):
            start, step = _number(m["a"]), _number(m["b"]) if m["b"] else 0.0
            step = -step if m["op"] == "-" else step
            out += [start + i * step for i in range(int(m["n"]) + 1)]
        elif _SINGLE.match(item):
            out.append(_number(item))
        else:
            raise NotationError(f"value {item[:40]!r} is not a number, _, stale, a+bxn or _xn"
                                + (" (native histograms are not replayed)" if "{" in item else ""))
    return out


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m[1], m[1]), text)


def labels(descriptor: str) -> dict[str, str]:
    """`name{a="b", ...}` or `{__name__="name", ...}` as a label mapping."""
    text = " ".join(str(descriptor).split())
    m = _NAME.match(text)
    name, rest = (m[1] or ""), text[m.end():]
    out = {"__name__": name} if name else {}
    if rest:
        if not (rest.startswith("{") and rest.rstrip().endswith("}")):
            raise NotationError(f"series {text[:60]!r}: expected name{{label=\"value\", ...}}")
        body, pos = rest.rstrip()[1:-1], 0
        while pos < len(body.rstrip()):
            pair = _PAIR.match(body, pos)
            if not pair or pair.start() != pos:
                raise NotationError(f"series {text[:60]!r}: cannot read the labels at {body[pos:pos + 20]!r}")
            out[pair[1]] = _unescape(pair[2])
            pos = pair.end()
    if not out.get("__name__"):
        raise NotationError(f"series {text[:60]!r} has no metric name")
    return out


@dataclass
class Series:
    labels: dict[str, str]
    samples: list[tuple[int, float | Stale]]  # (timestamp ms, value)


def series_samples(descriptor: str, values: str, start_ms: int, interval_ms: int) -> Series:
    """A test's input series as timestamped samples: step i at start + i * interval."""
    samples = [(start_ms + i * interval_ms, v) for i, v in enumerate(expand(values)) if v is not None]
    return Series(labels(descriptor), samples)


# --- Prometheus remote write: prompb.WriteRequest, snappy block (literals only) ----------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _sample(value: float | Stale, ts_ms: int) -> bytes:
    bits = STALE_NAN_BITS if isinstance(value, Stale) else struct.unpack("<Q", struct.pack("<d", value))[0]
    return _varint(1 << 3 | 1) + struct.pack("<Q", bits) + _varint(2 << 3) + _varint(ts_ms & (2**64 - 1))


def write_request(series: list[Series]) -> bytes:
    """prompb.WriteRequest{timeseries: [{labels, samples}]} (labels sorted by name, as required)."""
    body = bytearray()
    for s in series:
        ts = b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in sorted(s.labels.items()))
        ts += b"".join(_field(2, _sample(v, t)) for t, v in s.samples)
        body += _field(1, ts)
    return bytes(body)


def snappy_literal(data: bytes) -> bytes:
    """A valid snappy block that stores `data` uncompressed (literal elements of up to 64 KiB)."""
    out = bytearray(_varint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        else:
            size = (n.bit_length() + 7) // 8
            out.append((59 + size) << 2)
            out += n.to_bytes(size, "little")
        out += chunk
    return bytes(out)
