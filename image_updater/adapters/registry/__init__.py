"""Container registry adapter: an async Docker Registry HTTP API v2 / OCI distribution client.

The public surface::

    RegistryClient        ping, list_tags, get_manifest, head_digest, get_config_blob
    Credentials           username and password (never shown in repr)
    RegistryAuth          httpx.Auth flow: anonymous, Basic, Bearer token dance with a token cache
    build_transport       retry / rate limit / request counting layers over an httpx transport
    RetryPolicy, RateLimit, RequestCounter
    Manifest              media type, digest and parsed JSON of a manifest or index
    base_url_for          https://<host> (registry-1.docker.io for docker.io)

Every failure is an ``image_updater.errors.RegistryError`` (or its auth / not-found / unavailable
subclasses) with a redacted URL.
"""

from image_updater.adapters.registry.auth import Credentials, RegistryAuth
from image_updater.adapters.registry.client import RegistryClient
from image_updater.adapters.registry.manifest import Manifest, ManifestDescriptor
from image_updater.adapters.registry.transport import (
    RateLimit,
    RequestCounter,
    RetryPolicy,
    build_transport,
)
from image_updater.adapters.registry.urls import base_url_for, is_loopback_host, redact_url

__all__ = [
    "Credentials",
    "Manifest",
    "ManifestDescriptor",
    "RateLimit",
    "RegistryAuth",
    "RegistryClient",
    "RequestCounter",
    "RetryPolicy",
    "base_url_for",
    "build_transport",
    "is_loopback_host",
    "redact_url",
]
