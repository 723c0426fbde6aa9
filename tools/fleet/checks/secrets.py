"""No secret value in inputs or rendered output: Secrets are referenced by name only.

Four kinds of finding:
- a URL carrying a credential (`https://user:token@host`, `https://token@host`, `?access_token=…`)
  anywhere in an input file (a Helm value, a text config in one) or in a rendered config.alloy,
  at the line that wrote it (see fleet.urls; the input schemas refuse such URLs where they type one);
- a rendered `kind: Secret` object (Secrets are created out of band, never rendered);
- an environment variable with a literal `value:` whose name looks secret (PASSWORD, TOKEN, …),
  in rendered objects and in Helm values (e.g. alloy.extraEnv);
- a Helm values key whose name looks secret (`*password*`, `*token*`, `*secret*`, `apiKey`,
  vmagent `extraArgs` flags such as `remoteWrite.basicAuth.password`) holding a literal non-empty
  string, and the same in text configs held in values (Fluent Bit `Key value`, `key = "…"`).
Names that are references are exempt: `*SecretName`, `secretRef`, `existingSecret`, `*File`,
`*_file`, `secretKeyRef`, … Values findings point at the layer (base/overlay/region/cluster
file and line) that set the value; rendered-object findings at the rendered line, or at
Shuttle's base manifests for objects rendered from them.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Iterable, Iterator

from .. import urls, yamlio
from ..errors import Finding, Severity, SourceRef
from ..normalize import normalize
from ..k8s.objects import RenderedObject, rendered_objects
from ..render import alloy as alloy_render
from ..render.shuttle import MANIFESTS
from ..render.wiring import WIRING
from . import CheckContext

NAME = "secrets"
DESCRIPTION = "No secret value rendered or in inputs: no Secret objects, no literal secret env vars or values keys"
ORDER = 46
SCOPE = "cluster"

# A name "looks secret" when one of its words is one of these (camelCase, snake_case, dotted,
# kebab-case and UPPER_CASE names are split into words first).
SECRET_WORDS = {"password", "passwd", "pass", "pwd", "token", "secret", "apikey", "credential", "credentials",
                "privatekey", "accesskey", "secretkey", "bearertoken", "auth", "authorization", "cookie",
                "passphrase", "clientsecret"}
_COMPOUND = ("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("client", "secret")
# ...unless its last word says the value is a reference to a secret kept elsewhere, or a setting
# about one (Fluent Bit's Kube_Token_TTL, a token URL), not the secret itself.
REFERENCE_SUFFIXES = {"name", "ref", "file", "path", "dir", "keyref", "secretname", "secretref", "mountpath",
                      "env", "ttl", "command", "cmd", "url", "uri", "endpoint", "type", "mode", "enabled",
                      "length", "size", "interval", "timeout", "expiry", "expiration", "audience", "issuer"}
REFERENCE_PREFIXES = {"existing", "use", "enable", "automount", "mount"}
# Words that look secret only in a phrase: `auth` alone (basicAuth.username) names no secret value.
_WEAK = {"auth", "pass"}


_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def words(name: str) -> list[str]:
    """`remoteWrite.basicAuth.password` → [remote, write, basic, auth, password]."""
    spaced = _CAMEL.sub(r"\1 \2", _ACRONYM.sub(r"\1 \2", str(name)))
    return [w.lower() for w in _SEPARATORS.split(spaced) if w]


@lru_cache(maxsize=65536)
def looks_secret(name: str) -> bool:
    """Does this key/variable name hold a secret value (and not a reference to one)?"""
    parts = words(name)
    if not parts:
        return False
    # The last segment of a dotted flag decides (`remoteWrite.tlsKeyFile` is a path).
    last = words(str(name).split(".")[-1]) or parts
    if (last[-1] in REFERENCE_SUFFIXES and len(last) > 1) or last[0] in REFERENCE_PREFIXES:
        return False
    joined = set(parts) | {a + b for a, b in zip(parts, parts[1:])}
    strong = (joined & SECRET_WORDS) - _WEAK
    if strong:
        return True
    return any(tuple(parts[i:i + 2]) in _COMPOUND for i in range(len(parts) - 1))


def _literal(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


# Text configs: Fluent Bit classic (`    Key value`), YAML-ish (`key: value`) and Alloy/HCL
# (`key = "value"`; anything but a string literal there is an expression such as sys.env("X")).
_ASSIGN_LINE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(=|:(?=\s|$))\s*(.*?)\s*$")
_FLUENT_LINE = re.compile(r"^\s*([A-Za-z][\w.\-]*)\s+(\S.*?)\s*$")
_HCL_STRING = re.compile(r'^"(?:[^"\\]|\\.)+"')


def _text_literal(op: str, value: str) -> bool:
    value = value.strip()
    if not value or value.startswith(("$", "{", "#", "//")):
        return False   # empty, an environment reference (${X}, $${X}), a nested block, a comment
    if op == "=":
        return bool(_HCL_STRING.match(value))
    return value not in ('""', "''")


def text_secrets(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line, key) of literal secret-looking settings in a text config."""
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("#", "//", "[")):
            continue
        m = _ASSIGN_LINE.match(line)
        if m:
            key, op, value = m.groups()
        elif (f := _FLUENT_LINE.match(line)):
            (key, value), op = f.groups(), " "
        else:
            continue
        if looks_secret(key) and _text_literal(op, value):
            yield n, key


def value_secrets(values: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(path, what) of every literal secret in a Helm values tree."""
    if isinstance(values, dict):
        name = values.get("name")
        if isinstance(name, str) and "value" in values and looks_secret(name) and _literal(values["value"]):
            yield path + ("value",), f"environment variable {name} has a literal value"
        for key, value in values.items():
            sub = path + (key,)
            if isinstance(value, (dict, list)):
                yield from value_secrets(value, sub)
            elif key not in ("name", "value") and looks_secret(str(key)) and _literal(value):
                yield sub, f"key {key!r} holds a literal secret"
            elif isinstance(value, str) and "\n" in value:
                for line, key_in_text in text_secrets(value):
                    yield sub, f"line {line} of this text config sets {key_in_text!r} to a literal"
    elif isinstance(values, list):
        for i, item in enumerate(values):
            yield from value_secrets(item, path + (i,))


def _env_secrets(obj: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(path, name) of env entries with a literal value and a secret-looking name, in any object."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "env" and isinstance(value, list):
                for i, env in enumerate(value):
                    if (isinstance(env, dict) and isinstance(env.get("name"), str) and looks_secret(env["name"])
                            and _literal(env.get("value"))):
                        yield path + (key, i, "value"), env["name"]
            else:
                yield from _env_secrets(value, path + (key,))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _env_secrets(item, path + (i,))


def url_credentials(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line, reason) of every URL in `text` that carries a credential."""
    for n, line in enumerate(text.split("\n"), 1):
        if "://" not in line:
            continue
        for url in urls.urls_in(line):
            reason = urls.credential_in_url(url)
            if reason:
                yield n, reason


def _strings(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, path + (key,))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _strings(item, path + (i,))


def _input_url_findings(ctx: CheckContext, seen: set[tuple]) -> Iterator[Finding]:
    """Every string of every input document (each layer as written, values.yaml included)."""
    raw = ctx.fleet.raw
    docs = [raw.settings, *raw.components.values(), *raw.relabel.values(), *raw.overlays.values(),
            *raw.regions.values(), *(d for cid, d in raw.clusters.items() if ctx.wants(cid))]
    for doc in docs:
        for path, text in _strings(doc.data):
            for line, reason in url_credentials(text):
                source = doc.layered.source_of(path) or SourceRef(doc.name)
                where = f" (line {line} of this text)" if "\n" in text else ""
                what = f"{'.'.join(map(str, path)) or 'value'}: a URL with {reason}{where}"
                if (source, what) in seen:
                    continue
                seen.add((source, what))
                yield Finding(NAME, Severity.ERROR, source, what + "; credentials never enter git",
                              hint="put the credential in a Secret created out of band and reference it "
                                   "(basic_auth from a Secret, a bearer token file)")


def check(ctx: CheckContext) -> Iterable[Finding]:
    seen: set[tuple] = set()
    yield from _input_url_findings(ctx, seen)
    yield from _values_findings(ctx, seen)
    yield from _rendered_findings(ctx, seen)
    yield from _alloy_findings(ctx, seen)


def _values_findings(ctx: CheckContext, seen: set[tuple]) -> Iterator[Finding]:
    """Every layer's values (even those the fleet's wiring later replaces: a secret in git is a
    leak whether or not it renders) and the fleet-owned values (render.wiring) on their own."""
    merged: dict[int, tuple[Any, list]] = {}   # id(values) → (values, verdict); clusters share unpatched values
    owned: dict[str, list] = {}
    for cluster in ctx.fleet.clusters.values():
        for component in cluster.components.values():
            if component.chart is None:
                continue
            hit = merged.get(id(component.values))
            if hit is None or hit[0] is not component.values:
                hit = merged[id(component.values)] = (component.values, list(value_secrets(component.values)))
            problems = list(hit[1])
            wire = WIRING.get(component.name)
            if wire is not None:
                extra = wire(ctx.root, cluster, {})
                key = component.name + "\0" + json.dumps(extra, sort_keys=True, default=str)
                if key not in owned:
                    owned[key] = list(value_secrets(extra))
                problems += owned[key]
            for path, what in problems:
                source = component.source_of("values", *path) or SourceRef(cluster.source)
                if (source, what) in seen:
                    continue
                seen.add((source, what))
                yield Finding(NAME, Severity.ERROR, source,
                              f"{component.name}: values.{'.'.join(map(str, path))}: {what}; "
                              "secrets are created out of band and referenced by name",
                              hint="reference a Secret (valueFrom.secretKeyRef, existingSecret, a *File flag "
                                   "with a mounted Secret) instead")


def _shuttle_source(ctx: CheckContext, obj: RenderedObject, path: tuple) -> SourceRef | None:
    """Objects of the shuttle stage come from base/components/shuttle/manifests.yaml: the same
    object (kind and name) there, at the same path."""
    if not obj.path.endswith("/shuttle.yaml"):
        return None
    cache = ctx.cache.setdefault(f"{NAME}:shuttle-docs", [])
    if not cache:
        text = yamlio.read_text(ctx.root / MANIFESTS, MANIFESTS.as_posix())
        cache.extend(d for d in yamlio.load_all_text(text, MANIFESTS.as_posix()) if d is not None)
    for doc in cache:
        if doc.get("kind") == obj.kind and (doc.get("metadata") or {}).get("name") == obj.name:
            node, (line, col) = doc, yamlio.position(doc)
            for part in path:
                try:
                    line, col = yamlio.position(node, part)
                    node = node[part]
                except (KeyError, IndexError, TypeError):
                    break
            return SourceRef(MANIFESTS.as_posix(), line, col)
    return None


def _rendered_findings(ctx: CheckContext, seen: set[tuple]) -> Iterator[Finding]:
    # Skeleton objects: HelmRelease values are checked above, at their source lines.
    verdicts: dict[str, list] = {}
    for obj in rendered_objects(ctx):
        if not isinstance(obj.obj, dict):
            continue
        if obj.digest not in verdicts:
            problems: list[tuple[tuple, str]] = []
            if obj.kind == "Secret":
                problems.append(((), f"{obj.describe()} is rendered; Secrets are created out of band "
                                     "(Starbase Worker at provisioning) and only referenced by name"))
            problems += [(p, f"{obj.describe()}: environment variable {n} has a literal value")
                         for p, n in _env_secrets(obj.obj)]
            verdicts[obj.digest] = problems
        for path, what in verdicts[obj.digest]:
            source = _shuttle_source(ctx, obj, path) or obj.source(path)
            if (source, what) in seen:
                continue
            seen.add((source, what))
            yield Finding(NAME, Severity.ERROR, source, what,
                          hint="use valueFrom.secretKeyRef / a Secret created out of band")


def _alloy_findings(ctx: CheckContext, seen: set[tuple]) -> Iterator[Finding]:
    """Literal secrets in the rendered config.alloy files (credentials must be sys.env(...) of a
    Secret-backed variable), at the template line when the line comes verbatim from it."""
    template = ctx.root / alloy_render.ALLOY_DIR / "config.alloy.j2"
    template_lines = template.read_text(encoding="utf-8").splitlines() if template.exists() else []
    verdicts: dict[str, list] = {}
    folder = ctx.rendered / "clusters"
    for path in sorted(folder.glob(f"*/stages/*/{alloy_render.CONFIG_FILE}")) if folder.is_dir() else ():
        if not ctx.wants(path.relative_to(folder).parts[0]):
            continue
        text = path.read_text(encoding="utf-8")
        shape = normalize(text, path.relative_to(folder).parts[0])  # same length, cluster id masked
        if shape not in verdicts:
            verdicts[shape] = [(line, f"config.alloy sets {key!r} to a literal") for line, key in text_secrets(shape)]
            verdicts[shape] += [(line, f"config.alloy has a URL with {reason}") for line, reason in url_credentials(shape)]
        if not verdicts[shape]:
            continue
        lines = text.splitlines()
        for line, what in verdicts[shape]:
            content = lines[line - 1]
            if content in template_lines:
                source = SourceRef((alloy_render.ALLOY_DIR / "config.alloy.j2").as_posix(),
                                   template_lines.index(content) + 1)
            else:
                source = SourceRef(path.relative_to(ctx.root).as_posix(), line)
            if (source, what) in seen:
                continue
            seen.add((source, what))
            yield Finding(NAME, Severity.ERROR, source, what + "; secrets are created out of band",
                          hint='read it from a Secret-backed environment variable: sys.env("NAME")')
