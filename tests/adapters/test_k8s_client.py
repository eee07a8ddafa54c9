"""Finding the cluster (kubeconfig path or dict, in-cluster service account, $KUBECONFIG) and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from image_updater.adapters.k8s.client import build_client, describe, load_config
from image_updater.adapters.k8s.source import KubernetesSource
from image_updater.errors import ConfigError, ImageUpdaterError
from tests.harness.kubeapi import FakeKubeApi

pytestmark = pytest.mark.anyio



def service_account(tmp_path: Path) -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token\n")
    (account / "namespace").write_text("argocd")
    (account / "ca.crt").write_text("")
    return account


def test_in_cluster_configuration_from_the_service_account(tmp_path: Path) -> None:
    account = service_account(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBECONFIG": "/nowhere"}
    config = load_config(service_account_dir=account, environ=env)
    assert config.cluster.server == "https://10.96.0.1:443"
    assert config.cluster.certificate_auth == str(account / "ca.crt")
    assert config.user is not None and config.user.token == "sa-token"
    assert config.user.token_file == str(account / "token")  # re-read when the API answers 401
    assert config.namespace == "argocd"
    ipv6 = load_config(service_account_dir=account, environ={"KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert ipv6.cluster.server == "https://[fd00::1]:443"


def test_a_given_kubeconfig_wins_and_kubeconfig_from_the_environment_is_next(tmp_path: Path) -> None:
    account = service_account(tmp_path)
    conf = {
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://one"}},
            {"name": "c2", "cluster": {"server": "https://two"}},
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "first", "context": {"cluster": "c1", "user": "u"}},
            {"name": "second", "context": {"cluster": "c2", "user": "u"}},
        ],
        "current-context": "first",
    }
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    assert load_config(conf, service_account_dir=account, environ=env).cluster.server == "https://one"
    assert load_config(conf, context="second", environ=env).cluster.server == "https://two"
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(conf))
    assert load_config(environ={"KUBECONFIG": f"{path}:/other"}).cluster.server == "https://one"
    assert load_config(path).context_name == "first"


def test_a_configuration_that_cannot_be_loaded_says_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load the Kubernetes configuration from in-cluster/KUBECONFIG"):
        load_config(environ={"KUBECONFIG": str(tmp_path / "absent")}, service_account_dir=tmp_path)
    with pytest.raises(ConfigError, match="Context 'nope' not found"):
        load_config({"clusters": [], "contexts": [], "current-context": "x"}, context="nope")


async def test_the_client_authenticates_with_the_kubeconfig_token() -> None:
    with FakeKubeApi(token="right") as api:
        good = build_client(api.kubeconfig())
        bad_config = api.kubeconfig()
        bad_config["users"][0]["user"]["token"] = "wrong"
        bad = build_client(bad_config)
        try:
            assert (await KubernetesSource(good).discover()).apps == ()
            assert api.requests[-1].headers["Authorization"] == "Bearer right"
            with pytest.raises(ImageUpdaterError, match="cannot list Applications in all namespaces: HTTP 401"):
                await KubernetesSource(bad).discover()
        finally:
            await good.close()
            await bad.close()


def test_describe_names_connection_failures() -> None:
    import httpx2

    assert describe(httpx2.ConnectError("refused")) == "ConnectError: refused"
