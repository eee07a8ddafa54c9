"""Real container registries for integration tests, plus a token server and push helpers.

* :class:`RegistryServer` runs Debian's ``docker-registry`` (CNCF distribution 2.8) on 127.0.0.1 in
  one of three modes: ``"anonymous"``, ``"basic"`` (bcrypt htpasswd) or ``"token"`` (the Docker Hub /
  GHCR bearer-token flow, backed by a :class:`TokenServer`).
* :class:`TokenServer` is an in-process token endpoint issuing RS256 JWTs the registry trusts.
* :class:`RegistryPusher` and the module functions :func:`push_image`, :func:`push_index`,
  :func:`push_tags`, :func:`delete_tag`, :func:`list_tags` write test content over the registry API.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import secrets
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, NamedTuple

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.harness.util import (
    find_binary,
    free_port,
    scratch_dir,
    stop_process,
    tail,
    wait_until,
    write_htpasswd,
)

RegistryMode = Literal["anonymous", "basic", "token"]
MediaFlavour = Literal["docker", "oci"]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

#: Accept header that asks for every manifest type the harness pushes.
ALL_MANIFEST_TYPES = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])


# --------------------------------------------------------------------------------------------------
# Token server
# --------------------------------------------------------------------------------------------------


def libtrust_kid(public_key: rsa.RSAPublicKey) -> str:
    """Return the libtrust key id distribution expects in a JWT ``kid`` header.

    sha256 of the DER SubjectPublicKeyInfo, first 240 bits, base32 without padding, 12 groups of 4
    characters joined with ``:``.
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(der).digest()[:30]
    b32 = base64.b32encode(digest).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def parse_scope(scope: str) -> dict[str, Any] | None:
    """Parse ``type:name:action1,action2`` into a JWT ``access`` entry (None if malformed)."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    rtype, actions = parts[0], parts[-1]
    name = ":".join(parts[1:-1])
    return {"type": rtype, "name": name, "actions": [a for a in actions.split(",") if a]}


@dataclass
class TokenRequest:
    """One request the token server received (kept in :attr:`TokenServer.requests`)."""

    method: str
    path: str
    service: str | None
    scopes: list[str]
    user: str | None
    status: int


AuthorizeHook = Callable[[str | None, dict[str, Any]], list[str]]
"""``authorize(user, access_entry) -> granted actions``; user is None for anonymous requests."""


class TokenServer:
    """In-process bearer-token endpoint (``GET /token``) that signs RS256 JWTs for a registry.

    Credentials are checked with HTTP basic auth against ``username``/``password``. Anonymous requests
    get 401 unless ``allow_anonymous_pull`` is set, in which case they are granted ``pull`` only.
    Authenticated users get every action they ask for, unless an ``authorize`` hook decides otherwise.

    Attributes useful in tests: :attr:`url`, :attr:`realm`, :attr:`service`, :attr:`issuer`,
    :attr:`cert_path`, :attr:`kid`, :attr:`expires_in` (mutable), :attr:`request_count`,
    :attr:`requests`.
    """

    def __init__(
        self,
        *,
        username: str = "harness",
        password: str | None = None,
        service: str = "harness-registry",
        issuer: str = "harness-token-issuer",
        expires_in: int = 300,
        allow_anonymous_pull: bool = False,
        authorize: AuthorizeHook | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.allow_anonymous_pull = allow_anonymous_pull
        self.authorize = authorize
        self.workdir = workdir or scratch_dir("harness-token-")
        self._own_workdir = workdir is None
        self._lock = threading.Lock()
        self._failures: list[tuple[int, bytes, dict[str, str]]] = []
        self.requests: list[TokenRequest] = []

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = libtrust_kid(self._key.public_key())
        self.cert_path = self.workdir / "token-cert.pem"
        self.cert_path.write_bytes(self._make_certificate().public_bytes(serialization.Encoding.PEM))
        self._private_pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_token_handler(self))
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.realm = f"{self.url}/token"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="token-server", daemon=True
        )
        self._thread.start()

    # -- public API -------------------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Number of token requests served so far (including failed and refused ones)."""
        with self._lock:
            return len(self.requests)

    def reset_counts(self) -> None:
        """Forget the recorded requests (the counter goes back to 0)."""
        with self._lock:
            self.requests.clear()

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        body: bytes | str = b'{"errors":[{"code":"UNAVAILABLE","message":"injected failure"}]}',
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next ``n`` token requests fail with ``status`` (and optional body/headers)."""
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._failures.extend([(status, raw, dict(headers or {}))] * n)

    def mint(
        self,
        scope: str | Iterable[str] = (),
        *,
        subject: str | None = None,
        expires_in: int | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> str:
        """Sign a token directly (no HTTP), granting exactly the actions named in ``scope``.

        ``expires_in`` may be negative to make an already-expired token; ``audience``/``issuer``
        override the claims to build deliberately wrong tokens.
        """
        scopes = [scope] if isinstance(scope, str) else list(scope)
        access = [entry for s in scopes if (entry := parse_scope(s)) is not None]
        return self._sign(subject or self.username, access, expires_in, audience=audience, issuer=issuer)

    def close(self) -> None:
        """Stop the HTTP server and remove its work directory (if the server created it)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        if self._own_workdir:
            _rmtree(self.workdir)

    def __enter__(self) -> TokenServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------

    def _make_certificate(self) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harness token signer")])
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    def _sign(
        self,
        subject: str,
        access: list[dict[str, Any]],
        expires_in: int | None,
        *,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> str:
        now = int(time.time())
        lifetime = self.expires_in if expires_in is None else expires_in
        claims = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "aud": audience or self.service,
            "exp": now + lifetime,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        return jwt.encode(claims, self._private_pem, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def _take_failure(self) -> tuple[int, bytes, dict[str, str]] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _record(self, req: TokenRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        granted: list[dict[str, Any]] = []
        for s in scopes:
            entry = parse_scope(s)
            if entry is None:
                continue
            if self.authorize is not None:
                actions = self.authorize(user, entry)
            elif user is None:
                actions = [a for a in entry["actions"] if a == "pull"]
            else:
                actions = list(entry["actions"])
            if actions:
                granted.append({**entry, "actions": actions})
        return granted


def _make_token_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            """Disable Nagle: headers and body go out in separate writes (avoids 40 ms stalls)."""
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log."""

        def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            hdrs = {"Content-Type": "application/json", **(headers or {})}
            for k, v in hdrs.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _credentials(self) -> tuple[str, str] | None:
            header = self.headers.get("Authorization", "")
            if not header.lower().startswith("basic "):
                return None
            try:
                user, _, pw = base64.b64decode(header[6:].strip()).decode().partition(":")
            except ValueError:
                return None
            return user, pw

        def _handle(self, params: dict[str, list[str]], creds: tuple[str, str] | None) -> None:
            path = urllib.parse.urlsplit(self.path).path
            service = params["service"][0] if params.get("service") else None
            scopes = [s for raw in params.get("scope", []) for s in raw.split(" ") if s]
            user = creds[0] if creds else None
            failure = server._take_failure()
            if failure is not None:
                status, body, headers = failure
                server._record(TokenRequest(self.command, path, service, scopes, user, status))
                self._send(status, body, headers)
                return
            if path != "/token":
                server._record(TokenRequest(self.command, path, service, scopes, user, 404))
                self._send(404, b'{"error":"not found"}')
                return
            if service is not None and service != server.service:
                server._record(TokenRequest(self.command, path, service, scopes, user, 400))
                self._send(400, b'{"error":"invalid_request","error_description":"unknown service"}')
                return
            if creds is not None and creds != (server.username, server.password):
                server._record(TokenRequest(self.command, path, service, scopes, user, 401))
                self._send(401, b'{"error":"invalid credentials"}', {"WWW-Authenticate": 'Basic realm="token"'})
                return
            if creds is None and not server.allow_anonymous_pull:
                server._record(TokenRequest(self.command, path, service, scopes, None, 401))
                self._send(401, b'{"error":"authentication required"}', {"WWW-Authenticate": 'Basic realm="token"'})
                return
            access = server._grant(user, scopes)
            token = server._sign(user or "anonymous", access, None)
            issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            payload = {
                "token": token,
                "access_token": token,
                "expires_in": server.expires_in,
                "issued_at": issued,
            }
            server._record(TokenRequest(self.command, path, service, scopes, user, 200))
            self._send(200, json.dumps(payload).encode())

        def do_GET(self) -> None:
            """Serve ``GET /token?service=...&scope=...``."""
            query = urllib.parse.urlsplit(self.path).query
            self._handle(urllib.parse.parse_qs(query), self._credentials())

        def do_POST(self) -> None:
            """Serve the OAuth2 form variant (``grant_type=password``) some clients use."""
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            creds = self._credentials()
            if creds is None and "username" in form:
                creds = (form["username"][0], (form.get("password") or [""])[0])
            self._handle(form, creds)

    return Handler


# --------------------------------------------------------------------------------------------------
# Registry server
# --------------------------------------------------------------------------------------------------


class RegistryServer:
    """Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1 with storage under /dev/shm.

    Parameters: ``mode`` ("anonymous" | "basic" | "token"); ``token_server`` (required for token
    mode); ``username``/``password`` for basic mode (token mode takes them from the token server);
    ``notifications``: webhook URLs for ``notifications.endpoints``.

    Attributes: :attr:`url` (``http://127.0.0.1:PORT``), :attr:`host` (``127.0.0.1:PORT``),
    :attr:`mode`, :attr:`username`, :attr:`password`, :attr:`token_server`, :attr:`log_path`,
    :attr:`config_path`, :attr:`startup_seconds`.
    """

    def __init__(
        self,
        mode: RegistryMode = "anonymous",
        *,
        token_server: TokenServer | None = None,
        username: str = "harness",
        password: str | None = None,
        notifications: list[str] | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        if mode not in ("anonymous", "basic", "token"):
            raise ValueError(f"unknown registry mode {mode!r}")
        if mode == "token" and token_server is None:
            raise ValueError("token mode needs a TokenServer")
        self.binary = find_binary("docker-registry")
        self.mode: RegistryMode = mode
        self.token_server = token_server
        self.username: str | None = None
        self.password: str | None = None
        if mode == "basic":
            self.username, self.password = username, password or secrets.token_urlsafe(12)
        elif token_server is not None and mode == "token":
            self.username, self.password = token_server.username, token_server.password
        self.notifications = list(notifications or [])
        self.start_timeout = start_timeout
        self.workdir = scratch_dir(f"harness-registry-{mode}-")
        self.storage = self.workdir / "storage"
        self.storage.mkdir()
        self.log_path = self.workdir / "registry.log"
        self.config_path = self.workdir / "config.yml"
        self.port = 0
        self.url = ""
        self.host = ""
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._pusher: RegistryPusher | None = None
        self._pusher_lock = threading.Lock()
        if mode == "basic":
            assert self.username is not None and self.password is not None
            write_htpasswd(self.workdir / "htpasswd", self.username, self.password)
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # -- lifecycle --------------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"127.0.0.1:{self.port}",
                "secret": secrets.token_hex(16),
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.mode == "basic":
            cfg["auth"] = {"htpasswd": {"realm": "harness-registry", "path": str(self.workdir / "htpasswd")}}
        elif self.mode == "token":
            ts = self.token_server
            assert ts is not None
            cfg["auth"] = {
                "token": {
                    "realm": ts.realm,
                    "service": ts.service,
                    "issuer": ts.issuer,
                    "rootcertbundle": str(ts.cert_path),
                }
            }
        if self.notifications:
            cfg["notifications"] = {
                "endpoints": [
                    {"name": f"hook{i}", "url": url, "timeout": "1s", "threshold": 3, "backoff": "1s"}
                    for i, url in enumerate(self.notifications)
                ]
            }
        return cfg

    def _start(self) -> None:
        t0 = time.monotonic()
        last_error = ""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            self.host = f"127.0.0.1:{self.port}"
            self.url = f"http://{self.host}"
            # JSON is valid YAML, and avoids hand-quoting paths and URLs.
            self.config_path.write_text(json.dumps(self._config(), indent=2))
            log = self.log_path.open("ab")
            try:
                self._proc = subprocess.Popen(
                    [self.binary, "serve", str(self.config_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            finally:
                log.close()
            if wait_until(self._ready, timeout=self.start_timeout) and self.is_running():
                self.startup_seconds = time.monotonic() - t0
                return
            last_error = self.log_tail()
            stop_process(self._proc)
            self._proc = None
        raise RuntimeError(f"docker-registry did not become ready on {self.host}:\n{last_error}")

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            return True  # exited: let the caller notice via is_running()
        try:
            r = httpx.get(f"{self.url}/v2/", timeout=0.5)
        except httpx.HTTPError:
            return False
        return r.status_code in (200, 401)

    def is_running(self) -> bool:
        """True while the registry process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the registry's log (for failure reports)."""
        return tail(self.log_path, lines)

    def close(self) -> None:
        """Stop the registry (SIGTERM, wait, SIGKILL) and delete its storage and logs."""
        if self._pusher is not None:
            self._pusher.close()
            self._pusher = None
        stop_process(self._proc)
        self._proc = None
        _rmtree(self.workdir)

    def __enter__(self) -> RegistryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------------

    @property
    def pusher(self) -> RegistryPusher:
        """A shared :class:`RegistryPusher` for this server (created on first use)."""
        with self._pusher_lock:
            if self._pusher is None:
                self._pusher = RegistryPusher(self)
            return self._pusher

    @property
    def credentials(self) -> tuple[str, str] | None:
        """``(username, password)`` for basic/token mode, None for anonymous."""
        if self.username is None or self.password is None:
            return None
        return self.username, self.password

    def reference(self, repo: str, tag_or_digest: str) -> str:
        """``127.0.0.1:PORT/repo:tag`` or ``127.0.0.1:PORT/repo@sha256:...``."""
        sep = "@" if tag_or_digest.startswith("sha256:") else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Push helpers
# --------------------------------------------------------------------------------------------------


class RegistryError(RuntimeError):
    """The registry answered a harness request with an unexpected status."""

    def __init__(self, what: str, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.response_text = response.text[:500]
        super().__init__(f"{what}: HTTP {response.status_code} {self.response_text}")


class IndexPush(NamedTuple):
    """Result of :meth:`RegistryPusher.push_index_full`: the index digest and each child's digest."""

    digest: str
    children: dict[str, str]


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(moment: dt.datetime) -> str:
    """Format ``moment`` as RFC 3339 UTC with a ``Z`` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


@dataclass
class _Layer:
    gz: bytes
    digest: str
    diff_id: str


@dataclass
class _RepoAuth:
    token: str
    expires: float


class RegistryPusher:
    """Writes images to a :class:`RegistryServer` over HTTP with one keep-alive ``httpx.Client``.

    Handles the three auth modes: anonymous, basic, and token (it mints ``pull,push,delete`` tokens
    directly from the server's :class:`TokenServer`). Thread-safe: :meth:`push_tags` pushes with a
    pool of threads sharing the client.
    """

    def __init__(self, server: RegistryServer, *, timeout: float = 30.0) -> None:
        self.server = server
        auth = httpx.BasicAuth(*server.credentials) if server.mode == "basic" and server.credentials else None
        self.client = httpx.Client(
            base_url=server.url,
            auth=auth,
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self._lock = threading.Lock()
        self._layers: dict[str, _Layer] = {}
        self._known_blobs: set[tuple[str, str]] = set()
        self._tokens: dict[str, _RepoAuth] = {}

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    # -- low level --------------------------------------------------------------------------------

    def _headers(self, repo: str) -> dict[str, str]:
        if self.server.mode != "token":
            return {}
        ts = self.server.token_server
        assert ts is not None
        now = time.monotonic()
        with self._lock:
            cached = self._tokens.get(repo)
            if cached is None or cached.expires < now + 5:
                lifetime = max(ts.expires_in, 30)
                token = ts.mint(f"repository:{repo}:pull,push,delete", expires_in=lifetime)
                cached = _RepoAuth(token, now + lifetime)
                self._tokens[repo] = cached
        return {"Authorization": f"Bearer {cached.token}"}

    def request(self, method: str, url: str, repo: str, **kwargs: Any) -> httpx.Response:
        """Send one request to the registry with the right credentials for ``repo``."""
        headers = {**self._headers(repo), **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def layer(self, seed: str) -> _Layer:
        """A small deterministic gzip'd tar layer for ``seed`` (cached: same seed, same blob)."""
        with self._lock:
            cached = self._layers.get(seed)
        if cached is not None:
            return cached
        payload = f"harness layer {seed}\n".encode() + hashlib.sha256(seed.encode()).digest() * 8
        tar_buf = io.BytesIO()
        with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"harness/{hashlib.sha1(seed.encode()).hexdigest()}.bin")
            info.size = len(payload)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(payload))
        raw = tar_buf.getvalue()
        gz = gzip.compress(raw, mtime=0)
        made = _Layer(gz, sha256_digest(gz), sha256_digest(raw))
        with self._lock:
            self._layers[seed] = made
        return made

    def blob_exists(self, repo: str, digest: str) -> bool:
        """HEAD a blob; True if the registry has it in ``repo``."""
        r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo)
        return r.status_code == 200

    def upload_blob(self, repo: str, data: bytes, digest: str | None = None, *, check: bool = True) -> str:
        """Upload a blob (POST then PUT ``?digest=``); return its digest.

        Skipped when this pusher already uploaded it to ``repo`` or, with ``check``, when a HEAD says
        the registry has it. (A single-POST upload with ``?digest=`` answers 202 and stores nothing on
        distribution 2.8, hence the two steps.)
        """
        digest = digest or sha256_digest(data)
        with self._lock:
            known = (repo, digest) in self._known_blobs
        if known or (check and self.blob_exists(repo, digest)):
            with self._lock:
                self._known_blobs.add((repo, digest))
            return digest
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", repo)
        if r.status_code != 202:
            raise RegistryError(f"start upload to {repo}", r)
        location = r.headers["Location"]
        sep = "&" if "?" in location else "?"
        r = self.request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            repo,
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if r.status_code != 201:
            raise RegistryError(f"finish upload of {digest} to {repo}", r)
        with self._lock:
            self._known_blobs.add((repo, digest))
        return digest

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or digest; return the registry's ``Docker-Content-Digest``."""
        r = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo,
            content=body,
            headers={"Content-Type": media_type},
        )
        if r.status_code != 201:
            raise RegistryError(f"put manifest {repo}:{reference}", r)
        digest = r.headers.get("Docker-Content-Digest") or sha256_digest(body)
        expected = sha256_digest(body)
        if digest != expected:
            raise RuntimeError(f"registry digest {digest} != local digest {expected} for {repo}:{reference}")
        return digest

    # -- images -----------------------------------------------------------------------------------

    def build_image(
        self,
        repo: str,
        *,
        created: dt.datetime,
        media_type: MediaFlavour = "docker",
        layer_seed: str | None = None,
        architecture: str = "amd64",
        os_name: str = "linux",
        variant: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[bytes, str]:
        """Upload the blobs of one image and return ``(manifest bytes, manifest media type)``."""
        layer = self.layer(layer_seed or "default")
        config: dict[str, Any] = {
            "architecture": architecture,
            "os": os_name,
            "created": rfc3339(created),
            "config": {"Labels": dict(labels)} if labels else {},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created": rfc3339(created), "created_by": "image-updater test harness"}],
        }
        if variant:
            config["variant"] = variant
        config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
        # A config blob is almost always new (its ``created`` differs), so skip the HEAD probe and
        # upload it; re-uploading an existing blob is harmless. The layer is probed once per repo.
        config_digest = self.upload_blob(repo, config_bytes, check=False)
        self.upload_blob(repo, layer.gz, layer.digest)
        if media_type == "oci":
            mt, cfg_mt, layer_mt = OCI_MANIFEST, OCI_CONFIG, OCI_LAYER
        elif media_type == "docker":
            mt, cfg_mt, layer_mt = DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER
        else:
            raise ValueError(f"unknown media type flavour {media_type!r}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": cfg_mt, "size": len(config_bytes), "digest": config_digest},
            "layers": [{"mediaType": layer_mt, "size": len(layer.gz), "digest": layer.digest}],
        }
        return json.dumps(manifest, indent=3).encode(), mt

    def push_image(
        self,
        repo: str,
        tag: str | None,
        *,
        created: dt.datetime,
        media_type: MediaFlavour = "docker",
        layer_seed: str | None = None,
        architecture: str = "amd64",
        os_name: str = "linux",
        variant: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Push one single-platform image; tag it (or push by digest when ``tag`` is None)."""
        body, mt = self.build_image(
            repo,
            created=created,
            media_type=media_type,
            layer_seed=layer_seed,
            architecture=architecture,
            os_name=os_name,
            variant=variant,
            labels=labels,
        )
        return self.put_manifest(repo, tag or sha256_digest(body), body, mt)

    def push_index_full(
        self,
        repo: str,
        tag: str,
        *,
        platforms: Mapping[str, dt.datetime] | None = None,
        media_type: MediaFlavour = "oci",
        layer_seed: str | None = None,
    ) -> IndexPush:
        """Push one image per platform by digest, then an OCI index / Docker manifest list as ``tag``.

        ``platforms`` maps ``os/arch[/variant]`` to the ``created`` date of that platform's image.
        """
        if platforms is None:
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            platforms = {"linux/amd64": now, "linux/arm64": now}
        entries: list[dict[str, Any]] = []
        children: dict[str, str] = {}
        for platform, created in platforms.items():
            os_name, arch, *rest = platform.split("/")
            variant = rest[0] if rest else None
            body, mt = self.build_image(
                repo,
                created=created,
                media_type=media_type,
                layer_seed=f"{layer_seed or 'default'}:{platform}",
                architecture=arch,
                os_name=os_name,
                variant=variant,
            )
            digest = self.put_manifest(repo, sha256_digest(body), body, mt)
            children[platform] = digest
            plat: dict[str, str] = {"architecture": arch, "os": os_name}
            if variant:
                plat["variant"] = variant
            entries.append({"mediaType": mt, "size": len(body), "digest": digest, "platform": plat})
        index_mt = OCI_INDEX if media_type == "oci" else DOCKER_MANIFEST_LIST
        index = {"schemaVersion": 2, "mediaType": index_mt, "manifests": entries}
        body = json.dumps(index, indent=3).encode()
        return IndexPush(self.put_manifest(repo, tag, body, index_mt), children)

    def push_index(
        self,
        repo: str,
        tag: str,
        *,
        platforms: Mapping[str, dt.datetime] | None = None,
        media_type: MediaFlavour = "oci",
        layer_seed: str | None = None,
    ) -> str:
        """Like :meth:`push_index_full` but return only the index digest."""
        return self.push_index_full(repo, tag, platforms=platforms, media_type=media_type, layer_seed=layer_seed).digest

    def push_tags(
        self,
        repo: str,
        tags: Mapping[str, dt.datetime],
        *,
        media_type: MediaFlavour = "docker",
        layer_seed: str | None = None,
        workers: int = 8,
    ) -> dict[str, str]:
        """Push many single-platform images concurrently; return ``{tag: digest}``.

        All images share one layer blob; only the config blob (its ``created``) differs.
        """
        if not tags:
            return {}
        # Upload the shared layer once, before the threads race for it.
        layer = self.layer(layer_seed or "default")
        self.upload_blob(repo, layer.gz, layer.digest)

        def one(item: tuple[str, dt.datetime]) -> tuple[str, str]:
            tag, created = item
            return tag, self.push_image(repo, tag, created=created, media_type=media_type, layer_seed=layer_seed)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return dict(pool.map(one, tags.items()))

    # -- reads and deletes ------------------------------------------------------------------------

    def list_tags(self, repo: str) -> list[str]:
        """All tags of ``repo``, sorted (distribution returns them unsorted; ``null`` becomes [])."""
        r = self.request("GET", f"/v2/{repo}/tags/list", repo)
        if r.status_code != 200:
            raise RegistryError(f"list tags of {repo}", r)
        return sorted(r.json().get("tags") or [])

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """HEAD a manifest; return its digest, or None if the registry does not know it."""
        r = self.request("HEAD", f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": ALL_MANIFEST_TYPES})
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise RegistryError(f"head manifest {repo}:{reference}", r)
        return r.headers["Docker-Content-Digest"]

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str]:
        """GET a manifest; return ``(raw bytes, Content-Type)``."""
        r = self.request("GET", f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": ALL_MANIFEST_TYPES})
        if r.status_code != 200:
            raise RegistryError(f"get manifest {repo}:{reference}", r)
        return r.content, r.headers.get("Content-Type", "")

    def delete_tag(self, repo: str, tag: str) -> str:
        """Delete ``tag`` and return the digest it pointed at.

        distribution 2.8 cannot untag: this deletes the *manifest* by digest, so every other tag that
        points at the same digest disappears too.
        """
        digest = self.manifest_digest(repo, tag)
        if digest is None:
            raise KeyError(f"{repo}:{tag} does not exist")
        r = self.request("DELETE", f"/v2/{repo}/manifests/{digest}", repo)
        if r.status_code != 202:
            raise RegistryError(f"delete {repo}@{digest}", r)
        return digest


def push_image(
    server: RegistryServer,
    repo: str,
    tag: str | None,
    *,
    created: dt.datetime,
    media_type: MediaFlavour = "docker",
    layer_seed: str | None = None,
    architecture: str = "amd64",
    os_name: str = "linux",
    labels: Mapping[str, str] | None = None,
) -> str:
    """Push one image to ``server`` as ``repo:tag``; return the manifest digest (see RegistryPusher)."""
    return server.pusher.push_image(
        repo,
        tag,
        created=created,
        media_type=media_type,
        layer_seed=layer_seed,
        architecture=architecture,
        os_name=os_name,
        labels=labels,
    )


def push_index(
    server: RegistryServer,
    repo: str,
    tag: str,
    *,
    platforms: Mapping[str, dt.datetime] | None = None,
    media_type: MediaFlavour = "oci",
    layer_seed: str | None = None,
) -> str:
    """Push a multi-platform index (OCI) or manifest list (docker); return the index digest."""
    return server.pusher.push_index(repo, tag, platforms=platforms, media_type=media_type, layer_seed=layer_seed)


def push_tags(
    server: RegistryServer,
    repo: str,
    tags: Mapping[str, dt.datetime],
    *,
    media_type: MediaFlavour = "docker",
    workers: int = 8,
) -> dict[str, str]:
    """Push many tags concurrently; return ``{tag: digest}``."""
    return server.pusher.push_tags(repo, tags, media_type=media_type, workers=workers)


def delete_tag(server: RegistryServer, repo: str, tag: str) -> str:
    """Delete ``repo:tag`` (by its manifest digest); return that digest."""
    return server.pusher.delete_tag(repo, tag)


def list_tags(server: RegistryServer, repo: str) -> list[str]:
    """Sorted tags of ``repo`` straight from the registry."""
    return server.pusher.list_tags(repo)


def manifest_digest(server: RegistryServer, repo: str, reference: str) -> str | None:
    """Digest of ``repo:reference`` according to the registry (None if unknown)."""
    return server.pusher.manifest_digest(repo, reference)


__all__ = [
    "ALL_MANIFEST_TYPES",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "IndexPush",
    "RegistryError",
    "RegistryMode",
    "RegistryPusher",
    "RegistryServer",
    "TokenRequest",
    "TokenServer",
    "delete_tag",
    "libtrust_kid",
    "list_tags",
    "manifest_digest",
    "push_image",
    "push_index",
    "push_tags",
    "rfc3339",
    "sha256_digest",
]
