"""Every YAML editor, fuzzed: edits round-trip, and bad text is refused with an error, never a crash.

Hypothesis builds a file's data (kustomizations, Helm values, plain manifests, ``.argocd-source``
files), writes it in one of several styles (indentation, flow or block, ``---``, comments on every
line, CRLF), and edits ``nginx`` to a new tag. Re-parsing the edited text must give the original data
with exactly the edits a small independent model of each target predicts, and nothing else. Random text
fed to each editor gives an :class:`EditError` or an edit, never another exception. Alias bombs, deep
nesting and very large files are refused within a time and memory bound.
"""

from __future__ import annotations

import copy
import io
import re
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from image_updater.edit.argocd_source import SourceKind, edit_argocd_source
from image_updater.edit.helmvalues import HelmKeys, edit_helm_values
from image_updater.edit.kustomization import edit_kustomization, read_kustomization_tag
from image_updater.edit.manifests import edit_manifests, read_manifest_tags
from image_updater.edit.nodes import MAX_TEXT_CHARS, parse_documents
from image_updater.errors import EditError, ImageUpdaterError
from image_updater.model.ref import parse_image_name, split_name_suffix
from tests.faults.kit import scaled

FUZZ = settings(max_examples=scaled(80, 800), deadline=None, suppress_health_check=[HealthCheck.too_slow])
NGINX = parse_image_name("nginx")
#: names that denote docker.io/library/nginx, and some that do not
SAME = ["nginx", "library/nginx", "docker.io/nginx", "docker.io/library/nginx", "index.docker.io/library/nginx"]
OTHER = ["redis", "ghcr.io/acme/web", "nginx-unprivileged", "bitnami/nginx", "quay.io/nginx/nginx"]
DIGEST = "sha256:" + "ab" * 32
NEW_TAGS = st.sampled_from(["1.26.0", "1.20", "2", "1.0.0-rc.1", "stable", "010", "true", "1e3"])
OLD_TAGS = st.sampled_from(["1.25.3", "1.20", "1.26.0", "7", "latest", "1.0"])
WORDS = st.text(alphabet="abcdefgh-_.0123 ", min_size=1, max_size=12).filter(lambda w: w.strip() == w)
KEYS = st.text(alphabet="abcdefghk", min_size=1, max_size=6)


def _same(name: str | None) -> bool:
    return name is not None and name in SAME


# -- writing data in many styles ----------------------------------------------------------------------


@st.composite
def styles(draw: st.DrawFn) -> dict[str, Any]:
    """How a file is written."""
    return {
        "indent": draw(st.sampled_from([(2, 2, 0), (2, 4, 2), (4, 4, 2), (3, 5, 2)])),
        "flow": draw(st.sampled_from([False, None])),
        "start": draw(st.booleans()),
        "comments": draw(st.booleans()),
        "crlf": draw(st.booleans()),
        "header": draw(st.booleans()),
    }


def render(documents: list[Any], style: dict[str, Any]) -> str:
    """YAML text of ``documents`` in ``style``."""
    yaml = YAML()
    mapping, sequence, offset = style["indent"]
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.default_flow_style = style["flow"]
    yaml.explicit_start = style["start"] or len(documents) > 1
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump_all(documents, out)
    text = out.getvalue()
    if style["comments"]:
        text = "".join(
            f"{line}  # note {n}\n" if line.strip() and line.strip() != "---" else line + "\n"
            for n, line in enumerate(text.splitlines())
        )
    if style["header"]:
        text = "# managed by hand and by image-updater\n\n" + text
    if style["crlf"]:
        text = text.replace("\n", "\r\n")
    return text


def load(text: str) -> list[Any]:
    """The data of every document (YAML 1.2, as the editors read it)."""
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]


def tag_text(tag: Any, digest: Any) -> str | None:
    if digest:
        return f"{tag or ''}@{digest}"
    return tag or None


# -- kustomization ------------------------------------------------------------------------------------

kust_entries = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(SAME + OTHER)},
        optional={
            "newName": st.sampled_from(["registry.local/mirror/nginx", "nginx", "docker.io/bitnami/redis"]),
            "newTag": st.none() | OLD_TAGS,
            "digest": st.just(DIGEST),
            "x-note": WORDS,
        },
    ),
    max_size=5,
)


@st.composite
def kustomizations(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if draw(st.booleans()):
        data["resources"] = draw(st.lists(WORDS, max_size=3))
    if draw(st.booleans()):
        data["commonLabels"] = draw(st.dictionaries(KEYS, WORDS, max_size=3))
    images = draw(st.none() | kust_entries)
    if images is not None or draw(st.booleans()):
        data["images"] = images
    return data


def expect_kustomization(data: dict[str, Any], new: str) -> dict[str, Any]:
    """The model: matching entries get ``newTag`` and lose a stale ``digest``; no match appends one."""
    data = copy.deepcopy(data)
    images = data.get("images")
    matched = [e for e in images or [] if _same(e["name"]) or _same(e.get("newName"))]
    for entry in matched:
        if tag_text(entry.get("newTag"), entry.get("digest")) != new:
            entry["newTag"] = new
            entry.pop("digest", None)
    if not matched:
        if images is None:
            data["images"] = []
        data["images"].append({"name": "nginx", "newTag": new})
    return data


@FUZZ
@given(data=kustomizations(), style=styles(), new=NEW_TAGS)
def test_kustomization_edits_round_trip(data: dict[str, Any], style: dict[str, Any], new: str) -> None:
    text = render([data], style)
    (original,) = load(text)
    result = edit_kustomization(text, NGINX, new, image_label="nginx")
    (edited,) = load(result.text)
    assert edited == expect_kustomization(original, new)
    assert read_kustomization_tag(result.text, NGINX) == new
    assert ("\r\n" in result.text) == style["crlf"]
    for line in text.splitlines():  # every comment stays, but on a stale digest line that was removed
        if "# note" in line and not re.match(r"\s*(-\s+)?digest:", line):
            assert line.split("#", 1)[1] in result.text


# -- Helm values --------------------------------------------------------------------------------------

scalars = st.one_of(WORDS, st.integers(-5, 500), st.booleans())
trees = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=12
)


@st.composite
def helm_values(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(st.dictionaries(KEYS, trees, max_size=4))
    if draw(st.booleans()):
        image = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.sampled_from(SAME + OTHER),
                    "tag": OLD_TAGS,
                    "pullPolicy": st.just("IfNotPresent"),
                },
            )
        )
        data["image"] = image
    return data


def expect_helm(data: dict[str, Any], new: str) -> dict[str, Any]:
    """The model (default keys ``image.name``/``image.tag``): the tag is set; a name naming another
    image is set to the tracked one; a missing name is not created; nothing at all when the tag is there."""
    data = copy.deepcopy(data)
    image = data.setdefault("image", {})
    if image.get("tag") == new:
        return data
    if "name" in image and not _same(image["name"]):
        image["name"] = "nginx"
    image["tag"] = new
    return data


@FUZZ
@given(data=helm_values(), style=styles(), new=NEW_TAGS)
def test_helm_values_edits_round_trip(data: dict[str, Any], style: dict[str, Any], new: str) -> None:
    text = render([data], style) if data else ""
    original = (load(text) or [{}])[0]
    result = edit_helm_values(text, NGINX, new, keys=HelmKeys(), image_label="nginx")
    edited = (load(result.text) or [{}])[0]
    assert edited == expect_helm(original, new)


# -- plain manifests ----------------------------------------------------------------------------------

CONTAINER_IMAGES = [
    "nginx:1.0",
    "nginx",
    "docker.io/library/nginx:1.25.3",
    f"nginx@{DIGEST}",
    f"nginx:1.0@{DIGEST}",
    "library/nginx:stable",
    "redis:7",
    "ghcr.io/acme/web:1.0",
    "nginx-unprivileged:1.2",
]
containers = st.lists(
    st.fixed_dictionaries(
        {"name": KEYS, "image": st.sampled_from(CONTAINER_IMAGES)},
        optional={"ports": st.just([{"containerPort": 80}]), "args": st.lists(WORDS, max_size=2)},
    ),
    min_size=1,
    max_size=3,
)
POD_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}


@st.composite
def manifest_documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for kind in draw(st.lists(st.sampled_from([*POD_PATHS, "Service", "ConfigMap"]), min_size=1, max_size=3)):
        doc: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": draw(KEYS)}}
        if kind == "ConfigMap":
            doc["data"] = {"note": "image: nginx:1.0", "other": draw(WORDS)}
        elif kind == "Service":
            doc["spec"] = {"ports": [{"port": 80}]}
        else:
            pod: dict[str, Any] = {"containers": draw(containers)}
            if draw(st.booleans()):
                pod["initContainers"] = draw(containers)
            node = doc
            for key in POD_PATHS[kind][:-1]:
                node = node.setdefault(key, {})
            node[POD_PATHS[kind][-1]] = pod
        documents.append(doc)
    return documents


def expect_manifests(documents: list[Any], new: str) -> list[Any]:
    """The model: every container running nginx gets ``name:new`` (a digest dropped), nothing else."""
    documents = copy.deepcopy(documents)
    for doc in documents:
        path = POD_PATHS.get(doc["kind"])
        if path is None:
            continue
        pod = doc
        for key in path:
            pod = pod[key]
        for listed in ("containers", "initContainers"):
            for container in pod.get(listed, []):
                name = split_name_suffix(container["image"])[0]
                if _same(name):
                    container["image"] = f"{name}:{new}"
    return documents


@FUZZ
@given(documents=manifest_documents(), style=styles(), new=NEW_TAGS)
def test_manifest_edits_round_trip(documents: list[dict[str, Any]], style: dict[str, Any], new: str) -> None:
    text = render(documents, style)
    original = load(text)
    result = edit_manifests(text, NGINX, new, image_label="nginx")
    assert load(result.text) == expect_manifests(original, new)
    tags = read_manifest_tags(result.text, NGINX)
    assert all(t == new for t in tags)


# -- .argocd-source (Kustomize images) ------------------------------------------------------------------

SOURCE_ENTRIES = [
    "nginx:1.0",
    "nginx",
    "web=nginx:1.0",
    "nginx=ghcr.io/acme/nginx:2",
    f"docker.io/library/nginx:1.2@{DIGEST}",
    "redis:7",
    "cache=redis:1",
]


def expect_source(data: dict[str, Any], new: str) -> dict[str, Any]:
    """The model: a matching entry (by its name before ``=`` or its image) keeps its name and image
    and gets ``:new``; with no match ``nginx:new`` is appended."""
    data = copy.deepcopy(data)
    images = data["kustomize"]["images"]
    matched = False
    for index, entry in enumerate(images):
        prefix, sep, rest = entry.partition("=")
        if not sep:
            prefix, rest = "", entry
        name = split_name_suffix(rest)[0]
        if _same(name) or (sep and _same(prefix)):
            matched = True
            images[index] = f"{prefix}{sep}{name}:{new}"
    if not matched:
        images.append(f"nginx:{new}")
    return data


@FUZZ
@given(
    entries=st.lists(st.sampled_from(SOURCE_ENTRIES), max_size=4),
    extra=st.dictionaries(KEYS, WORDS, max_size=2),
    style=styles(),
    new=NEW_TAGS,
)
def test_argocd_source_edits_round_trip(
    entries: list[str], extra: dict[str, str], style: dict[str, Any], new: str
) -> None:
    data = {"kustomize": {"images": entries, **{k: v for k, v in extra.items() if k != "images"}}}
    text = render([data], style)
    (original,) = load(text)
    result = edit_argocd_source(text, NGINX, new, kind=SourceKind.KUSTOMIZE, image_label="nginx")
    (edited,) = load(result.text)
    assert edited == expect_source(original, new)


# -- random text --------------------------------------------------------------------------------------

YAMLISH = st.lists(
    st.sampled_from(
        [
            " ",
            "  ",
            "\n",
            "\r\n",
            "\t",
            "-",
            ":",
            "images",
            "name",
            "nginx",
            "newTag",
            "image",
            "tag",
            "1.0",
            "&a",
            "*a",
            "[",
            "]",
            "{",
            "}",
            ",",
            "'",
            '"',
            "#",
            "---",
            "...",
            "|",
            ">",
            "!!str",
            "? ",
            "%YAML 1.1",
            "kind",
            "Deployment",
            "spec",
            "containers",
            "kustomize",
            "\x00",
            "\ufeff",
            "é",
            "@sha256:",
        ]
    ),
    max_size=40,
).map("".join)
EDITORS: dict[str, Callable[[str], object]] = {
    "kustomization": lambda t: edit_kustomization(t, NGINX, "1.26.0", image_label="nginx"),
    "helmvalues": lambda t: edit_helm_values(t, NGINX, "1.26.0", keys=HelmKeys(), image_label="nginx"),
    "manifests": lambda t: edit_manifests(t, NGINX, "1.26.0", image_label="nginx"),
    "argocd-source": lambda t: edit_argocd_source(t, NGINX, "1.26.0", kind=SourceKind.HELM, image_label="nginx"),
    "read-kustomization": lambda t: read_kustomization_tag(t, NGINX),
    "read-manifests": lambda t: read_manifest_tags(t, NGINX),
}


@pytest.mark.parametrize("editor", list(EDITORS))
@FUZZ
@given(text=YAMLISH | st.text(max_size=80))
def test_random_text_is_an_edit_or_an_edit_error(editor: str, text: str) -> None:
    try:
        EDITORS[editor](text)
    except ImageUpdaterError as e:
        assert isinstance(e, EditError), repr(e)


# -- bounded cost ---------------------------------------------------------------------------------------


def _bounded(call: Callable[[], object], *, seconds: float, megabytes: float) -> EditError:
    """Run ``call``, which must raise EditError, within a time bound (measured alone) and a memory bound
    (measured with tracemalloc, which slows it down); return the error."""
    started = time.perf_counter()
    with pytest.raises(EditError) as raised:
        call()
    elapsed = time.perf_counter() - started
    assert elapsed < seconds, f"{elapsed:.2f} s"
    tracemalloc.start()
    try:
        with pytest.raises(EditError):
            call()
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert peak < megabytes, f"{peak:.1f} MB"
    return raised.value


def billion_laughs(levels: int = 12) -> str:
    lines = ['images: &l0 [{name: nginx, newTag: "1.0"}, {name: nginx, newTag: "1.0"}]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("editor", ["kustomization", "helmvalues", "manifests", "read-kustomization"])
def test_alias_bombs_are_refused_within_bounds(editor: str) -> None:
    text = (
        billion_laughs().replace("images:", "kind: Deployment\nimages:") if "manifests" in editor else billion_laughs()
    )
    error = _bounded(lambda: EDITORS[editor](text), seconds=2.0, megabytes=50)
    assert "expands past" in str(error)


def test_recursive_aliases_and_deep_nesting_are_refused_within_bounds() -> None:
    assert "recursive alias" in str(_bounded(lambda: parse_documents("a: &a [nginx, *a]\n"), seconds=1, megabytes=20))
    deep = "images: " + "[" * 5000 + "]" * 5000 + "\n"
    assert "depth" in str(_bounded(lambda: EDITORS["kustomization"](deep), seconds=2, megabytes=100))


@pytest.mark.parametrize("editor", ["kustomization", "helmvalues", "manifests", "argocd-source"])
def test_very_large_files_are_refused_before_they_are_parsed(editor: str) -> None:
    # regression: a 20 MB file was composed whole (about 4 s and 200 MB per MB) before any bound applied
    padding = "".join(f"# {'x' * 70} {n}\n" for n in range(MAX_TEXT_CHARS // 70 * 10))
    text = "kind: Deployment\nimages:\n- name: nginx\n  newTag: '1.0'\n" + padding
    error = _bounded(lambda: EDITORS[editor](text), seconds=0.5, megabytes=5)
    assert "refusing to parse" in str(error)


def test_a_file_just_under_the_limit_is_still_edited() -> None:
    padding = "".join(f"# {'x' * 70}\n" for _ in range((MAX_TEXT_CHARS - 200) // 73))
    text = "kind: Kustomization\nimages:\n- name: nginx\n  newTag: '1.0'\n" + padding
    assert len(text) <= MAX_TEXT_CHARS
    assert "newTag: '1.26.0'" in edit_kustomization(text, NGINX, "1.26.0", image_label="nginx").text
