"""The CPU a cycle spends on YAML: reading every image's current tag, and one tag edit per target file.

Over the Applications of the scale benchmark (``apps/<name>`` folders with a kustomization, Helm values
or plain manifests, as :mod:`bench.scale_apps` writes them), in one process per source tree:

- **read**: ``planner.current_tag`` for every image of every Application, through the target the
  planner resolves (the real reading path: memo, reader, composer), every memo emptied before each run;
- **edit**: one tag edit per target file with the editors the planner plans (``plan_edits``), the
  first image of each Application set to a tag it does not hold.

Prints microseconds of CPU per target file, medians of ``--runs`` runs (each in a new process, after a
warm-up run in it; the trees take turns), and a fingerprint of every tag read and every edited text:
two trees that print the same fingerprint gave the same results. ``--rev REV`` (or ``--compare
LABEL=PATH``) times another source tree beside this one; the texts are read once, before any run.

    .venv/bin/python bench/yaml_cpu.py [--apps FOLDER] [--runs 5] [--rev HEAD~3] [--compare before=PATH]

Without ``--apps``, the config repositories of the last scale benchmark under ``/tmp/scale-bench-*``
are used (read only); when there are none, 1,000 Applications like them are generated in a temporary
folder (400 kustomizations, 300 Helm values files, 300 plain manifests, 1 to 4 images each).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_GLOB = "/tmp/scale-bench-*/cache/config-0*/apps"
PREFIX = "argocd-image-updater.argoproj.io/"


# -- the Applications ---------------------------------------------------------------------------------


def find_apps(folder: str | None) -> list[Path]:
    """The ``apps/<name>`` folders: under ``folder``, or of the last scale benchmark."""
    pattern = os.path.join(folder, "**", "apps") if folder else BENCH_GLOB
    roots = sorted(glob.glob(pattern, recursive=True))
    if not folder and roots:  # one benchmark's repositories, not those of several
        base = max({r.split("/cache/")[0] for r in roots}, key=lambda b: os.path.getmtime(b))
        roots = [r for r in roots if r.startswith(base + "/")]
    return sorted(p for root in roots for p in Path(root).iterdir() if p.is_dir())


def generate_apps(folder: Path, count: int = 1000) -> None:
    """Write ``count`` Applications' files as the scale benchmark does (no registry, no Git server)."""
    sys.path.append(str(ROOT))  # after the tree under test: only for ``bench`` itself
    from bench.scale_apps import App, Image, app_files

    rng = random.Random(6)
    targets = ["kustomization"] * 4 + ["helmvalues"] * 3 + ["manifests"] * 3
    for a in range(count):
        images = []
        for k in range(1 + a % 4):
            repo = (a * 7 + k * 31) % 200
            current = f"{1 + repo % 4}.{rng.randrange(15)}.{rng.randrange(20)}"
            images.append(Image(f"img{k}", f"bench/svc-{repo:03d}", None, {}, current=current))
        app = App(f"app-{a:04d}", f"config-{a % 10:02d}", targets[a % 10], images)
        for relative, text in app_files(app).items():
            path = folder / f"config-{a % 10:02d}" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


@dataclass
class Case:
    """One Application: its spec, its target, and the texts of its folder."""

    app: Any
    target: Any
    files: dict[str, str]


class DictView:
    """A ``RepoView`` over texts in memory."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read(self, relative: str) -> str | None:
        return self.files.get(relative)

    def list_files(self, relative: str) -> list[str]:
        return sorted(p for p in self.files if p == relative or p.startswith(relative.rstrip("/") + "/"))


def snapshot(folders: Sequence[Path]) -> list[tuple[str, dict[str, str]]]:
    """The YAML texts of each folder, read once: every tree times the same texts (the scale benchmark
    may be committing to its repositories meanwhile)."""
    taken = []
    for folder in folders:
        texts = {
            p.name: p.read_bytes().decode("utf-8") for p in sorted(folder.iterdir()) if p.suffix in (".yaml", ".yml")
        }
        taken.append((folder.name, texts))
    return taken


def load_cases(apps: Sequence[tuple[str, dict[str, str]]]) -> list[Case]:
    """Each Application of the tree under test, its images read from its files."""
    import yaml

    from image_updater.annotations import parse_application
    from image_updater.planner import resolve_target

    cases = []
    for name, texts in apps:
        files = {f"apps/{name}/{file}": text for file, text in texts.items()}
        notes: dict[str, str] = {}
        if f"apps/{name}/kustomization.yaml" in files:
            target = "kustomization"
            doc = yaml.safe_load(files[f"apps/{name}/kustomization.yaml"])
            images = [(f"img{k}", entry["name"]) for k, entry in enumerate(doc.get("images") or [])]
        elif f"apps/{name}/values.yaml" in files:
            target = "helmvalues"
            doc = yaml.safe_load(files[f"apps/{name}/values.yaml"])
            images = [(k, v["image"]["repository"]) for k, v in doc.items() if isinstance(v, dict) and "image" in v]
            for alias, _ in images:
                notes[f"{PREFIX}{alias}.helm.image-name"] = f"{alias}.image.repository"
                notes[f"{PREFIX}{alias}.helm.image-tag"] = f"{alias}.image.tag"
        else:
            target = "manifests"
            doc = yaml.safe_load(files[f"apps/{name}/deployment.yaml"])
            containers = doc["spec"]["template"]["spec"]["containers"]
            images = [(c["name"], c["image"].rsplit("@", 1)[0].rsplit(":", 1)[0]) for c in containers]
        listed = ", ".join(f"{alias}={ref}" for alias, ref in images)
        manifest = {
            "metadata": {
                "name": name,
                "annotations": {
                    f"{PREFIX}image-list": listed,
                    f"{PREFIX}write-back-method": "git",
                    f"{PREFIX}write-back-target": target,
                    **notes,
                },
            },
            "spec": {"source": {"repoURL": "http://git.invalid/config.git", "path": f"apps/{name}"}},
        }
        app = parse_application(manifest)
        cases.append(Case(app, resolve_target(app, DictView(files)), files))
    return cases


# -- timing -------------------------------------------------------------------------------------------


def forget() -> None:
    """Empty every memo of texts and trees, so that each run reads as a first cycle does."""
    import image_updater.planner as planner

    for module in [m for n, m in sys.modules.items() if n.startswith("image_updater.edit.")] + [planner]:
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
    read = getattr(planner, "_READ", None)
    if read is not None:
        read.clear()


def read_all(cases: Sequence[Case]) -> list[str | None]:
    from image_updater.planner import current_tag

    tags = []
    for case in cases:
        view = DictView(case.files)
        for image in case.app.images:
            tags.append(current_tag(case.app, image, view, case.target))
    return tags


def new_tags(cases: Sequence[Case], tags: Sequence[str | None]) -> list[str]:
    """For each Application, a tag its first image does not hold (``tags`` as :func:`read_all` gives them)."""
    firsts, position = [], 0
    for case in cases:
        firsts.append(tags[position])
        position += len(case.app.images)
    return ["9.9.8" if tag == "9.9.9" else "9.9.9" for tag in firsts]


def edit_all(cases: Sequence[Case], tags: Sequence[str]) -> list[str]:
    from image_updater.planner import plan_edits

    texts = []
    for case, new_tag in zip(cases, tags, strict=True):
        for edit in plan_edits(case.app, case.app.images[0], new_tag, case.target):
            old = case.files[edit.path]
            if case.target.kind == "manifests" and "image:" not in old:
                continue  # a file without containers (the Service) is not an edit
            texts.append(edit.apply(old).text)
    return texts


def timed(work: Callable[[], list[Any]]) -> tuple[float, list[Any]]:
    """CPU seconds of one run of ``work`` after :func:`forget`, and its result."""
    forget()
    start = time.process_time()
    result = work()
    return time.process_time() - start, result


def child(args: argparse.Namespace) -> None:
    """Time the tree this process imports ``image_updater`` from, one run of each; a JSON line on stdout."""
    import image_updater

    cases = load_cases(json.loads(Path(args.child).read_text()))
    targets = sum(
        1
        for case in cases
        for path in case.target.files
        if case.target.kind != "manifests" or "image:" in case.files[path]
    )
    _, tags = timed(lambda: read_all(cases))  # warm-up: imports and one-time set-up are no per-file cost
    read_s, tags = timed(lambda: read_all(cases))
    wanted = new_tags(cases, tags)
    timed(lambda: edit_all(cases, wanted))
    edit_s, texts = timed(lambda: edit_all(cases, wanted))
    digest = hashlib.sha256(json.dumps([tags, texts]).encode()).hexdigest()[:16]
    print(
        json.dumps(
            {
                "package": str(Path(image_updater.__file__).parent),
                "apps": len(cases),
                "images": len(tags),
                "files": targets,
                "edits": len(texts),
                "read_us": read_s / targets * 1e6,
                "edit_us": edit_s / len(texts) * 1e6,
                "fingerprint": digest,
            }
        )
    )


def run_tree(src: Path | None, apps: Path) -> dict[str, Any]:
    """One run of the tree at ``src`` (this one when ``None``), in a process of its own."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(apps)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def tree_at(rev: str, into: Path) -> Path:
    """The package at ``rev`` of this repository, extracted (no worktree: the repository is not touched)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "image_updater"], check=True, capture_output=True
    ).stdout
    target = into / rev.replace("/", "_")
    target.mkdir(parents=True)
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(target, filter="data")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", help="a folder holding config repositories (apps/<name>/ folders)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each tree, each in a new process")
    parser.add_argument("--rev", action="append", default=[], help="also time the package at this commit")
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=PATH", help="also time this tree")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="yaml-cpu-") as scratch:
        folders = find_apps(args.apps)
        where = args.apps or (str(folders[0].parents[2]) if folders else "")
        if not folders:
            where = f"{scratch}/generated (1,000 Applications like the scale benchmark's)"
            generate_apps(Path(scratch) / "generated")
            folders = find_apps(str(Path(scratch) / "generated"))
        apps = Path(scratch) / "apps.json"
        apps.write_text(json.dumps(snapshot(folders)))
        trees: list[tuple[str, Path | None]] = [
            *((rev, tree_at(rev, Path(scratch))) for rev in args.rev),
            *((label, Path(path)) for label, _, path in (item.partition("=") for item in args.compare)),
            ("this tree", None),
        ]
        print(f"{len(folders)} Applications from {where}; medians of {args.runs} runs (CPU time), trees alternating")
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
        for number in range(args.runs):
            for label, src in trees:
                r = run_tree(src, apps)
                runs[label].append(r)
                print(f"  run {number + 1} {label}: read {r['read_us']:.1f} us/file, edit {r['edit_us']:.1f} us/file")
        for label, _ in trees:
            r = runs[label][-1]
            read = statistics.median(x["read_us"] for x in runs[label])
            edit = statistics.median(x["edit_us"] for x in runs[label])
            same = {x["fingerprint"] for x in runs[label]}
            print(
                f"{label:>12}: read {read:7.1f} us/file ({r['files']} target files, {r['images']} images)"
                f" | edit {edit:7.1f} us/file ({r['edits']} files) | results {', '.join(sorted(same))}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
