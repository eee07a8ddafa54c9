"""Registry webhooks as pure functions: a request's bytes, headers and query -> push events, or an error.

Sources (the ``?type=`` value or the ``X-Registry-Type`` header, as Argo CD Image Updater names them):

=============  ====================================================  ==========================================
source         payload                                               authentication when a secret is set
=============  ====================================================  ==========================================
distribution   CNCF distribution notification envelope (``events``)  shared token: ``Authorization`` or ``?secret=``
docker.io      Docker Hub (``push_data.tag``, ``repository``)        shared token in the URL (``?secret=``)
ghcr.io        GitHub ``package`` event (container packages)         HMAC-SHA256 of the body, ``X-Hub-Signature-256``
quay.io        Quay repository push (``docker_url``, ``updated_tags``)  shared token in the URL (``?secret=``)
harbor         Harbor ``PUSH_ARTIFACT`` (default or CloudEvents)     ``Authorization`` header (Harbor's "Auth Header")
gitlab         GitLab container registry notifications (envelope)    ``Authorization`` or ``X-Gitlab-Token``
=============  ====================================================  ==========================================

Every shared-token source also accepts the token in ``?secret=`` and in ``Authorization`` (bare or after
``Bearer``/``Token``); every comparison is constant-time. Without a type, the payload's shape decides.
A valid request that carries no tag-carrying push (a blob push, a pull, a GitHub ``ping``) yields no
events: the caller answers 2xx so that the sender does not retry it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from image_updater.config import RegistrySettings
from image_updater.errors import ImageReferenceError, WebhookError
from image_updater.model.ref import DOCKER_HUB, ImageName, is_valid_tag, parse_image_name
from image_updater.model.spec import AppSpec

DISTRIBUTION, DOCKER_HUB_SOURCE, GHCR, QUAY, HARBOR, GITLAB = (
    "distribution",
    "docker.io",
    "ghcr.io",
    "quay.io",
    "harbor",
    "gitlab",
)
SOURCES = (DISTRIBUTION, DOCKER_HUB_SOURCE, GHCR, QUAY, HARBOR, GITLAB)
HMAC_SOURCES = frozenset({GHCR})
"""Sources whose sender signs the body (HMAC-SHA256); the others send a shared token."""
DEFAULT_MAX_BODY_BYTES = 1 << 20
"""1 MiB: far more than any registry's push payload."""

_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_TOKEN_SCHEMES = ("bearer ", "token ")


@dataclass(frozen=True)
class PushEvent:
    """One tag pushed to one repository, as a webhook reports it.

    ``registry_host`` is the registry as the sender names it (``docker.io``, ``ghcr.io``,
    ``127.0.0.1:5000``), or ``None`` when the payload does not say (a Harbor event without a
    ``resource_url``); ``repository`` is the path in that registry, lower-cased.
    """

    registry_host: str | None
    repository: str
    tag: str
    digest: str | None = None

    def image_name(self, aliases: Mapping[str, str] | None = None) -> ImageName | None:
        """The normalised image name (``docker.io/library/nginx``), or ``None`` when it is not valid.

        ``aliases`` maps a host the sender may name (a registry's ``api_url`` host) to the host
        image names use (its ``prefix``).
        """
        if self.registry_host is None:
            return None
        host = (aliases or {}).get(self.registry_host, self.registry_host)
        try:
            if host in _HUB_HOSTS:
                return parse_image_name(self.repository)
            checked = parse_image_name(f"registry.invalid/{self.repository}")
        except ImageReferenceError:
            return None
        # The host is taken as it is: a registry named without a dot or a port ("harbor", an
        # in-cluster service name) is still a host here, never a Docker Hub namespace.
        return ImageName(registry=host, repository=checked.repository)

    def matches(self, image: ImageName, aliases: Mapping[str, str] | None = None) -> bool:
        """Whether this push is of ``image``'s repository (any registry when the host is unknown)."""
        if self.registry_host is None:
            return image.repository == self.repository or image.repository == f"library/{self.repository}"
        return self.image_name(aliases) == image

    def __str__(self) -> str:
        return f"{self.registry_host or '?'}/{self.repository}:{self.tag}"


def host_aliases(registries: Sequence[RegistrySettings]) -> dict[str, str]:
    """Map the host of each registry's ``api_url`` to the host its image names use (its ``prefix``).

    A registry reached at another address than the one image names carry (an in-cluster service name)
    reports pushes under that address; this lets such pushes still find their Applications.
    """
    aliases: dict[str, str] = {}
    for entry in registries:
        if not entry.api_url:
            continue
        api_host = entry.api_url.split("://", 1)[-1].split("/", 1)[0].lower()
        prefix_host = entry.prefix.split("/", 1)[0].lower()
        if api_host and prefix_host and api_host != prefix_host:
            aliases[api_host] = prefix_host
    return aliases


def select_apps(
    apps: Sequence[AppSpec], events: Sequence[PushEvent], aliases: Mapping[str, str] | None = None
) -> list[AppSpec]:
    """The Applications that track an image one of ``events`` pushed, in their order."""
    return [app for app in apps if any(e.matches(image.name, aliases) for image in app.images for e in events)]


@dataclass(frozen=True)
class WebhookRequest:
    """What the HTTP layer hands over: the raw body, headers (names lower-cased) and query parameters."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str]

    @staticmethod
    def of(body: bytes, headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> WebhookRequest:
        """A request with its header names lower-cased."""
        return WebhookRequest(body, {k.lower(): v for k, v in headers.items()}, dict(query or {}))


@dataclass(frozen=True)
class WebhookResult:
    """A request that passed: its source and the pushes it reports (possibly none)."""

    source: str
    events: tuple[PushEvent, ...]


SecretLookup = Callable[[str], str | None]
"""``source -> secret`` (``None``: that source needs no secret)."""


def requested_source(request: WebhookRequest) -> str | None:
    """The source named by ``?type=`` or ``X-Registry-Type``, if any (not validated)."""
    value = request.query.get("type") or request.headers.get("x-registry-type")
    return value.strip().lower() if value and value.strip() else None


def handle_webhook(
    request: WebhookRequest, secrets: SecretLookup, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> WebhookResult:
    """Check size, source and secret of a webhook request, then parse its push events.

    Raises :class:`WebhookError` with status 413 (body too large), 400 (unknown type, unreadable or
    unrecognised payload) or 401 (missing or wrong secret or signature). With an explicit type the
    secret is checked before the body is parsed.
    """
    if len(request.body) > max_body_bytes:
        raise WebhookError(f"body larger than {max_body_bytes} bytes", status=413, source=requested_source(request))
    source = requested_source(request)
    if source is not None:
        if source not in SOURCES:
            raise WebhookError(f"unknown webhook type {source!r} (known: {', '.join(SOURCES)})", source=None)
        authenticate(source, request, secrets(source))
        document = decode_json(request.body, source)
    else:
        document = decode_json(request.body, None)
        source = detect_source(document, request.headers)
        if source is None:
            raise WebhookError("payload shape matches no known registry webhook; add ?type=<source>")
        authenticate(source, request, secrets(source))
    return WebhookResult(source, tuple(_dedupe(parse_events(source, document, request.headers))))


def decode_json(body: bytes, source: str | None) -> Any:
    """The JSON document of a body, or a 400 :class:`WebhookError`."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise WebhookError(f"body is not JSON: {e}", source=source) from None


def detect_source(document: Any, headers: Mapping[str, str]) -> str | None:
    """Which registry sent this payload, judged by its shape (``None`` when none fits)."""
    if "x-github-event" in headers:
        return GHCR
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("events"), list):
        return DISTRIBUTION
    if "push_data" in document:
        return DOCKER_HUB_SOURCE
    if "package" in document or "registry_package" in document or "hook_id" in document:
        return GHCR
    if "event_data" in document or str(document.get("type", "")).startswith("harbor."):
        return HARBOR
    if "updated_tags" in document or "docker_url" in document:
        return QUAY
    return None


def authenticate(source: str, request: WebhookRequest, secret: str | None) -> None:
    """Pass, or raise a 401 :class:`WebhookError`; a source without a secret always passes."""
    if not secret:
        return
    key = secret.encode()
    if source in HMAC_SOURCES:
        signature = request.headers.get("x-hub-signature-256", "")
        if not signature:
            raise WebhookError("missing X-Hub-Signature-256 signature", status=401, source=source)
        expected = "sha256=" + hmac.new(key, request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.strip().encode(), expected.encode()):
            raise WebhookError("X-Hub-Signature-256 does not match the body", status=401, source=source)
        return
    offered = list(_offered_tokens(request))
    if not offered:
        raise WebhookError("missing secret (Authorization header or ?secret=)", status=401, source=source)
    # Compare every candidate, so the time taken does not depend on which one matched.
    matched = [hmac.compare_digest(token.encode(), key) for token in offered]
    if not any(matched):
        raise WebhookError("wrong secret", status=401, source=source)


def _offered_tokens(request: WebhookRequest) -> Iterable[str]:
    if request.query.get("secret"):
        yield request.query["secret"]
    for name in ("authorization", "x-gitlab-token"):
        value = request.headers.get(name, "").strip()
        if not value:
            continue
        yield value
        if value.lower().startswith(_TOKEN_SCHEMES):
            yield value.split(" ", 1)[1].strip()


def parse_events(source: str, document: Any, headers: Mapping[str, str]) -> list[PushEvent]:
    """The tag pushes in a decoded payload of ``source``; a 400 :class:`WebhookError` if it is malformed."""
    if not isinstance(document, dict):
        raise WebhookError("payload is not a JSON object", source=source)
    parser = _PARSERS[source]
    try:
        return parser(document, headers)
    except (KeyError, TypeError, AttributeError) as e:
        raise WebhookError(f"malformed {source} payload ({type(e).__name__}: {e})", source=source) from None


def _distribution(document: dict[str, Any], _headers: Mapping[str, str]) -> list[PushEvent]:
    events = document.get("events")
    if not isinstance(events, list):
        raise WebhookError("an envelope must hold an 'events' list", source=DISTRIBUTION)
    found = []
    for event in events:
        if not isinstance(event, dict) or event.get("action") != "push":
            continue
        target = event.get("target") or {}
        tag = target.get("tag") or ""
        repository = target.get("repository") or ""
        if not tag or not repository:
            continue  # blob pushes and pushes by digest carry no tag
        host = (event.get("request") or {}).get("host") or _url_host(target.get("url"))
        found.append(_event(host, repository, tag, target.get("digest")))
    return [e for e in found if e is not None]


def _docker_hub(document: dict[str, Any], _headers: Mapping[str, str]) -> list[PushEvent]:
    repo = document.get("repository") or {}
    name = repo.get("repo_name") or "/".join(p for p in (repo.get("namespace"), repo.get("name")) if p)
    tag = (document.get("push_data") or {}).get("tag") or ""
    if not name:
        raise WebhookError("Docker Hub payload names no repository", source=DOCKER_HUB_SOURCE)
    event = _event(DOCKER_HUB, name, tag, None)
    return [event] if event else []


def _ghcr(document: dict[str, Any], headers: Mapping[str, str]) -> list[PushEvent]:
    kind = headers.get("x-github-event", "package")
    if kind not in ("package", "registry_package"):
        return []  # "ping" when the hook is created, and events we do not use
    package = document.get("package") or document.get("registry_package")
    if package is None and "zen" in document:
        return []  # a ping without its header
    if not isinstance(package, dict):
        raise WebhookError("GitHub package event without a 'package'", source=GHCR)
    if document.get("action") not in ("published", "updated"):
        return []
    if str(package.get("package_type", "")).lower() != "container":
        return []
    owner = (package.get("owner") or {}).get("login") or package.get("namespace") or ""
    name = package.get("name") or ""
    if not owner or not name:
        raise WebhookError("GitHub package event without owner or name", source=GHCR)
    version = package.get("package_version") or {}
    tag_info = (version.get("container_metadata") or {}).get("tag") or {}
    tag = tag_info.get("name") or _tag_of_reference(version.get("package_url") or "")
    version_digest = version.get("version") if str(version.get("version", "")).startswith("sha256:") else None
    digest = tag_info.get("digest") or version_digest
    host = _url_host((package.get("registry") or {}).get("url")) or GHCR
    event = _event(host, f"{owner}/{name}", tag, digest)
    return [event] if event else []


def _quay(document: dict[str, Any], _headers: Mapping[str, str]) -> list[PushEvent]:
    docker_url = document.get("docker_url") or ""
    host, _, path = docker_url.partition("/") if "/" in docker_url else (QUAY, "", "")
    repository = path or document.get("repository") or ""
    if not repository:
        raise WebhookError("Quay payload names no repository", source=QUAY)
    tags = document.get("updated_tags") or []
    # The documented form is a list of tags; early Quay sent a {tag: image id} mapping.
    names = list(tags) if isinstance(tags, list | dict) else []
    return [e for tag in names if isinstance(tag, str) and (e := _event(host, repository, tag, None))]


def _harbor(document: dict[str, Any], _headers: Mapping[str, str]) -> list[PushEvent]:
    if "specversion" in document:  # the CloudEvents format
        kind, data = document.get("type"), document.get("data") or {}
        if kind != "harbor.artifact.pushed":
            return []
    else:
        kind, data = document.get("type"), document.get("event_data") or {}
        if kind not in ("PUSH_ARTIFACT", "pushImage"):
            return []
    repo = data.get("repository") or {}
    repository = repo.get("repo_full_name") or "/".join(p for p in (repo.get("namespace"), repo.get("name")) if p)
    if not repository:
        raise WebhookError("Harbor payload names no repository", source=HARBOR)
    found = []
    for resource in data.get("resources") or []:
        url = resource.get("resource_url") or ""
        host = _url_host(url if "://" in url else f"//{url}") if "/" in url else None
        found.append(_event(host, repository, resource.get("tag") or "", resource.get("digest")))
    return [e for e in found if e is not None]


_PARSERS: dict[str, Callable[[dict[str, Any], Mapping[str, str]], list[PushEvent]]] = {
    DISTRIBUTION: _distribution,
    GITLAB: _distribution,
    DOCKER_HUB_SOURCE: _docker_hub,
    GHCR: _ghcr,
    QUAY: _quay,
    HARBOR: _harbor,
}


def _event(host: str | None, repository: str, tag: str, digest: Any) -> PushEvent | None:
    """A push event, or ``None`` for a tag that is not a valid tag (never an update)."""
    repository = repository.strip().strip("/").lower()
    if not repository or not tag or not is_valid_tag(tag):
        return None
    return PushEvent(
        registry_host=host.strip().lower() if host else None,
        repository=repository,
        tag=tag,
        digest=digest if isinstance(digest, str) and digest else None,
    )


def _url_host(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    return urlsplit(url).netloc or None


def _tag_of_reference(reference: str) -> str:
    """``ghcr.io/owner/app:1.0`` -> ``1.0`` (empty when the reference has no tag)."""
    last = reference.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _dedupe(events: Iterable[PushEvent]) -> list[PushEvent]:
    return list(dict.fromkeys(events))
