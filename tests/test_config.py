"""Configuration loading and validation (no network)."""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from snapcache.config import Config, config_from_mapping, load_config
from snapcache.errors import ConfigError

ROOT = Path(__file__).parent.parent


def test_documented_config_file_equals_the_built_in_defaults() -> None:
    with (ROOT / "config.toml").open("rb") as fh:
        documented = config_from_mapping(tomllib.load(fh), source="config.toml")
    assert documented == Config(source="config.toml")


def test_defaults_are_eighty_percent_of_the_archive_limits() -> None:
    rates = Config().rates
    assert (rates.cdx_per_minute, rates.playback_per_minute) == (24.0, 480.0)
    assert rates.pause_on_429 >= 60


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"archive": {"base_urll": "x"}}, "archive.base_urll"),
        ({"archiv": {}}, "[archiv]"),
        ({"rates": {"cdx_per_minute": "fast"}}, "rates.cdx_per_minute"),
        ({"rates": {"cdx_per_minute": 0}}, "rates.cdx_per_minute"),
        ({"rates": {"cdx_per_minute": -3}}, "rates.cdx_per_minute"),
        ({"retry": {"max_attempts": 2.5}}, "retry.max_attempts"),
        ({"retry": {"max_attempts": True}}, "retry.max_attempts"),
        ({"archive": {"base_url": "ftp://x"}}, "archive.base_url"),
        ({"archive": {"extra_hosts": "a"}}, "archive.extra_hosts"),
        ({"cache": {"ttl_ok_days": float("nan")}}, "cache.ttl_ok_days"),
        ({"archive": {"user_agent": "a\nb"}}, "archive.user_agent"),
        ({"preview": 3}, "[preview]"),
    ],
)
def test_bad_config_names_the_key(doc: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(doc, source="t.toml")
    assert named in str(info.value)


def test_the_old_availability_budget_is_accepted_but_ignored_with_a_warning(
    tmp_path: Path,
) -> None:
    """The availability pool was never used and is gone; files that still set its budget
    load, and say why the key no longer counts."""
    with pytest.warns(FutureWarning, match=r"rates\.availability_per_minute is deprecated and"
                                           r" ignored"):
        config = config_from_mapping(
            {"rates": {"availability_per_minute": 12.0, "cdx_per_minute": 10.0}}, source="old"
        )
    assert config == config_from_mapping({"rates": {"cdx_per_minute": 10.0}}, source="old")
    assert not hasattr(config.rates, "availability_per_minute")
    old = tmp_path / "old.toml"
    old.write_text("[rates]\navailability_per_minute = 3.0\n")
    with pytest.warns(FutureWarning, match="old.toml: rates.availability_per_minute"):
        assert load_config(old) == Config(source=str(old))


def test_lookup_order_explicit_then_env_never_cwd(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """./config.toml is never read unless named (the user config dir comes third: see
    tests/test_config_lookup.py)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    explicit = tmp_path / "a.toml"
    explicit.write_text('[archive]\nbase_url = "http://127.0.0.1:1"\n')
    env = tmp_path / "b.toml"
    env.write_text('[archive]\nbase_url = "http://127.0.0.1:2"\n')
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "config.toml").write_text('[archive]\nbase_url = "http://127.0.0.1:3/"\n')
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("SNAPCACHE_CONFIG", raising=False)
    assert load_config() == Config()
    assert load_config("config.toml").archive.base_url == "http://127.0.0.1:3"
    monkeypatch.setenv("SNAPCACHE_CONFIG", str(env))
    assert load_config().archive.base_url == "http://127.0.0.1:2"
    assert load_config(explicit).archive.base_url == "http://127.0.0.1:1"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SNAPCACHE_CONFIG")
    assert load_config() == Config()


def test_missing_explicit_file_and_bad_toml_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[archive\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_allowed_hosts_are_only_the_configured_ones() -> None:
    config = config_from_mapping(
        {"archive": {"base_url": "http://127.0.0.1:8080", "extra_hosts": ["Mirror.org"]}}
    )
    assert config.allowed_hosts == {"127.0.0.1:8080", "archive.org", "mirror.org"}


@given(st.dictionaries(st.text(max_size=10), st.dictionaries(
    st.text(max_size=12), st.one_of(st.integers(), st.floats(), st.text(max_size=5),
                                     st.booleans()), max_size=3), max_size=3))
def test_any_config_document_loads_or_raises_config_error(doc: dict[str, object]) -> None:
    with contextlib.suppress(ConfigError):
        config_from_mapping(doc)
