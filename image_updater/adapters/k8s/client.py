"""The Kubernetes client: configuration, the bounded request loop, and error translation.

``build_client`` makes a lightkube ``AsyncClient`` from a kubeconfig (a path or a dict) or, without
one, from the in-cluster service account, then ``$KUBECONFIG`` / ``~/.kube/config``. Every API call
of this package goes through :func:`call_api`, which retries temporary failures (connection errors,
``429``, ``5xx``) a bounded number of times and honours ``Retry-After``, as kopf's API loop does.
Errors leave the package as :mod:`image_updater.errors` types, translated with :func:`translate`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from lightkube import AsyncClient
from lightkube import ConfigError as LightkubeConfigError
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ApiError

from image_updater.errors import ConfigError, ImageUpdaterError

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_KUBECONFIG = "~/.kube/config"
FIELD_MANAGER = "image-updater"

T = TypeVar("T")
E = TypeVar("E", bound=ImageUpdaterError)
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ApiRetry:
    """How temporary API failures are retried.

    ``attempts`` counts the first try. The wait before retry *n* is ``base_backoff_s * 2**(n-1)``
    (capped at ``max_backoff_s``), or the server's ``Retry-After`` (capped at ``max_retry_after_s``).
    """

    #: total tries, the first included
    attempts: int = 4
    #: first backoff, doubled each time
    base_backoff_s: float = 0.2
    #: ceiling of the computed backoff
    max_backoff_s: float = 5.0
    #: ceiling of a server-sent ``Retry-After``
    max_retry_after_s: float = 30.0
    #: statuses that mean "try again later"
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))


DEFAULT_RETRY = ApiRetry()
NO_RETRY = ApiRetry(attempts=1)


def load_config(
    kubeconfig: str | Path | Mapping[str, Any] | None = None,
    *,
    context: str | None = None,
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> SingleConfig:
    """The connection settings, from the first of: ``kubeconfig`` (path or dict), the in-cluster
    service account (``KUBERNETES_SERVICE_HOST`` and a token in ``service_account_dir``),
    ``$KUBECONFIG``, ``~/.kube/config``. Raises :class:`ConfigError` saying what was tried.
    """
    env = os.environ if environ is None else environ
    try:
        if isinstance(kubeconfig, Mapping):
            config = KubeConfig.from_dict(dict(kubeconfig))
        elif kubeconfig is not None:
            config = KubeConfig.from_file(kubeconfig)
        elif env.get("KUBERNETES_SERVICE_HOST") and Path(service_account_dir, "token").is_file():
            config = _in_cluster(Path(service_account_dir), env)
        else:
            path = env.get("KUBECONFIG") or DEFAULT_KUBECONFIG
            config = KubeConfig.from_file(path.split(os.pathsep)[0])
        single = config.get(context)
    except (LightkubeConfigError, OSError, KeyError, TypeError, ValueError) as e:
        where = "the kubeconfig dict" if isinstance(kubeconfig, Mapping) else str(kubeconfig or "in-cluster/KUBECONFIG")
        raise ConfigError(f"cannot load the Kubernetes configuration from {where}: {e}", key="kubernetes") from e
    if single is None:
        raise ConfigError("the Kubernetes configuration names no context", key="kubernetes")
    return single


def _in_cluster(account: Path, env: Mapping[str, str]) -> KubeConfig:
    # lightkube's from_service_account reads os.environ itself; this keeps the environment injectable
    from lightkube.config.models import Cluster, User

    host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    namespace_file = account / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    token_file = account / "token"
    return KubeConfig.from_one(
        cluster=Cluster(server=f"https://{host}:{port}", certificate_auth=str(account / "ca.crt")),
        user=User(token=token_file.read_text().strip(), token_file=str(token_file)),
        namespace=namespace,
    )


def build_client(
    kubeconfig: str | Path | Mapping[str, Any] | None = None,
    *,
    context: str | None = None,
    timeout_s: float = 10.0,
    field_manager: str = FIELD_MANAGER,
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> AsyncClient:
    """A lightkube ``AsyncClient`` for the cluster :func:`load_config` finds; close it with ``aclose``."""
    config = load_config(kubeconfig, context=context, service_account_dir=service_account_dir, environ=environ)
    try:
        return AsyncClient(config, timeout=httpx2.Timeout(timeout_s), field_manager=field_manager)
    except (LightkubeConfigError, OSError, ValueError) as e:
        raise ConfigError(f"cannot connect to {config.cluster.server}: {e}", key="kubernetes") from e


# -- errors -----------------------------------------------------------------------------------------


def status_code(error: BaseException) -> int | None:
    """The HTTP status of a Kubernetes API error, ``None`` for a connection problem."""
    if isinstance(error, ApiError):
        code = getattr(error.status, "code", None)
        if code:
            return int(code)
        return error.response.status_code if error.response is not None else None
    if isinstance(error, httpx2.HTTPStatusError):
        return error.response.status_code
    return None


def describe(error: BaseException) -> str:
    """One line: ``HTTP 409 Conflict: <the server's message>``, or the connection failure."""
    if isinstance(error, ApiError):
        reason = getattr(error.status, "reason", None) or ""
        message = getattr(error.status, "message", None) or str(error)
        return f"HTTP {status_code(error)} {reason}: {message}".replace("  ", " ")
    if isinstance(error, httpx2.HTTPStatusError):
        return f"HTTP {error.response.status_code} from {error.request.url.copy_with(query=None)}"
    if isinstance(error, httpx2.HTTPError):
        return f"{type(error).__name__}: {error or 'no detail'}"
    return f"{type(error).__name__}: {error}"


#: what talking to the API can raise (``ApiError`` is an ``httpx2.HTTPStatusError``; a token file that
#: vanished is lightkube's ``ConfigError``); adapters catch these and :func:`translate` them
API_ERRORS: tuple[type[Exception], ...] = (httpx2.HTTPError, LightkubeConfigError)


def translate(error: BaseException, message: str, cls: type[E], **context: Any) -> E:
    """``cls(message + ": " + describe(error), **context)``, for ``raise translate(...) from error``."""
    return cls(f"{message}: {describe(error)}", **context)


def retry_after(error: BaseException) -> float | None:
    """The wait the server asked for (`Retry-After`, or the Status's `retryAfterSeconds`), if any."""
    response = getattr(error, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    details = getattr(getattr(error, "status", None), "details", None)
    seconds = getattr(details, "retryAfterSeconds", None)
    return float(seconds) if seconds else None


def _temporary(error: BaseException, retry: ApiRetry, idempotent: bool) -> bool:
    code = status_code(error)
    if code is not None:
        return code in retry.statuses and (idempotent or code == 429)
    if isinstance(error, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return True  # nothing reached the server
    return idempotent and isinstance(error, httpx2.TransportError)


async def call_api(
    request: Callable[[], Awaitable[T]],
    *,
    retry: ApiRetry = DEFAULT_RETRY,
    sleep: Sleep = asyncio.sleep,
    idempotent: bool = True,
) -> T:
    """Run ``request``; on a temporary failure wait and run it again, at most ``retry.attempts`` times.

    Non-idempotent requests (creating an Event) are retried only when the server cannot have acted on
    them: a connection that never opened, or ``429``. The last error is raised as it is, for the
    caller to translate.
    """
    attempt = 1
    while True:
        try:
            return await request()
        except (httpx2.HTTPError, ApiError) as e:
            if attempt >= retry.attempts or not _temporary(e, retry, idempotent):
                raise
            hinted = retry_after(e)
            wait = (
                min(hinted, retry.max_retry_after_s)
                if hinted is not None
                else min(retry.base_backoff_s * 2 ** (attempt - 1), retry.max_backoff_s)
            )
            await sleep(wait)
            attempt += 1
