"""The ``files`` source: Argo CD Application manifests in a folder (multi-document YAML)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from image_updater.annotations import has_image_list, parse_application
from image_updater.appfilter import AppFilter
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


def discover_files(folder: str | Path, app_filter: AppFilter | None = None) -> Discovery:
    """Read every ``*.yaml``/``*.yml`` below ``folder`` and parse the annotated Applications."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder", key="applications.path")
    apps: list[AppSpec] = []
    problems: list[SourceProblem] = []
    seen: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and p.is_file()):
        try:
            documents = list(_load_documents(path))
        except ImageUpdaterError as e:
            problems.append(SourceProblem(str(path), e))
            continue
        for index, doc in enumerate(documents):
            if not _is_application(doc) or not has_image_list(doc):
                continue
            origin = f"{path}#{index}" if len(documents) > 1 else str(path)
            try:
                app = parse_application(doc, origin=origin)
            except ImageUpdaterError as e:
                problems.append(SourceProblem(origin, e))
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


def _load_documents(path: Path) -> Iterator[Any]:
    yaml = YAML(typ="safe")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ImageUpdaterError(f"{path}: cannot read: {e}") from e
    try:
        yield from list(yaml.load_all(text))
    except YAMLError as e:
        raise ImageUpdaterError(f"{path}: not valid YAML: {_one_line(e)}") from e


def _is_application(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("kind") == "Application"
        and str(doc.get("apiVersion", "")).startswith("argoproj.io/")
    )


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
