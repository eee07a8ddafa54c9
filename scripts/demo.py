"""The demo: a real registry and Git server on 127.0.0.1, one update, the commit it made.

Started by scripts/demo.sh after setup. It uses the test harness's servers (Debian's docker-registry
and git http-backend behind nginx), runs the real `image-updater` command, and prints what landed in
the remote repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.gitserver import GitHttpServer, run_git  # noqa: E402
from tests.harness.registry import RegistryServer, push_image  # noqa: E402

DEPLOYMENT = """\
# The config repository's view of nodeapp: Argo CD deploys what this file says.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nodeapp
spec:
  replicas: 2
  selector:
    matchLabels: {app: nodeapp}
  template:
    metadata:
      labels: {app: nodeapp}
    spec:
      containers:
        - name: web
          image: {registry}/demo/nodeapp:1.0.0   # updated by image-updater
          ports:
            - containerPort: 8080
"""


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="image-updater-demo-"))
    with RegistryServer("anonymous") as registry, GitHttpServer() as git:
        step(f"registry at {registry.url}, Git server at {git.url}")
        base = datetime(2026, 1, 1, tzinfo=UTC)
        push_image(registry, "demo/nodeapp", "1.0.0", created=base)
        print("pushed demo/nodeapp:1.0.0")

        deployment = DEPLOYMENT.replace("{registry}", registry.host)
        git.create_repo("config", {"apps/nodeapp/deployment.yaml": deployment})
        step("config repository apps/nodeapp/deployment.yaml runs 1.0.0:")
        print(textwrap.indent(deployment, "    "))

        apps = work / "applications"
        apps.mkdir()
        (apps / "nodeapp.yaml").write_text(
            textwrap.dedent(
                f"""\
                apiVersion: argoproj.io/v1alpha1
                kind: Application
                metadata:
                  name: nodeapp
                  namespace: argocd
                  annotations:
                    argocd-image-updater.argoproj.io/image-list: app={registry.host}/demo/nodeapp:^1 || ^2
                    argocd-image-updater.argoproj.io/write-back-method: git
                    argocd-image-updater.argoproj.io/write-back-target: manifests
                spec:
                  project: default
                  source:
                    repoURL: {git.repo_url("config")}
                    targetRevision: main
                    path: apps/nodeapp
                  destination:
                    server: https://kubernetes.default.svc
                    namespace: nodeapp
                """
            )
        )
        config = work / "config.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                applications:
                  source: files
                  path: {apps}
                git:
                  user: image-updater
                  email: image-updater@example.com
                  cache_dir: {work / "cache"}
                  credentials:
                    - url: {git.url}/
                      username: {git.username}
                      password: env:DEMO_GIT_PASSWORD
                log:
                  format: console
                """
            )
        )

        push_image(registry, "demo/nodeapp", "2.0.0", created=base + timedelta(days=1))
        push_image(registry, "demo/nodeapp", "latest", created=base + timedelta(days=1))
        step("CI pushed demo/nodeapp:2.0.0 (and :latest); running: image-updater run --once")
        env = {**os.environ, "DEMO_GIT_PASSWORD": git.password}
        command = [str(ROOT / ".venv/bin/image-updater"), "run", "--once", "--config", str(config)]
        done = subprocess.run(command, env=env, check=False)
        if done.returncode != 0:
            print(f"image-updater exited with {done.returncode}", file=sys.stderr)
            return done.returncode

        step("the commit image-updater pushed to the config repository:")
        show = run_git(["show", "--stat", "--patch", "main"], git_dir=git.bare_path("config"))
        print(show.stdout.decode())

        step("a second run finds nothing new and makes no commit:")
        subprocess.run(command, env=env, check=False)
        print(f"commits on main: {git.commit_count('config')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
