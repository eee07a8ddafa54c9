"""The keys for the Kubernetes client, leader election and the service's listener: defaults that match
manifests/, validation naming key and line, environment overrides, flags over both, and the Lease
settings the service derives from them (namespace and identity from the pod)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from image_updater.cli import _settings, build_parser
from image_updater.config import Settings, load_settings
from image_updater.errors import ConfigError
from image_updater.service.wiring import DEFAULT_LEASE_NAMESPACE, lease_settings

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_install_s() -> None:
    settings = load_settings(None, env={})
    assert settings.kubernetes.kubeconfig == "" and settings.kubernetes.context == ""
    election = settings.leader_election
    assert election.enabled and election.lease_name == "image-updater-leader"  # manifests/rbac.yaml's name
    assert (election.lease_duration, election.renew_deadline, election.renew_interval) == (15, 10, 2)
    assert settings.listen_address == "0.0.0.0"
    assert settings.webhook.coalesce == 0.3 and settings.webhook.max_body_bytes == 1 << 20


def _fields(cls: type, prefix: str = "") -> list[str]:
    found = []
    for f in dataclasses.fields(cls):
        kind = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(kind):
            found += _fields(kind, f"{prefix}{f.name}.")
        else:
            found.append(prefix + f.name)
    return found


def test_the_example_config_shows_every_key() -> None:
    example = YAML(typ="safe").load((ROOT / "config.example.yaml").read_text())
    missing = []
    for key in _fields(Settings):
        node: Any = example
        for part in key.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is KeyError:
            missing.append(key)
    assert missing == []


def test_every_new_key_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "listen_address: 127.0.0.1\n"
        "kubernetes: {kubeconfig: /k/config, context: kind-test}\n"
        "leader_election:\n"
        "  enabled: false\n  lease_name: other\n  namespace: ops\n"
        "  lease_duration: 30s\n  renew_deadline: 20s\n  renew_interval: 500ms\n"
        "webhook: {port: 9000, coalesce: 1s, max_body_bytes: 4096}\n",
    )
    settings = load_settings(path, env={})
    assert settings.listen_address == "127.0.0.1"
    assert (settings.kubernetes.kubeconfig, settings.kubernetes.context) == ("/k/config", "kind-test")
    election = settings.leader_election
    assert not election.enabled and (election.lease_name, election.namespace) == ("other", "ops")
    assert (election.lease_duration, election.renew_deadline, election.renew_interval) == (30, 20, 0.5)
    assert (settings.webhook.port, settings.webhook.coalesce, settings.webhook.max_body_bytes) == (9000, 1, 4096)


@pytest.mark.parametrize(
    ("text", "key", "line", "message"),
    [
        ("kubernetes:\n  kubeconfg: /x\n", "kubernetes.kubeconfg", 2, "unknown key"),
        ("leader_election:\n  enabled: true\n  lease: x\n", "leader_election.lease", 3, "unknown key"),
        ("leader_election:\n  lease_duration: 1.5\n", "leader_election.lease_duration", 2, "whole seconds"),
        ("leader_election:\n  renew_deadline: 20s\n", "leader_election.renew_deadline", 2, "shorter than lease"),
        ("leader_election:\n  renew_interval: 10s\n", "leader_election.renew_interval", 2, "shorter than renew"),
        ("leader_election:\n  enabled: maybe\n", "leader_election.enabled", 2, "expected a boolean"),
        ("webhook:\n  max_body_bytes: 0\n", "webhook.max_body_bytes", 2, "at least 1"),
        ("webhook:\n  coalesce: soon\n", "webhook.coalesce", 2, "not a duration"),
        ("interval: 1m\nlisten_address: 8080\n", "listen_address", 2, "expected a string"),
    ],
)
def test_mistakes_name_the_key_and_its_line(tmp_path: Path, text: str, key: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(write(tmp_path, text), env={})
    assert (info.value.key, info.value.line) == (key, line)


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "IMAGE_UPDATER_LISTEN_ADDRESS": "::",
        "IMAGE_UPDATER_KUBERNETES_KUBECONFIG": "/etc/kube",
        "IMAGE_UPDATER_LEADER_ELECTION_ENABLED": "false",
        "IMAGE_UPDATER_LEADER_ELECTION_NAMESPACE": "ops",
        "IMAGE_UPDATER_WEBHOOK_PORT": "9100",
    }
    settings = load_settings(write(tmp_path, "leader_election: {lease_name: mine}\n"), env=env)
    assert settings.listen_address == "::" and settings.kubernetes.kubeconfig == "/etc/kube"
    assert not settings.leader_election.enabled and settings.leader_election.namespace == "ops"
    assert settings.leader_election.lease_name == "mine" and settings.webhook.port == 9100
    with pytest.raises(ConfigError, match="IMAGE_UPDATER_LEADER_ELECTION_ENABLED"):
        load_settings(None, env={"IMAGE_UPDATER_LEADER_ELECTION_ENABLED": "perhaps"})


def test_flags_override_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IMAGE_UPDATER_LISTEN_ADDRESS", "IMAGE_UPDATER_KUBERNETES_KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    path = write(tmp_path, "listen_address: 10.0.0.1\nwebhook: {coalesce: 2s, max_body_bytes: 100}\n")
    args = build_parser().parse_args(["run", "--config", str(path)])
    settings = _settings(args)
    assert (settings.listen_address, settings.webhook.coalesce, settings.webhook.max_body_bytes) == (
        "10.0.0.1",
        2,
        100,
    )
    args = build_parser().parse_args(
        [
            "run",
            "--config",
            str(path),
            "--listen-address",
            "127.0.0.1",
            "--webhook-coalesce",
            "50ms",
            "--webhook-max-body-bytes",
            "10",
            "--kubeconfig",
            "/k",
        ]
    )
    settings = _settings(args)
    assert (settings.listen_address, settings.webhook.coalesce, settings.webhook.max_body_bytes) == (
        "127.0.0.1",
        0.05,
        10,
    )
    assert settings.kubernetes.kubeconfig == "/k"


def test_the_installed_config_map_reads_applications_from_kubernetes_and_elects_a_leader() -> None:
    settings = load_settings(ROOT / "manifests" / "config.yaml", env={})
    assert settings.applications.source == "kubernetes" and settings.leader_election.enabled
    assert "resourceNames: [\"image-updater-leader\"]" in (ROOT / "manifests" / "rbac.yaml").read_text()
    assert settings.leader_election.lease_name == "image-updater-leader"


def test_the_lease_lives_in_the_pod_s_namespace_and_is_held_by_the_pod(tmp_path: Path) -> None:
    election = load_settings(None, env={}).leader_election
    account = tmp_path / "serviceaccount"
    account.mkdir()

    env = {"POD_NAMESPACE": "tools", "POD_NAME": "iu-7d9f"}
    pod = lease_settings(election, environ=env, service_account_dir=account)
    assert pod.namespace == "tools" and pod.identity.startswith("iu-7d9f_")
    assert (pod.lease_duration_s, pod.renew_deadline_s, pod.renew_interval_s) == (15, 10.0, 2.0)
    again = lease_settings(election, environ={"POD_NAME": "iu-7d9f"}, service_account_dir=account)
    assert again.identity != pod.identity  # a restarted pod is a new holder

    (account / "namespace").write_text("from-account\n")
    assert lease_settings(election, environ={}, service_account_dir=account).namespace == "from-account"
    (account / "namespace").unlink()
    assert lease_settings(election, environ={}, service_account_dir=account).namespace == DEFAULT_LEASE_NAMESPACE
    named = load_settings(None, env={"IMAGE_UPDATER_LEADER_ELECTION_NAMESPACE": "ops"}).leader_election
    assert lease_settings(named, environ={"POD_NAMESPACE": "tools"}, service_account_dir=account).namespace == "ops"
