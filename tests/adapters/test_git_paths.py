"""The workspace's remembered real paths agree with ``os.path.realpath``, symlinks and ``..`` included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from image_updater.adapters.git.workspace import GitWorkspace
from image_updater.errors import WriteBackError

CASES = [
    "a/b/f",
    "a/link/f",  # a folder symlinked out of the tree
    "a/rel/f",  # a relative symlink to a sibling folder
    "a/b/up/a/b",  # a symlink to an ancestor
    "a/b/up/../x",
    "chain/f",  # a symlink to a symlink
    "a/missing/f",
    "a/b/..",
    "a/./b/f",
    "a//b/f",
    "a/b/up/a/link/q",
    "",
]


@pytest.fixture
def workspace(tmp_path: Path) -> GitWorkspace:
    (tmp_path / "r/a/b").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "out", tmp_path / "r/a/link")
    os.symlink("b", tmp_path / "r/a/rel")
    os.symlink("../..", tmp_path / "r/a/b/up")
    os.symlink(tmp_path / "r/a/link", tmp_path / "r/chain")
    workspace = GitWorkspace("https://git.example/r.git", tmp_path)
    workspace.path = tmp_path / "r"
    return workspace


def test_real_paths_are_those_realpath_gives_in_any_order(workspace: GitWorkspace) -> None:
    root = str(workspace.path)
    for order in (CASES, list(reversed(CASES))):
        workspace._real_dirs.clear()
        for case in order:
            joined = os.path.join(root, case)
            assert workspace._real_path(joined) == os.path.realpath(joined), case


def test_paths_through_a_symlinked_folder_out_of_the_repository_are_refused(workspace: GitWorkspace) -> None:
    with pytest.raises(WriteBackError, match="leads outside the repository"):
        workspace.resolve("a/link/f")
    assert workspace.resolve("a/rel/f") == Path(os.path.realpath(workspace.path / "a/b/f"))
