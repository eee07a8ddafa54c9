"""One table of documented rules: strategies, filters, tag extraction, platforms, references, annotations.

Every row cites the rule it checks: "AIU" rows follow Argo CD Image Updater's documentation
(update-strategies.md, images.md, registries.md), "Flux" rows Flux's image policies (numerical,
alphabetical, filterTags.extract), "SPEC" rows this product's contract (section 4), "Go" rows the Go
library behaviour AIU inherits (``regexp``, ``filepath.Match``, ``Regexp.Expand``), and "ours" rows
where we deliberately do better than AIU (each listed in docs/migrating-from-aiu.md). Rows marked
``real`` are run again against the real registry in tests/integration/test_strategies_real.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest

from image_updater.annotations import parse_application
from image_updater.errors import AnnotationError, ConstraintError, ImageReferenceError
from image_updater.model.ref import parse_image_ref
from image_updater.model.spec import ImageSpec
from image_updater.selection.base import TagInfo
from image_updater.selection.factory import build_selector
from image_updater.selection.platforms import Platform, parse_platform, wants_platform

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PREFIX = "argocd-image-updater.argoproj.io/"

#: a tag as a table row gives it: "name", or ("name", day the image was built), or ("name", "sha256:...")
TagSpec = str | tuple[str, int] | tuple[str, str]


@dataclass(frozen=True)
class Case:
    """A selection the table expects: settings, the registry's tags (in listing order), the choice."""

    rule: str
    tags: tuple[TagSpec, ...]
    expected: str | None
    strategy: str = "semver"
    constraint: str | None = None
    allow: str | None = None
    ignore: tuple[str, ...] = ()
    extract: str | None = None
    real: bool = False
    skipped: dict[str, str] = field(default_factory=dict)

    def image(self) -> ImageSpec:
        return image_spec(self.strategy, self.constraint, self.allow, self.ignore, self.extract)

    def tag_infos(self) -> list[TagInfo]:
        infos = []
        for spec in self.tags:
            if isinstance(spec, str):
                infos.append(TagInfo(spec))
            elif isinstance(spec[1], int):
                infos.append(
                    TagInfo(spec[0], digest=f"sha256:{spec[1]:064x}", created=BASE + dt.timedelta(days=spec[1]))
                )
            else:
                infos.append(TagInfo(spec[0], digest=spec[1]))
        return infos


def image_spec(
    strategy: str = "semver",
    constraint: str | None = None,
    allow: str | None = None,
    ignore: tuple[str, ...] = (),
    extract: str | None = None,
    platforms: tuple[str, ...] = (),
) -> ImageSpec:
    from image_updater.model.ref import parse_image_name

    return ImageSpec(
        name=parse_image_name("example.com/team/app"),
        written_name="example.com/team/app",
        strategy=strategy,
        constraint=constraint,
        allow_tags=allow,
        ignore_tags=ignore,
        tag_extract=extract,
        platforms=platforms,
    )


SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64
CALVER = ("2023.12.31", "2024.01.15", "2024.01.02", "2024.10.01", "2024.9.30")

SELECTIONS: list[Case] = [
    # --- semver (SPEC 4, AIU update-strategies.md "semver") ------------------------------------------
    Case("AIU semver: no constraint picks the highest version", ("1.0.0", "1.10.0", "1.9.0"), "1.10.0", real=True),
    Case("AIU semver: v-prefixed and plain versions compare as equals", ("v1.2.0", "1.3.0", "v1.4.0"), "v1.4.0"),
    Case(
        "AIU semver: non-version tags are omitted",
        ("latest", "main", "1.0.0"),
        "1.0.0",
        skipped={"latest": "not a semantic version"},
    ),
    Case("AIU images.md: nginx:~1.26 stays on 1.26.x", ("1.26.0", "1.26.3", "1.27.0"), "1.26.3", constraint="~1.26"),
    Case("AIU: 1.2.x follows patch releases only", ("1.2.5", "1.2.12", "1.3.0"), "1.2.12", constraint="1.2.x"),
    Case("AIU: 1.x follows minor releases, not 2.0", ("1.2.12", "1.15.2", "2.0.0"), "1.15.2", constraint="1.x"),
    Case("AIU: pre-releases need a -0 suffix in the constraint", ("2.0.0", "2.1.0-rc1"), "2.0.0", constraint="2.x"),
    Case("AIU: 2.x-0 admits pre-releases", ("2.0.0", "2.1.0-rc1"), "2.1.0-rc1", constraint="2.x-0"),
    Case("SPEC 4: nginx:1.19 means any 1.19.x", ("1.19.0", "1.19.9", "1.20.0"), "1.19.9", constraint="1.19"),
    Case("SPEC 4: nginx:1.19.1 pins exactly", ("1.19.0", "1.19.1", "1.19.2"), "1.19.1", constraint="1.19.1"),
    Case("SPEC 4: caret range", ("1.2.3", "1.9.0", "2.0.0"), "1.9.0", constraint="^1.2"),
    Case("SPEC 4: comma is AND", ("1.1.0", "1.5.0", "2.0.0"), "1.5.0", constraint=">=1.2, <2.0"),
    Case("SPEC 4: space is AND", ("1.1.0", "1.5.0", "2.0.0"), "1.5.0", constraint=">=1.2 <2.0"),
    Case("SPEC 4: || is OR", ("1.5.0", "2.5.0", "3.1.0"), "3.1.0", constraint="1.x || >=3"),
    Case("SPEC 4: hyphen range is inclusive", ("1.1.0", "1.4.0", "1.5.0"), "1.4.0", constraint="1.2 - 1.4"),
    Case("SPEC 4: X and * are wildcards", ("1.2.1", "1.3.0"), "1.2.1", constraint="1.2.X"),
    Case("SPEC 4: short versions are versions", ("1", "1.1", "0.9"), "1.1", constraint="^1"),
    Case("SPEC 4: leading zeros are dropped", ("01.02.03", "1.2.2"), "01.02.03", constraint="~1.2"),
    Case("SPEC 4: equal precedence breaks by the tag string", ("1.2", "v1.2.0", "1.2.0"), "v1.2.0", constraint="~1.2"),
    Case(
        "ours (SPEC 4): no constraint leaves pre-releases out (AIU lets them in)",
        ("1.0.0", "2.0.0-rc.1"),
        "1.0.0",
        skipped={"2.0.0-rc.1": "pre-release, and there is no constraint that names one"},
        real=True,
    ),
    Case("SPEC 4: >=0.0.0-0 asks for pre-releases too", ("1.0.0", "2.0.0-rc.1"), "2.0.0-rc.1", constraint=">=0.0.0-0"),
    Case("SPEC 4: nothing satisfies -> no selection", ("1.0.0",), None, constraint=">=2"),
    Case(
        "SPEC 4: a constraint naming a pre-release admits pre-releases",
        ("3.0.0-rc.1", "2.9.0"),
        "3.0.0-rc.1",
        constraint=">=3.0.0-0",
    ),
    Case("SPEC 4: build metadata does not raise precedence", ("1.0.0+b2", "1.0.1"), "1.0.1"),
    # --- alphabetical (AIU "name" / "alphabetical") ---------------------------------------------------------
    Case(
        "AIU alphabetical: last tag in lexical order (calver)", CALVER, "2024.9.30", strategy="alphabetical", real=True
    ),
    Case(
        "AIU alphabetical: allow-tags limits to YYYY-MM-DD",
        ("2024-01-02", "2024-01-15", "latest", "v9"),
        "2024-01-15",
        strategy="alphabetical",
        allow=r"regexp:^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    ),
    Case("SPEC 4: alphabetical is byte-wise: upper case sorts before lower", ("B", "a"), "a", strategy="alphabetical"),
    Case("SPEC 4: alphabetical is byte-wise: 10 sorts before 9", ("10", "9"), "9", strategy="alphabetical"),
    Case("AIU: the alias name means alphabetical", ("a", "c", "b"), "c", strategy="alphabetical"),
    Case("SPEC 4: alphabetical: empty listing selects nothing", (), None, strategy="alphabetical"),
    Case(
        "AIU: a constraint has no effect on alphabetical",
        ("1.0", "zeta"),
        "zeta",
        strategy="alphabetical",
        constraint="1.x",
    ),
    # --- numerical (Flux numerical policy) ----------------------------------------------------------------
    Case("Flux numerical: integers compare by value", ("9", "10", "100", "11"), "100", strategy="numerical", real=True),
    Case(
        "Flux numerical: unix timestamps",
        ("1606234201", "1606364286", "1606334092"),
        "1606364286",
        strategy="numerical",
    ),
    Case("Flux numerical: floats", ("3.2008", "47.4089", "24.71"), "47.4089", strategy="numerical"),
    Case(
        "ours: numerical skips tags that are not numbers (Flux fails)",
        ("latest", "1.2.3", "41", "40"),
        "41",
        strategy="numerical",
        skipped={"latest": "not a number", "1.2.3": "not a number"},
    ),
    Case(
        "ours: numerical is exact beyond float64",
        ("20240601123000000001", "20240601123000000002"),
        "20240601123000000002",
        strategy="numerical",
    ),
    Case("ours: equal numbers break by text, greatest last", ("007", "7"), "7", strategy="numerical"),
    Case("ours: numerical rejects inf and nan", ("inf", "nan", "1"), "1", strategy="numerical"),
    Case("ours: numerical reads exponents", ("2e3", "1999"), "2e3", strategy="numerical"),
    Case("ours: numerical: no numbers at all", ("a", "b"), None, strategy="numerical"),
    # --- tag-extract (Flux filterTags.extract) ------------------------------------------------------------
    Case(
        "Flux extract: main-<sha>-<ts> ordered by timestamp",
        ("main-aaa-1718000002", "main-fff-1718000001"),
        "main-aaa-1718000002",
        strategy="numerical",
        allow=r"regexp:^main-[0-9a-f]+-(?P<ts>[0-9]+)$",
        extract="$ts",
        real=True,
    ),
    Case(
        "Flux extract: numbered group $1",
        ("build-9", "build-10"),
        "build-10",
        strategy="numerical",
        allow=r"regexp:^build-([0-9]+)$",
        extract="$1",
    ),
    Case(
        "Go Expand: ${name} form",
        ("rc-2", "rc-11"),
        "rc-11",
        strategy="numerical",
        allow=r"regexp:^rc-(?P<n>\d+)$",
        extract="${n}",
    ),
    Case(
        "Flux extract: semver over an extracted version",
        ("app-v1.2.0", "app-v1.10.0", "app-v2.0.0"),
        "app-v1.10.0",
        allow=r"regexp:^app-(v[0-9.]+)$",
        extract="$1",
        constraint="^1",
    ),
    Case(
        "Flux extract: alphabetical over an extracted date",
        ("x-2024-02-01", "a-2024-01-01"),
        "x-2024-02-01",
        strategy="alphabetical",
        allow=r"regexp:-(\d{4}-\d{2}-\d{2})$",
        extract="$1",
    ),
    Case(
        "Flux extract: the original tag is the one written",
        ("v10-linux", "v9-linux"),
        "v10-linux",
        strategy="numerical",
        allow=r"regexp:^v(\d+)-",
        extract="$1",
    ),
    Case(
        "Go Expand: several groups and literal text",
        ("r1-b20", "r1-b3", "r2-b1"),
        "r2-b1",
        strategy="numerical",
        allow=r"regexp:^r(\d+)-b(\d+)$",
        extract="$1.$2",
    ),
    Case(
        "Go Expand: an optional group that did not take part gives nothing; skipped",
        ("x-", "x-5"),
        "x-5",
        strategy="numerical",
        allow=r"regexp:^x-(\d+)?$",
        extract="$1",
        skipped={"x-": "tag-extract '$1' gives an empty value"},
    ),
    Case(
        "ours: equal extracted values break by the tag",
        ("b-5", "a-5"),
        "b-5",
        strategy="numerical",
        allow=r"regexp:-(\d+)$",
        extract="$1",
    ),
    # --- newest-build (AIU "latest" / "newest-build") -------------------------------------------------------
    Case(
        "AIU newest-build: the most recent build date wins",
        (("a5fb3d3", 1), ("f7bb2e3", 3), ("0000001", 2)),
        "f7bb2e3",
        strategy="newest-build",
        real=True,
    ),
    Case("AIU newest-build: build date, not tag order", (("v2", 1), ("v1", 5)), "v1", strategy="newest-build"),
    Case(
        "AIU newest-build: same build date -> highest tag name (latest over f33bacd, dev)",
        (("f33bacd", 4), ("dev", 4), ("latest", 4)),
        "latest",
        strategy="newest-build",
        real=True,
    ),
    Case(
        "AIU newest-build: allow-tags restricts to commit SHAs",
        (("a5fb3d3", 1), ("latest", 9), ("master", 8)),
        "a5fb3d3",
        strategy="newest-build",
        allow=r"regexp:^[0-9a-f]{7}$",
    ),
    Case(
        "AIU newest-build: ignore-tags latest, master",
        (("a5fb3d3", 1), ("latest", 9), ("master", 8)),
        "a5fb3d3",
        strategy="newest-build",
        ignore=("latest", "master"),
    ),
    Case("AIU: the alias latest means newest-build", (("x", 2), ("y", 1)), "x", strategy="newest-build"),
    Case(
        "AIU: a constraint has no effect on newest-build",
        (("1.0.0", 1), ("zz", 2)),
        "zz",
        strategy="newest-build",
        constraint="~1.0",
    ),
    Case("SPEC 4: newest-build with no tags", (), None, strategy="newest-build"),
    # --- digest (AIU "digest") ---------------------------------------------------------------------------
    Case(
        "AIU digest: tracks the constraint tag and writes tag@digest",
        (("latest", SHA_A), ("1.0", SHA_B)),
        f"latest@{SHA_A}",
        strategy="digest",
        constraint="latest",
        real=True,
    ),
    Case(
        "AIU digest: only the constraint tag is inspected",
        (("stage", SHA_B), ("prod", SHA_A)),
        f"prod@{SHA_A}",
        strategy="digest",
        constraint="prod",
        skipped={"stage": "not the tracked tag 'prod'"},
    ),
    Case(
        "ours: digest with the tracked tag missing selects nothing",
        (("other", SHA_A),),
        None,
        strategy="digest",
        constraint="latest",
    ),
    Case(
        "ours: an ignored tracked tag is not followed",
        (("latest", SHA_A),),
        None,
        strategy="digest",
        constraint="latest",
        ignore=("lat*",),
    ),
    # --- allow-tags and ignore-tags (AIU images.md "Filtering tags", "Ignoring certain tags") ----------------
    Case(
        "AIU allow-tags: regexp is unanchored",
        ("1.2.0", "1.3.0", "1.2.1", "2.0.0"),
        "1.2.1",
        allow=r"regexp:\.2\.",
        real=True,
    ),
    Case(
        "Masterminds: -alpine is a pre-release; a constraint naming one admits suffixed tags",
        ("1.2.0-alpine", "1.3.0", "1.2.1-alpine"),
        "1.2.1-alpine",
        allow="regexp:-alpine$",
        constraint=">=0.0.0-0",
    ),
    Case("AIU allow-tags: any matches every tag", ("1.0.0", "2.0.0"), "2.0.0", allow="any"),
    Case("AIU allow-tags: the match function name is case-insensitive", ("1.0.0", "2.0.0"), "1.0.0", allow="Regexp:^1"),
    Case("AIU allow-tags: ANY is any", ("1.0.0", "2.0.0"), "2.0.0", allow="ANY"),
    Case("AIU allow-tags: the expression may hold ':'", ("a:b",), None, allow="regexp:^a:b$", strategy="alphabetical"),
    Case(
        "Go RE2: POSIX classes work", ("v1", "va", "v2"), "v2", strategy="alphabetical", allow="regexp:^v[[:digit:]]$"
    ),
    Case("Go RE2: \\d is ASCII only", ("1", "2"), "2", strategy="alphabetical", allow=r"regexp:^\d$"),
    Case(
        "Go RE2: (?<name>...) named groups",
        ("n-3", "n-12"),
        "n-12",
        strategy="numerical",
        allow=r"regexp:^n-(?<num>\d+)$",
        extract="$num",
    ),
    Case("Go RE2: \\Q...\\E quotes", ("1.0+x", "1.0"), "1.0", strategy="alphabetical", allow=r"regexp:^\Q1.0\E$"),
    Case("AIU ignore-tags: a glob ignores matching tags", ("1.0.0", "1.1.0-rc1", "1.1.0"), "1.1.0", ignore=("*-rc*",)),
    Case("AIU ignore-tags: '*' ignores everything (pause updates)", ("1.0.0", "2.0.0"), None, ignore=("*",)),
    Case("Go filepath.Match: ? is one character", ("v1", "v10", "v2"), "v10", strategy="alphabetical", ignore=("v?",)),
    Case("Go filepath.Match: [^...] negates", ("a1", "b1", "c1"), "a1", strategy="alphabetical", ignore=("[^a]*",)),
    Case(
        "Go filepath.Match: [!...] is a plain set, not a negation",
        ("!x", "a", "b"),
        "b",
        strategy="alphabetical",
        ignore=("[!a]*",),
    ),
    Case("Go filepath.Match: ranges", ("a", "m", "z"), "z", strategy="alphabetical", ignore=("[a-m]",)),
    Case("Go filepath.Match: backslash escapes", ("*", "a"), "a", strategy="alphabetical", ignore=(r"\*",)),
    Case(
        "Go filepath.Match: the glob must match the whole tag",
        ("1.0.0-rc1x", "1.0.0-rc1"),
        "1.0.0-rc1x",
        strategy="alphabetical",
        ignore=("*-rc1",),
        skipped={"1.0.0-rc1": "matches ignore-tags '*-rc1'"},
    ),
    Case(
        "AIU: allow-tags and ignore-tags combine",
        ("1.0.0", "1.1.0", "1.2.0"),
        "1.1.0",
        allow="regexp:^1",
        ignore=("1.2.*",),
    ),
]

ERRORS: list[tuple[str, dict[str, object], str]] = [
    # (rule, settings for image_spec, text the error must contain: the annotation it names)
    (
        "ours: an invalid allow-tags regexp is an error (AIU: matches nothing)",
        {"allow": "regexp:(unclosed"},
        "allow-tags",
    ),
    (
        "ours: allow-tags without regexp: is an error with a hint (AIU: matches nothing)",
        {"allow": "^1.19"},
        "did you mean 'regexp:^1.19'",
    ),
    ("ours: an unknown match function is an error", {"allow": "glob:1.*"}, "allow-tags"),
    ("ours: an invalid constraint is an error naming image-list", {"constraint": ">=1.0,,<2"}, "image-list"),
    ("ours: a tag given as a semver constraint is an error", {"constraint": "latest"}, "image-list"),
    ("ours: an unknown strategy is an error, never semver", {"strategy": "semverr"}, "update-strategy"),
    ("ours: digest without a tag to track is an error", {"strategy": "digest"}, "update-strategy digest"),
    ("ours: digest with an invalid tag is an error", {"strategy": "digest", "constraint": "~1.x"}, "not a valid tag"),
    ("ours: tag-extract needs an allow-tags regexp", {"strategy": "numerical", "extract": "$1"}, "tag-extract"),
    (
        "ours: tag-extract naming a missing group",
        {"strategy": "numerical", "allow": "regexp:(a)", "extract": "$2"},
        "no group 2",
    ),
    (
        "ours: tag-extract naming a missing named group",
        {"strategy": "numerical", "allow": "regexp:(?P<a>x)", "extract": "$b"},
        "no group named 'b'",
    ),
    (
        "Go Expand: $1x is the group named 1x",
        {"strategy": "numerical", "allow": "regexp:(x)", "extract": "$1x"},
        "no group named '1x'",
    ),
    (
        "ours: tag-extract with no reference at all",
        {"strategy": "numerical", "allow": "regexp:(x)", "extract": "x"},
        "refers to no group",
    ),
    (
        "ours: tag-extract has no meaning for newest-build",
        {"strategy": "newest-build", "allow": "regexp:(x)", "extract": "$1"},
        "tag-extract",
    ),
    ("ours: a malformed ignore-tags glob is an error (Go: matches nothing)", {"ignore": ("[a",)}, "ignore-tags"),
    ("Go filepath.Match: a class may not start with '-'", {"ignore": ("[-a]",)}, "ignore-tags"),
    ("ours: a malformed platform is an error (AIU: matches nothing)", {"platforms": ("linux",)}, "platforms"),
    ("ours: a platform with four parts is an error", {"platforms": ("linux/arm/v7/x",)}, "platforms"),
    ("ours: an unsupported POSIX class is an error", {"allow": "regexp:[[:nope:]]"}, "allow-tags"),
]

REFERENCES: list[tuple[str, str, tuple[str, str, str | None, str | None] | str]] = [
    # (rule, text, (registry, repository, tag, digest) or the error text it must contain)
    ("Docker: a bare name is on Docker Hub under library/", "nginx", ("docker.io", "library/nginx", None, None)),
    ("Docker: a two-part name is on Docker Hub", "argoproj/argocd", ("docker.io", "argoproj/argocd", None, None)),
    ("Docker: docker.io/nginx gets library/", "docker.io/nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    (
        "Docker: index.docker.io is Docker Hub",
        "index.docker.io/library/redis",
        ("docker.io", "library/redis", None, None),
    ),
    ("Docker: registry-1.docker.io is Docker Hub", "registry-1.docker.io/x/y", ("docker.io", "x/y", None, None)),
    ("Docker: a host with a dot is a registry", "ghcr.io/org/app:v1", ("ghcr.io", "org/app", "v1", None)),
    (
        "Docker: a host with a port is a registry",
        "127.0.0.1:5000/demo/app:2",
        ("127.0.0.1:5000", "demo/app", "2", None),
    ),
    ("Docker: localhost is a registry", "localhost/app", ("localhost", "app", None, None)),
    ("Docker: localhost with a port", "localhost:5000/a/b:c", ("localhost:5000", "a/b", "c", None)),
    ("Docker: an IPv6 registry", "[::1]:5000/app:1", ("[::1]:5000", "app", "1", None)),
    ("Docker: deep paths", "quay.io/a/b/c/d:1", ("quay.io", "a/b/c/d", "1", None)),
    ("Docker: a digest", f"nginx@{SHA_A}", ("docker.io", "library/nginx", None, SHA_A)),
    ("Docker: a tag and a digest", f"ghcr.io/o/a:1.0@{SHA_B}", ("ghcr.io", "o/a", "1.0", SHA_B)),
    ("Docker: registry host names are case-insensitive", "GHCR.io/o/a", ("ghcr.io", "o/a", None, None)),
    ("Docker: separators in repository names", "r.io/a_b/c__d/e-f.g", ("r.io", "a_b/c__d/e-f.g", None, None)),
    ("ours: empty reference", "", "empty image name"),
    ("ours: a URL is not an image name", "https://ghcr.io/o/a", "has no scheme"),
    ("ours: upper-case repositories are refused with a hint", "ghcr.io/Org/App", "lower case"),
    ("ours: an empty path component", "ghcr.io//a", "empty path component"),
    ("ours: a trailing slash", "nginx/", "empty path component"),
    ("ours: an invalid tag", "nginx:-bad", "invalid tag"),
    ("ours: an empty tag", "nginx:", "invalid tag"),
    ("ours: a malformed digest", "nginx@sha256:123", "invalid digest"),
    ("ours: white space", "ngi nx", "white space"),
    ("ours: doubled separators", "team/a..b", "not lower-case letters"),
    ("ours: names longer than 255 characters", "r.io/" + "a" * 260, "longer than 255"),
    ("ours: an invalid host", "bad_host.io:x/a", "invalid registry host"),
]


@pytest.mark.parametrize("case", SELECTIONS, ids=lambda c: c.rule)
def test_selection(case: Case) -> None:
    selection = build_selector(case.image()).select(case.tag_infos())
    assert selection.selected == case.expected, selection.reason
    # every tag is accounted for: considered or skipped with a reason
    assert len(selection.considered) + len(selection.skipped) == len(case.tags)
    assert all(s.reason for s in selection.skipped)
    reasons = {s.tag: s.reason for s in selection.skipped}
    for tag, reason in case.skipped.items():
        assert reasons[tag] == reason


@pytest.mark.parametrize(("rule", "settings", "names"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_settings_are_errors_naming_the_annotation(rule: str, settings: dict[str, object], names: str) -> None:
    with pytest.raises(ConstraintError) as info:
        build_selector(image_spec(**settings))  # type: ignore[arg-type]
    assert names in str(info.value)
    assert info.value.image == "example.com/team/app"


@pytest.mark.parametrize(("rule", "text", "expected"), REFERENCES, ids=[r[0] for r in REFERENCES])
def test_reference(rule: str, text: str, expected: tuple[str, str, str | None, str | None] | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ImageReferenceError, match=expected.replace("(", r"\(")):
            parse_image_ref(text)
        return
    ref = parse_image_ref(text)
    assert (ref.name.registry, ref.name.repository, ref.tag, ref.digest) == expected


PLATFORMS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("AIU WantsPlatform: exact match", ("linux/amd64",), "linux/amd64", True),
    ("AIU WantsPlatform: other architecture", ("linux/amd64",), "linux/arm64", False),
    ("AIU WantsPlatform: os/arch admits any variant", ("linux/arm64",), "linux/arm64/v8", True),
    ("AIU WantsPlatform: a variant is not admitted by another variant", ("linux/arm/v7",), "linux/arm/v6", False),
    ("AIU WantsPlatform: a variant constraint does not admit the bare platform", ("linux/arm/v7",), "linux/arm", False),
    ("AIU WantsPlatform: any of several", ("linux/amd64", "linux/arm64"), "linux/arm64", True),
    ("AIU WantsPlatform: no constraint admits all", (), "windows/amd64", True),
    ("AIU WantsPlatform: the os matters", ("linux/amd64",), "windows/amd64", False),
]


@pytest.mark.parametrize(("rule", "allowed", "candidate", "wanted"), PLATFORMS, ids=[p[0] for p in PLATFORMS])
def test_platform_rule(rule: str, allowed: tuple[str, ...], candidate: str, wanted: bool) -> None:
    assert wants_platform([parse_platform(p) for p in allowed], parse_platform(candidate)) is wanted


def app(annotations: dict[str, str]) -> dict[str, object]:
    return {
        "metadata": {"name": "a", "annotations": {PREFIX + k: v for k, v in annotations.items()}},
        "spec": {"source": {"repoURL": "http://git.example/r.git"}},
    }


ANNOTATIONS: list[tuple[str, dict[str, str], dict[str, object]]] = [
    (
        "AIU images.md: an alias with / is referenced with _ in annotation keys",
        {"image-list": "argoproj/argocd=quay.io/argoproj/argocd", "argoproj_argocd.update-strategy": "latest"},
        {"strategy": "newest-build", "alias": "argoproj/argocd"},
    ),
    (
        "AIU: app-wide defaults apply to every image",
        {"image-list": "a=x/a, b=x/b", "update-strategy": "alphabetical", "ignore-tags": "latest, master"},
        {"strategy": "alphabetical", "ignore_tags": ("latest", "master")},
    ),
    (
        "AIU: a per-image key overrides the app-wide default",
        {"image-list": "a=x/a", "update-strategy": "alphabetical", "a.update-strategy": "digest"},
        {"strategy": "digest"},
    ),
    (
        "AIU: the alias name means alphabetical",
        {"image-list": "a=x/a", "a.update-strategy": "name"},
        {"strategy": "alphabetical"},
    ),
    (
        "AIU images.md: ignore-tags is a comma-separated list",
        {"image-list": "a=x/a", "a.ignore-tags": "a*, ,b*"},
        {"ignore_tags": ("a*", "b*")},
    ),
    (
        "AIU: platforms is a comma-separated list",
        {"image-list": "a=x/a", "a.platforms": "linux/amd64, linux/arm64"},
        {"platforms": ("linux/amd64", "linux/arm64")},
    ),
    (
        "SPEC 4: tag-extract and pull-secret are per-image keys",
        {"image-list": "a=x/a", "a.tag-extract": "$ts", "a.pull-secret": "pullsecret:ns/s"},
        {"tag_extract": "$ts", "pull_secret": "pullsecret:ns/s"},
    ),
    ("AIU: the constraint after the name is kept as written", {"image-list": "a=x/a:~1.2"}, {"constraint": "~1.2"}),
]


@pytest.mark.parametrize(("rule", "annotations", "fields"), ANNOTATIONS, ids=[a[0] for a in ANNOTATIONS])
def test_annotation(rule: str, annotations: dict[str, str], fields: dict[str, object]) -> None:
    image = parse_application(app(annotations)).images[0]
    assert {name: getattr(image, name) for name in fields} == fields


def test_unknown_strategy_annotation_is_an_error_naming_the_key() -> None:
    # AIU logs "Unknown sort option ... -- using semver" and carries on; we refuse (SPEC 4)
    with pytest.raises(AnnotationError, match=r"a\.update-strategy.*semverr"):
        parse_application(app({"image-list": "a=x/a", "a.update-strategy": "semverr"}))


def test_the_table_is_large_enough() -> None:
    rows = len(SELECTIONS) + len(ERRORS) + len(REFERENCES) + len(PLATFORMS) + len(ANNOTATIONS)
    assert rows >= 100
    assert {c.strategy for c in SELECTIONS if c.real} >= {
        "semver",
        "alphabetical",
        "numerical",
        "newest-build",
        "digest",
    }


def test_platform_text_round_trips() -> None:
    assert str(parse_platform("linux/arm/v7")) == "linux/arm/v7" and Platform("linux", "amd64").variant == ""
