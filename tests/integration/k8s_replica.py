"""One replica of the service for the leader-election test, run as its own process.

``python -m tests.integration.k8s_replica KUBECONFIG NAMESPACE IDENTITY``: joins the election on the
Lease ``replicas`` and, only while it leads, writes the Application ``web`` every 50 ms through the
argocd write-back, with the tag ``<identity>-<n>``, so the test can tell who wrote what and when.
It prints ``ready`` once the election runs and ``leading`` when it becomes the leader.
"""

from __future__ import annotations

import asyncio
import sys

from image_updater.adapters.k8s.argocd import ArgoCDWriter, ImageUpdate
from image_updater.adapters.k8s.client import build_client
from image_updater.adapters.k8s.lease import LeaderElector, LeaseSettings
from image_updater.annotations import IMAGE_LIST, parse_image_list
from image_updater.errors import ImageUpdaterError

#: the timings the test relies on: a follower takes over within LEASE_DURATION_S of the last renewal
LEASE_DURATION_S = 2
SETTINGS = {
    "lease_duration_s": LEASE_DURATION_S,
    "renew_deadline_s": 1.2,
    "renew_interval_s": 0.3,
    "retry_interval_s": 0.2,
}


async def main(kubeconfig: str, namespace: str, identity: str) -> None:
    client = build_client(kubeconfig)
    settings = LeaseSettings(name="replicas", namespace=namespace, identity=identity, **SETTINGS)  # type: ignore[arg-type]
    image = parse_image_list({IMAGE_LIST: "nginx"}, app="web")[0]
    writer = ArgoCDWriter(client)
    elector = LeaderElector(client, settings, on_started_leading=lambda: print("leading", flush=True))
    async with elector:
        print("ready", flush=True)
        written = 0
        while True:
            await elector.wait_until_leader()
            if elector.is_leader:  # checked right before every write
                written += 1
                try:
                    await writer.update(namespace, "web", [ImageUpdate(image, f"{identity}-{written}")])
                except ImageUpdaterError as e:
                    print(f"write failed: {e}", flush=True)
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
