"""Secrets never end up stored or shown: the save keys, and credentials in archive URLs.

Against the loopback emulator's Save Page Now endpoints, with the real ``snapcache`` command.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from snapcache import ConfigError, Fetcher
from snapcache.config import Config, SaveConfig, config_from_mapping
from snapcache.credentials import REDACTED, redact

from tests.conftest import emulator_config
from tests.spn2 import SaveEmulator
from tests.test_cli import snapcache_exe, write_config
from tests.wayback_emulator import EmulatorResponse

URL = "https://lost.example/page"
ACCESS, SECRET = "ACCESS123", "SECRET456"


def store_holds(store: Path, *secrets: str) -> list[str]:
    """Every (file, secret) of the store whose bytes contain the secret: ``grep -r``."""
    found = []
    for path in store.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return found


def cli(cfg: Path, *args: str, env: dict[str, str] | None = None,
        stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([snapcache_exe(), "--config", str(cfg), *args], input=stdin,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_keys_read_from_a_crlf_file_are_stripped_and_never_stored(
    tmp_path: Path, emulator: Any
) -> None:
    """``export SNAPCACHE_SAVE_SECRET_KEY=$(cat keyfile)`` keeps a CRLF file's ``\\r``:
    the header was refused, the refusal (quoting the key) went into the history, and every
    run said ``deferred``."""
    SaveEmulator(emulator, ACCESS, SECRET).script(URL, pending_polls=0)
    keyfile = tmp_path / "keys.txt"
    keyfile.write_bytes(f"{ACCESS}\r\n{SECRET}\r\n".encode())
    access, secret = keyfile.read_bytes().decode().split("\n")[:2]  # what $(sed -n Np) gives
    assert access.endswith("\r") and secret.endswith("\r")
    cfg = write_config(tmp_path, emulator.base_url,
                       "[save]\nenabled = true\npoll_interval = 0.05\nper_minute = 6000.0\n")
    env = {"SNAPCACHE_SAVE_ACCESS_KEY": access, "SNAPCACHE_SAVE_SECRET_KEY": " " + secret}
    saved = cli(cfg, "save", "--json", URL, env=env)
    exported = cli(cfg, "export", env=env)
    # grep -r finds no key in the store (the refusal quoting it was a history note) ...
    assert store_holds(tmp_path / "store", ACCESS, SECRET) == []
    # ... and the save went through (every run said "deferred", with no config error).
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["save_status"] == "success"
    for text in (saved.stdout, saved.stderr, exported.stdout, exported.stderr):
        assert ACCESS not in text and SECRET not in text


class EchoingSaveEmulator(SaveEmulator):
    """An archive whose answers quote the request's Authorization header back."""

    def _submit(self, method: str, path: str, headers: dict[str, str], body: bytes
                ) -> EmulatorResponse:
        response = super()._submit(method, path, headers, body)
        echo = f"Got Authorization: {headers.get('authorization')}"
        response.body = response.body.replace(b'"job_id":', f'"message": "{echo}", "job_id":'
                                              .encode(), 1)
        return response

    def _status(self, method: str, path: str, headers: dict[str, str], body: bytes
                ) -> EmulatorResponse:
        response = super()._status(method, path, headers, body)
        # Into status_ext, which becomes the stored save_status.
        echo = f"{headers.get('authorization')} ".encode()
        response.body = response.body.replace(b'"status_ext": "error:',
                                              b'"status_ext": "error:' + echo, 1)
        return response


def test_an_archive_echoing_the_header_leaves_no_key_in_the_store(
    tmp_path: Path, emulator: Any
) -> None:
    spn = EchoingSaveEmulator(emulator, ACCESS, SECRET)
    spn.script(URL, outcome="error:service-unavailable")
    spn.script("https://other.example/", pending_polls=0)
    cfg = write_config(tmp_path, emulator.base_url,
                       f'[save]\nenabled = true\naccess_key = "{ACCESS}"\n'
                       f'secret_key = "{SECRET}"\npoll_interval = 0.05\nper_minute = 6000.0\n')
    saved = cli(cfg, "save", "--json", URL, "https://other.example/")
    run = cli(cfg, "run", "--save-missing", "--save-stale", "0", "--force", "--json", "-",
              stdin=URL + "\n")
    outputs = [saved, run, cli(cfg, "export"), cli(cfg, "export", "--format", "csv"),
               cli(cfg, "show", "--json", URL)]
    assert spn.submissions, saved.stderr
    records = [json.loads(line) for line in saved.stdout.splitlines()]
    assert [r["save_status"][:6] for r in records] == ["error:", "succes"]
    assert store_holds(tmp_path / "store", ACCESS, SECRET) == []
    for out in outputs:
        assert ACCESS not in out.stdout + out.stderr and SECRET not in out.stdout + out.stderr
    with Fetcher(emulator_config(tmp_path, emulator.base_url)) as f:
        record = f.lookup(URL)
        assert record is not None and record.save_status == "error:unknown"
        # The archive's status_ext, not a known one, is kept in a note only, scrubbed.
        notes = [str(h.get("note")) for h in f.cache.history(record.resource_id)]
        assert any(REDACTED in note for note in notes)


def test_a_key_with_control_characters_is_a_config_error_naming_it_not_showing_it(
    tmp_path: Path, emulator: Any
) -> None:
    with pytest.raises(ConfigError, match=r"save\.secret_key contains control") as info:
        config_from_mapping({"save": {"secret_key": "SEC\x01RET"}})
    assert "SEC" not in str(info.value)
    with pytest.raises(ConfigError, match=r"save\.access_key") as info:
        config_from_mapping({"save": {"access_key": 1234567}})
    assert "1234567" not in str(info.value)
    with pytest.raises(ConfigError, match=r"save\.access_key contains non-ASCII"):
        config_from_mapping({"save": {"access_key": "ACCÉSS"}})
    # The environment's keys are checked where they are read, and named by variable.
    cfg = write_config(tmp_path, emulator.base_url, "[save]\nenabled = true\n")
    out = cli(cfg, "save", URL, env={"SNAPCACHE_SAVE_ACCESS_KEY": ACCESS,
                                     "SNAPCACHE_SAVE_SECRET_KEY": "SEC\r\nRET"})
    assert out.returncode == 2
    assert "$SNAPCACHE_SAVE_SECRET_KEY contains control characters" in out.stderr
    assert "SEC" not in out.stderr.replace("SECRET_KEY", "")


def test_keys_are_stripped_when_the_config_is_read_and_hidden_from_repr() -> None:
    config = config_from_mapping({"save": {"access_key": " A1 \n", "secret_key": "\tS2\r"}})
    assert (config.save.access_key, config.save.secret_key) == ("A1", "S2")
    assert config.save.keys({}) == ("A1", "S2")
    assert "A1" not in repr(config) and "S2" not in repr(config)
    # Built directly, without the loader: cleaned where they are used.
    direct = Config(save=SaveConfig(access_key="A1\r", secret_key=""))
    assert direct.save.keys({"SNAPCACHE_SAVE_SECRET_KEY": "S2\r\n"}) == ("A1", "S2")
    assert Config().save.keys({}) == ("", "")


def test_redact_removes_every_configured_secret() -> None:
    config = Config(save=SaveConfig(access_key="AK", secret_key="SECRET-LONG"))
    secrets = config.save.secrets({"SNAPCACHE_SAVE_ACCESS_KEY": "ENVKEY\r"})
    text = "LOW AK:SECRET-LONG, b'ENVKEY\\r'"
    assert redact(text, secrets) == f"LOW {REDACTED}:{REDACTED}, b'{REDACTED}\\r'"
    assert redact("nothing here", ()) == "nothing here"
    assert Config().save.secrets({}) == ()


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"archive": {"base_url": "http://user:hunter2@127.0.0.1:8080"}}, "archive.base_url"),
        ({"archive": {"base_url": "https://:hunter2@web.archive.org"}}, "archive.base_url"),
        ({"archive": {"availability_url": "https://u:hunter2@archive.org/wayback/available"}},
         "archive.availability_url"),
        ({"archives": [{"name": "b", "base_url": "http://u:hunter2@127.0.0.1:9"}]},
         "archives[0].base_url"),
    ],
)
def test_credentials_in_an_archive_url_are_a_config_error_that_does_not_show_them(
    doc: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=r"must not contain '@'") as info:
        config_from_mapping(doc)
    assert named in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"archive": {"base_url": "https://web.archive.org/?key=1"}}, "archive.base_url"),
        ({"archive": {"base_url": "https://web.archive.org#top"}}, "archive.base_url"),
        ({"archive": {"base_url": "https://web.archive.org?"}}, "archive.base_url"),
        ({"archive": {"base_url": " https://web.archive.org"}}, "archive.base_url"),
        ({"archive": {"base_url": "https://web.archive.org\n"}}, "archive.base_url"),
        ({"archive": {"base_url": "https://web.arch ive.org"}}, "archive.base_url"),
        ({"archive": {"availability_url": "https://archive.org/wayback/available?x=1"}},
         "archive.availability_url"),
        ({"archives": [{"name": "b", "base_url": "http://127.0.0.1:9/?c=1"}]},
         "archives[0].base_url"),
        ({"archives": [{"name": "b", "base_url": "http://127.0.0.1:9\t"}]},
         "archives[0].base_url"),
    ],
)
def test_a_query_fragment_or_whitespace_in_an_archive_url_is_a_config_error(
    doc: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(doc)
    assert named in str(info.value)


def test_credentials_in_base_url_never_reach_records_or_cards(
    tmp_path: Path, emulator: Any
) -> None:
    """They used to be copied into archive_url, raw_url and redirects; now the config is
    refused before any request, and says which key."""
    base = emulator.base_url.replace("http://", "http://wiki:hunter2@")
    cfg = write_config(tmp_path, base)
    out = cli(cfg, "fetch", URL)
    assert out.returncode == 2
    assert "archive.base_url" in out.stderr and "hunter2" not in out.stderr
    assert not (tmp_path / "store").exists()
    assert sum(emulator.counts.values()) == 0


def test_a_plain_archive_url_still_loads() -> None:
    config = config_from_mapping({"archive": {"base_url": "http://127.0.0.1:8080/"}})
    assert config.archive.base_url == "http://127.0.0.1:8080"
