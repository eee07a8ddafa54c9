"""structlog configuration, done once at the entry point, with a processor that redacts secrets.

Console rendering on a terminal, JSON lines otherwise (``log.format: auto``). Known secret values
(registered by the credential code when it reads them) and secret-shaped text (URL userinfo,
``Authorization`` values, bearer tokens) are replaced by ``***`` in every field before rendering.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

_known: set[str] = set()
_known_lock = threading.Lock()
_PATTERNS = (
    (re.compile(r"(://[^/\s:@]+:)[^@/\s]+@"), r"\1***@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"(?i)((?:password|passwd|token|secret|access_token)[\"']?\s*[=:]\s*[\"']?)[^\s\"',}&]+"), r"\1***"),
)


def register_secret(value: str | None) -> None:
    """Remember a secret's text so that it never appears in a log line."""
    if value and len(value) >= 4:
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    """``text`` with every known secret and secret-shaped fragment replaced by ``***``."""
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, BaseException):
        return redact(str(value))
    return value


def redact_processor(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: redact every field."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_value(value)
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "info", *, stream: Any = None) -> None:
    """Configure structlog once: console on a TTY (or ``console``), JSON otherwise (or ``json``)."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
