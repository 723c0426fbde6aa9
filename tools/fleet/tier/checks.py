"""Checks of one region's rendered tier with the real tools: each returns Problems (file, line, text).

* cloud-init: Debian's `cloud-init schema` accepts each #cloud-config; user data fits
  DigitalOcean's 64 KiB.
* Terraform: python-hcl2 parses every .tf; every variable used is declared, secrets have no
  default, and each templatefile() passes exactly the `${…}` names its cloud-init file uses;
  the pinned OpenTofu's `tofu fmt` parses every .tf and would change nothing.
* Vector: every field a ClickHouse sink writes (the keys of its remap's row literal) is a column
  of the target table; acknowledgements on, a disk buffer of at least Vector's minimum.
* mutual TLS across files: every cluster of the region forwards to the aggregator's host and
  port with a client certificate and verification on, and the fluent source demands one.
* ClickHouse: the table DDL runs in chdb (real ClickHouse); the access DDL parses (EXPLAIN AST).
* VRL: every remap program and route condition compiles with the real VRL compiler
  (tools/vrl-check), when that binary is built.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import upstream, yamlio
from .clickhouse import TABLES

USER_DATA_LIMIT = 64 * 1024
_ROW_KEY = re.compile(r'^\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*:', re.M)
VRL_CHECK = Path(".cache/vrl-check-target/release/vrl-check")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    severity: str = "error"


def line_of(text: str, needle: str) -> int:
    """1-based line of the first occurrence of `needle` (0 when absent)."""
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else 0


# --- cloud-init ------------------------------------------------------------------------------------

def cloud_init_problems(path: Path, name: str) -> list[Problem]:
    text = path.read_text(encoding="utf-8")
    out = []
    if not text.startswith("#cloud-config\n"):
        out.append(Problem(name, 1, "user data does not start with #cloud-config"))
    if len(text.encode()) > USER_DATA_LIMIT:
        out.append(Problem(name, 1, f"user data is {len(text.encode())} bytes; DigitalOcean accepts {USER_DATA_LIMIT}"))
    proc = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        message = " ".join((proc.stdout + proc.stderr).split())
        found = re.search(r"line (\d+)", message)
        out.append(Problem(name, int(found.group(1)) if found else 1, f"cloud-init schema: {message}"))
    return out


# --- Terraform -------------------------------------------------------------------------------------

def parse_hcl(text: str) -> dict:
    import hcl2
    return hcl2.loads(text)


def _strip(value: Any) -> Any:
    """python-hcl2 keeps string quotes and wraps expressions as ${…}: plain text for comparisons."""
    if isinstance(value, str):
        if value.startswith('"') and value.endswith('"'):
            return value[1:-1]
        if value.startswith("${") and value.endswith("}"):
            return value[2:-1]
    return value


def terraform_problems(folder: Path, rel: str) -> list[Problem]:
    """Parse every .tf; cross-check variables and each templatefile() against its cloud-init file."""
    out: list[Problem] = []
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.tf"))}
    parsed = {}
    for name, text in texts.items():
        try:
            parsed[name] = parse_hcl(text)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the finding
            found = re.search(r"line (\d+)", str(exc))
            out.append(Problem(f"{rel}/{name}", int(found.group(1)) if found else 1, f"HCL does not parse: {exc}"))
    if out:
        return out
    declared = {}
    for name, doc in parsed.items():
        for block in doc.get("variable", []):
            for var, body in block.items():
                declared[_strip(var)] = (name, body)
    for var, (name, body) in sorted(declared.items()):
        if body.get("sensitive") is True and "default" in body:
            out.append(Problem(f"{rel}/{name}", line_of(texts[name], f'variable "{var}"'),
                               f"secret variable {var} has a default: a secret value would be in git"))
    all_text = "\n".join(texts.values())
    for var in sorted(set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", all_text)) - set(declared)):
        name = next(n for n, t in texts.items() if f"var.{var}" in t)
        out.append(Problem(f"{rel}/{name}", line_of(texts[name], f"var.{var}"), f"variable {var} is used but not declared"))
    out += _templatefile_problems(folder, rel, texts)
    return out


def tofu_fmt_problems(tofu: str, folder: Path, rel: str) -> list[Problem]:
    """`tofu fmt` (the pinned OpenTofu) over every .tf: OpenTofu's own HCL parser must accept it
    (an error at the line it names), and its layout must be what `tofu fmt` writes (a warning at
    the first line it would change), so an operator's `tofu fmt` never rewrites rendered files."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CLI_CONFIG_FILE"}  # its warning goes to stdout
    out: list[Problem] = []
    for path in sorted(folder.glob("*.tf")):
        text = path.read_text(encoding="utf-8")
        proc = subprocess.run([tofu, "fmt", "-no-color", "-"], input=text, capture_output=True, text=True,
                              env=env, timeout=60)
        name = f"{rel}/{path.name}"
        if proc.returncode != 0:
            report = (proc.stderr + proc.stdout).strip()
            where = re.search(r"on <stdin> line (\d+)", report)
            error = next((ln.strip() for ln in report.splitlines() if ln.startswith("Error:")), report[-300:])
            out.append(Problem(name, int(where.group(1)) if where else 1, f"OpenTofu does not parse it: {error}"))
        elif proc.stdout != text:
            ours, canonical = text.splitlines(), proc.stdout.splitlines()
            line = next((i for i, (a, b) in enumerate(zip(ours, canonical)) if a != b), min(len(ours), len(canonical)))
            want = canonical[line] if line < len(canonical) else "(end of file)"
            out.append(Problem(name, line + 1, f"not in `tofu fmt` layout: it would write {want.strip()!r} here",
                               "warning"))
    return out


_TEMPLATEFILE = re.compile(r'templatefile\("\$\{path\.module\}/([^"]+)",\s*\{(.*?)\n\s*\}\)', re.S)


def _templatefile_problems(folder: Path, rel: str, texts: dict[str, str]) -> list[Problem]:
    out = []
    for name, text in texts.items():
        for m in _TEMPLATEFILE.finditer(text):
            target = (folder / m.group(1)).resolve()
            line = text.count("\n", 0, m.start()) + 1
            passed = set(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", m.group(2), re.M))
            if not target.is_file():
                out.append(Problem(f"{rel}/{name}", line, f"templatefile() reads {m.group(1)}, which is not rendered"))
                continue
            template = target.read_text(encoding="utf-8")
            used = template_names(template)
            for d in re.finditer(r"(%+)\{", template):
                if len(d.group(1)) % 2:
                    out.append(Problem(f"{rel}/{name}", line, f"{m.group(1)} line {template.count(chr(10), 0, d.start()) + 1} "
                                       "has a templatefile() directive (%{…}); escape it as %%{"))
            for var in sorted(used - passed):
                out.append(Problem(f"{rel}/{name}", line, f"{m.group(1)} uses ${{{var}}}, which templatefile() does not pass"))
            for var in sorted(passed - used):
                out.append(Problem(f"{rel}/{name}", line, f"templatefile() passes {var}, which {m.group(1)} never uses"))
    return out


def template_names(text: str) -> set[str]:
    """The variables a templatefile() template interpolates (`$${…}` is an escaped literal)."""
    names = set()
    for m in re.finditer(r"(\$+)\{([^}]*)\}", text):
        if len(m.group(1)) % 2 == 0:
            continue  # $${ → a literal ${
        inner = m.group(2).strip()
        call = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\(\s*\d+\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", inner)
        names.add(call.group(1) if call else inner)
    return names


# --- Vector ----------------------------------------------------------------------------------------

def row_keys(vrl: str) -> list[str]:
    """The keys of the row object a remap program assigns last (`. = { "col": … }`)."""
    at = vrl.rfind(". = {")
    return _ROW_KEY.findall(vrl[at:]) if at >= 0 else []


def vector_problems(config: dict, text: str, name: str) -> list[Problem]:
    tables = {t.name: t for t in TABLES}
    transforms = config.get("transforms") or {}
    out = []
    for sink_name, sink in sorted((config.get("sinks") or {}).items()):
        if sink.get("type") != "clickhouse":
            continue
        line = line_of(text, f"  {sink_name}:")
        table = tables.get(sink.get("table"))
        if table is None:
            out.append(Problem(name, line, f"sink {sink_name} writes table {sink.get('table')!r}, which the DDL does not define"))
            continue
        if not (sink.get("acknowledgements") or {}).get("enabled"):
            out.append(Problem(name, line, f"sink {sink_name}: acknowledgements are off, so Fluent Bit's chunks are acked before ClickHouse has them"))
        buffer = sink.get("buffer") or {}
        if buffer.get("type") != "disk" or int(buffer.get("max_size") or 0) < 268435488:
            out.append(Problem(name, line, f"sink {sink_name}: needs a disk buffer of at least 268435488 bytes"))
        for source in sink.get("inputs") or []:
            remap = transforms.get(source)
            if not remap or remap.get("type") != "remap":
                out.append(Problem(name, line, f"sink {sink_name} reads {source!r}, not a remap that shapes its rows"))
                continue
            keys = row_keys(remap.get("source", ""))
            if not keys:
                out.append(Problem(name, line_of(text, f"  {source}:"), f"remap {source} assigns no row object literal (`. = {{…}}`)"))
            for key in keys:
                if table.column(key) is None:
                    out.append(Problem(name, line_of(text, f'"{key}":'),
                                       f"remap {source} writes field {key!r}, which table {table.name} has no column for"))
    return out


def fluent_source(config: dict) -> tuple[str, dict] | None:
    for source_name, source in (config.get("sources") or {}).items():
        if source.get("type") == "fluent":
            return source_name, source
    return None


def _tls_switch_line(text: str, source_line: int, tls: dict) -> int:
    """The line of the source's first tls switch written but not true (`verify_certificate:
    false`), the one to fix; the source's own line when the switches are missing."""
    wrong = [key for key in ("enabled", "verify_certificate") if key in tls and tls[key] is not True]
    if not wrong or not source_line:
        return source_line
    lines = text.splitlines()
    indent = len(lines[source_line - 1]) - len(lines[source_line - 1].lstrip())
    for number in range(source_line + 1, len(lines) + 1):
        line = lines[number - 1]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break  # past the source's block
        if line.strip().startswith(f"{wrong[0]}:"):
            return number
    return source_line


def mtls_problems(config: dict, text: str, name: str) -> list[Problem]:
    """The aggregator demands a client certificate signed by the log CA."""
    found = fluent_source(config)
    if found is None:
        return [Problem(name, 1, "no fluent source: clusters' Fluent Bit has nothing to forward to")]
    source_name, source = found
    tls = source.get("tls") or {}
    line = line_of(text, f"  {source_name}:")
    out = []
    for key in ("ca_file", "crt_file", "key_file"):
        if not tls.get(key):
            out.append(Problem(name, line, f"fluent source {source_name}: tls.{key} is not set"))
    if tls.get("enabled") is not True or tls.get("verify_certificate") is not True:
        out.append(Problem(name, _tls_switch_line(text, line, tls), f"fluent source {source_name}: mutual TLS needs tls.enabled and "
                                       "tls.verify_certificate true (a server's default is false)"))
    return out


_FB_KEY = re.compile(r"^\s*([A-Za-z_.]+)\s+(.*?)\s*$")


def fluent_bit_forward(outputs: str) -> dict[str, str]:
    """Keys of the forward [OUTPUT] of a Fluent Bit config (lower-cased)."""
    keys: dict[str, str] = {}
    section = None
    for raw in outputs.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.upper()
            continue
        m = _FB_KEY.match(line)
        if section == "[OUTPUT]" and m:
            keys[m.group(1).lower()] = m.group(2)
    return keys if keys.get("name", "").lower() == "forward" else {}


def cluster_forward_problems(outputs: str, host: str, port: int, listen_port: int) -> list[str]:
    """What is wrong with one cluster's Fluent Bit forward output, as messages."""
    fb = fluent_bit_forward(outputs)
    if not fb:
        return ["its Fluent Bit has no forward output"]
    out = []
    if fb.get("host", "").rstrip(".").lower() != host or fb.get("port") != str(port) or port != listen_port:
        out.append(f"its Fluent Bit forwards to {fb.get('host')}:{fb.get('port')}, not the aggregator "
                   f"{host}:{listen_port}")
    if fb.get("tls", "").lower() != "on" or fb.get("tls.verify", "on").lower() != "on":
        out.append("its Fluent Bit forward output does not use verified TLS (tls On, tls.verify On)")
    if fb.get("require_ack_response", "off").lower() not in ("on", "true"):
        out.append("its Fluent Bit forward output does not wait for acks (Require_ack_response On): "
                   "a chunk counts as sent before the aggregator has stored it")
    for key in ("tls.crt_file", "tls.key_file", "tls.ca_file"):
        if not fb.get(key):
            out.append(f"its Fluent Bit presents no client certificate ({key} unset): the aggregator refuses it")
    return out


# --- ClickHouse --------------------------------------------------------------------------------------

def split_sql(text: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [s.strip() for s in body.split(";\n") if s.strip().rstrip(";")]


def clickhouse_problems(schema: str, access: str, schema_name: str, access_name: str) -> list[Problem]:
    """Run the table DDL in chdb; parse the access DDL (chdb cannot execute access control)."""
    from chdb import session
    out = []
    with tempfile.TemporaryDirectory(prefix="fleet-chdb-") as tmp:
        s = session.Session(tmp)
        try:
            for stmt in split_sql(schema):
                try:
                    s.query(stmt)
                except Exception as exc:  # noqa: BLE001 - ClickHouse's own error is the finding
                    out.append(Problem(schema_name, line_of(schema, stmt.splitlines()[0]), f"ClickHouse: {exc}"))
            for stmt in split_sql(access):
                try:
                    s.query("EXPLAIN AST " + stmt.rstrip(";"))
                except Exception as exc:  # noqa: BLE001
                    out.append(Problem(access_name, line_of(access, stmt.splitlines()[0]), f"ClickHouse parser: {exc}"))
        finally:
            s.close()
    return out


# --- VRL ---------------------------------------------------------------------------------------------

def vrl_binary(root: Path) -> Path | None:
    """The built VRL compiler: FLEET_VRL_CHECK, else the one `make vrl-check` built in the fleet
    at `root` or in the checkout this toolchain runs from (like the upstream binaries: a fleet
    copy under test has no build of its own), else one on PATH."""
    for path in (os.environ.get("FLEET_VRL_CHECK"), root / VRL_CHECK, upstream.REPO / VRL_CHECK):
        if path and Path(path).is_file():
            return Path(path)
    found = shutil.which("vrl-check")
    return Path(found) if found else None


def vrl_programs(config: dict) -> list[tuple[str, str]]:
    """(component.key, VRL source) of every remap program and route condition."""
    out = []
    for name, t in sorted((config.get("transforms") or {}).items()):
        if t.get("type") == "remap":
            out.append((f"{name}", t.get("source", "")))
        if t.get("type") == "route":
            for route, condition in sorted((t.get("route") or {}).items()):
                out.append((f"{name}.{route}", condition))
    return out


def vrl_compile(binary: Path, program: str) -> str | None:
    """None when VRL compiles `program`, else the compiler's diagnostics."""
    with tempfile.NamedTemporaryFile("w", suffix=".vrl", delete=False) as f:
        f.write(program)
    try:
        proc = subprocess.run([str(binary), f.name], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)
    return None if proc.returncode == 0 else (proc.stderr or proc.stdout).replace(f.name, "<program>").strip()


def vrl_run(binary: Path, program: str, event: dict) -> dict:
    """The event `program` turns `event` into (the real VRL runtime)."""
    import json
    with tempfile.TemporaryDirectory(prefix="fleet-vrl-") as tmp:
        prog, ev = Path(tmp) / "p.vrl", Path(tmp) / "e.json"
        prog.write_text(program)
        ev.write_text(json.dumps(event))
        proc = subprocess.run([str(binary), str(prog), str(ev)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr or proc.stdout)
    return json.loads(proc.stdout)


def load_yaml(text: str, name: str) -> Any:
    """A rendered YAML file, through the one loader (its limits on aliases, depth and tags)."""
    return yamlio.load_text(text, name)
