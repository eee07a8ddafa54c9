"""The ``image-updater`` command: arguments -> settings -> service; exit codes; no logic of its own.

Exit codes: 0 all good; 1 some Applications failed (the others were still processed); 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

import structlog

from image_updater import __version__
from image_updater.adapters.files import Discovery, SourceProblem
from image_updater.adapters.registry.pool import RegistryPool, load_registries_conf
from image_updater.annotations import STRATEGIES
from image_updater.config import Settings, load_settings, parse_duration
from image_updater.errors import ConfigError, ImageUpdaterError
from image_updater.logsetup import configure_logging
from image_updater.model.ref import parse_image_name, split_name_suffix
from image_updater.model.spec import ImageSpec, WriteBackMethod
from image_updater.selection.base import Selection, TagInfo
from image_updater.selection.factory import Selector, build_selector
from image_updater.service.assembly import build_service
from image_updater.service.cycle import CycleResult, Status, run_cycle, select_tags
from image_updater.service.wiring import wire

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own usage errors exit 2, as ours do
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (flags named as in AIU where AIU has them)."""
    parser = _Parser(prog="image-updater", description="GitOps image updater for Argo CD Applications")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the update service (or one cycle with --once)")
    run.add_argument("--config", help="YAML config file (see config.example.yaml)")
    run.add_argument("--once", action="store_true", help="run one cycle and exit")
    run.add_argument("--dry-run", action="store_true", help="print the planned changes as diffs; write nothing")
    run.add_argument("--interval", help="time between cycles, e.g. 2m")
    run.add_argument("--max-concurrency", type=int, help="registry and Git work in parallel")
    run.add_argument("--match-application-name", action="append", default=[], metavar="GLOB")
    run.add_argument("--match-application-label", action="append", default=[], metavar="K=V")
    run.add_argument(
        "--applications", metavar="PATH_OR_URL", help="folder of Application manifests, or <git URL>#<path>"
    )
    run.add_argument("--registries-conf", metavar="FILE", help="AIU registries.conf (replaces config registries)")
    run.add_argument("--health-port", type=int)
    run.add_argument("--webhook-port", type=int)
    run.add_argument("--listen-address", metavar="ADDR", help="address the HTTP ports bind (default 0.0.0.0)")
    run.add_argument(
        "--webhook-coalesce",
        metavar="DURATION",
        help="the longest webhook pushes are collected before their update runs; it runs once none has come "
        "for 50 ms (default 300ms)",
    )
    run.add_argument(
        "--webhook-max-body-bytes", type=int, metavar="N", help="larger webhook bodies get 413 (default 1 MiB)"
    )
    run.add_argument("--cache-dir", help="where Git clones are cached between cycles")
    run.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig for the kubernetes source (default: in-cluster)")

    test = sub.add_parser("test", help="ask the registry which tag would be chosen, and why")
    test.add_argument("image", help="image name, e.g. ghcr.io/org/app or 127.0.0.1:5000/demo/app[:constraint]")
    test.add_argument("--update-strategy", default="semver", help=f"one of {', '.join(sorted(STRATEGIES))}")
    test.add_argument("--semver-constraint", help="version constraint (or the tag the digest strategy tracks)")
    test.add_argument("--allow-tags", help="'any' or 'regexp:<expression>'")
    test.add_argument("--tag-extract", help="template over the allow-tags match, e.g. $1 or $ts")
    test.add_argument("--ignore-tags", action="append", default=[], metavar="GLOB", help="repeatable")
    test.add_argument(
        "--platforms", action="append", default=[], help="e.g. linux/amd64,linux/arm64 (default: this machine's)"
    )
    test.add_argument("--registries-conf", "--registries-conf-path", dest="registries_conf", metavar="FILE")
    test.add_argument(
        "--credentials",
        metavar="SPEC",
        help="env:VAR, file:/path, ext:/path or dockerconfig:/path (overrides the registry's)",
    )
    test.add_argument("--rate-limit", type=float, metavar="N", help="requests per second (overrides the registry's)")
    test.add_argument("--current-tag", help="the tag running now")
    test.add_argument("--output", choices=("text", "json"), default="text")
    test.add_argument("--loglevel", default="warning", choices=("trace", "debug", "info", "warn", "warning", "error"))
    test.add_argument("--config", help="YAML config file, for its registries")

    check = sub.add_parser("check", help="validate the config and every Application's annotations")
    check.add_argument("--config")
    check.add_argument("--applications", metavar="PATH_OR_URL")
    check.add_argument("--match-application-name", action="append", default=[], metavar="GLOB")
    check.add_argument("--match-application-label", action="append", default=[], metavar="K=V")
    check.add_argument("--kubeconfig", metavar="FILE")

    sub.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "version":
            print(f"image-updater {__version__}")
            return EXIT_OK
        if args.command == "run":
            return _run(args)
        if args.command == "test":
            return _test(args)
        if args.command == "check":
            return _check(args)
    except ConfigError as e:
        print(f"image-updater: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_USAGE


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    apps = settings.applications
    if getattr(args, "applications", None):
        apps = dataclasses.replace(apps, path=args.applications, source="files")
    if getattr(args, "match_application_name", None):
        apps = dataclasses.replace(apps, match_names=tuple(args.match_application_name))
    if getattr(args, "match_application_label", None):
        apps = dataclasses.replace(apps, match_labels=",".join(args.match_application_label))
    settings = settings.replace(applications=apps)
    if getattr(args, "interval", None):
        settings = settings.replace(interval=parse_duration(args.interval, key="--interval"))
    if getattr(args, "max_concurrency", None) is not None:
        if args.max_concurrency < 1:
            raise ConfigError("must be at least 1", key="--max-concurrency")
        settings = settings.replace(max_concurrency=args.max_concurrency)
    if getattr(args, "registries_conf", None):
        settings = settings.replace(registries=load_registries_conf(args.registries_conf))
    if getattr(args, "health_port", None) is not None:
        settings = settings.replace(health_port=args.health_port)
    if getattr(args, "webhook_port", None) is not None:
        settings = settings.replace(webhook=dataclasses.replace(settings.webhook, port=args.webhook_port))
    if getattr(args, "cache_dir", None):
        settings = settings.replace(git=dataclasses.replace(settings.git, cache_dir=args.cache_dir))
    if getattr(args, "listen_address", None):
        settings = settings.replace(listen_address=args.listen_address)
    webhook = settings.webhook
    if getattr(args, "webhook_coalesce", None):
        webhook = dataclasses.replace(webhook, coalesce=parse_duration(args.webhook_coalesce, key="--webhook-coalesce"))
    if getattr(args, "webhook_max_body_bytes", None) is not None:
        if args.webhook_max_body_bytes < 1:
            raise ConfigError("must be at least 1", key="--webhook-max-body-bytes")
        webhook = dataclasses.replace(webhook, max_body_bytes=args.webhook_max_body_bytes)
    settings = settings.replace(webhook=webhook)
    if getattr(args, "kubeconfig", None):
        settings = settings.replace(kubernetes=dataclasses.replace(settings.kubernetes, kubeconfig=args.kubeconfig))
    return settings


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log.format, settings.log.level)
    if not args.once:
        return asyncio.run(_serve(settings, dry_run=args.dry_run))
    try:
        result, problems = asyncio.run(_one_cycle(settings, dry_run=args.dry_run))
    except ConfigError:
        raise
    except ImageUpdaterError as e:  # the Applications could not be read at all
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    _print_result(result, dry_run=args.dry_run)
    for problem in problems:
        print(f"error: {problem.where}: {problem.error}", file=sys.stderr)
    return EXIT_FAILED if result.failed or problems else EXIT_OK


async def _one_cycle(settings: Settings, *, dry_run: bool) -> tuple[CycleResult, tuple[SourceProblem, ...]]:
    """One cycle, without leader election (``--once`` takes no part in it)."""
    log = structlog.get_logger()
    wiring = wire(settings, log=log)
    try:
        discovery = await wiring.source.discover()
        for problem in discovery.problems:
            log.error("application not readable", where=problem.where, error=str(problem.error))
        async with RegistryPool(settings.registries, credentials=wiring.registry_credentials) as pool:
            result = await run_cycle(discovery.apps, wiring.cycle_deps(pool, dry_run=dry_run, log=log))
    finally:
        await wiring.aclose()
    log.info(
        "cycle finished",
        applications=len(result.apps),
        updated=sum(1 for a in result.apps if a.status is Status.UPDATED),
        failed=sum(1 for a in result.apps if a.status is Status.FAILED) + len(discovery.problems),
        commits=len(result.commits),
        duration_s=round(result.duration_s, 3),
        cpu_s=round(result.cpu_s, 3),
    )
    return result, discovery.problems


async def _serve(settings: Settings, *, dry_run: bool = False) -> int:
    """The service until SIGTERM or SIGINT: cycles every interval and on webhooks, probes, metrics."""
    service = build_service(settings, dry_run=dry_run)
    return await service.run()


def _print_result(result: CycleResult, *, dry_run: bool) -> None:
    if dry_run:
        for diff in result.diffs:
            print(diff, end="")
    for outcome in result.apps:
        for error in outcome.errors():
            print(f"error: {error}", file=sys.stderr)
        if outcome.changes:
            verb = "would update" if dry_run else "updated"
            for change in outcome.changes:
                print(f"{outcome.app.name}: {verb} {change.describe()}")


def _test(args: argparse.Namespace) -> int:
    level = {"trace": "debug", "warn": "warning"}.get(args.loglevel, args.loglevel)
    configure_logging("console", level)
    settings = load_settings(args.config) if args.config else Settings()
    registries = load_registries_conf(args.registries_conf) if args.registries_conf else settings.registries
    name_text, constraint, _ = split_name_suffix(args.image)
    constraint = args.semver_constraint or constraint
    strategy = STRATEGIES.get(args.update_strategy)
    try:
        if strategy is None:
            raise ConfigError(
                f"unknown update strategy {args.update_strategy!r} (known: {', '.join(sorted(STRATEGIES))})",
                key="--update-strategy",
            )
        image = ImageSpec(
            name=parse_image_name(name_text),
            written_name=name_text,
            constraint=constraint,
            strategy=strategy,
            allow_tags=args.allow_tags,
            ignore_tags=tuple(args.ignore_tags),
            platforms=tuple(p.strip() for value in args.platforms for p in value.split(",") if p.strip()),
            tag_extract=args.tag_extract,
            pull_secret=args.credentials,
        )
        selector = build_selector(image)
    except ConfigError:
        raise
    except ImageUpdaterError as e:
        print(f"image-updater: {e}", file=sys.stderr)
        return EXIT_USAGE

    async def ask() -> tuple[list[TagInfo], Selection]:
        async with RegistryPool(registries, rate_limit=args.rate_limit) as pool:
            tags = await pool.list_tags(image)
            return tags, await select_tags(selector, image, tags, pool)

    try:
        tags, selection = asyncio.run(ask())
    except ImageUpdaterError as e:
        print(f"image-updater: {e.with_context(image=name_text)}", file=sys.stderr)
        return EXIT_FAILED
    if args.output == "json":
        payload = {
            "image": str(image.name),
            "current": args.current_tag,
            "selected": selection.selected,
            "digest": selection.digest,
            "strategy": selection.strategy,
            "considered": list(selection.considered),
            "skipped": [{"tag": s.tag, "reason": s.reason} for s in selection.skipped],
        }
        print(json.dumps(payload, indent=2))
    else:
        _print_test(image, constraint, tags, selection, selector, args.current_tag)
    return EXIT_OK if selection.selected else EXIT_FAILED


def _print_test(
    image: ImageSpec,
    constraint: str | None,
    tags: Sequence[TagInfo],
    selection: Selection,
    selector: Selector,
    current: str | None,
) -> None:
    """The human form of ``test``: the choice, why, the best candidates and the skipped tags by reason."""
    print(f"image:      {image.name}")
    print(f"strategy:   {selection.strategy}" + (f" (constraint {constraint})" if constraint else ""))
    print(f"tags:       {len(tags)} listed, {len(selection.considered)} candidates, {len(selection.skipped)} skipped")
    if selection.considered:
        best = ", ".join(reversed(selection.considered[-5:]))
        print(f"best first: {best}" + (", ..." if len(selection.considered) > 5 else ""))
    by_reason: dict[str, list[str]] = {}
    for skipped in selection.skipped:
        by_reason.setdefault(skipped.reason, []).append(skipped.tag)
    for reason, skipped_tags in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(skipped_tags[:5]) + (", ..." if len(skipped_tags) > 5 else "")
        print(f"skipped:    {len(skipped_tags)} {reason}: {shown}")
    if current:
        print(f"current:    {current}")
    print(f"selected:   {selection.selected or '(none)'}" + (f" ({selection.digest})" if selection.digest else ""))
    print(f"why:        {selection.reason}")
    if current and selection.selected and selection.selected != current:
        if selector.would_downgrade(current, selection.selected):
            print(f"update:     none: {current} ranks above {selection.selected} and is still allowed")
        else:
            print(f"update:     {current} -> {selection.selected}")


def _check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        discovery = asyncio.run(_discover_once(settings))
    except ConfigError:
        raise
    except ImageUpdaterError as e:
        print(f"error: {e}")
        return EXIT_FAILED
    errors = [f"{p.where}: {p.error}" for p in discovery.problems]
    for app in discovery.apps:
        if app.write_back.method is WriteBackMethod.ARGOCD and settings.applications.source != "kubernetes":
            errors.append(
                f"application {app.name}: annotation argocd-image-updater.argoproj.io/write-back-method: argocd "
                "needs the kubernetes source (set write-back-method: git)"
            )
        for image in app.images:
            try:
                build_selector(image)
            except ImageUpdaterError as e:
                errors.append(str(e.with_context(app=app.name)))
    for line in errors:
        print(f"error: {line}")
    print(f"{len(discovery.apps)} applications, {len(errors)} errors")
    return EXIT_FAILED if errors else EXIT_OK


async def _discover_once(settings: Settings) -> Discovery:
    wiring = wire(settings)
    try:
        return await wiring.source.discover()
    finally:
        await wiring.aclose()


if __name__ == "__main__":
    sys.exit(main())
