"""One error shared by several Applications names each of them (regression of the fault suite: a clone
that failed for a repository of two Applications was reported twice as ``application a``)."""

from __future__ import annotations

from image_updater.errors import AnnotationError, GitError, RegistryError
from image_updater.service.cycle import AppOutcome
from tests.integration.writeback_kit import make_app


def test_a_git_error_shared_by_two_applications_names_each_of_them() -> None:
    shared = GitError("git clone failed for http://127.0.0.1:1/config.git: cannot connect")
    outcomes = [AppOutcome(app=make_app(name, "http://127.0.0.1:1/config.git", name, "nginx")) for name in "ab"]
    for outcome in outcomes:
        outcome.error = shared

    assert [str(o.errors()[0]) for o in outcomes] == [
        "application a: git clone failed for http://127.0.0.1:1/config.git: cannot connect",
        "application b: git clone failed for http://127.0.0.1:1/config.git: cannot connect",
    ]
    assert shared.app is None


def test_with_context_copies_keep_the_class_fields_and_cause() -> None:
    cause = OSError("reset")
    try:
        raise RegistryError("listing the tags", registry="r", status=503) from cause
    except RegistryError as e:
        original = e
    named = original.with_context(app="a", image="web")
    assert isinstance(named, RegistryError) and named is not original
    assert (named.status, named.registry, named.__cause__) == (503, "r", cause)
    assert str(named) == "application a, image web: listing the tags (registry r; HTTP 503)"
    assert named.with_context(app="b") is named  # already named: kept as it is
    annotation = AnnotationError("bad", annotation="image-list").with_context(app="x")
    assert annotation.annotation == "image-list" and str(annotation) == "application x: annotation image-list: bad"
