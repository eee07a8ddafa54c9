"""Registry credentials from the places AIU reads them, and from Docker ``config.json`` files.

A credentials value (a registry's ``credentials``, an image's ``pull-secret``, ``test --credentials``)
is one of::

    env:VAR                  "user:password" in an environment variable
    file:/path               "user:password" in a file
    ext:/path/to/program     a program (run with no shell, 10 s timeout) printing "user:password"
    secret:ns/name#field     "user:password" in a field of a Kubernetes Secret
    pullsecret:ns/name       a Kubernetes image pull Secret (its .dockerconfigjson, or the older .dockercfg)
    dockerconfig:/path       a Docker config.json file (beyond AIU), e.g. ~/.docker/config.json

``secret:`` and ``pullsecret:`` go through a :class:`CredentialsProvider`, which the Kubernetes source
supplies; without one they are an error that says so. A Secret the provider cannot read is a
:class:`RegistryAuthError` naming the Secret, never showing its content.

Docker config entries are matched to the image's registry by host, whatever form the key has:
``https://index.docker.io/v1/`` (what ``kubectl create secret docker-registry`` writes by default),
``docker.io``, ``registry-1.docker.io`` and ``registry.hub.docker.com`` all mean Docker Hub, so a pull
secret made the usual way works for ``docker.io`` images. (AIU compares the key with the registry's API
URL as a string prefix, so that key never matches ``https://registry-1.docker.io`` there.) A key with a
path (``quay.io/team``, as Podman writes) applies to repositories under it; the longest match wins.
When no entry matches, the error lists the keys the config has (hosts, never credentials).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from image_updater.adapters.registry.auth import Credentials
from image_updater.config import resolve_secret
from image_updater.errors import ImageUpdaterError, RegistryAuthError, RegistryError
from image_updater.logsetup import register_secret
from image_updater.model.ref import ImageName, normalize_registry_host

__all__ = [
    "LEGACY_PULL_SECRET_FIELD",
    "PULL_SECRET_FIELD",
    "CredentialsProvider",
    "credentials_from_docker_config",
    "resolve_credentials",
    "run_program",
]

EXT_TIMEOUT_S = 10.0
PULL_SECRET_FIELD = ".dockerconfigjson"
#: the field of the older ``kubernetes.io/dockercfg`` pull Secrets (the ``auths`` entries at the top level)
LEGACY_PULL_SECRET_FIELD = ".dockercfg"
_KINDS = ("env", "file", "ext", "secret", "pullsecret", "dockerconfig")


class CredentialsProvider(Protocol):
    """Reads fields of Kubernetes Secrets (the Kubernetes source implements it)."""

    async def secret_field(self, namespace: str, name: str, field: str) -> str:
        """The decoded text of ``field`` in Secret ``namespace/name``; raise an ImageUpdaterError if absent."""
        ...


async def resolve_credentials(
    spec: str | None,
    *,
    image: ImageName,
    api_host: str | None = None,
    provider: CredentialsProvider | None = None,
    run: Callable[..., Any] | None = None,
    what: str = "credentials",
) -> Credentials | None:
    """Resolve a credentials value for ``image`` (see the module docstring); ``None`` for no value.

    ``api_host`` is the host of the registry's ``api_url`` when it differs from the image's registry
    (Docker config keys may name either). ``what`` names the setting in errors (``pull-secret``).
    ``run`` runs an ``ext:`` program (default :func:`run_program`). Secrets read are registered for log
    redaction.
    """
    text = (spec or "").strip()
    if not text:
        return None
    kind, sep, rest = text.partition(":")
    if not sep or kind not in _KINDS or not rest:
        raise RegistryAuthError(
            f"{what} {_shown(text)!r} must be one of {', '.join(k + ':' for k in _KINDS)}", registry=image.registry
        )
    try:
        if kind == "pullsecret":
            namespace, name = _secret_name(rest, what, image)
            config = await _pull_secret_config(_provider(provider, kind, what, image), namespace, name)
            return credentials_from_docker_config(config, image, api_host=api_host, source=f"pull secret {rest}")
        if kind == "dockerconfig":
            path = Path(rest).expanduser()
            try:
                config = path.read_text()
            except OSError as e:
                raise RegistryAuthError(f"{what}: cannot read {path}: {e.strerror}", registry=image.registry) from e
            return credentials_from_docker_config(config, image, api_host=api_host, source=str(path))
        if kind == "secret":
            ref, hash_sign, field = rest.partition("#")
            if not hash_sign or not field:
                raise RegistryAuthError(
                    f"{what} {text!r} must read secret:<namespace>/<name>#<field>", registry=image.registry
                )
            namespace, name = _secret_name(ref, what, image)
            value = await _provider(provider, kind, what, image).secret_field(namespace, name, field)
            # stripped as file: and ext: are: a value made with --from-file ends in a newline
            return _user_password(value.strip(), f"{what}: Secret {namespace}/{name} field {field!r}", image)
        if kind == "ext":
            value = await asyncio.to_thread(_run_program, rest, run or run_program, what, image)
        else:
            value = resolve_secret(text, key=what) or ""
    except RegistryError:
        raise
    except ImageUpdaterError as e:  # a ConfigError from env:/file:, or a Secret the provider cannot read
        raise RegistryAuthError(e.message, registry=image.registry) from e
    return _user_password(value, what, image)


async def _pull_secret_config(provider: CredentialsProvider, namespace: str, name: str) -> str:
    """The Docker config text of a pull Secret: ``.dockerconfigjson``, else the older ``.dockercfg``.

    Only when the first read fails is the second asked (one more API request for a Secret that is
    missing or unreadable); if both fail, the first error is the one raised.
    """
    try:
        return await provider.secret_field(namespace, name, PULL_SECRET_FIELD)
    except ImageUpdaterError as e:
        first = e
    with contextlib.suppress(ImageUpdaterError):
        return await provider.secret_field(namespace, name, LEGACY_PULL_SECRET_FIELD)
    raise first


def credentials_from_docker_config(
    text: str, image: ImageName, *, api_host: str | None = None, source: str = "Docker config"
) -> Credentials:
    """The credentials a Docker ``config.json`` (or legacy ``.dockercfg``) holds for ``image``."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RegistryAuthError(f"{source} is not JSON: {e}", registry=image.registry) from e
    if not isinstance(data, Mapping):
        raise RegistryAuthError(f"{source} is not a JSON object", registry=image.registry)
    auths = data.get("auths") if "auths" in data else data  # .dockercfg: the entries sit at the top
    if not isinstance(auths, Mapping):
        raise RegistryAuthError(f"{source}: 'auths' is not an object", registry=image.registry)
    hosts = {image.registry} | ({normalize_registry_host(api_host)} if api_host else set())
    best: tuple[int, str, Mapping[str, Any]] | None = None
    keys: set[str] = set()
    for key, entry in auths.items():
        if not isinstance(key, str) or not isinstance(entry, Mapping):
            continue
        host, path = _split_key(key)
        keys.add(f"{host}/{path}" if path else host)
        if host not in hosts or not _under(path, image.repository):
            continue
        if best is None or len(path) > best[0]:
            best = (len(path), key, entry)
    if best is None:
        helpers = data.get("credHelpers")
        helper = helpers.get(image.registry) if isinstance(helpers, Mapping) else None
        hint = f"; it names the credential helper {helper!r}, which is not supported" if helper else ""
        has = ", ".join(sorted(keys)) or "none"
        raise RegistryAuthError(
            f"{source} has no entry for {image.registry} (it has: {has}){hint}", registry=image.registry
        )
    return _entry_credentials(best[1], best[2], source, image)


def _entry_credentials(key: str, entry: Mapping[str, Any], source: str, image: ImageName) -> Credentials:
    user, password = entry.get("username"), entry.get("password")
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            decoded = base64.b64decode(entry["auth"], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise RegistryAuthError(f"{source}: the 'auth' of {key!r} is not base64", registry=image.registry) from e
        user, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryAuthError(f"{source}: the 'auth' of {key!r} is not user:password", registry=image.registry)
    if not isinstance(user, str) or not isinstance(password, str) or not user:
        if entry.get("identitytoken"):
            detail = "an identity token, which is not supported"
        else:
            detail = "no password" if isinstance(user, str) and user else "no username"
        raise RegistryAuthError(f"{source}: the entry {key!r} has {detail}", registry=image.registry)
    register_secret(password)
    return Credentials(user, password)


def _split_key(key: str) -> tuple[str, str]:
    """``https://index.docker.io/v1/`` -> (``docker.io``, ``""``); ``quay.io/team`` -> (``quay.io``, ``team``)."""
    text = key.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
    host, _, path = text.partition("/")
    path = path.strip("/")
    if path in ("v1", "v2") or path.startswith(("v1/", "v2/")):
        path = ""
    return normalize_registry_host(host), path


def _under(path: str, repository: str) -> bool:
    return not path or repository == path or repository.startswith(path + "/")


def _secret_name(text: str, what: str, image: ImageName) -> tuple[str, str]:
    namespace, slash, name = text.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise RegistryAuthError(f"{what}: {text!r} must be <namespace>/<name>", registry=image.registry)
    return namespace, name


def _provider(provider: CredentialsProvider | None, kind: str, what: str, image: ImageName) -> CredentialsProvider:
    if provider is None:
        raise RegistryAuthError(
            f"{what} {kind}: reads a Kubernetes Secret, which needs the kubernetes source", registry=image.registry
        )
    return provider


def run_program(command: list[str], *, timeout: float, **_options: Any) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (no shell) in a session of its own, capturing its output as text.

    On timeout the whole process group is killed, not only the program: a script's own children
    (``sleep``, a hung ``curl``) would otherwise outlive it, one more at every cycle. Raises
    :class:`subprocess.TimeoutExpired` then, as :func:`subprocess.run` does.
    """
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _run_program(command_text: str, run: Callable[..., Any], what: str, image: ImageName) -> str:
    command = shlex.split(command_text)
    if not command or not os.path.isabs(command[0]):
        raise RegistryAuthError(f"{what} ext: needs an absolute path to a program", registry=image.registry)
    try:
        done = run(command, capture_output=True, text=True, timeout=EXT_TIMEOUT_S, check=False, shell=False)
    except subprocess.TimeoutExpired as e:
        raise RegistryAuthError(
            f"credentials program {command[0]!r} did not finish within {EXT_TIMEOUT_S:g} s", registry=image.registry
        ) from e
    except (OSError, subprocess.SubprocessError) as e:
        raise RegistryAuthError(
            f"credentials program {command[0]!r} could not run: {e}", registry=image.registry
        ) from e
    if done.returncode != 0:
        raise RegistryAuthError(
            f"credentials program {command[0]!r} exited with {done.returncode}", registry=image.registry
        )
    return str(done.stdout).strip()


def _user_password(text: str, what: str, image: ImageName) -> Credentials:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise RegistryAuthError(f"{what} must read as 'username:password'", registry=image.registry)
    register_secret(password)
    register_secret(text)
    return Credentials(user, password)


def _shown(text: str) -> str:
    """A credentials value safe to show: a bare ``user:password`` would otherwise end up in the error."""
    kind = text.partition(":")[0]
    return text if kind in _KINDS else "<hidden>"
