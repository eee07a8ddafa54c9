"""Push races against the real Git server: another client pushes between our sync and our push.

Every round must end with both commits on the remote, ours on top of theirs, and both edits in the
files; never a force push. An edit whose starting value someone changed under us is reported and the
remote is left as that someone left it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from image_updater.adapters.git.workspace import GitWorkspace
from image_updater.commitmsg import render_commit_message
from image_updater.config import GitCredential
from image_updater.errors import PushRejectedError
from image_updater.model.spec import AppSpec
from image_updater.planner import current_tag, plan_edits, resolve_target
from image_updater.service.writeback import AppEdits, WriteBackOutcome, write_back
from tests.harness.gitserver import OTHER_AUTHOR, GitHttpServer
from tests.integration.writeback_kit import make_app

pytestmark = pytest.mark.integration

KUSTOMIZATION = """\
# overlay
kind: Kustomization
images:
  - name: nginx
    newTag: 1.0.0   # ours
  - name: redis
    newTag: 7.0.0   # theirs
"""


class RacingWorkspace(GitWorkspace):
    """A workspace that lets another client push right before its next push."""

    before_push: Callable[[], None] | None = None

    def push(self, branch: str) -> None:
        hook, self.before_push = self.before_push, None
        if hook is not None:
            hook()
        super().push(branch)


def workspace(server: GitHttpServer, url: str, cache: Path) -> RacingWorkspace:
    credential = GitCredential(url=url, username=server.username, password=server.password)
    return RacingWorkspace(url, cache, credential=credential)


def update(ws: GitWorkspace, app: AppSpec, new_tag: str, retries: int = 3) -> WriteBackOutcome:
    """What a cycle does for one Application: sync, read, plan, write back."""
    branch = ws.sync("main")
    target = resolve_target(app, ws)
    image = app.images[0]
    assert current_tag(app, image, ws, target) != new_tag
    edits = tuple(plan_edits(app, image, new_tag, target))
    return write_back(
        ws,
        branch=branch,
        push_branch=None,
        plans=[AppEdits(app.name, edits)],
        message=lambda names, changes: render_commit_message("update {{ app_name }}", names, changes),
        retries=retries,
    )


def test_twenty_races_each_end_with_both_commits_and_our_edit_on_top(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo("race-twenty", {"app/kustomization.yaml": KUSTOMIZATION, "app/notes.txt": "0\n"})
    git_server.set_config("race-twenty", "receive.denyNonFastForwards", "true")
    app = make_app("web", url, "app", "nginx", target="kustomization")
    ws = workspace(git_server, url, tmp_path / "cache")
    for round_ in range(1, 21):
        ours = f"1.0.{round_}"
        theirs = f"7.0.{round_}"
        if round_ % 2:
            # the other client edits another entry of the very file we edit
            def other(round_: int = round_, theirs: str = theirs) -> None:
                text = git_server.read_file("race-twenty", "app/kustomization.yaml") or ""
                edited = text.replace(text.split("redis\n    newTag: ")[1].split(" ")[0], theirs, 1)
                git_server.push_commit("race-twenty", {"app/kustomization.yaml": edited}, f"other {round_}")
        else:

            def other(round_: int = round_) -> None:
                git_server.push_commit("race-twenty", {"app/notes.txt": f"{round_}\n"}, f"other {round_}")

        ws.before_push = other
        outcome = update(ws, app, ours)

        assert outcome.commit is not None and outcome.attempts == 2, f"round {round_}"
        log = git_server.log("race-twenty")
        assert log[0].sha == outcome.commit and log[0].author_name == "image-updater"
        assert log[1].subject == f"other {round_}" and log[1].author_name == OTHER_AUTHOR[0]
        text = git_server.read_file("race-twenty", "app/kustomization.yaml") or ""
        assert f"newTag: {ours}   # ours" in text
        if round_ % 2:
            assert f"newTag: {theirs}   # theirs" in text
        else:
            assert git_server.read_file("race-twenty", "app/notes.txt") == f"{round_}\n"
    # nothing was ever lost: 1 seed commit, then 20 of theirs and 20 of ours, alternating
    assert git_server.commit_count("race-twenty") == 41
    assert ws.clones == 1  # one clone, fetched ever since


def test_a_value_changed_under_us_is_reported_and_the_remote_left_as_is(
    git_server: GitHttpServer, tmp_path: Path
) -> None:
    url = git_server.create_repo("race-pinned", {"app/kustomization.yaml": KUSTOMIZATION})
    app = make_app("web", url, "app", "nginx", target="kustomization")
    ws = workspace(git_server, url, tmp_path / "cache")
    pinned = KUSTOMIZATION.replace("1.0.0   # ours", "1.0.5   # pinned by hand")
    ws.before_push = lambda: git_server.push_commit("race-pinned", {"app/kustomization.yaml": pinned}, "pin")

    outcome = update(ws, app, "2.0.0")

    assert outcome.commit is None
    assert "changed under us (now 1.0.5, planned from 1.0.0)" in str(outcome.errors["web"])
    assert git_server.log("race-pinned")[0].subject == "pin"
    assert git_server.read_file("race-pinned", "app/kustomization.yaml") == pinned


def test_a_file_broken_under_us_is_reported_and_the_remote_left_as_is(
    git_server: GitHttpServer, tmp_path: Path
) -> None:
    url = git_server.create_repo("race-broken", {"app/kustomization.yaml": KUSTOMIZATION})
    app = make_app("web", url, "app", "nginx", target="kustomization")
    ws = workspace(git_server, url, tmp_path / "cache")
    broken = KUSTOMIZATION + "  bad: [unclosed\n"
    ws.before_push = lambda: git_server.push_commit("race-broken", {"app/kustomization.yaml": broken}, "break")

    outcome = update(ws, app, "2.0.0")

    assert outcome.commit is None and "not valid YAML" in str(outcome.errors["web"])
    assert git_server.read_file("race-broken", "app/kustomization.yaml") == broken


def test_someone_making_the_same_update_means_no_commit_of_ours(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo("race-same", {"app/kustomization.yaml": KUSTOMIZATION})
    app = make_app("web", url, "app", "nginx", target="kustomization")
    ws = workspace(git_server, url, tmp_path / "cache")
    same = KUSTOMIZATION.replace("1.0.0", "2.0.0")
    ws.before_push = lambda: git_server.push_commit("race-same", {"app/kustomization.yaml": same}, "same")

    outcome = update(ws, app, "2.0.0")

    assert outcome.commit is None and not outcome.errors
    assert git_server.log("race-same")[0].subject == "same"


def test_a_push_still_rejected_after_the_retries_fails_without_force(git_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_server.create_repo("race-busy", {"app/kustomization.yaml": KUSTOMIZATION, "n": "0"})
    app = make_app("web", url, "app", "nginx", target="kustomization")
    ws = workspace(git_server, url, tmp_path / "cache")
    pushes = iter(range(100))

    class Busy(RacingWorkspace):
        def push(self, branch: str) -> None:
            git_server.push_commit("race-busy", {"n": str(next(pushes))}, "busy")
            super().push(branch)

    ws.__class__ = Busy
    with pytest.raises(PushRejectedError):
        update(ws, app, "2.0.0", retries=2)
    assert [e.subject for e in git_server.log("race-busy")][:3] == ["busy", "busy", "busy"]
    assert "1.0.0" in (git_server.read_file("race-busy", "app/kustomization.yaml") or "")
