"""A minimal Prometheus remote-write receiver for tests: what an agent really puts on the wire.

VictoriaMetrics (the store the other harnesses read) keeps series only; exemplars and metadata
would be dropped there. This receiver keeps every request, decompressed (snappy block format)
and decoded (prompb.WriteRequest: timeseries with labels, samples, exemplars; metadata), with a
reader written from the protobuf wire format, so no extra dependency is needed.
"""
from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


def snappy_block(data: bytes) -> bytes:
    """Decompress one snappy block (the remote-write body)."""
    size, i = _varint(data, 0)
    out = bytearray()
    while i < len(data):
        tag = data[i]
        i += 1
        kind = tag & 3
        if kind == 0:
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[i:i + extra], "little")
                i += extra
            length += 1
            out += data[i:i + length]
            i += length
            continue
        if kind == 1:
            length, offset = ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | data[i]
            i += 1
        elif kind == 2:
            length, offset = (tag >> 2) + 1, int.from_bytes(data[i:i + 2], "little")
            i += 2
        else:
            length, offset = (tag >> 2) + 1, int.from_bytes(data[i:i + 4], "little")
            i += 4
        for _ in range(length):
            out.append(out[-offset])
    assert len(out) == size, (len(out), size)
    return bytes(out)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            yield number, wire, value
        elif wire == 1:
            yield number, wire, data[i:i + 8]
            i += 8
        elif wire == 2:
            length, i = _varint(data, i)
            yield number, wire, data[i:i + length]
            i += length
        elif wire == 5:
            yield number, wire, data[i:i + 4]
            i += 4
        else:
            raise ValueError(f"wire type {wire}")


def _labels(messages: list[bytes]) -> dict[str, str]:
    out = {}
    for m in messages:
        parts = {n: v for n, _, v in _fields(m)}
        out[bytes(parts.get(1, b"")).decode()] = bytes(parts.get(2, b"")).decode()
    return out


@dataclass
class Received:
    """Everything received: per series its labels and the labels of each exemplar; metadata."""

    series: list[dict[str, str]] = field(default_factory=list)
    exemplars: list[tuple[dict[str, str], dict[str, str]]] = field(default_factory=list)  # (series, exemplar)
    metadata: list[dict[str, object]] = field(default_factory=list)


def decode(body: bytes, into: Received) -> None:
    """One WriteRequest (snappy-compressed protobuf) into `into`."""
    for number, _, value in _fields(snappy_block(body)):
        if number == 1:  # TimeSeries
            labels, exemplars = [], []
            for n, _, v in _fields(value):  # type: ignore[arg-type]
                if n == 1:
                    labels.append(v)
                elif n == 3:
                    exemplars.append(_labels([lv for en, _, lv in _fields(v) if en == 1]))  # type: ignore[arg-type]
            series = _labels(labels)
            into.series.append(series)
            into.exemplars.extend((series, e) for e in exemplars)
        elif number == 3:  # MetricMetadata: type, metric_family_name, help, unit
            meta = {n: (v.decode() if isinstance(v, bytes) else v) for n, _, v in _fields(value)}  # type: ignore[arg-type]
            into.metadata.append({"family": meta.get(2), "help": meta.get(4)})


@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, Received]]:
    """(write URL, what it received so far), served from a daemon thread."""
    got = Received()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                decode(body, got)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/write", got
    finally:
        server.shutdown()
        server.server_close()
