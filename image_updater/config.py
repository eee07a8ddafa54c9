"""Settings: frozen dataclasses read from YAML, overridden by ``IMAGE_UPDATER_<KEY>`` and flags.

Unknown keys and wrong types are :class:`ConfigError` naming the key and its line. Values written
``env:NAME`` or ``file:/path`` are resolved when they are used (:func:`resolve_secret`), so rotating a
mounted secret needs no restart and the settings never hold a secret's text.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from image_updater.errors import ConfigError

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(text: str | int | float, *, key: str = "interval", line: int | None = None) -> float:
    """``2m``, ``90s``, ``1h30m``, ``500ms`` or a number of seconds -> seconds."""
    if isinstance(text, bool):
        raise ConfigError(f"{text!r} is not a duration", key=key, line=line)
    if isinstance(text, int | float):
        return float(text)
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    match = _DURATION.match(value)
    if not value or not match or not any(match.groups()):
        raise ConfigError(f"{text!r} is not a duration (use e.g. 30s, 2m, 1h30m)", key=key, line=line)
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def resolve_secret(value: str | None, *, key: str = "") -> str | None:
    """Resolve ``env:NAME`` and ``file:/path`` references; other text is returned as it is."""
    if value is None:
        return None
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set", key=key or None)
        return os.environ[name]
    if value.startswith("file:"):
        path = Path(value[5:])
        try:
            return path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}", key=key or None) from e
    return value


@dataclass(frozen=True)
class ApplicationsSettings:
    """Where Applications come from and which of them are processed."""

    #: ``files`` (manifests in a folder or a Git path) or ``kubernetes``
    source: str = "files"
    #: files: a folder, or ``<git URL>#<path>``
    path: str = "./applications"
    #: kubernetes: namespaces to watch; empty means all
    namespaces: tuple[str, ...] = ()
    #: globs on the Application name; empty means all
    match_names: tuple[str, ...] = ()
    #: a label selector such as ``team=web,tier!=db``
    match_labels: str = ""


@dataclass(frozen=True)
class RegistrySettings:
    """One entry of AIU's ``registries.conf`` (every key of that file is accepted as it is)."""

    #: shown in logs and errors
    name: str = ""
    #: images whose name starts with this (host, or host/path) use this entry; the longest prefix wins
    prefix: str = ""
    #: the registry API root; default ``https://<prefix host>``
    api_url: str = ""
    #: ``env:VAR``, ``file:/path``, ``ext:/path``, ``secret:ns/name#field``, ``pullsecret:ns/name`` or
    #: ``dockerconfig:/path/config.json``
    credentials: str | None = None
    #: seconds after which the credentials are read again; ``None``: never
    credsexpire: float | None = None
    #: namespace put before single-component names on this registry (Docker Hub always uses ``library``)
    defaultns: str = ""
    #: the registry of image names that name none (instead of Docker Hub); at most one entry
    default: bool = False
    #: skip TLS certificate verification
    insecure: bool = False
    #: requests per second; 0 for no limit
    limit: float = 0.0
    #: AIU's ``ping``: ``False`` skips the up-front ``GET /v2/`` (auth is then set up by the first request)
    ping: bool = True
    #: AIU's ``tagsortmode``: ``latest-first`` or ``latest-last`` when the registry lists tags by push
    #: time, which ``newest-build`` then uses instead of fetching metadata; ``none`` (default) otherwise
    tagsortmode: str = "none"
    #: a PEM CA bundle to trust for this registry, besides the system's
    ca_file: str = ""
    #: PEM CA certificates, inline
    ca_data: str = ""


TAG_SORT_MODES = ("none", "latest-first", "latest-last")


@dataclass(frozen=True)
class GitCredential:
    """Credentials for Git remotes whose URL starts with ``url`` (the longest prefix wins).

    Values are ``env:NAME``/``file:/path`` references or the text itself; ``literal`` credentials (read
    from a Secret) are used as they are, never resolved.
    """

    url: str
    #: HTTPS user name
    username: str | None = None
    #: HTTPS password or access token
    password: str | None = None
    #: SSH private key (OpenSSH or PEM text)
    ssh_key: str | None = None
    #: ``known_hosts`` lines the SSH server's host key must be in; without them, the system's files
    known_hosts: str | None = None
    literal: bool = False


@dataclass(frozen=True)
class GitSettings:
    """Git write-back: commit identity, message, signing, remote credentials, the clone cache."""

    #: author and committer of our commits
    user: str = "image-updater"
    email: str = "image-updater@example.com"
    #: template; variables app_name, changes (``- image: old -> new`` lines), change_count, and AIU's
    #: ``{{ .AppName }}`` and ``{{ range .AppChanges }}{{ .Image }} {{ .OldTag }} {{ .NewTag }}{{ end }}``
    commit_message: str = "build: update images of {{ app_name }}\n\n{{ changes }}\n"
    credentials: tuple[GitCredential, ...] = ()
    #: where clones are cached between cycles
    cache_dir: str = ""
    #: how many times a rejected push is retried on the new tip
    push_retries: int = 5
    #: sign commits: a GnuPG key id (``openpgp``), or an SSH private key (``ssh``: a path, or ``env:``/
    #: ``file:`` holding the key); empty: unsigned
    signing_key: str = ""
    #: ``openpgp`` or ``ssh``
    signing_method: str = "openpgp"
    #: add a ``Signed-off-by`` trailer
    sign_off: bool = False
    #: the namespace Argo CD runs in: an Application elsewhere writes ``.argocd-source-<ns>_<app>.yaml``
    argocd_namespace: str = "argocd"

    def credential_for(self, url: str) -> GitCredential | None:
        """The entry with the longest URL prefix matching ``url``."""
        matches = [c for c in self.credentials if url.startswith(c.url)]
        return max(matches, key=lambda c: len(c.url)) if matches else None


@dataclass(frozen=True)
class WebhookSettings:
    """The registry webhook listener."""

    port: int = 8082
    secrets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LogSettings:
    """Log format (``auto``: console on a terminal, JSON otherwise) and level."""

    format: str = "auto"
    level: str = "info"


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, validated."""

    applications: ApplicationsSettings = field(default_factory=ApplicationsSettings)
    interval: float = 120.0
    max_concurrency: int = 10
    registries: tuple[RegistrySettings, ...] = ()
    git: GitSettings = field(default_factory=GitSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    health_port: int = 8080
    log: LogSettings = field(default_factory=LogSettings)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some top-level fields changed."""
        return dataclasses.replace(self, **changes)


_LOG_FORMATS = {"auto", "json", "console"}
_LOG_LEVELS = {"debug", "info", "warning", "error"}
_SOURCES = {"files", "kubernetes"}


class _Reader:
    """Checks a mapping against a dataclass's fields, naming key and line on error."""

    def __init__(self, node: Any, path: str) -> None:
        if node is None:
            node = CommentedMap()
        if not isinstance(node, Mapping):
            raise ConfigError("must be a mapping", key=path or "(top level)", line=_line(node))
        self.node = node
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def line(self, name: str) -> int | None:
        lc = getattr(self.node, "lc", None)
        if lc is not None and name in self.node:
            try:
                return int(lc.key(name)[0]) + 1
            except (KeyError, TypeError):
                return None
        return None

    def check_known(self, allowed: set[str]) -> None:
        for name in self.node:
            if name not in allowed:
                raise ConfigError(
                    f"unknown key (known here: {', '.join(sorted(allowed))})",
                    key=self.key(str(name)),
                    line=self.line(name),
                )

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if name not in self.node or self.node[name] is None:
            return default
        value = self.node[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(
                f"expected {_kind_names(kinds)}, got a boolean", key=self.key(name), line=self.line(name)
            )
        if not isinstance(value, kinds):
            raise ConfigError(
                f"expected {_kind_names(kinds)}, got {type(value).__name__}",
                key=self.key(name),
                line=self.line(name),
            )
        return value

    def get_list(self, name: str, item: type) -> list[Any]:
        value = self.get(name, (list, CommentedSeq), [])
        for index, element in enumerate(value):
            if not isinstance(element, item) or isinstance(element, bool):
                raise ConfigError(
                    f"item {index} must be {_kind_names((item,))}", key=self.key(name), line=self.line(name)
                )
        return list(value)


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        CommentedSeq: "a list",
        dict: "a mapping",
        CommentedMap: "a mapping",
    }
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _line(node: Any) -> int | None:
    lc = getattr(node, "lc", None)
    return int(lc.line) + 1 if lc is not None and lc.line is not None else None


def load_settings(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from a YAML file (``None``: defaults) and apply ``IMAGE_UPDATER_*`` overrides."""
    data: Any = CommentedMap()
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
        try:
            data = YAML(typ="rt").load(text) or CommentedMap()
        except YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    settings = settings_from_mapping(data)
    return apply_env(settings, os.environ if env is None else env)


def settings_from_mapping(data: Any) -> Settings:
    """Validate a parsed config mapping into :class:`Settings`."""
    top = _Reader(data, "")
    top.check_known({f.name for f in dataclasses.fields(Settings)})
    return Settings(
        applications=_applications(
            _Reader(top.get("applications", (dict, CommentedMap), None), "applications")
        ),
        interval=parse_duration(top.get("interval", (str, int, float), 120), line=top.line("interval")),
        max_concurrency=_positive(top, "max_concurrency", 10),
        registries=tuple(
            _registry(_Reader(entry, f"registries[{i}]"))
            for i, entry in enumerate(top.get("registries", (list, CommentedSeq), []))
        ),
        git=_git(_Reader(top.get("git", (dict, CommentedMap), None), "git")),
        webhook=_webhook(_Reader(top.get("webhook", (dict, CommentedMap), None), "webhook")),
        health_port=_port(top, "health_port", 8080),
        log=_log(_Reader(top.get("log", (dict, CommentedMap), None), "log")),
    )


def _positive(reader: _Reader, name: str, default: int) -> int:
    value = reader.get(name, int, default)
    if value < 1:
        raise ConfigError("must be at least 1", key=reader.key(name), line=reader.line(name))
    return int(value)


def _port(reader: _Reader, name: str, default: int) -> int:
    value = reader.get(name, int, default)
    if not 0 <= value <= 65535:
        raise ConfigError(
            "must be a port number (0-65535; 0 disables)", key=reader.key(name), line=reader.line(name)
        )
    return int(value)


def _applications(r: _Reader) -> ApplicationsSettings:
    r.check_known({f.name for f in dataclasses.fields(ApplicationsSettings)})
    source = r.get("source", str, "files")
    if source not in _SOURCES:
        raise ConfigError(
            f"{source!r} is not one of files, kubernetes", key=r.key("source"), line=r.line("source")
        )
    return ApplicationsSettings(
        source=source,
        path=r.get("path", str, "./applications"),
        namespaces=tuple(r.get_list("namespaces", str)),
        match_names=tuple(r.get_list("match_names", str)),
        match_labels=r.get("match_labels", str, ""),
    )


def _registry(r: _Reader) -> RegistrySettings:
    r.check_known({f.name for f in dataclasses.fields(RegistrySettings)})
    prefix = r.get("prefix", str, "")
    api_url = r.get("api_url", str, "")
    if not prefix:
        raise ConfigError("is required", key=r.key("prefix"), line=r.line("prefix") or _line(r.node))
    expire = r.get("credsexpire", (str, int, float), None)
    limit = r.get("limit", (int, float), 0)
    if limit < 0:
        raise ConfigError("must not be negative", key=r.key("limit"), line=r.line("limit"))
    sort_mode = (r.get("tagsortmode", str, "none").strip() or "none").lower()
    if sort_mode not in TAG_SORT_MODES:
        raise ConfigError(
            f"{sort_mode!r} is not one of {', '.join(TAG_SORT_MODES)}",
            key=r.key("tagsortmode"),
            line=r.line("tagsortmode"),
        )
    return RegistrySettings(
        name=r.get("name", str, prefix),
        prefix=prefix,
        api_url=api_url.rstrip("/"),
        credentials=r.get("credentials", str, None),
        credsexpire=None if expire is None else parse_duration(expire, key=r.key("credsexpire")),
        defaultns=r.get("defaultns", str, ""),
        default=_flag(r, "default", False),
        insecure=_flag(r, "insecure", False),
        limit=float(limit),
        ping=_flag(r, "ping", True),
        tagsortmode=sort_mode,
        ca_file=r.get("ca_file", str, ""),
        ca_data=r.get("ca_data", str, ""),
    )


_YAML11_BOOLEANS = {"yes": True, "on": True, "true": True, "no": False, "off": False, "false": False}


def _flag(r: _Reader, name: str, default: bool) -> bool:
    """A boolean, also written the YAML 1.1 way (``yes``/``no``/``on``/``off``) as AIU's examples do."""
    value = r.get(name, (bool, str), default)
    if isinstance(value, str):
        if value.strip().lower() not in _YAML11_BOOLEANS:
            raise ConfigError(f"expected a boolean, got {value!r}", key=r.key(name), line=r.line(name))
        return _YAML11_BOOLEANS[value.strip().lower()]
    return bool(value)


_SIGNING_METHODS = ("openpgp", "ssh")


def _git(r: _Reader) -> GitSettings:
    r.check_known({f.name for f in dataclasses.fields(GitSettings)})
    creds = []
    for i, entry in enumerate(r.get("credentials", (list, CommentedSeq), [])):
        c = _Reader(entry, f"git.credentials[{i}]")
        c.check_known({f.name for f in dataclasses.fields(GitCredential)} - {"literal"})
        url = c.get("url", str, "")
        if not url:
            raise ConfigError("is required", key=c.key("url"), line=_line(entry))
        creds.append(
            GitCredential(
                url=url,
                username=c.get("username", str, None),
                password=c.get("password", str, None),
                ssh_key=c.get("ssh_key", str, None),
                known_hosts=c.get("known_hosts", str, None),
            )
        )
    defaults = GitSettings()
    method = r.get("signing_method", str, defaults.signing_method).strip().lower()
    if method not in _SIGNING_METHODS:
        raise ConfigError(
            f"{method!r} is not one of {', '.join(_SIGNING_METHODS)}",
            key=r.key("signing_method"),
            line=r.line("signing_method"),
        )
    retries = r.get("push_retries", int, defaults.push_retries)
    if retries < 0:
        raise ConfigError("must not be negative", key=r.key("push_retries"), line=r.line("push_retries"))
    return GitSettings(
        user=r.get("user", str, defaults.user),
        email=r.get("email", str, defaults.email),
        commit_message=r.get("commit_message", str, defaults.commit_message),
        credentials=tuple(creds),
        cache_dir=r.get("cache_dir", str, ""),
        push_retries=retries,
        signing_key=r.get("signing_key", str, ""),
        signing_method=method,
        sign_off=r.get("sign_off", bool, False),
        argocd_namespace=r.get("argocd_namespace", str, defaults.argocd_namespace),
    )


def _webhook(r: _Reader) -> WebhookSettings:
    r.check_known({f.name for f in dataclasses.fields(WebhookSettings)})
    secrets = r.get("secrets", (dict, CommentedMap), {})
    for name, value in secrets.items():
        if not isinstance(value, str):
            raise ConfigError("must be a string", key=r.key(f"secrets.{name}"), line=r.line("secrets"))
    return WebhookSettings(port=_port(r, "port", 8082), secrets={str(k): str(v) for k, v in secrets.items()})


def _log(r: _Reader) -> LogSettings:
    r.check_known({f.name for f in dataclasses.fields(LogSettings)})
    fmt = r.get("format", str, "auto")
    level = r.get("level", str, "info").lower()
    if fmt not in _LOG_FORMATS:
        raise ConfigError(
            f"{fmt!r} is not one of auto, json, console", key=r.key("format"), line=r.line("format")
        )
    if level not in _LOG_LEVELS:
        raise ConfigError(f"{level!r} is not a log level", key=r.key("level"), line=r.line("level"))
    return LogSettings(format=fmt, level=level)


#: IMAGE_UPDATER_<KEY> -> (setter). Only scalar settings can be overridden from the environment.
def apply_env(settings: Settings, env: Mapping[str, str]) -> Settings:
    """Apply ``IMAGE_UPDATER_*`` environment overrides to scalar settings."""
    prefix = "IMAGE_UPDATER_"
    apps = settings.applications
    updates: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :].lower()
        if key == "interval":
            updates["interval"] = parse_duration(value, key=name)
        elif key == "max_concurrency":
            updates["max_concurrency"] = _int_env(name, value)
        elif key == "health_port":
            updates["health_port"] = _int_env(name, value)
        elif key == "log_format":
            updates["log"] = dataclasses.replace(updates.get("log", settings.log), format=value)
        elif key == "log_level":
            updates["log"] = dataclasses.replace(updates.get("log", settings.log), level=value.lower())
        elif key in ("applications_source", "applications_path", "applications_match_labels"):
            field_name = key.removeprefix("applications_")
            apps = dataclasses.replace(apps, **{field_name: value})
            updates["applications"] = apps
        elif key == "git_user":
            updates["git"] = dataclasses.replace(updates.get("git", settings.git), user=value)
        elif key == "git_email":
            updates["git"] = dataclasses.replace(updates.get("git", settings.git), email=value)
        elif key == "git_cache_dir":
            updates["git"] = dataclasses.replace(updates.get("git", settings.git), cache_dir=value)
    return dataclasses.replace(settings, **updates) if updates else settings


def _int_env(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{value!r} is not an integer", key=name) from None
