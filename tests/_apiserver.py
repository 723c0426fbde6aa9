"""A real Kubernetes API server for the tests: Debian's etcd and the pinned kube-apiserver, on loopback.

kube-apiserver is the build of tools/upstream.lock (k8s.io/kubernetes at the fleet's
`kubernetesVersion`); etcd is Debian's etcd-server (tools/apt-packages.txt). The API server runs
as a cluster's does where it matters here: TLS (a self-signed serving certificate it generates
into the temporary `--cert-dir`), `--authorization-mode=RBAC`, the default admission chain plus
ValidatingAdmissionPolicy named explicitly, service-account tokens signed by a key made for the
run (so TokenRequest issues real tokens for a ServiceAccount). The admin is a static token in
group `system:masters`. No controller manager runs: nothing reconciles, which is what a
dry-run check wants, but a deleted namespace would stay Terminating — tests never delete one.

The client speaks HTTP directly (urllib): server-side apply is a PATCH with
`application/apply-patch+yaml`, and discovery maps each apiVersion/kind to its resource.
"""
from __future__ import annotations

import json
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _binaries import require_binary

FIELD_MANAGER = "kustomize-controller"  # the manager Flux's kustomize-controller applies as
START_TIMEOUT = 180                      # seconds; a loaded 2-core CI machine needs ~20


@dataclass(frozen=True)
class Response:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message") or self.body)
        return str(self.body)


@dataclass(frozen=True)
class Resource:
    """Where the API serves a kind: `/api/v1` or `/apis/<group>/<version>`, its plural, its scope."""

    prefix: str
    plural: str
    namespaced: bool

    def path(self, name: str | None = None, namespace: str | None = None) -> str:
        ns = f"/namespaces/{namespace or 'default'}" if self.namespaced else ""
        return f"{self.prefix}{ns}/{self.plural}" + (f"/{urllib.parse.quote(name)}" if name else "")


@dataclass
class Client:
    base: str
    cafile: str
    token: str
    _ssl: ssl.SSLContext = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ssl = ssl.create_default_context(cafile=self.cafile)

    def as_token(self, token: str) -> "Client":
        return Client(self.base, self.cafile, token)

    def request(self, method: str, path: str, body: Any = None, *, query: dict | None = None,
                content_type: str = "application/json", timeout: float = 60) -> Response:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            **({"Content-Type": content_type} if data is not None else {})})
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=timeout) as resp:
                return Response(resp.status, _json(resp.read()))
        except urllib.error.HTTPError as err:
            return Response(err.code, _json(err.read()))

    def apply(self, resource: Resource, obj: dict, *, dry_run: bool) -> Response:
        """Server-side apply of `obj` as Flux does it (force, strict field validation)."""
        meta = obj.get("metadata") or {}
        query = {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("PATCH", resource.path(meta.get("name"), meta.get("namespace")), obj, query=query,
                            content_type="application/apply-patch+yaml")

    def discovery(self) -> dict[tuple[str, str], Resource]:
        """(apiVersion, kind) → Resource for every kind the server serves now."""
        found: dict[tuple[str, str], Resource] = {}
        versions = [("v1", "/api/v1")]
        groups = self.request("GET", "/apis").body.get("groups") or []
        versions += [(v["groupVersion"], f"/apis/{v['groupVersion']}") for g in groups for v in g["versions"]]
        for api_version, prefix in versions:
            listing = self.request("GET", prefix)
            for res in (listing.body or {}).get("resources") or [] if listing.ok else []:
                if "/" not in res["name"]:
                    found[(api_version, res["kind"])] = Resource(prefix, res["name"], res["namespaced"])
        return found


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class ApiServer:
    admin: Client
    log: Path
    processes: list[subprocess.Popen]

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start(workdir: Path) -> ApiServer:
    """Start etcd and kube-apiserver under `workdir`; return once /readyz answers ok."""
    kube_apiserver, etcd = require_binary("kube-apiserver"), require_binary("etcd")
    etcd_client, etcd_peer, port = _free_ports(3)
    admin_token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f'{admin_token},admin,admin,"system:masters"\n')
    subprocess.run([require_binary("openssl"), "genrsa", "-out", str(workdir / "sa.key"), "2048"], check=True, capture_output=True)
    processes: list[subprocess.Popen] = []
    etcd_log, log = workdir / "etcd.log", workdir / "kube-apiserver.log"
    processes.append(subprocess.Popen([
        etcd, "--name", "test", "--data-dir", str(workdir / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
        "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
        "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
        "--initial-cluster", f"test=http://127.0.0.1:{etcd_peer}",
        "--logger", "zap", "--log-level", "warn",
    ], stdout=subprocess.DEVNULL, stderr=etcd_log.open("w")))
    processes.append(subprocess.Popen([
        kube_apiserver,
        f"--etcd-servers=http://127.0.0.1:{etcd_client}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
        f"--cert-dir={workdir / 'certs'}",
        f"--token-auth-file={workdir / 'tokens.csv'}", "--anonymous-auth=false",
        "--authorization-mode=RBAC",
        "--enable-admission-plugins=ValidatingAdmissionPolicy",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={workdir / 'sa.key'}",
        f"--service-account-signing-key-file={workdir / 'sa.key'}",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--endpoint-reconciler-type=none",  # the `kubernetes` Service cannot point at loopback
        "--profiling=false",
    ], stdout=subprocess.DEVNULL, stderr=log.open("w")))
    server = ApiServer(None, log, processes)  # type: ignore[arg-type]
    cafile = workdir / "certs" / "apiserver.crt"
    deadline = time.monotonic() + START_TIMEOUT
    last = "not started"
    while time.monotonic() < deadline:
        for proc, name in zip(processes, ("etcd", "kube-apiserver")):
            if proc.poll() is not None:
                server.stop()
                tail = etcd_log.read_text(errors="replace")[-3000:] if name == "etcd" else server.log_tail()
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
        if cafile.exists():
            try:
                admin = Client(f"https://127.0.0.1:{port}", str(cafile), admin_token)
                ready = admin.request("GET", "/readyz", timeout=5)
                if ready.ok:
                    server.admin = admin
                    return server
                last = f"/readyz {ready.status}: {ready.body}"
            except (OSError, ssl.SSLError) as exc:
                last = str(exc)
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"kube-apiserver not ready after {START_TIMEOUT} s ({last}):\n{server.log_tail()}")
