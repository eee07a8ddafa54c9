"""Bad input to the parsers, fuzzed with hypothesis: annotations, image references and constraints.

Whatever the text, a parser returns a value or raises the product's own error (which the cycle reports
against the Application); never another exception, never a hang. Values that parse keep their
promises: an image reference prints back to itself, a write-back path stays inside the repository.
``IMAGE_UPDATER_TEST_LONG=1`` runs ten times the examples.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from image_updater.annotations import PREFIX, parse_application
from image_updater.errors import ImageUpdaterError
from image_updater.model.ref import parse_image_ref
from image_updater.planner import target_dir
from image_updater.selection.constraints import MAX_CONSTRAINT_LENGTH, Constraint
from image_updater.selection.factory import build_selector
from image_updater.selection.versions import parse_version
from tests.faults.kit import scaled

FUZZ = settings(
    max_examples=scaled(150, 1500), deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)

_FRAGMENTS = [
    "nginx",
    "a=",
    "=",
    ",",
    " ",
    ":",
    "/",
    "@",
    "sha256:",
    "~1.2",
    "^1",
    ">=1, <2",
    "||",
    "*",
    "x",
    "..",
    "/etc",
    "regexp:",
    "any",
    "^v(?P<v>.*)$",
    "$1",
    "${v}",
    "true",
    "yes",
    "0",
    "latest",
    "digest",
    "semver",
    "newest-build",
    "name",
    "numerical",
    "kustomization",
    "helmvalues",
    "manifests",
    ":",
    "../..",
    "/.git",
    "git",
    "git:secret:ns/n",
    "git:repocreds",
    "argocd",
    "main",
    "main:upd-{{.SHA256}}",
    "{{",
    "}}",
    "{{ .Nope }}",
    "linux/amd64",
    "127.0.0.1:5000/",
    "ghcr.io/acme/",
    "UPPER",
    "\t",
    "\n",
    "é",
    "\x00",
]
_KEYS = [
    "image-list",
    "update-strategy",
    "allow-tags",
    "ignore-tags",
    "platforms",
    "force-update",
    "pull-secret",
    "tag-extract",
    "kustomize.image-name",
    "helm.image-name",
    "helm.image-tag",
    "helm.image-spec",
    "write-back-method",
    "write-back-target",
    "git-branch",
    "git-repository",
    "a.update-strategy",
    "a.allow-tags",
    "a.tag-extract",
    "a.force-update",
    "a.platforms",
]
text_pieces = st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=6)), max_size=8).map("".join)


@FUZZ
@given(
    annotations=st.dictionaries(st.sampled_from(_KEYS), text_pieces, max_size=8),
    image_list=text_pieces,
    path=st.one_of(st.none(), text_pieces),
)
def test_annotations_give_a_spec_or_the_products_error(
    annotations: dict[str, str], image_list: str, path: str | None
) -> None:
    notes = {PREFIX + key: value for key, value in annotations.items()}
    notes.setdefault(PREFIX + "image-list", image_list)
    manifest: dict[str, Any] = {
        "metadata": {"name": "fuzz", "annotations": notes},
        "spec": {"source": {"repoURL": "http://127.0.0.1:1/r.git", "path": path}},
    }
    try:
        app = parse_application(manifest)
    except ImageUpdaterError as e:
        assert e.app == "fuzz" and str(e).startswith("application fuzz"), str(e)  # names the Application
        return
    assert app.images
    for image in app.images:
        try:
            build_selector(image)
        except ImageUpdaterError as e:
            assert e.image == image.label
    try:
        where = target_dir(app)
    except ImageUpdaterError:
        return
    assert not where.startswith(("/", "../")) and where != ".."
    assert ".git" not in where.split("/")


_COMPONENT = st.from_regex(r"\A[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,4}){0,2}\Z")
_HOSTS = st.sampled_from(["", "localhost:5000/", "127.0.0.1:5000/", "ghcr.io/", "registry.example.com/", "[::1]:5000/"])
_TAG = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_DIGEST = st.from_regex(r"\A[0-9a-f]{64}\Z").map(lambda h: "sha256:" + h)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from("abcXYZ019._-:/@ é\t[]"), max_size=40) | st.text(max_size=40))
def test_any_image_reference_parses_or_is_a_reference_error(text: str) -> None:
    try:
        ref = parse_image_ref(text)
    except ImageUpdaterError:
        return
    again = parse_image_ref(str(ref))
    assert again == ref


@FUZZ
@given(
    host=_HOSTS,
    path=st.lists(_COMPONENT, min_size=1, max_size=3),
    tag=st.none() | _TAG,
    digest=st.none() | _DIGEST,
)
def test_valid_image_references_parse_and_print_back(
    host: str, path: list[str], tag: str | None, digest: str | None
) -> None:
    assume(host or len(path) == 1 or "." not in path[0])  # "a.b/c" names the registry host a.b, as Docker reads it
    text = host + "/".join(path) + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = parse_image_ref(text)
    assert (ref.tag, ref.digest) == (tag, digest)
    assert parse_image_ref(str(ref)) == ref


@FUZZ
@given(text=st.text(alphabet=st.sampled_from("0123456789.xX*^~<>=!|, -vab+"), max_size=60) | st.text(max_size=30))
def test_any_constraint_parses_or_is_a_constraint_error_quickly(text: str) -> None:
    started = time.perf_counter()
    try:
        constraint = Constraint.parse(text)
    except ImageUpdaterError:
        constraint = None
    if constraint is not None:
        constraint.check(parse_version("1.2.3"))  # a parsed constraint can always be applied
    assert time.perf_counter() - started < 0.25


_VERSION = st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)).map(lambda v: f"{v[0]}.{v[1]}.{v[2]}")
_COMPARATOR = st.tuples(st.sampled_from(["", "=", "!=", ">", "<", ">=", "<=", "~", "^"]), _VERSION).map("".join)


@FUZZ
@given(groups=st.lists(st.lists(_COMPARATOR, min_size=1, max_size=3), min_size=1, max_size=3))
def test_well_formed_constraints_always_parse(groups: list[list[str]]) -> None:
    text = " || ".join(", ".join(group) for group in groups)
    constraint = Constraint.parse(text)
    assert isinstance(constraint.check(parse_version("1.2.3")), bool)


def test_the_longest_constraint_is_refused_in_bounded_time() -> None:
    for text in (">=1.0.0, " * 200, "1 || " * 200, "~" * 10_000, "1.2.3-" + "a." * 5_000):
        started = time.perf_counter()
        try:
            Constraint.parse(text)
        except ImageUpdaterError as e:
            assert len(text) <= MAX_CONSTRAINT_LENGTH or "long" in str(e) or "512" in str(e)
        assert time.perf_counter() - started < 0.5
