"""Credentials kept in Kubernetes Secrets, read on demand.

- ``pullsecret:<namespace>/<name>``: an image pull secret (``kubernetes.io/dockerconfigjson``, or the
  older ``kubernetes.io/dockercfg``); the ``auths`` entry for the registry's host is used. Docker Hub
  is keyed in many ways (``https://index.docker.io/v1/``, ``docker.io``, ``registry-1.docker.io``,
  ``index.docker.io``): they all mean the same registry.
- ``secret:<namespace>/<name>#<field>``: one field holding ``username:password``.
- ``git:secret:<namespace>/<name>`` (or ``secret:<namespace>/<name>``): Git credentials as Argo CD
  repository secrets hold them: ``username`` and ``password``, or ``sshPrivateKey``.

Every secret text read is registered with :func:`image_updater.logsetup.register_secret`, so it
never shows in a log line; errors name the Secret and the field, never a value.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.core_v1 import Secret

from image_updater.adapters.k8s.client import (
    API_ERRORS,
    DEFAULT_RETRY,
    ApiRetry,
    Sleep,
    call_api,
    status_code,
    translate,
)
from image_updater.adapters.registry.auth import Credentials
from image_updater.config import GitCredential
from image_updater.errors import ImageUpdaterError, RegistryAuthError, WriteBackError
from image_updater.logsetup import register_secret
from image_updater.model.ref import normalize_registry_host


def registry_host(text: str) -> str:
    """The host a registry is known by: ``https://index.docker.io/v1/`` -> ``docker.io``,
    ``HTTPS://Quay.io/`` -> ``quay.io``, ``127.0.0.1:5000`` stays as it is."""
    host = text.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    return normalize_registry_host(host.split("/", 1)[0])


def parse_secret_ref(spec: str, *, prefix: str) -> tuple[str, str, str | None]:
    """``<prefix>ns/name[#field]`` -> (namespace, name, field); ``ValueError`` naming the mistake."""
    if not spec.startswith(prefix):
        raise ValueError(f"{spec!r} does not start with {prefix!r}")
    ref, _, field = spec[len(prefix) :].partition("#")
    namespace, sep, name = ref.strip().partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(f"{spec!r}: expected {prefix}<namespace>/<name>")
    return namespace, name, field.strip() or None


def credentials_from_docker_config(config: Mapping[str, Any], registry: str) -> Credentials | None:
    """The credentials for ``registry`` in a Docker config (``{"auths": {...}}``, or the bare map of the
    old ``.dockercfg``), or ``None`` when it has no entry for that host.

    An entry's ``auth`` (base64 ``user:password``) wins over its ``username``/``password``, as in
    Docker. Raises ``ValueError`` when the entry exists but holds no usable credentials.
    """
    auths = config.get("auths", config)
    if not isinstance(auths, Mapping):
        raise ValueError("the Docker config has no 'auths' map")
    wanted = registry_host(registry)
    entry = next((v for k, v in auths.items() if registry_host(str(k)) == wanted), None)
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise ValueError(f"the entry for {wanted} is not a map")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise ValueError(f"the 'auth' of the entry for {wanted} is not base64 'user:password'") from e
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise ValueError(f"the 'auth' of the entry for {wanted} is not 'user:password'")
    else:
        username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
        if not username or not password:
            raise ValueError(f"the entry for {wanted} has neither 'auth' nor 'username' and 'password'")
    register_secret(password)
    if entry.get("auth"):
        register_secret(str(entry["auth"]))
    return Credentials(username, password)


class SecretCredentials:
    """Reads credentials from Secrets through the Kubernetes API (nothing is cached here)."""

    def __init__(self, client: AsyncClient, *, retry: ApiRetry = DEFAULT_RETRY, sleep: Sleep = asyncio.sleep) -> None:
        self._client = client
        self._retry = retry
        self._sleep = sleep

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """The decoded ``data`` of a Secret, every value registered for redaction.

        Raises ``LookupError`` (not found or forbidden) or ``ValueError`` (undecodable), with
        messages naming the Secret; API failures are translated to :class:`ImageUpdaterError`.
        """
        try:
            secret = await call_api(
                lambda: self._client.get(Secret, name, namespace=namespace), retry=self._retry, sleep=self._sleep
            )
        except API_ERRORS as e:
            if status_code(e) in (403, 404):
                raise LookupError(
                    translate(e, f"cannot read Secret {namespace}/{name}", ImageUpdaterError).message
                ) from e
            raise translate(e, f"cannot read Secret {namespace}/{name}", ImageUpdaterError) from e
        decoded: dict[str, str] = {}
        for key, value in (secret.data or {}).items():
            try:
                text = base64.b64decode(str(value), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as e:
                raise ValueError(f"Secret {namespace}/{name} field {key!r} is not base64 UTF-8 text") from e
            register_secret(text)
            decoded[key] = text
        return decoded

    async def secret_field(self, namespace: str, name: str, field: str) -> str:
        """The decoded text of one field of a Secret (the registry credentials' ``CredentialsProvider``).

        Raises :class:`ImageUpdaterError` naming the Secret when it or the field is missing.
        """
        try:
            data = await self.read_secret(namespace, name)
        except (LookupError, ValueError) as e:
            raise ImageUpdaterError(str(e)) from e
        if field not in data:
            raise ImageUpdaterError(f"Secret {namespace}/{name} has no field {field!r}")
        return data[field]

    async def registry(self, spec: str, *, registry: str) -> Credentials:
        """Credentials for ``registry`` from ``pullsecret:ns/name`` or ``secret:ns/name#field``.

        Raises :class:`RegistryAuthError` naming the registry and the Secret.
        """
        try:
            if spec.startswith("pullsecret:"):
                return await self._pull_secret(spec, registry)
            if spec.startswith("secret:"):
                return await self._field_secret(spec)
            raise ValueError(f"{spec.split(':', 1)[0]!r} credentials are not read from Kubernetes Secrets")
        except (LookupError, ValueError) as e:
            raise RegistryAuthError(f"credentials {spec}: {e}", registry=registry) from e
        except ImageUpdaterError as e:
            raise RegistryAuthError(f"credentials {spec}: {e.message}", registry=registry) from e

    async def _pull_secret(self, spec: str, registry: str) -> Credentials:
        namespace, name, _ = parse_secret_ref(spec, prefix="pullsecret:")
        data = await self.read_secret(namespace, name)
        raw_key = ".dockerconfigjson" if ".dockerconfigjson" in data else ".dockercfg"
        if raw_key not in data:
            raise ValueError(f"Secret {namespace}/{name} has no .dockerconfigjson (is it a pull secret?)")
        try:
            config = json.loads(data[raw_key])
        except json.JSONDecodeError as e:
            raise ValueError(f"Secret {namespace}/{name} {raw_key} is not JSON") from e
        if not isinstance(config, Mapping):
            raise ValueError(f"Secret {namespace}/{name} {raw_key} is not a JSON object")
        try:
            found = credentials_from_docker_config(config, registry)
        except ValueError as e:
            raise ValueError(f"Secret {namespace}/{name}: {e}") from e
        if found is None:
            hosts = sorted({registry_host(str(k)) for k in (config.get("auths", config) or {})})
            raise LookupError(
                f"Secret {namespace}/{name} has no entry for {registry_host(registry)} (it has: {', '.join(hosts)})"
            )
        return found

    async def _field_secret(self, spec: str) -> Credentials:
        namespace, name, field = parse_secret_ref(spec, prefix="secret:")
        if field is None:
            raise ValueError(f"{spec!r}: name the field, secret:<namespace>/<name>#<field>")
        data = await self.read_secret(namespace, name)
        if field not in data:
            raise LookupError(f"Secret {namespace}/{name} has no field {field!r}")
        username, sep, password = data[field].strip().partition(":")
        if not sep or not username:
            raise ValueError(f"Secret {namespace}/{name} field {field!r} is not 'username:password'")
        register_secret(password)
        return Credentials(username, password)

    async def git(self, spec: str, *, url: str = "") -> GitCredential:
        """Git credentials from ``git:secret:ns/name`` (or ``secret:ns/name``), for the remote ``url``.

        Raises :class:`WriteBackError` naming the Secret when it is missing or holds neither
        ``username``/``password`` nor ``sshPrivateKey``.
        """
        ref = spec[4:] if spec.startswith("git:") else spec
        try:
            namespace, name, _ = parse_secret_ref(ref, prefix="secret:")
            data = await self.read_secret(namespace, name)
        except (LookupError, ValueError) as e:
            raise WriteBackError(f"git credentials {spec}: {e}") from e
        except ImageUpdaterError as e:
            raise WriteBackError(f"git credentials {spec}: {e.message}") from e
        key = data.get("sshPrivateKey", "").strip()
        username, password = data.get("username", ""), data.get("password", "")
        if key:
            return GitCredential(url=data.get("url") or url, ssh_key=key + "\n", username=username or None)
        if username and password:
            return GitCredential(url=data.get("url") or url, username=username, password=password)
        raise WriteBackError(
            f"git credentials {spec}: Secret {namespace}/{name} has neither 'username' and 'password' "
            "nor 'sshPrivateKey'"
        )
