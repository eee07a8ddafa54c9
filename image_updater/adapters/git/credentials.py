"""The environment of one Git process: identity, HTTPS and SSH credentials, commit signing.

Secrets never enter a URL, an argument list, a config file in the clone or a log line:

- HTTPS: user name and password (or token) reach Git through a ``GIT_ASKPASS`` helper that prints them
  from the environment of that one Git process.
- SSH: the private key is written to a private temporary file (mode 0600) that lives as long as the Git
  process, and ``GIT_SSH_COMMAND`` points ``ssh`` at it with ``IdentitiesOnly``, ``BatchMode`` and
  ``StrictHostKeyChecking=yes``: a host whose key is not in the given ``known_hosts`` (or, without one,
  in the system's) is refused, never trusted on first use.
- Signing: an SSH signing key from ``env:``/``file:`` is written the same way; a GnuPG key id is passed
  as ``user.signingkey``.

Every secret resolved here is registered for log redaction.
"""

from __future__ import annotations

import base64
import shlex
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from image_updater.config import GitCredential, resolve_secret
from image_updater.logsetup import register_secret

_ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$IMAGE_UPDATER_GIT_USERNAME" ;;
  *) printf '%s\\n' "$IMAGE_UPDATER_GIT_PASSWORD" ;;
esac
"""


class GitCredentialSource(Protocol):
    """Where ``git:secret:<namespace>/<name>`` credentials come from (Kubernetes Secrets, in the
    service): Argo CD repository-secret fields ``username``/``password`` or ``sshPrivateKey``."""

    async def git(self, spec: str, *, url: str = "") -> GitCredential: ...


@dataclass(frozen=True)
class Identity:
    """Author and committer of our commits."""

    name: str
    email: str


@dataclass(frozen=True)
class Signing:
    """How commits are signed: ``key`` (empty: not signed) by ``method`` (``openpgp`` or ``ssh``);
    ``sign_off`` adds a ``Signed-off-by`` trailer."""

    key: str = ""
    method: str = "openpgp"
    sign_off: bool = False


@dataclass
class GitProcessEnv:
    """What one Git invocation needs: environment variables and ``-c`` options."""

    env: dict[str, str] = field(default_factory=dict)
    config: list[str] = field(default_factory=list)


def _secret(value: str | None, credential: GitCredential, key: str) -> str | None:
    text = value if credential.literal else resolve_secret(value, key=key)
    register_secret(text)
    return text


def _private_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.touch(mode=stat.S_IRUSR | stat.S_IWUSR)
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path


def _ssh_command(credential: GitCredential, folder: Path) -> str:
    options = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if credential.ssh_key:
        key = _secret(credential.ssh_key, credential, "git.credentials.ssh_key") or ""
        options += ["-i", str(_private_file(folder, "id", key)), "-o", "IdentitiesOnly=yes"]
    if credential.known_hosts:
        hosts = _secret(credential.known_hosts, credential, "git.credentials.known_hosts") or ""
        options += ["-o", f"UserKnownHostsFile={_private_file(folder, 'known_hosts', hosts)}"]
        options += ["-o", "GlobalKnownHostsFile=/dev/null"]
    return "ssh " + " ".join(shlex.quote(option) for option in options)


def _signing_config(signing: Signing, folder: Path) -> list[str]:
    if not signing.key:
        return []
    if signing.method == "ssh":
        key = signing.key
        if key.startswith(("env:", "file:")):
            text = resolve_secret(key, key="git.signing_key") or ""
            register_secret(text)
            key = str(_private_file(folder, "signing_key", text))
        return ["gpg.format=ssh", f"user.signingkey={key}", "commit.gpgsign=true"]
    return ["gpg.format=openpgp", f"user.signingkey={signing.key}", "commit.gpgsign=true"]


def _preemptive_auth(env: dict[str, str], url: str) -> None:
    """Send the credentials with the first request to ``url`` (``http.<url>.extraHeader``, given in the
    environment like the askpass helper's values, never on a command line or in a file).

    Git otherwise sends every fetch and push unauthenticated first and runs the askpass helper twice
    after the 401: per repository and cycle, two HTTP round trips and four processes more (and as
    many ``git-http-backend`` runs on the server). The helper stays set: a server that wants another
    scheme still gets the credentials the usual way. The header is scoped to the remote's URL.
    """
    user, password = env["IMAGE_UPDATER_GIT_USERNAME"], env["IMAGE_UPDATER_GIT_PASSWORD"]
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    register_secret(token)
    count = int(env.get("GIT_CONFIG_COUNT", "0") or "0")
    env[f"GIT_CONFIG_KEY_{count}"] = f"http.{url}.extraHeader"
    env[f"GIT_CONFIG_VALUE_{count}"] = f"Authorization: Basic {token}"
    env["GIT_CONFIG_COUNT"] = str(count + 1)


@contextmanager
def git_process_env(
    credential: GitCredential | None,
    identity: Identity,
    signing: Signing | None = None,
    base: Mapping[str, str] | None = None,
    *,
    url: str = "",
) -> Iterator[GitProcessEnv]:
    """The environment and ``-c`` options of one Git process; temporary files live as long as the
    context. With ``url`` (the remote's, over HTTP(S)), the user name and password also go with the
    first request (see :func:`_preemptive_auth`)."""
    env = dict(base or {})
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": identity.name,
            "GIT_AUTHOR_EMAIL": identity.email,
            "GIT_COMMITTER_NAME": identity.name,
            "GIT_COMMITTER_EMAIL": identity.email,
        }
    )
    with tempfile.TemporaryDirectory(prefix="image-updater-git-") as tmp:
        folder = Path(tmp)
        if credential is not None and (credential.username or credential.password):
            script = folder / "askpass.sh"
            script.write_text(_ASKPASS)
            script.chmod(stat.S_IRWXU)
            env["GIT_ASKPASS"] = str(script)
            env["IMAGE_UPDATER_GIT_USERNAME"] = _secret(credential.username, credential, "git.credentials") or ""
            env["IMAGE_UPDATER_GIT_PASSWORD"] = _secret(credential.password, credential, "git.credentials") or ""
            if url.lower().startswith(("http://", "https://")):
                _preemptive_auth(env, url)
        if credential is not None and (credential.ssh_key or credential.known_hosts):
            env["GIT_SSH_COMMAND"] = _ssh_command(credential, folder)
        else:
            env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes")
        yield GitProcessEnv(env=env, config=_signing_config(signing or Signing(), folder))
