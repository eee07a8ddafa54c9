"""Credentials kept in Kubernetes Secrets, read on demand.

- Registry credentials (``pullsecret:<namespace>/<name>``, ``secret:<namespace>/<name>#<field>``):
  :meth:`SecretCredentials.secret_field` reads the field, as the ``CredentialsProvider`` of
  :func:`image_updater.adapters.registry.credentials.resolve_credentials`, which parses the Docker
  config or the ``username:password`` it holds.
- ``git:secret:<namespace>/<name>`` (or ``secret:<namespace>/<name>``): Git credentials as Argo CD
  repository secrets hold them: ``username`` and ``password``, or ``sshPrivateKey``.

Every secret text read is registered with :func:`image_updater.logsetup.register_secret`, so it
never shows in a log line; errors name the Secret and the field, never a value.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

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
from image_updater.config import GitCredential
from image_updater.errors import ImageUpdaterError, WriteBackError
from image_updater.logsetup import register_secret


def parse_secret_ref(spec: str, *, prefix: str) -> tuple[str, str, str | None]:
    """``<prefix>ns/name[#field]`` -> (namespace, name, field); ``ValueError`` naming the mistake."""
    if not spec.startswith(prefix):
        raise ValueError(f"{spec!r} does not start with {prefix!r}")
    ref, _, field = spec[len(prefix) :].partition("#")
    namespace, sep, name = ref.strip().partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(f"{spec!r}: expected {prefix}<namespace>/<name>")
    return namespace, name, field.strip() or None


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
