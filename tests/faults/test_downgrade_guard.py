"""No downgrade under registry faults with ``newest-build``, whose order comes from each tag's image."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ProxyFactory
from tests.faults.kit import Config, run_cli
from tests.harness.gitserver import GitHttpServer
from tests.harness.proxy import Fault, RequestInfo
from tests.harness.registry import RegistryServer
from tests.integration.scenario import application, kustomization, push_tags

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=200, headers={"Content-Type": "application/json"}, body='{"schemaVersion": 2, "mediaTy'),
        Fault(status=404, body='{"errors":[{"code":"MANIFEST_UNKNOWN","message":"glitch"}]}'),
        Fault(status=400, body='{"errors":[{"code":"UNKNOWN","message":"bad"}]}'),
    ],
    ids=["garbled-manifest", "manifest-404", "manifest-400"],
)
def test_an_unreadable_running_image_is_no_reason_to_move_to_an_older_one(
    fault: Fault,
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tags_proxy: ProxyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    case = request.node.callspec.id
    repo = f"downgrade/{case}"
    push_tags(registry_anon, repo, "1.0.0", "1.1.0")  # 1.1.0 built a day after 1.0.0
    proxy = tags_proxy(registry_anon)

    def hook(info: RequestInfo) -> Fault | None:
        return fault if info.kind == "manifest" and info.reference == "1.1.0" else None

    proxy.fault = hook
    image = f"{proxy.host}/{repo}"
    name = f"downgrade-{case}"
    # two Applications run the image the same way (the cycle makes their selection once)
    url = git_server.create_repo(name, {f"{app}/kustomization.yaml": kustomization(image, "1.1.0") for app in "kl"})
    config = Config(tmp_path, git_server, registries=[{"name": "p", "prefix": proxy.host, "api_url": proxy.url}])
    for app in "kl":
        config.add_app(f"{app}.yaml", application(app, url, app, image, update_strategy="newest-build"))

    run = run_cli(config, monkeypatch)

    for app in "kl":
        assert git_server.read_file(name, f"{app}/kustomization.yaml") == kustomization(image, "1.1.0"), run.stderr
    assert git_server.commit_count(name) == 1
    skipped = [line["skipped"] for line in run.logs if line.get("event") == "application processed"]
    assert len(skipped) == 2 and all("failed to serve its image" in " ".join(s) for s in skipped), skipped
