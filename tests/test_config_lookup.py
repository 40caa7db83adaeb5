"""Where the configuration and the store are found: ``--config``, ``$SNAPCACHE_CONFIG``, the
user config dir, never ``./config.toml``; the store in the user data dir, an old one in the
user cache dir kept where it is. HOME and XDG_* point at temporary folders throughout."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from snapcache.config import (
    CacheConfig,
    Config,
    LegacyStoreWarning,
    default_store_path,
    legacy_store_note,
    legacy_store_path,
    load_config,
    user_config_path,
)

from tests.docgen import NTIA_TS, NTIA_URL, ntia_pdf
from tests.test_cli import snapcache_exe

# A Hugo site's configuration: what `cd /srv/wiki` in the README's cron line meets.
HUGO_CONFIG = 'baseURL = "https://wiki.example.org/"\ntitle = "Wiki"\n[params]\nlogo = "x.png"\n'

XDG = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME with no XDG_* overrides and no $SNAPCACHE_CONFIG (for this process and
    the commands it starts)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (*XDG, "SNAPCACHE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return home


def snapcache(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([snapcache_exe(), *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ))


def archive_toml(base_url: str, extra: str = "") -> str:
    return (f'[archive]\nbase_url = "{base_url}"\n'
            f'availability_url = "{base_url}/wayback/available"\n'
            "connect_timeout = 2.0\n[retry]\nmax_attempts = 2\ninitial_backoff = 0.05\n"
            + extra)


# --- the configuration -------------------------------------------------------------------


def test_an_unrelated_config_toml_in_the_working_directory_is_never_read(home: Path) -> None:
    site = home / "srv-wiki"
    site.mkdir()
    (site / "config.toml").write_text(HUGO_CONFIG)
    out = snapcache("stats", "--json", cwd=site)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["records"] == 0
    assert load_config() == Config()
    # Named, it is read (and refused, naming what is wrong).
    named = snapcache("--config", "config.toml", "stats", cwd=site)
    assert named.returncode == 2 and "unknown section [baseURL]" in named.stderr


def test_dev_null_means_the_built_in_defaults(home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = snapcache("--config", "/dev/null", "stats", "--json", cwd=home)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cache_path"] == str(home / ".local/share/snapcache/store")
    assert load_config("/dev/null") == Config()
    # Even with a user config present: /dev/null says "none of it".
    user_config_path().parent.mkdir(parents=True)
    user_config_path().write_text("[run]\nconcurrency = 2\n")
    assert load_config(os.devnull) == Config()
    monkeypatch.setenv("SNAPCACHE_CONFIG", os.devnull)
    assert load_config() == Config()


def test_lookup_order_explicit_then_env_then_the_user_config_dir(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = tmp_path / "a.toml"
    explicit.write_text('[archive]\nbase_url = "http://127.0.0.1:1"\n')
    env = tmp_path / "b.toml"
    env.write_text('[archive]\nbase_url = "http://127.0.0.1:2"\n')
    user = home / ".config" / "snapcache" / "config.toml"
    assert user_config_path() == user
    user.parent.mkdir(parents=True)
    user.write_text('[archive]\nbase_url = "http://127.0.0.1:3/"\n')
    (tmp_path / "config.toml").write_text('[archive]\nbase_url = "http://127.0.0.1:4"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config().archive.base_url == "http://127.0.0.1:3"
    assert load_config().source == str(user)
    monkeypatch.setenv("SNAPCACHE_CONFIG", str(env))
    assert load_config().archive.base_url == "http://127.0.0.1:2"
    assert load_config(explicit).archive.base_url == "http://127.0.0.1:1"
    monkeypatch.delenv("SNAPCACHE_CONFIG")
    user.unlink()
    assert load_config() == Config()  # ./config.toml is still not read
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_config_path() == tmp_path / "xdg" / "snapcache" / "config.toml"


def test_a_missing_named_file_is_still_an_error(home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = snapcache("--config", "nope.toml", "stats", cwd=home)
    assert out.returncode == 2 and "config file not found: nope.toml" in out.stderr
    monkeypatch.setenv("SNAPCACHE_CONFIG", str(home / "gone.toml"))
    out = snapcache("stats", cwd=home)
    assert out.returncode == 2 and "not found" in out.stderr


def test_the_user_config_file_is_read_by_the_command(home: Path) -> None:
    store = home / "elsewhere"
    user_config_path().parent.mkdir(parents=True)
    user_config_path().write_text(f'[cache]\npath = "{store}"\n')
    out = snapcache("stats", "--json", cwd=home)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cache_path"] == str(store)


# --- the store's location ----------------------------------------------------------------


def test_the_default_store_is_in_the_user_data_dir_and_the_rate_state_in_the_cache_dir(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Config().cache_path == home / ".local/share/snapcache/store"
    assert Config().rate_state_path == home / ".cache/snapcache/ratelimit.sqlite"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_store_path() == tmp_path / "data/snapcache/store"
    assert legacy_store_path() == tmp_path / "cache/snapcache/store"
    assert Config().cache_path == default_store_path()


def test_a_store_at_the_old_default_location_keeps_every_stable_id(
    home: Path, emulator: Any
) -> None:
    """Upgrading must not lose a stable ID: the store 0.2.0 wrote in ~/.cache is used where
    it is, with a one-line note on how to move it; moved as the note says, it is found at
    the new place."""
    emulator.add_capture(NTIA_URL, NTIA_TS, body=ntia_pdf(), content_type="application/pdf")
    old, new = home / ".cache/snapcache/store", home / ".local/share/snapcache/store"
    # What 0.2.0 did by default: the store in the user cache dir.
    before = home / "before.toml"
    before.write_text(archive_toml(emulator.base_url, f'[cache]\npath = "{old}"\n'))
    first = snapcache("--config", str(before), "fetch", "--json", NTIA_URL, cwd=home)
    assert first.returncode == 0, first.stderr
    sid = json.loads(first.stdout)["stable_id"]
    assert (old / "cache.db").is_file()

    # Upgraded: a configuration that leaves [cache] path to the default.
    user_config_path().parent.mkdir(parents=True)
    user_config_path().write_text(archive_toml(emulator.base_url))
    for args in (["show", "--json", NTIA_URL], ["fetch", "--json", "--force", NTIA_URL],
                 ["run", "--json", "--force", "-"]):
        out = snapcache(*args, cwd=home, stdin=NTIA_URL + "\n")
        assert out.returncode == 0, out.stderr
        notes = [line for line in out.stderr.splitlines() if "old location" in line]
        assert len(notes) == 1 and notes[0].startswith("snapcache: note: "), out.stderr
        assert f"mv {old} {new}" in notes[0]
        if args[0] != "run":
            assert json.loads(out.stdout)["stable_id"] == sid
    assert not new.exists()
    stats = json.loads(snapcache("stats", "--json", cwd=home).stdout)
    assert stats["cache_path"] == str(old) and stats["records"] == 1

    # For library users: a warning, and the same store.
    with pytest.warns(LegacyStoreWarning, match="old location"):
        assert Config().cache_path == old

    # Move it as the note says; then no note, the same record, nothing left behind.
    note = legacy_store_note(Config())
    assert note is not None
    command = note.split("): ", 1)[1].rsplit(" (or set", 1)[0]
    assert shlex.split(command)[:2] == ["mkdir", "-p"]
    subprocess.run(command, shell=True, check=True)
    assert legacy_store_note(Config()) is None
    out = snapcache("show", "--json", NTIA_URL, cwd=home)
    assert out.returncode == 0 and out.stderr == ""
    assert json.loads(out.stdout)["stable_id"] == sid
    assert not old.exists() and (new / "cache.db").is_file()


def test_an_explicit_cache_path_is_never_second_guessed(home: Path, tmp_path: Path) -> None:
    old = legacy_store_path()
    old.mkdir(parents=True)
    (old / "cache.db").write_bytes(b"")
    config = Config(cache=CacheConfig(path=str(tmp_path / "s")))
    assert legacy_store_note(config) is None and config.cache_path == tmp_path / "s"
    # A new store already in place wins over an old one.
    default_store_path().mkdir(parents=True)
    (default_store_path() / "cache.db").write_bytes(b"")
    assert legacy_store_note(Config()) is None and Config().cache_path == default_store_path()
