"""Settings: defaults, validation naming key and line, env overrides, secret references."""

from __future__ import annotations

from pathlib import Path

import pytest

from image_updater.config import load_settings, parse_duration, resolve_secret
from image_updater.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_example_config_is_valid() -> None:
    settings = load_settings(ROOT / "config.example.yaml", env={})
    assert settings.interval == 120
    assert settings.registries and settings.registries[0].prefix == "127.0.0.1:5000"


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "interval: 1m\ngit:\n  user: bot\n  emial: x@example.com\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.key == "git.emial" and info.value.line == 4


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "max_concurrency: many\n")
    with pytest.raises(ConfigError, match=r"max_concurrency.*line 1.*expected an integer"):
        load_settings(path, env={})


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "interval: 1m\n")
    settings = load_settings(path, env={"IMAGE_UPDATER_INTERVAL": "30s", "IMAGE_UPDATER_LOG_LEVEL": "DEBUG"})
    assert settings.interval == 30 and settings.log.level == "debug"


@pytest.mark.parametrize(
    ("text", "seconds"), [("2m", 120), ("90s", 90), ("1h30m", 5400), ("500ms", 0.5), ("15", 15)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2 minutes", "m", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_secret_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IU_TEST_SECRET", "s3cret")
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    assert resolve_secret("env:IU_TEST_SECRET") == "s3cret"
    assert resolve_secret(f"file:{secret_file}") == "from-file"
    assert resolve_secret("plain") == "plain"
    with pytest.raises(ConfigError, match="IU_TEST_MISSING"):
        resolve_secret("env:IU_TEST_MISSING")


def test_git_credentials_longest_prefix_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "git:\n  credentials:\n    - url: http://h/\n      username: a\n    - url: http://h/team/\n      username: b\n",
    )
    git = load_settings(path, env={}).git
    assert git.credential_for("http://h/team/repo.git").username == "b"  # type: ignore[union-attr]
    assert git.credential_for("http://h/other.git").username == "a"  # type: ignore[union-attr]
    assert git.credential_for("http://elsewhere/x.git") is None
