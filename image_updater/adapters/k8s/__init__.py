"""The Kubernetes side: the ``kubernetes`` source, credentials in Secrets, the ``argocd`` write-back,
Events on Applications and leader election, all over one lightkube ``AsyncClient`` passed in.

::

    client = build_client(kubeconfig)                  # client.py: in-cluster, a path or a dict
    KubernetesSource(client, namespaces=..., match_names=..., match_labels=...).discover()
    SecretCredentials(client).secret_field("ns", "name", ".dockerconfigjson")  # resolve_credentials' provider
    ArgoCDWriter(client).update(namespace, name, [ImageUpdate(image_spec, "1.2.3")])
    EventRecorder(client).images_updated(ObjectRef(namespace, name), changes)
    async with LeaderElector(client, LeaseSettings(namespace="argocd")) as elector: ...

Library and connection errors are translated here into :mod:`image_updater.errors` types.
"""

from image_updater.adapters.k8s.argocd import ArgoCDWriter, ImageUpdate, PatchOutcome, plan_patch
from image_updater.adapters.k8s.client import ApiRetry, build_client, load_config
from image_updater.adapters.k8s.events import EventRecorder, ObjectRef
from image_updater.adapters.k8s.lease import LeaderElector, LeaseSettings
from image_updater.adapters.k8s.secrets import SecretCredentials
from image_updater.adapters.k8s.source import ApplicationChange, KubernetesSource

__all__ = [
    "ApiRetry",
    "ApplicationChange",
    "ArgoCDWriter",
    "EventRecorder",
    "ImageUpdate",
    "KubernetesSource",
    "LeaderElector",
    "LeaseSettings",
    "ObjectRef",
    "PatchOutcome",
    "SecretCredentials",
    "build_client",
    "load_config",
    "plan_patch",
]
