"""The ``files`` source: Argo CD Application manifests (multi-document YAML) in a folder, or in a path of
a Git repository (``<git URL>#<path>``, the "app-of-apps" pattern), read from the cached clone."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError

from image_updater.adapters.git.workspace import GitWorkspace, redact_url
from image_updater.annotations import has_image_list, parse_application
from image_updater.appfilter import AppFilter
from image_updater.config import GitCredential
from image_updater.edit.fastcompose import load_all
from image_updater.errors import ConfigError, ImageUpdaterError
from image_updater.model.spec import AppSpec

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class SourceProblem:
    """An Application (or a file) that could not be read; reported, and the others go on."""

    where: str
    error: ImageUpdaterError


@dataclass(frozen=True)
class Discovery:
    """What a source found: Applications to process and problems to report."""

    apps: tuple[AppSpec, ...]
    problems: tuple[SourceProblem, ...]


@dataclass(frozen=True)
class GitLocation:
    """A folder in a Git repository: ``<git URL>#<path>`` (the remote's default branch)."""

    url: str
    path: str

    def __str__(self) -> str:
        return f"{redact_url(self.url)}#{self.path}"


_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[^/@\s]+@[^/:\s]+:)", re.I)


def git_location(text: str) -> GitLocation | None:
    """``<git URL>#<path>`` (``https://``, ``ssh://``, ``file://``, or ``git@host:org/repo``) as a
    :class:`GitLocation`; ``None`` for a local folder."""
    url, sep, path = text.strip().partition("#")
    if not sep or not _REMOTE.match(url):
        return None
    return GitLocation(url, path.strip().strip("/") or ".")


def discover_git(
    location: GitLocation,
    cache_dir: Path,
    app_filter: AppFilter | None = None,
    *,
    credential: GitCredential | None = None,
) -> Discovery:
    """Fetch the repository into the clone cache (shared with the write-back) and read the folder.

    Blocking (Git runs in this thread). Raises :class:`ImageUpdaterError` when the repository cannot
    be fetched, and :class:`ConfigError` when the path is not a folder in it.
    """
    workspace = GitWorkspace(location.url, cache_dir, credential=credential)
    with workspace:
        workspace.sync(None)
        try:
            folder = workspace.resolve(location.path)
        except ImageUpdaterError as e:
            raise ConfigError(f"{location}: {e.message}", key="applications.path") from e
        if not folder.is_dir():
            raise ConfigError(f"{location} is not a folder in the repository", key="applications.path")
        return discover_files(folder, app_filter, label=str(location))


def discover_files(folder: str | Path, app_filter: AppFilter | None = None, *, label: str | None = None) -> Discovery:
    """Read every ``*.yaml``/``*.yml`` below ``folder`` and parse the annotated Applications.

    ``label`` names the folder in problems and origins instead of its path (``<url>#<path>``).
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder", key="applications.path")
    apps: list[AppSpec] = []
    problems: list[SourceProblem] = []
    seen: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and p.is_file()):
        shown = str(path) if label is None else f"{label}/{path.relative_to(root).as_posix()}"
        try:
            found = _applications_in(path, shown)
        except ImageUpdaterError as e:
            problems.append(SourceProblem(shown, e))
            continue
        for origin, app in found:
            if isinstance(app, ImageUpdaterError):
                problems.append(SourceProblem(origin, app))
                continue
            if app_filter is not None and not app_filter.matches(app.name, app.labels):
                continue
            if app.key in seen:
                problems.append(
                    SourceProblem(
                        origin,
                        ConfigError(f"Application {app.key} is also defined in {seen[app.key]}; skipped"),
                    )
                )
                continue
            seen[app.key] = origin
            apps.append(app)
    return Discovery(apps=tuple(apps), problems=tuple(problems))


_Found = tuple[tuple[str, AppSpec | ImageUpdaterError], ...]
#: what each manifest file held when it was last parsed, by path and stat: the service reads the folder
#: again for every cycle and webhook, and only files that changed are parsed again (bounded; a file
#: that could not be read is not kept)
_PARSED: OrderedDict[tuple[str, str], tuple[tuple[int, ...], _Found]] = OrderedDict()
_PARSED_SIZE = 50_000
_PARSED_LOCK = threading.Lock()


def _applications_in(path: Path, shown: str) -> _Found:
    """The annotated Applications of one file (or the error of each that is wrong), parsed again only
    when the file's modification time, change time, size or inode differ from the last read."""
    try:
        info = path.stat()
    except OSError as e:
        raise ImageUpdaterError(f"{shown}: cannot read: {e}") from e
    stamp = (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
    key = (str(path), shown)
    with _PARSED_LOCK:
        known = _PARSED.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    documents = list(_load_documents(path, shown))
    found: list[tuple[str, AppSpec | ImageUpdaterError]] = []
    for index, doc in enumerate(documents):
        if not _is_application(doc) or not has_image_list(doc):
            continue
        origin = f"{shown}#{index}" if len(documents) > 1 else shown
        try:
            found.append((origin, parse_application(doc, origin=origin)))
        except ImageUpdaterError as e:
            found.append((origin, e))
    with _PARSED_LOCK:
        _PARSED[key] = (stamp, tuple(found))
        _PARSED.move_to_end(key)
        while len(_PARSED) > _PARSED_SIZE:
            _PARSED.popitem(last=False)
    return tuple(found)


def _load_documents(path: Path, shown: str) -> Iterator[Any]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ImageUpdaterError(f"{shown}: cannot read: {e}") from e
    try:
        yield from load_all(text)  # libyaml when it can: a cycle reads every manifest again
    except YAMLError as e:
        raise ImageUpdaterError(f"{shown}: not valid YAML: {_one_line(e)}") from e


def _is_application(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("kind") == "Application"
        and str(doc.get("apiVersion", "")).startswith("argoproj.io/")
    )


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
