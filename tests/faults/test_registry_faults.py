"""Registry faults through the fault-injecting proxy in front of the real registry, run by the real CLI.

Two Applications share one config repository: ``a`` tracks an image whose tag listing the proxy breaks,
``b`` an image the proxy leaves alone. Both run 1.0.0; the registry holds 0.9.0, 1.0.0 and 1.1.0.
Every case checks that ``a`` is reported with its cause (or recovers, for a passing fault), that ``b``
is updated in the same cycle, that the remote gets one whole commit, and that no downgrade to 0.9.0
is ever written. Backoffs and ``Retry-After`` waits are recorded by an injected sleeper, never waited.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import ProxyFactory, RegistryFactory
from tests.faults.kit import CliRun, Config, Sniffer, fsck, run_cli, sniffer
from tests.harness.gitserver import GitHttpServer
from tests.harness.proxy import Fault, FaultHook, RequestInfo, too_many_requests, unavailable
from tests.harness.registry import RegistryServer
from tests.integration.scenario import application, kustomization, push_tags

pytestmark = pytest.mark.integration

TAGS = ("0.9.0", "1.0.0", "1.1.0")


def on_tags_of(repo: str, *once: Fault | None, then: Fault | None = None) -> FaultHook:
    """A hook for tag listings of ``repo`` only: the faults of ``once`` in order, then ``then`` for ever."""
    pending = list(once)
    lock = threading.Lock()

    def hook(info: RequestInfo) -> Fault | None:
        if info.kind != "tags" or info.repo != repo:
            return None
        with lock:
            return pending.pop(0) if pending else then

    return hook


@dataclass
class Case:
    """One fault: how the proxy misbehaves, whether ``a`` still gets its update, the cause it shows."""

    hook: Callable[[str, Sniffer], FaultHook]
    updated: bool
    cause: str = ""
    check: Callable[[CliRun, Sniffer], None] = field(default=lambda run, sniff: None)
    timeout_s: float | None = None


def _slept_at_least(seconds: float) -> Callable[[CliRun, Sniffer], None]:
    def check(run: CliRun, _sniff: Sniffer) -> None:
        assert any(s >= seconds for s in run.sleeps), run.sleeps

    return check


def _backoff_grows(run: CliRun, _sniff: Sniffer) -> None:
    waits = [s for s in run.sleeps if s > 0.1]
    assert len(waits) == 3 and waits == sorted(waits) and waits[-1] >= 2.0, run.sleeps


def _never_waited_long(run: CliRun, _sniff: Sniffer) -> None:
    assert all(s < 60 for s in run.sleeps), run.sleeps


def _nothing_reached(_run: CliRun, sniff: Sniffer) -> None:
    assert sniff.seen == []


def _error_json(status: int, code: str) -> Fault:
    body = json.dumps({"errors": [{"code": code, "message": f"injected {status}"}]})
    return Fault(status=status, headers={"Content-Type": "application/json"}, body=body)


def _link(url: str) -> Fault:
    return Fault(headers={"Link": f'<{url}>; rel="next"'})


CASES: dict[str, Case] = {
    "500": Case(lambda r, s: on_tags_of(r, then=_error_json(500, "UNKNOWN")), False, "HTTP 500"),
    "503-twice-then-ok": Case(lambda r, s: on_tags_of(r, unavailable(), unavailable()), True),
    "503-for-ever": Case(lambda r, s: on_tags_of(r, then=unavailable()), False, "HTTP 503", _backoff_grows),
    "429-retry-after": Case(
        lambda r, s: on_tags_of(r, too_many_requests(retry_after=7)), True, check=_slept_at_least(7)
    ),
    "429-without-retry-after": Case(
        lambda r, s: on_tags_of(r, then=_error_json(429, "TOOMANYREQUESTS")), False, "HTTP 429", _backoff_grows
    ),
    "429-retry-after-an-hour": Case(
        lambda r, s: on_tags_of(r, then=too_many_requests(retry_after=3600)), False, "HTTP 429", _never_waited_long
    ),
    "reset-once": Case(lambda r, s: on_tags_of(r, Fault(reset=True)), True),
    # regression: a reset connection was reported as a bare "ReadError"
    "reset-for-ever": Case(
        lambda r, s: on_tags_of(r, then=Fault(reset=True)), False, "the connection was reset or closed"
    ),
    # no answer within the timeout (the proxy drops the connection silently much later)
    "slow-past-the-timeout": Case(
        lambda r, s: on_tags_of(r, then=Fault(delay_s=1.5, reset=True)), False, "timed out", timeout_s=0.3
    ),
    "truncated-body": Case(lambda r, s: on_tags_of(r, then=Fault(truncate_to=12)), False, "listing the tags"),
    "truncated-json": Case(
        lambda r, s: on_tags_of(r, then=Fault(status=200, body='{"name": "x", "tags": ["1.')),
        False,
        "not valid JSON",
    ),
    "link-loops": Case(
        lambda r, s: on_tags_of(r, then=_link(f"/v2/{r}/tags/list?n=1000")), False, "loops back to a page"
    ),
    "link-to-another-host": Case(
        lambda r, s: on_tags_of(r, then=_link(f"{s.url}/v2/{r}/tags/list?n=1000&last=1.1.0")),
        False,
        "refusing a next page on another host",
        _nothing_reached,
    ),
    "stale-list-without-newer-tags": Case(
        lambda r, s: on_tags_of(r, then=Fault(status=200, body=json.dumps({"name": r, "tags": ["0.9.0"]}))),
        False,
    ),
    "null-tags": Case(
        lambda r, s: on_tags_of(r, then=Fault(status=200, body=json.dumps({"name": r, "tags": None}))), False
    ),
}


def _setup(
    registry: RegistryServer, git: GitHttpServer, tmp: Path, name: str, host: str, api_url: str
) -> tuple[Config, str, str]:
    repo_a, repo_b = f"faults/{name}/a", f"faults/{name}/b"
    for repo in (repo_a, repo_b):
        push_tags(registry, repo, *TAGS)
    image_a, image_b = f"{host}/{repo_a}", f"{host}/{repo_b}"
    url = git.create_repo(
        f"rf-{name}",
        {
            "a/kustomization.yaml": kustomization(image_a, "1.0.0"),
            "b/kustomization.yaml": kustomization(image_b, "1.0.0"),
        },
    )
    config = Config(tmp, git, registries=[{"name": "proxy", "prefix": host, "api_url": api_url}])
    config.add_app("a.yaml", application("a", url, "a", image_a))
    config.add_app("b.yaml", application("b", url, "b", image_b))
    return config, image_a, image_b


def _check_remote(git: GitHttpServer, name: str, image_a: str, image_b: str, a_updated: bool) -> None:
    assert git.read_file(f"rf-{name}", "b/kustomization.yaml") == kustomization(image_b, "1.1.0")
    a_text = git.read_file(f"rf-{name}", "a/kustomization.yaml")
    assert a_text == kustomization(image_a, "1.1.0" if a_updated else "1.0.0")
    assert "0.9.0" not in (a_text or ""), "a downgrade was written"
    assert git.commit_count(f"rf-{name}") == 2
    fsck(git, f"rf-{name}")


@pytest.mark.parametrize("name", list(CASES))
def test_a_registry_fault_is_reported_and_the_other_application_is_updated(
    name: str,
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tags_proxy: ProxyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = CASES[name]
    proxy = tags_proxy(registry_anon)
    config, image_a, image_b = _setup(registry_anon, git_server, tmp_path, name, proxy.host, proxy.url)
    with sniffer() as sniff:
        proxy.fault = case.hook(f"faults/{name}/a", sniff)
        options = {"timeout": httpx.Timeout(case.timeout_s)} if case.timeout_s else {}
        run = run_cli(config, monkeypatch, client_options=options)
        case.check(run, sniff)

    _check_remote(git_server, name, image_a, image_b, case.updated)
    processed = {
        line["app"]: line for line in run.logs if line.get("event") in ("application processed", "application failed")
    }
    assert processed["b"]["status"] == "updated"
    if case.updated:
        assert run.code == 0 and processed["a"]["status"] == "updated", run.stderr
    elif case.cause:
        assert run.code == 1, run.stderr
        lines = [e for e in run.errors() if "application a" in e]
        assert len(lines) == 1, run.stderr
        assert f"image {image_a}" in lines[0] and case.cause in lines[0], lines[0]
        assert processed["a"]["status"] == "failed"
    else:  # an answer that offers nothing newer: a skip that says why, not an error and not a downgrade
        assert run.code == 0, run.stderr
        assert processed["a"]["status"] == "unchanged"
        if "skipped" in processed["a"]:
            assert re.search(r"not downgrading|no tag", " ".join(processed["a"]["skipped"])), processed["a"]


@pytest.mark.parametrize(("failures", "status", "updated"), [(1, 503, True), (1000, 500, False)])
def test_a_failing_token_endpoint_is_reported_and_the_other_application_is_updated(
    failures: int,
    status: int,
    updated: bool,
    registry_factory: RegistryFactory,
    registry_anon: RegistryServer,
    git_server: GitHttpServer,
    tags_proxy: ProxyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_registry = registry_factory("token")
    tokens = token_registry.token_server
    assert tokens is not None
    name = f"token-{status}"
    proxy = tags_proxy(registry_anon)
    config, _, image_b = _setup(registry_anon, git_server, tmp_path, name, proxy.host, proxy.url)
    repo_a = f"faults/{name}/tokened"
    push_tags(token_registry, repo_a, *TAGS)
    image_a = f"{token_registry.host}/{repo_a}"
    git_server.push_commit(f"rf-{name}", {"a/kustomization.yaml": kustomization(image_a, "1.0.0")}, "track tokened")
    config.add_app("a.yaml", application("a", git_server.repo_url(f"rf-{name}"), "a", image_a))
    config.registries.append(
        {
            "name": "tokened",
            "prefix": token_registry.host,
            "api_url": token_registry.url,
            "credentials": "env:IU_TOKEN_CREDS",
        }
    )
    monkeypatch.setenv("IU_TOKEN_CREDS", f"{tokens.username}:{tokens.password}")
    tokens.fail_next(failures, status)

    run = run_cli(config, monkeypatch)

    assert git_server.read_file(f"rf-{name}", "b/kustomization.yaml") == kustomization(image_b, "1.1.0")
    assert git_server.read_file(f"rf-{name}", "a/kustomization.yaml") == kustomization(
        image_a, "1.1.0" if updated else "1.0.0"
    )
    assert git_server.commit_count(f"rf-{name}") == 3
    if updated:
        assert run.code == 0, run.stderr
        assert any(s > 0 for s in run.sleeps)  # the 503 was retried after a backoff
    else:
        assert run.code == 1
        (line,) = [e for e in run.errors() if "application a" in e]
        assert f"image {image_a}" in line and "token endpoint refused" in line and "HTTP 500" in line, line
