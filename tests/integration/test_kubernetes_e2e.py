"""The product with ``applications.source: kubernetes``, end to end: Applications in the fake Kubernetes
API server (real HTTP, lightkube), images in the real basic-auth registry, the config repository on the
real Git server, and the real ``image-updater`` command.

- ``run --once``: a Git write-back (``git:secret:`` credentials from a Secret) lands as a commit; an
  ``argocd`` write-back (Kustomize, and Helm from ``status.summary.images``) patches the Application;
  ``ImagesUpdated`` Events name each Application; the registry is reached with a ``pullsecret:``; the
  label selector and namespaces keep the rest out; a second run changes nothing.
- ``--dry-run`` prints the diff and the patch and writes nothing.
- ``check`` names the Application and the annotation that is wrong.
- two service processes: only the Lease holder writes; one that loses the Lease stops writing at once;
  killing the leader hands over within the lease duration.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from image_updater.cli import main
from tests.harness.gitserver import GitHttpServer
from tests.harness.kubetarget import KubeTarget, application
from tests.harness.registry import RegistryServer
from tests.harness.util import free_port, wait_until
from tests.integration.scenario import PREFIX, deployment, kustomization, push_tags

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cluster:
    """One test's world: a namespace of the fake API server, images, a config repository, a config."""

    kube: KubeTarget
    registry: RegistryServer
    git: GitHttpServer
    ns: str
    repo: str
    config: Path

    def image(self, name: str) -> str:
        return f"{self.registry.host}/{self.ns}/{name}"

    def app(self, name: str) -> dict[str, Any]:
        return self.kube.get("argoproj.io/v1alpha1", "Application", self.ns, name)

    def events(self) -> list[dict[str, Any]]:
        return self.kube.list("v1", "Event", self.ns)

    def fake_requests(self, method: str, part: str = "") -> list[Any]:
        """Requests the fake API server received (skips the test against a real cluster)."""
        return self.kube.require_fake().requests_to(method, part)


def docker_config(registry: RegistryServer) -> str:
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    return json.dumps({"auths": {registry.host: {"auth": auth}}})


def write_config(path: Path, cluster_kubeconfig: Path, ns: str, registry: RegistryServer, cache: Path) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            applications:
              source: kubernetes
              namespaces: [{ns}]
            kubernetes:
              kubeconfig: {cluster_kubeconfig}
            registries:
              - name: basic
                prefix: {registry.host}
                api_url: {registry.url}
                credentials: pullsecret:{ns}/regcred
            git:
              user: image-updater
              email: bot@example.com
              cache_dir: {cache}
            log:
              format: json
            """
        )
    )
    return path


def argocd_app(name: str, ns: str, images: str, source: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return application(name, ns, images=images, labels={"team": "web"}, source=source, status=status)


@pytest.fixture
def cluster(
    kube: KubeTarget, registry_basic: RegistryServer, git_server: GitHttpServer, tmp_path: Path
) -> Cluster:
    """Four Applications in a fresh namespace (``web``: Git write-back to a kustomization; ``api`` and
    ``chart``: argocd write-back, Kustomize and Helm; ``db``: another team's), their images, two Secrets."""
    ns = kube.namespace("e2e")
    world = Cluster(kube, registry_basic, git_server, ns, f"k8s-{ns}", tmp_path / "config.yaml")
    push_tags(registry_basic, f"{ns}/web", "1.0.0", "1.1.0")
    push_tags(registry_basic, f"{ns}/api", "2.0.0", "2.1.0")
    push_tags(registry_basic, f"{ns}/chart", "3.0.0", "3.2.0")
    web = world.image("web")
    url = git_server.create_repo(
        world.repo,
        {"apps/web/kustomization.yaml": kustomization(web, "1.0.0"), "apps/web/deployment.yaml": deployment(web)},
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": ns}}
    kube.create(
        secret
        | {
            "metadata": {"name": "regcred", "namespace": ns},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": docker_config(registry_basic)},
        }
    )
    kube.create(
        secret
        | {
            "metadata": {"name": "gitcreds", "namespace": ns},
            "stringData": {"username": git_server.username, "password": git_server.password},
        }
    )
    kube.create(
        application(
            "web",
            ns,
            images=f"web={web}:~1",
            labels={"team": "web"},
            annotations={
                PREFIX + "write-back-method": f"git:secret:{ns}/gitcreds",
                PREFIX + "write-back-target": "kustomization",
            },
            source={"repoURL": url, "targetRevision": "main", "path": "apps/web"},
        )
    )
    api = world.image("api")
    kube.create(
        argocd_app(
            "api",
            ns,
            f"api={api}",
            {"repoURL": url, "path": "apps/api", "kustomize": {"images": [f"{api}:2.0.0"]}},
            {"sourceType": "Kustomize", "summary": {"images": [f"{api}:2.0.0"]}},
        )
    )
    chart = world.image("chart")
    kube.create(
        argocd_app(
            "chart",
            ns,
            chart,
            {"repoURL": url, "path": "charts/chart", "helm": {"releaseName": "chart"}},
            {"sourceType": "Helm", "summary": {"images": [f"{chart}:3.0.0", "docker.io/library/redis:7.2"]}},
        )
    )
    kube.create(
        application(
            "db",
            ns,
            images=api,
            labels={"team": "db"},
            source={"repoURL": url, "path": "apps/db", "kustomize": {"images": [f"{api}:2.0.0"]}},
        )
    )
    write_config(world.config, kube.kubeconfig_path, ns, registry_basic, tmp_path / "cache")
    return world


def run_once(world: Cluster, *extra: str) -> int:
    return main(["run", "--once", "--config", str(world.config), "--match-application-label", "team=web", *extra])


def test_run_once_commits_patches_records_events_and_reads_credentials_from_secrets(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    world = cluster
    uids = {name: world.app(name)["metadata"]["uid"] for name in ("web", "api", "chart")}
    started = time.monotonic()

    assert run_once(world) == 0
    took = time.monotonic() - started

    out = capsys.readouterr()
    web, api, chart = world.image("web"), world.image("api"), world.image("chart")
    # Git write-back: one commit with the kustomization's new tag, pushed with the Secret's credentials
    assert world.git.commit_count(world.repo) == 2
    assert world.git.read_file(world.repo, "apps/web/kustomization.yaml") == kustomization(web, "1.1.0")
    assert f"{web}: 1.0.0 -> 1.1.0" in world.git.commit_message(world.repo)
    # argocd write-back: the Applications' own spec, Kustomize images and Helm parameters
    assert world.app("api")["spec"]["source"]["kustomize"]["images"] == [f"{api}:2.1.0"]
    assert world.app("chart")["spec"]["source"]["helm"]["parameters"] == [
        {"name": "image.name", "value": chart, "forceString": True},
        {"name": "image.tag", "value": "3.2.0", "forceString": True},
    ]
    assert world.app("chart")["spec"]["source"]["helm"]["releaseName"] == "chart"
    # another team's Application (label selector) is left alone
    assert world.app("db")["spec"]["source"]["kustomize"]["images"] == [f"{api}:2.0.0"]
    # one ImagesUpdated Event per updated Application, about that very object
    events = {e["involvedObject"]["name"]: e for e in world.events()}
    assert set(events) == {"web", "api", "chart"}
    for name, event in events.items():
        assert event["reason"] == "ImagesUpdated" and event["type"] == "Normal"
        assert event["involvedObject"]["uid"] == uids[name] and event["involvedObject"]["kind"] == "Application"
    assert events["web"]["message"] == f"Successfully updated images: {web}: 1.0.0 -> 1.1.0"
    assert events["api"]["message"] == f"Successfully updated images: {api}: 2.0.0 -> 2.1.0"
    assert events["chart"]["message"] == f"Successfully updated images: {chart}: 3.0.0 -> 3.2.0"
    # the credentials came from the Secrets and never reached the output
    assert world.registry.password not in out.out + out.err and world.git.password not in out.out + out.err
    assert f"web: updated {web}: 1.0.0 -> 1.1.0" in out.out and f"api: updated {api}: 2.0.0 -> 2.1.0" in out.out
    print(f"\nrun --once, kubernetes source, 3 Applications updated (1 commit, 2 patches): {took:.2f} s")
    versions = {name: world.app(name)["metadata"]["resourceVersion"] for name in ("api", "chart")}

    assert run_once(world) == 0  # nothing left to do
    assert world.git.commit_count(world.repo) == 2 and len(world.events()) == 3
    assert {name: world.app(name)["metadata"]["resourceVersion"] for name in ("api", "chart")} == versions
    if world.kube.is_fake:
        assert world.fake_requests("GET", f"/namespaces/{world.ns}/secrets/regcred")
        assert world.fake_requests("GET", f"/namespaces/{world.ns}/secrets/gitcreds")


def test_dry_run_prints_the_diff_and_the_patch_and_writes_nothing(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    world = cluster
    assert run_once(world, "--dry-run") == 0

    out = capsys.readouterr().out
    assert "+    newTag: 1.1.0   # managed by image-updater" in out
    assert f"# Application {world.ns}/api: merge patch (write-back-method argocd; not applied)" in out
    assert f"- {world.image('api')}:2.1.0" in out and "value: 3.2.0" in out
    assert f"api: would update {world.image('api')}: 2.0.0 -> 2.1.0" in out
    assert world.git.commit_count(world.repo) == 1 and world.events() == []
    assert world.app("api")["spec"]["source"]["kustomize"]["images"] == [f"{world.image('api')}:2.0.0"]
    assert "parameters" not in world.app("chart")["spec"]["source"]["helm"]
    if world.kube.is_fake:
        assert not world.fake_requests("PATCH")


def test_check_names_the_application_and_the_annotation(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    world = cluster
    world.kube.create(
        application(
            "broken",
            world.ns,
            images=world.image("api"),
            annotations={PREFIX + "update-strategy": "fastest"},
        )
    )
    world.kube.create(application("bad-range", world.ns, images=f"{world.image('api')}:~1.x.y"))

    assert main(["check", "--config", str(world.config)]) == 1

    lines = capsys.readouterr().out.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 2, lines
    strategy = next(line for line in errors if "broken" in line)
    assert f"{world.ns}/broken" in strategy and "application broken" in strategy
    assert f"annotation {PREFIX}update-strategy" in strategy and "'fastest'" in strategy
    constraint = next(line for line in errors if "bad-range" in line)
    assert "application bad-range" in constraint and "~1.x.y" in constraint
    assert lines[-1] == "5 applications, 2 errors"


# -- replicas -----------------------------------------------------------------------------------------

LEASE = "replicas"
LEASE_DURATION_S = 2


class ServiceProcess:
    """``image-updater run`` as its own process (``POD_NAME`` names it in the Lease and in Events)."""

    def __init__(self, config: Path, name: str, tmp: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = (tmp / f"{name}.log").open("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "image_updater.cli", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "POD_NAME": name, "IMAGE_UPDATER_HEALTH_PORT": str(self.port)},
        )

    def ready(self) -> int:
        import httpx

        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code
        except httpx.TransportError:
            return 0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        return text


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[[Path, str], ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(config: Path, name: str) -> ServiceProcess:
        started.append(ServiceProcess(config, name, tmp_path))
        return started[-1]

    yield start
    for service in started:
        text = service.close()
        if service.process.returncode not in (0, -signal.SIGKILL):
            print(f"--- {service.name} (exit {service.process.returncode})\n{text[-4000:]}")


def holder(world: Cluster) -> str:
    try:
        lease = world.kube.get("coordination.k8s.io/v1", "Lease", world.ns, LEASE)
    except Exception:
        return ""
    return str(lease["spec"].get("holderIdentity") or "")


def writer_events(world: Cluster) -> list[tuple[float, str]]:
    """(received, replica) of every Event the service created, in order."""
    posts = world.fake_requests("POST", f"/namespaces/{world.ns}/events")
    return [(p.received_at, str(p.body["reportingInstance"]).split("_")[0]) for p in posts if p.status == 201]


def revert_api(world: Cluster) -> None:
    """A user sets the Application back to the old tag; the leader's next cycle updates it again."""
    world.kube.merge_patch(
        "argoproj.io/v1alpha1",
        "Application",
        world.ns,
        "api",
        {"spec": {"source": {"kustomize": {"images": [f"{world.image('api')}:2.0.0"]}}}},
    )


def api_tag(world: Cluster) -> str:
    return str(world.app("api")["spec"]["source"]["kustomize"]["images"][0]).rsplit(":", 1)[1]


def test_two_service_replicas_only_the_lease_holder_writes(
    cluster: Cluster, services: Callable[[Path, str], ServiceProcess]
) -> None:
    world = cluster
    world.kube.require_fake()  # reads its request log
    config = world.config.read_text() + textwrap.dedent(
        f"""\
        interval: 300ms
        webhook: {{port: 0}}
        leader_election:
          lease_name: {LEASE}
          namespace: {world.ns}
          lease_duration: {LEASE_DURATION_S}s
          renew_deadline: 1200ms
          renew_interval: 200ms
        """
    )
    world.config.write_text(config)

    first = services(world.config, "first")
    assert wait_until(lambda: holder(world).startswith("first_"), timeout=15), "the first replica never led"
    assert wait_until(lambda: api_tag(world) == "2.1.0", timeout=10)
    second = services(world.config, "second")
    assert wait_until(lambda: second.ready() == 503 and first.ready() == 200, timeout=15)

    for _ in range(3):  # the leader keeps writing; the follower never does
        revert_api(world)
        assert wait_until(lambda: api_tag(world) == "2.1.0", timeout=5)
    assert {who for _, who in writer_events(world)} == {"first"}

    # someone else takes the Lease: the first replica stops writing at once
    world.kube.merge_patch(
        "coordination.k8s.io/v1",
        "Lease",
        world.ns,
        LEASE,
        {"spec": {"holderIdentity": "intruder", "renewTime": _now(), "leaseDurationSeconds": 60}},
    )
    assert wait_until(lambda: first.ready() == 503, timeout=5), "the first replica still says it leads"
    stolen = time.monotonic()
    revert_api(world)
    time.sleep(1.0)  # five cycles' worth
    assert api_tag(world) == "2.0.0", "a replica wrote without holding the Lease"
    assert all(at < stolen for at, _ in writer_events(world))

    # the intruder lets go; one replica leads again and updates; then the leader is killed
    released = {"spec": {"holderIdentity": None, "leaseDurationSeconds": 1}}
    world.kube.merge_patch("coordination.k8s.io/v1", "Lease", world.ns, LEASE, released)
    assert wait_until(lambda: api_tag(world) == "2.1.0", timeout=10)
    leader = first if holder(world).startswith("first_") else second
    follower = second if leader is first else first
    leader.kill()
    killed = time.monotonic()
    assert wait_until(lambda: holder(world).startswith(f"{follower.name}_"), timeout=10)
    handover = time.monotonic() - killed
    revert_api(world)
    assert wait_until(lambda: api_tag(world) == "2.1.0", timeout=5)
    assert wait_until(lambda: any(at > killed for at, _ in writer_events(world)), timeout=5)
    assert {who for at, who in writer_events(world) if at > killed} == {follower.name}
    print(f"\nservice replicas: hand-over after SIGKILL of the leader: {handover:.2f} s (lease {LEASE_DURATION_S} s)")
    assert handover <= LEASE_DURATION_S + 1.0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
