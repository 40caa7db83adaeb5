"""Damaged files give one clear line and exit 1 from every command, never a traceback: a
truncated or overwritten store, a directory in its place, a store on a read-only mount or a
full disk, and a damaged, read-only or misplaced rate-limit state file. A stored record too
deep to parse is reported and skipped by export, list and stats, and ``show`` says it is
damaged.

Read-only and full places need root here (a read-only bind mount, a tiny tmpfs): modes do
not bind root, and without root the mounts cannot be made, so those tests say why they skip.
The rest use techniques that work for anyone: truncation, garbage bytes, a directory in
place of the file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from diskcache.core import MODE_RAW
from snapcache.cache import (
    CacheError,
    DamagedRecordError,
    RecordFormatError,
    SnapshotCache,
    StoreDamagedError,
    StoreUnavailableError,
)
from snapcache.errors import StateFileError
from snapcache.transport.limits import StateFile

from tests.store_backends import BACKENDS, Stores
from tests.storekit import EXAMPLE, attempt, fill_six_records, plant, rid
from tests.test_cli import run, write_config

NOWHERE = "http://127.0.0.1:9"  # never contacted
IS_ROOT = os.geteuid() == 0
DEEP_URL = f"{EXAMPLE}/deep"
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    with SnapshotCache(tmp_path / "store") as cache:
        fill_six_records(cache)
    (tmp_path / "src.txt").write_text("https://example.com/x\n")
    return write_config(tmp_path, NOWHERE)


def every_command(tmp_path: Path) -> list[list[str]]:
    """One invocation of each command (none gets as far as a request)."""
    return [
        ["show", "https://example.com/ok"], ["show", "--json", rid(f"{EXAMPLE}/ok")],
        ["list"], ["stats"], ["stats", "--json"], ["export"],
        ["export", "-o", str(tmp_path / "out.jsonl")], ["fetch", "https://example.com/ok"],
        ["move", "https://example.com/ok", "https://example.com/ok2"],
        ["refetch", "--status", "ok"], ["run", str(tmp_path / "src.txt")],
    ]


#: The commands that only read the store: they never open the rate-limit state file.
READ_ONLY = frozenset({"show", "list", "stats", "export"})


def assert_one_clear_line(out: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert out.returncode == 1, (out.args, out.returncode, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ---------------------------------------------------------------------------------------------
# The store file


def garbage(db: Path) -> None:
    db.write_bytes(os.urandom(40_000))


def truncated(db: Path) -> None:
    size = db.stat().st_size
    with db.open("r+b") as fh:
        fh.truncate(size // 2)


def directory(db: Path) -> None:
    db.unlink()
    db.mkdir()


def header_only(db: Path) -> None:
    # The first bytes of an SQLite file and nothing after: cut during a copy.
    data = db.read_bytes()
    db.write_bytes(data[:100])


@pytest.mark.parametrize("damage", [garbage, truncated, directory, header_only],
                         ids=lambda f: f.__name__)
def test_a_damaged_store_file_is_one_clear_line_and_exit_1_from_every_command(
    tmp_path: Path, cfg: Path, damage: object
) -> None:
    db = tmp_path / "store" / "cache.db"
    assert callable(damage)
    damage(db)
    commands = every_command(tmp_path)
    if damage is not garbage:  # every command once is enough; the other damages take three
        commands = [["show", "https://example.com/ok"], ["list"], ["export"]]
    for args in commands:
        out = run("--config", str(cfg), *args)
        assert_one_clear_line(out, str(db), "restore the store folder from a backup",
                              "move the folder")
    assert not (tmp_path / "out.jsonl").exists()


def test_the_library_raises_a_typed_error_for_a_damaged_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with SnapshotCache(store) as cache:
        fill_six_records(cache)
    garbage(store / "cache.db")
    with pytest.raises(StoreDamagedError, match="is not a database") as caught:
        SnapshotCache(store)
    assert caught.value.path == str(store / "cache.db")
    assert isinstance(caught.value, CacheError)


def test_a_store_damaged_after_opening_raises_typed_errors_on_read(tmp_path: Path) -> None:
    # The schema row is read at open; later pages are read when used, and may be cut.
    store = tmp_path / "store"
    with SnapshotCache(store) as cache:
        for i in range(300):
            url = f"{EXAMPLE}/p/{i}"
            cache.save_attempt(attempt(url, "ok", sid=f"sid_{i:010d}"), text="t" * 2000,
                               history_entry={})
    with SnapshotCache(store) as cache:
        truncated(store / "cache.db")
        with pytest.raises((StoreDamagedError, StoreUnavailableError)):
            list(cache.records())


class ReadOnly:
    """A folder to fill (``source``), then seen read-only at ``view`` after :meth:`seal`.

    Without root, modes do it (``view`` is ``source``, sealed by chmod). Root ignores modes,
    so for root ``view`` is a read-only bind mount of ``source``.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.source = tmp_path / "rw"
        self.source.mkdir(mode=0o700)
        self.view = self.source
        self.mounted = False
        #: What the message says: the mount is read-only, or the modes deny writing.
        self.reason = "permission denied"
        if IS_ROOT:
            self.view = tmp_path / "ro"
            self.view.mkdir()
            bind = ["mount", "--bind", str(self.source), str(self.view)]
            made = subprocess.run(bind, capture_output=True, text=True)
            if made.returncode != 0:
                pytest.skip(f"running as root, where modes do not bind, and a read-only bind "
                            f"mount cannot be made here: {made.stderr.strip()}")
            self.mounted = True
            remount = ["mount", "-o", "remount,bind,ro", str(self.view)]
            if subprocess.run(remount, capture_output=True).returncode != 0:
                pytest.skip("running as root, and a bind mount cannot be made read-only here")
            self.reason = "read-only file system"

    def seal(self) -> None:
        if self.mounted:
            return
        for path in sorted(self.source.rglob("*"), reverse=True):
            os.chmod(path, 0o500 if path.is_dir() else 0o400)
        os.chmod(self.source, 0o500)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.view)], check=True)
            return
        os.chmod(self.source, 0o700)
        for path in self.source.rglob("*"):
            os.chmod(path, 0o700 if path.is_dir() else 0o600)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[ReadOnly]:
    place = ReadOnly(tmp_path)
    try:
        yield place
    finally:
        place.close()


def test_a_read_only_store_is_one_clear_line(tmp_path: Path, read_only: ReadOnly) -> None:
    with SnapshotCache(read_only.source / "store") as cache:
        fill_six_records(cache)
    read_only.seal()
    store = read_only.view / "store"
    cfg = write_config(tmp_path, NOWHERE).read_text().replace(str(tmp_path / "store"), str(store))
    (tmp_path / "ro.toml").write_text(cfg)
    for args in (["show", "https://example.com/ok"], ["list"], ["stats"], ["export"]):
        out = run("--config", str(tmp_path / "ro.toml"), *args)
        assert_one_clear_line(out, str(store), read_only.reason, "choose another path")
    with pytest.raises(StoreUnavailableError, match=read_only.reason):
        SnapshotCache(read_only.view / "new-store")


def test_a_store_on_a_full_disk_is_one_clear_line(tmp_path: Path) -> None:
    if not IS_ROOT:
        pytest.skip("filling a disk needs a small tmpfs, which needs root")
    full = tmp_path / "full"
    full.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    try:
        with (full / "filler").open("wb") as fh, pytest.raises(OSError):
            fh.write(b"\0" * 1_000_000)
            fh.flush()
        cfg = write_config(tmp_path, NOWHERE).read_text().replace(
            str(tmp_path / "store"), str(full / "store"))
        (tmp_path / "full.toml").write_text(cfg)
        for args in (["stats"], ["list"]):
            out = run("--config", str(tmp_path / "full.toml"), *args)
            assert_one_clear_line(out, str(full / "store"), "the disk is full")
    finally:
        subprocess.run(["umount", str(full)], check=True)


# ---------------------------------------------------------------------------------------------
# The rate-limit state file


def test_a_damaged_state_file_is_one_clear_line_for_every_command_that_opens_it(
    tmp_path: Path, cfg: Path
) -> None:
    state = tmp_path / "rl.sqlite"
    damage = b"not a database at all" + os.urandom(9000)
    state.write_bytes(damage)
    for args in every_command(tmp_path):
        out = run("--config", str(cfg), *args)
        if args[0] in READ_ONLY:  # reading the store needs no rate limit
            assert out.returncode == 0, (args, out.stderr)
            assert "rl.sqlite" not in out.stderr
        else:
            assert_one_clear_line(out, str(state), "move it away")
    assert state.read_bytes() == damage
    with pytest.raises(StateFileError, match="not a database") as caught:
        StateFile(state, "CREATE TABLE IF NOT EXISTS t (x)")
    assert caught.value.path == str(state)


@pytest.mark.parametrize("kind", ["directory", "truncated"])
def test_a_state_file_replaced_or_cut_is_one_clear_line(
    tmp_path: Path, cfg: Path, kind: str
) -> None:
    state = tmp_path / "rl.sqlite"
    # A good state file exists (a dry run opens it, and sends nothing).
    assert run("--config", str(cfg), "run", "--dry-run", str(tmp_path / "src.txt")).returncode == 0
    assert state.is_file()
    if kind == "directory":
        state.unlink()
        state.mkdir()
    else:
        state.write_bytes(state.read_bytes()[:100])
    for args in (["fetch", "https://example.com/ok"], ["run", str(tmp_path / "src.txt")]):
        out = run("--config", str(cfg), *args)
        assert_one_clear_line(out, str(state))
    for args in (["show", "https://example.com/ok"], ["stats"], ["list"]):
        assert run("--config", str(cfg), *args).returncode == 0, args  # not opened
    assert state.exists()  # reported, never removed or replaced by snapcache


def test_a_read_only_state_file_is_one_clear_line(tmp_path: Path, read_only: ReadOnly) -> None:
    StateFile(read_only.source / "rl.sqlite", "CREATE TABLE IF NOT EXISTS t (x)")
    read_only.seal()
    with SnapshotCache(tmp_path / "store") as cache:
        fill_six_records(cache)
    state = read_only.view / "rl.sqlite"
    cfg = write_config(tmp_path, NOWHERE).read_text().replace(str(tmp_path / "rl.sqlite"),
                                                              str(state))
    (tmp_path / "ro.toml").write_text(cfg)
    out = run("--config", str(tmp_path / "ro.toml"), "fetch", "https://example.com/ok")
    assert_one_clear_line(out, str(state), read_only.reason)
    for args in (["show", "https://example.com/ok"], ["stats"]):
        assert run("--config", str(tmp_path / "ro.toml"), *args).returncode == 0, args


# ---------------------------------------------------------------------------------------------
# A record nested too deep to parse


def plant_deep(store: Path) -> str:
    plant(str(store), f"rec:{rid(DEEP_URL)}", mode=MODE_RAW, value=DEEP)  # type: ignore[arg-type]
    return rid(DEEP_URL)


def test_a_record_too_deep_to_parse_is_skipped_by_listings_and_damaged_for_show(
    tmp_path: Path, cfg: Path
) -> None:
    deep = plant_deep(tmp_path / "store")
    for args, count in ((["export"], lambda o: len(o.splitlines())),
                        (["list"], lambda o: len(o.splitlines()) - 1),
                        (["stats", "--json"], lambda o: json.loads(o)["records"]),
                        (["export", "--format", "csv"], lambda o: len(o.splitlines()) - 1)):
        out = run("--config", str(cfg), *args)
        assert out.returncode == 1, (args, out.stderr)
        assert "Traceback" not in out.stderr
        assert out.stderr.count(deep) == 1 and "too deep" in out.stderr
        assert count(out.stdout) == 6, (args, out.stdout)  # every other record is there
    written = tmp_path / "out.jsonl"
    out = run("--config", str(cfg), "export", "-o", str(written))
    assert out.returncode == 1 and len(written.read_text().splitlines()) == 6
    shown = run("--config", str(cfg), "show", deep)
    assert_one_clear_line(shown, deep, "damaged", "too deep")
    # A filtered listing meets it too (its status is unknown), and still goes on.
    only_ok = run("--config", str(cfg), "list", "--status", "ok")
    assert only_ok.returncode == 1 and len(only_ok.stdout.splitlines()) == 3


def test_a_record_too_deep_to_parse_raises_a_typed_error_in_the_library(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with SnapshotCache(store) as cache:
        fill_six_records(cache)
    deep = plant_deep(store)
    plant(str(store), f"hist:{rid(f'{EXAMPLE}/ok')}", mode=MODE_RAW, value=DEEP)  # type: ignore[arg-type]
    with SnapshotCache(store) as cache:
        with pytest.raises(DamagedRecordError, match=deep) as caught:
            cache.get(deep)
        assert caught.value.resource_id == deep
        assert isinstance(caught.value, RecordFormatError)
        with pytest.raises(RecordFormatError, match=deep):
            list(cache.records())
        seen: list[RecordFormatError] = []
        assert len(list(cache.records(on_damaged=seen.append))) == 6
        assert [e.resource_id for e in seen if isinstance(e, DamagedRecordError)] == [deep]
        assert cache.stats(on_damaged=seen.append).records == 6 and len(seen) == 2
        with pytest.raises(CacheError, match="too deep"):
            cache.history(rid(f"{EXAMPLE}/ok"))


def test_moving_a_damaged_store_away_as_advised_gives_a_new_store(
    tmp_path: Path, cfg: Path
) -> None:
    # The advice works: moving the damaged folder away gives a new, empty store.
    garbage(tmp_path / "store" / "cache.db")
    shutil.move(tmp_path / "store", tmp_path / "store.damaged")
    out = run("--config", str(cfg), "stats", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["records"] == 0


# ---------------------------------------------------------------------------------------------
# The contract: on_damaged, for every backend


@pytest.mark.parametrize("name", sorted(BACKENDS))
@pytest.mark.parametrize("text", [DEEP, "{not json", '{"resource_id": 5}'],
                         ids=["too-deep", "not-json", "wrong-type"])
def test_every_backend_hands_damaged_records_to_on_damaged_and_yields_the_rest(
    tmp_path: Path, name: str, text: str
) -> None:
    stores = Stores(BACKENDS[name], tmp_path / "stores")
    plant_text = stores.backend.plant_record_text
    if plant_text is None:
        pytest.skip(f"{name} cannot be given a damaged record")
    with stores.open() as store:
        fill_six_records(store)
        plant_text(stores.place(), rid(DEEP_URL), text)
        with pytest.raises(RecordFormatError, match=rid(DEEP_URL)):
            store.get(rid(DEEP_URL))
        with pytest.raises(RecordFormatError, match=rid(DEEP_URL)):
            list(store.records())
        with pytest.raises(RecordFormatError, match=rid(DEEP_URL)):
            store.stats()
        seen: list[RecordFormatError] = []
        kept = [r.resource_id for r in store.records(on_damaged=seen.append)]
        assert kept == sorted(kept) and len(kept) == 6
        assert len(seen) == 1 and rid(DEEP_URL) in str(seen[0])
        ok_only = list(store.records(statuses={"ok"}, on_damaged=seen.append))
        assert len(ok_only) == 2 and len(seen) == 2
        assert store.stats(on_damaged=seen.append).records == 6 and len(seen) == 3
