"""Settings read from YAML, overridden by ``IMAGE_UPDATER_<KEY>`` and flags.

The dataclasses live in :mod:`image_updater.settings` and are re-exported here.

Unknown keys and wrong types are :class:`ConfigError` naming the key and its line. Values written
``env:NAME`` or ``file:/path`` are resolved when they are used (:func:`resolve_secret`), so rotating a
mounted secret needs no restart and the settings never hold a secret's text.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from image_updater.confread import Reader, node_line, parse_duration, resolve_secret
from image_updater.errors import ConfigError
from image_updater.settings import (
    DEFAULT_WEBHOOK_COALESCE_S,
    DEFAULT_WEBHOOK_MAX_BODY_BYTES,
    TAG_SORT_MODES,
    ApplicationsSettings,
    GitCredential,
    GitSettings,
    KubernetesSettings,
    LeaderElectionSettings,
    LogSettings,
    RegistrySettings,
    Settings,
    WebhookSettings,
)

__all__ = [
    "ApplicationsSettings",
    "GitCredential",
    "GitSettings",
    "KubernetesSettings",
    "LeaderElectionSettings",
    "LogSettings",
    "RegistrySettings",
    "Settings",
    "WebhookSettings",
    "apply_env",
    "check_lease_timings",
    "load_settings",
    "parse_duration",
    "resolve_secret",
    "settings_from_mapping",
]

#: the reader of one config mapping (kept under this name for the registries.conf reader)
_Reader = Reader

_LOG_FORMATS = {"auto", "json", "console"}
_LOG_LEVELS = {"debug", "info", "warning", "error"}
_SOURCES = {"files", "kubernetes"}

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
    top = Reader(data, "")
    top.check_known({f.name for f in dataclasses.fields(Settings)})
    return Settings(
        applications=_applications(top.section("applications")),
        interval=parse_duration(top.get("interval", (str, int, float), 120), line=top.line("interval")),
        max_concurrency=top.positive("max_concurrency", 10),
        registries=tuple(
            _registry(Reader(entry, f"registries[{i}]"))
            for i, entry in enumerate(top.get("registries", (list, CommentedSeq), []))
        ),
        git=_git(top.section("git")),
        webhook=_webhook(top.section("webhook")),
        health_port=top.port("health_port", 8080),
        listen_address=top.get("listen_address", str, "0.0.0.0").strip() or "0.0.0.0",
        kubernetes=_kubernetes(top.section("kubernetes")),
        leader_election=_leader_election(top.section("leader_election")),
        log=_log(top.section("log")),
    )


def _applications(r: Reader) -> ApplicationsSettings:
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


def _registry(r: Reader) -> RegistrySettings:
    r.check_known({f.name for f in dataclasses.fields(RegistrySettings)})
    prefix = r.get("prefix", str, "")
    api_url = r.get("api_url", str, "")
    if not prefix:
        raise ConfigError("is required", key=r.key("prefix"), line=r.line("prefix") or node_line(r.node))
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
        default=r.flag("default", False),
        insecure=r.flag("insecure", False),
        limit=float(limit),
        ping=r.flag("ping", True),
        tagsortmode=sort_mode,
        ca_file=r.get("ca_file", str, ""),
        ca_data=r.get("ca_data", str, ""),
    )


_SIGNING_METHODS = ("openpgp", "ssh")


def _git(r: Reader) -> GitSettings:
    r.check_known({f.name for f in dataclasses.fields(GitSettings)})
    creds = []
    for i, entry in enumerate(r.get("credentials", (list, CommentedSeq), [])):
        c = Reader(entry, f"git.credentials[{i}]")
        c.check_known({f.name for f in dataclasses.fields(GitCredential)} - {"literal"})
        url = c.get("url", str, "")
        if not url:
            raise ConfigError("is required", key=c.key("url"), line=node_line(entry))
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


def _webhook(r: Reader) -> WebhookSettings:
    r.check_known({f.name for f in dataclasses.fields(WebhookSettings)})
    secrets = r.get("secrets", (dict, CommentedMap), {})
    for name, value in secrets.items():
        if not isinstance(value, str):
            raise ConfigError("must be a string", key=r.key(f"secrets.{name}"), line=r.line("secrets"))
    max_body = r.positive("max_body_bytes", DEFAULT_WEBHOOK_MAX_BODY_BYTES)
    coalesce = parse_duration(
        r.get("coalesce", (str, int, float), DEFAULT_WEBHOOK_COALESCE_S), key=r.key("coalesce"), line=r.line("coalesce")
    )
    return WebhookSettings(
        port=r.port("port", 8082),
        secrets={str(k): str(v) for k, v in secrets.items()},
        coalesce=coalesce,
        max_body_bytes=max_body,
    )


def _kubernetes(r: Reader) -> KubernetesSettings:
    r.check_known({f.name for f in dataclasses.fields(KubernetesSettings)})
    return KubernetesSettings(
        kubeconfig=r.get("kubeconfig", str, "").strip(), context=r.get("context", str, "").strip()
    )


def _leader_election(r: Reader) -> LeaderElectionSettings:
    r.check_known({f.name for f in dataclasses.fields(LeaderElectionSettings)})
    defaults = LeaderElectionSettings()
    duration = r.duration("lease_duration", defaults.lease_duration, minimum=1)
    if duration != int(duration):
        raise ConfigError("must be whole seconds", key=r.key("lease_duration"), line=r.line("lease_duration"))
    settings = LeaderElectionSettings(
        enabled=r.flag("enabled", defaults.enabled),
        lease_name=r.get("lease_name", str, defaults.lease_name).strip(),
        namespace=r.get("namespace", str, defaults.namespace).strip(),
        lease_duration=duration,
        renew_deadline=r.duration("renew_deadline", defaults.renew_deadline),
        renew_interval=r.duration("renew_interval", defaults.renew_interval),
    )
    if not settings.lease_name:
        raise ConfigError("must not be empty", key=r.key("lease_name"), line=r.line("lease_name"))
    check_lease_timings(settings, line=r.line)
    return settings


def check_lease_timings(
    settings: LeaderElectionSettings, *, line: Callable[[str], int | None] = lambda _: None
) -> None:
    """``renew_interval < renew_deadline < lease_duration``, so a leader that cannot renew stops writing
    before another replica may take over; :class:`ConfigError` naming the key otherwise."""
    if not settings.renew_deadline < settings.lease_duration:
        raise ConfigError(
            f"must be shorter than lease_duration ({settings.lease_duration:g}s)",
            key="leader_election.renew_deadline",
            line=line("renew_deadline"),
        )
    if not settings.renew_interval < settings.renew_deadline:
        raise ConfigError(
            f"must be shorter than renew_deadline ({settings.renew_deadline:g}s)",
            key="leader_election.renew_interval",
            line=line("renew_interval"),
        )


def _log(r: Reader) -> LogSettings:
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


def _env_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{value!r} is not a boolean", key=name)


def _env_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{value!r} is not an integer", key=name) from None


def _text(_name: str, value: str) -> str:
    return value


#: ``IMAGE_UPDATER_<KEY>`` -> (section or "" for the top level, field, conversion); scalar settings only
_ENV: dict[str, tuple[str, str, Callable[[str, str], Any]]] = {
    "interval": ("", "interval", lambda name, value: parse_duration(value, key=name)),
    "max_concurrency": ("", "max_concurrency", _env_int),
    "health_port": ("", "health_port", _env_int),
    "listen_address": ("", "listen_address", _text),
    "log_format": ("log", "format", _text),
    "log_level": ("log", "level", lambda _name, value: value.lower()),
    "applications_source": ("applications", "source", _text),
    "applications_path": ("applications", "path", _text),
    "applications_match_labels": ("applications", "match_labels", _text),
    "git_user": ("git", "user", _text),
    "git_email": ("git", "email", _text),
    "git_cache_dir": ("git", "cache_dir", _text),
    "webhook_port": ("webhook", "port", _env_int),
    "kubernetes_kubeconfig": ("kubernetes", "kubeconfig", _text),
    "kubernetes_context": ("kubernetes", "context", _text),
    "leader_election_enabled": ("leader_election", "enabled", _env_bool),
    "leader_election_namespace": ("leader_election", "namespace", _text),
}


def apply_env(settings: Settings, env: Mapping[str, str]) -> Settings:
    """Apply ``IMAGE_UPDATER_*`` environment overrides to scalar settings (the keys of ``_ENV``)."""
    prefix = "IMAGE_UPDATER_"
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for name, value in env.items():
        if not name.startswith(prefix):
            continue
        known = _ENV.get(name[len(prefix) :].lower())
        if known is None:
            continue
        section, field_name, convert = known
        if section:
            sections.setdefault(section, {})[field_name] = convert(name, value)
        else:
            top[field_name] = convert(name, value)
    for section, changes in sections.items():
        top[section] = dataclasses.replace(getattr(settings, section), **changes)
    return dataclasses.replace(settings, **top) if top else settings
