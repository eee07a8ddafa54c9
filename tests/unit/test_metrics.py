"""Service metrics: fed from cycle results and the registries' request counters, in their own registry."""

from __future__ import annotations

from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from image_updater.adapters.registry.transport import RequestCounter
from image_updater.errors import EditError, ImageUpdaterError, RegistryAuthError, RegistryUnavailableError
from image_updater.model.changes import Change
from image_updater.model.ref import parse_image_name
from image_updater.model.spec import AppSource, AppSpec, ImageSpec, WriteBack, WriteBackMethod
from image_updater.service.cycle import AppOutcome, CycleResult, ImageOutcome, Status
from image_updater.service.metrics import ServiceMetrics, error_kind


def app(name: str, *images: str) -> AppSpec:
    specs = tuple(ImageSpec(name=parse_image_name(i), written_name=i) for i in images)
    return AppSpec(name, "argocd", AppSource("http://git/config.git"), specs, WriteBack(method=WriteBackMethod.GIT))


def sample_result() -> CycleResult:
    """web: one image updated, one unchanged; api: one image failing at the registry; docs: an edit error."""
    web = AppOutcome(
        app("web", "reg/a", "reg/b"),
        images=[
            ImageOutcome("reg/a", Status.UPDATED, "newest", current="1.0", selected="1.1"),
            ImageOutcome("reg/b", Status.UNCHANGED, "newest", current="2.0", selected="2.0"),
        ],
        commit="c0ffee",
        changes=[Change(image="reg/a", old="1.0", new="1.1", file="k/kustomization.yaml")],
    )
    api = AppOutcome(
        app("api", "reg/c"),
        images=[ImageOutcome("reg/c", Status.FAILED, "denied", error=RegistryAuthError("denied", registry="reg"))],
    )
    docs = AppOutcome(app("docs", "reg/d"), images=[ImageOutcome("reg/d", Status.SKIPPED, "no candidate")])
    docs.error = EditError("does not parse", path="docs/kustomization.yaml")
    return CycleResult(apps=[web, api, docs], commits=["c0ffee"], push_conflicts=2, duration_s=0.5)


def value(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_full_cycle_sets_every_cycle_metric() -> None:
    metrics = ServiceMetrics()

    metrics.observe_cycle("scheduled", sample_result(), 0.75, full=True)

    assert value(metrics, "image_updater_cycles_total", kind="scheduled", outcome="failed") == 1
    assert value(metrics, "image_updater_cycle_duration_seconds_sum", kind="scheduled") == 0.75
    assert value(metrics, "image_updater_cycle_duration_seconds_bucket", kind="scheduled", le="1.0") == 1
    assert value(metrics, "image_updater_cycle_duration_seconds_bucket", kind="scheduled", le="0.5") == 0
    assert [value(metrics, "image_updater_applications", status=s.value) for s in Status] == [1, 0, 0, 2]
    assert value(metrics, "image_updater_images_checked_total") == 3  # updated, unchanged, skipped
    assert value(metrics, "image_updater_images_updated_total") == 1
    assert value(metrics, "image_updater_errors_total", kind="registry_auth") == 1
    assert value(metrics, "image_updater_errors_total", kind="edit") == 1
    assert value(metrics, "image_updater_git_pushes_total") == 1
    assert value(metrics, "image_updater_git_push_conflicts_total") == 2


def test_counters_add_up_and_a_partial_cycle_leaves_the_gauges_alone() -> None:
    metrics = ServiceMetrics()
    metrics.observe_cycle("scheduled", sample_result(), 0.1, full=True)

    only_web = CycleResult(apps=[sample_result().apps[0]], commits=["beef"])
    metrics.observe_cycle("webhook", only_web, 0.2, full=False)

    assert value(metrics, "image_updater_cycles_total", kind="webhook", outcome="ok") == 1
    assert value(metrics, "image_updater_applications", status="updated") == 1  # still the full cycle's
    assert value(metrics, "image_updater_application_results_total", status="updated") == 2
    assert value(metrics, "image_updater_images_updated_total") == 2
    assert value(metrics, "image_updater_git_pushes_total") == 2


def test_a_cycle_that_raised_is_counted_as_an_error() -> None:
    metrics = ServiceMetrics()
    metrics.observe_cycle_error("webhook", 0.3)
    metrics.observe_error("source", 2)
    metrics.observe_error("source", 0)

    assert value(metrics, "image_updater_cycles_total", kind="webhook", outcome="error") == 1
    assert value(metrics, "image_updater_errors_total", kind="cycle") == 1
    assert value(metrics, "image_updater_errors_total", kind="source") == 2


def test_registry_requests_are_read_from_the_counters_at_scrape_time() -> None:
    metrics = ServiceMetrics()
    hub, local = RequestCounter(), RequestCounter()
    metrics.watch_registries(lambda: {"docker.io": hub, "127.0.0.1:5000": local})
    hub.statuses.update(Counter({("ping", 401): 1, ("token", 200): 1, ("tags", 200): 3, ("tags", None): 1}))
    hub.retries["tags"] += 1
    hub.rate_limit_waits, hub.rate_limit_wait_s = 2, 0.25

    assert value(metrics, "image_updater_registry_requests_total", registry="docker.io", kind="tags", status="200") == 3
    assert (
        value(metrics, "image_updater_registry_requests_total", registry="docker.io", kind="tags", status="error") == 1
    )
    assert value(metrics, "image_updater_registry_retries_total", registry="docker.io", kind="tags") == 1
    assert value(metrics, "image_updater_registry_rate_limit_waits_total", registry="docker.io") == 2
    assert value(metrics, "image_updater_registry_rate_limit_wait_seconds_total", registry="docker.io") == 0.25
    assert value(metrics, "image_updater_registry_rate_limit_waits_total", registry="127.0.0.1:5000") == 0

    local.statuses[("tags", 200)] += 5  # counted after the first scrape: seen by the next one
    assert (
        value(metrics, "image_updater_registry_requests_total", registry="127.0.0.1:5000", kind="tags", status="200")
        == 5
    )


def test_webhook_events_by_source_and_outcome() -> None:
    metrics = ServiceMetrics()
    metrics.observe_webhook("distribution", "accepted")
    metrics.observe_webhook("distribution", "ignored")
    metrics.observe_webhook("distribution", "ignored")
    metrics.observe_webhook("ghcr.io", "unauthorized")

    assert value(metrics, "image_updater_webhook_events_total", source="distribution", outcome="ignored") == 2
    assert value(metrics, "image_updater_webhook_events_total", source="ghcr.io", outcome="unauthorized") == 1


def test_exposition_text_parses_and_each_service_has_its_own_registry() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.observe_cycle("scheduled", sample_result(), 0.1, full=True)

    body, content_type = first.render()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}

    assert content_type.startswith("text/plain")
    assert {"image_updater_cycles", "image_updater_registry_requests", "image_updater_webhook_events"} <= set(families)
    assert value(second, "image_updater_images_updated_total") == 0


def test_error_kind_names_the_class_in_the_tree() -> None:
    assert error_kind(RegistryUnavailableError("x")) == "registry_unavailable"
    assert error_kind(EditError("x")) == "edit"
    assert error_kind(ImageUpdaterError("x")) == "other"
    assert error_kind(ValueError("x")) == "other"
