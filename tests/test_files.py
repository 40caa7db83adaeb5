"""Store files are precious: the run lock, the state file and temporary files never follow
a planted link; a cache folder others could write is refused; ``export -o`` writes regular
files only; temporary files of a killed writer are swept and never counted.

Everything runs real ``snapcache`` processes (or the library) on private folders; nothing
contacts the network (the configured archive is an unused loopback port).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from snapcache.cache import SnapshotCache, UnsafeLocationError
from snapcache.cache.files import (
    EXPORT_PREFIX,
    SPILL_DIR,
    SPILL_PREFIX,
    create_temp_file,
    is_temp_name,
    sweep_temp_files,
    writer_token,
)
from snapcache.cli.lock import RunLock
from snapcache.errors import StateFileError
from snapcache.transport import SPILL_BYTES
from snapcache.transport.body import BodySink
from snapcache.transport.limits import StateFile

from tests.storekit import fill_six_records
from tests.test_cli import run, write_config

NOWHERE = "http://127.0.0.1:9"  # never contacted: these commands make no request
IS_ROOT = os.geteuid() == 0


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """A config whose store (``tmp_path/store``) holds six records."""
    with SnapshotCache(tmp_path / "store") as cache:
        fill_six_records(cache)
    return write_config(tmp_path, NOWHERE)


# ---------------------------------------------------------------------------------------------
# 1. The run lock, the state file and the cache folder


def test_a_run_lock_linked_to_a_victim_file_is_refused_and_the_victim_kept(
    tmp_path: Path, cfg: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "store" / "run.lock").symlink_to(victim)
    (tmp_path / "src.txt").write_text("https://example.com/x\n")
    out = run("--config", str(cfg), "run", str(tmp_path / "src.txt"))
    assert out.returncode == 2, out.stderr
    assert "run.lock" in out.stderr and "symbolic link" in out.stderr and "rm " in out.stderr
    assert "Traceback" not in out.stderr
    assert victim.read_text() == "precious\n"


def test_a_dangling_run_lock_link_creates_nothing(tmp_path: Path, cfg: Path) -> None:
    target = tmp_path / "made-by-the-lock"
    (tmp_path / "store" / "run.lock").symlink_to(target)
    (tmp_path / "src.txt").write_text("https://example.com/x\n")
    out = run("--config", str(cfg), "run", str(tmp_path / "src.txt"))
    assert out.returncode == 2 and "symbolic link" in out.stderr, out.stderr
    assert not target.exists()


@pytest.mark.parametrize("kind", ["fifo", "hard link", "directory"])
def test_a_run_lock_that_is_not_a_lone_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    lock = folder / "run.lock"
    other = tmp_path / "other"
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "hard link":
        other.write_text("precious\n")
        os.link(other, lock)
    else:
        lock.mkdir()
    with pytest.raises(UnsafeLocationError, match="remove it"):
        RunLock(folder).acquire()
    if kind == "hard link":
        assert other.read_text() == "precious\n"


def test_a_world_writable_sticky_cache_folder_is_refused_saying_how_to_fix_it(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path, NOWHERE)
    store = tmp_path / "store"
    store.mkdir()
    os.chmod(store, 0o1777)
    (tmp_path / "src.txt").write_text("https://example.com/x\n")
    for args in (["stats"], ["list"], ["run", str(tmp_path / "src.txt")]):
        out = run("--config", str(cfg), *args)
        assert out.returncode == 2, (args, out.stderr)
        assert "writable by its group and others" in out.stderr, out.stderr
        assert f"chmod 700 {store}" in out.stderr and "Traceback" not in out.stderr
    assert stat.S_IMODE(store.stat().st_mode) == 0o1777  # refused, not silently "fixed"
    assert list(store.iterdir()) == []  # nothing was created in it
    with pytest.raises(UnsafeLocationError, match="chmod 700"):
        SnapshotCache(store)


def test_a_group_writable_cache_folder_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    os.chmod(store, 0o770)
    with pytest.raises(UnsafeLocationError, match="writable by its group"):
        SnapshotCache(store)


def test_a_cache_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    if not IS_ROOT:
        pytest.skip("giving a folder to another user needs root (chown)")
    cfg = write_config(tmp_path, NOWHERE)
    store = tmp_path / "store"
    store.mkdir(mode=0o700)
    os.chown(store, 65534, 65534)
    out = run("--config", str(cfg), "stats")
    assert out.returncode == 2, out.stderr
    assert "belongs to uid 65534, not to you" in out.stderr and "chown" in out.stderr
    with pytest.raises(UnsafeLocationError, match="choose another path"):
        RunLock(store).acquire()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_state_file_that_is_a_link_is_refused_and_never_written_through(
    tmp_path: Path, dangling: bool
) -> None:
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_bytes(b"precious")
    (tmp_path / "rl.sqlite").symlink_to(victim)
    with pytest.raises(StateFileError, match="symbolic link"):
        StateFile(tmp_path / "rl.sqlite", "CREATE TABLE IF NOT EXISTS t (x)")
    if dangling:
        assert not victim.exists()
    else:
        assert victim.read_bytes() == b"precious"
    cfg = write_config(tmp_path, NOWHERE)
    # A command that fetches opens the state file first, and stops there.
    out = run("--config", str(cfg), "fetch", "https://example.com/ok")
    assert out.returncode == 1 and "rl.sqlite" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    # One that only reads the store never opens it.
    shown = run("--config", str(cfg), "show", "https://example.com/ok")
    assert shown.returncode == 1 and "no record" in shown.stderr, shown.stderr
    assert "rl.sqlite" not in shown.stderr
    if dangling:
        assert not victim.exists()
    else:
        assert victim.read_bytes() == b"precious"


def test_a_new_state_file_is_private(tmp_path: Path) -> None:
    StateFile(tmp_path / "rl.sqlite", "CREATE TABLE IF NOT EXISTS t (x)")
    assert stat.S_IMODE((tmp_path / "rl.sqlite").stat().st_mode) == 0o600


def test_a_spill_file_is_private_names_its_writer_and_never_follows_a_link(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "store" / SPILL_DIR
    sink = BodySink(SPILL_BYTES * 2, spill)
    sink.write(b"x" * (SPILL_BYTES + 1))
    body, path = sink.finish()
    assert body is None and path is not None and path.parent == spill
    assert path.name.startswith(f"{SPILL_PREFIX}{writer_token()}.") and is_temp_name(path.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(spill.stat().st_mode) == 0o700
    os.chmod(spill, 0o777)  # a spill folder others may write is refused
    with pytest.raises(UnsafeLocationError):
        BodySink(SPILL_BYTES * 2, spill).write(b"x" * (SPILL_BYTES + 1))
    # O_EXCL | O_NOFOLLOW: a name taken by a planted link is never opened.
    os.chmod(spill, 0o700)
    fd, made = create_temp_file(spill, SPILL_PREFIX)
    os.close(fd)
    made.unlink()
    made.symlink_to(tmp_path / "victim")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with pytest.raises(FileExistsError):
        os.open(made, flags, 0o600)
    assert not (tmp_path / "victim").exists()


# ---------------------------------------------------------------------------------------------
# 2. export -o


def test_export_into_the_store_is_refused_and_the_store_keeps_working(
    tmp_path: Path, cfg: Path
) -> None:
    store = tmp_path / "store"
    for target in (store / "cache.db", store / "new.jsonl", store / SPILL_DIR / "x"):
        out = run("--config", str(cfg), "export", "-o", str(target))
        assert out.returncode == 2, (target, out.stderr)
        assert "inside the store folder" in out.stderr and str(target) in out.stderr
    (tmp_path / "alias").symlink_to(store)  # the same folder by another name
    out = run("--config", str(cfg), "export", "-o", str(tmp_path / "alias" / "cache.db"))
    assert out.returncode == 2, out.stderr
    after = run("--config", str(cfg), "stats", "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["records"] == 6
    assert not (store / "new.jsonl").exists()


def test_export_over_the_rate_limit_state_file_is_refused(tmp_path: Path, cfg: Path) -> None:
    run("--config", str(cfg), "stats")  # creates the state file
    out = run("--config", str(cfg), "export", "-o", str(tmp_path / "rl.sqlite"))
    assert out.returncode == 2 and "rate-limit state file" in out.stderr, out.stderr
    assert run("--config", str(cfg), "list").returncode == 0


def test_export_to_a_fifo_or_a_directory_is_refused_and_left_alone(
    tmp_path: Path, cfg: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    out = run("--config", str(cfg), "export", "-o", str(fifo))
    assert out.returncode == 2 and "a FIFO, not a regular file" in out.stderr, out.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    folder = tmp_path / "folder"
    folder.mkdir()
    out = run("--config", str(cfg), "export", "-o", str(folder))
    assert out.returncode == 2 and folder.is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(EXPORT_PREFIX)]


def test_export_to_a_device_node_is_refused_and_the_node_left_alone(
    tmp_path: Path, cfg: Path
) -> None:
    if not IS_ROOT:
        pytest.skip("making a device node needs root (mknod)")
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    link = tmp_path / "to-null"
    link.symlink_to(node)
    for target in (node, link):
        out = run("--config", str(cfg), "export", "-o", str(target))
        assert out.returncode == 2, out.stderr
        assert "a character device, not a regular file" in out.stderr
    assert stat.S_ISCHR(node.lstat().st_mode) and link.is_symlink()


def test_export_over_an_existing_file_keeps_its_mode(tmp_path: Path, cfg: Path) -> None:
    out_file = tmp_path / "export.jsonl"
    out_file.write_text("old\n")
    os.chmod(out_file, 0o644)
    out = run("--config", str(cfg), "export", "-o", str(out_file))
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o644
    assert len(out_file.read_text().splitlines()) == 6
    fresh = tmp_path / "fresh.csv"
    assert run("--config", str(cfg), "export", "--format", "csv", "-o", str(fresh)).returncode == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600  # a new export is private


def test_export_through_a_link_replaces_the_file_and_keeps_the_link(
    tmp_path: Path, cfg: Path
) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    os.chmod(real, 0o640)
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    out = run("--config", str(cfg), "export", "-o", str(link))
    assert out.returncode == 0, out.stderr
    assert link.is_symlink() and len(real.read_text().splitlines()) == 6
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_export_errors_name_the_path_given_never_the_temporary_file(
    tmp_path: Path, cfg: Path
) -> None:
    target = tmp_path / "missing" / "out.jsonl"
    out = run("--config", str(cfg), "export", "-o", str(target))
    assert out.returncode == 1, out.stderr
    assert f"cannot write {target}" in out.stderr and EXPORT_PREFIX not in out.stderr
    assert "Traceback" not in out.stderr


# ---------------------------------------------------------------------------------------------
# 4. Temporary files of a writer killed by SIGKILL


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)  # reaped: its pid is gone


_SPILLER = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from snapcache.transport import SPILL_BYTES\n"
    "from snapcache.transport.body import BodySink\n"
    "sink = BodySink(SPILL_BYTES * 4, Path(sys.argv[1]))\n"
    "sink.write(b'x' * (SPILL_BYTES + 4096))\n"
    "print(sink.path, flush=True)\n"
    "time.sleep(120)\n"
)


def test_spill_files_of_a_killed_writer_are_swept_and_never_counted(
    tmp_path: Path, cfg: Path
) -> None:
    store = tmp_path / "store"
    base = json.loads(run("--config", str(cfg), "stats", "--json").stdout)["cache_bytes"]
    proc = subprocess.Popen([sys.executable, "-c", _SPILLER, str(store / SPILL_DIR)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        spilled = Path(proc.stdout.readline().strip())
        assert spilled.is_file() and spilled.stat().st_size > SPILL_BYTES
        # While its writer lives, the spill stays, and it is not the store's size.
        live = run("--config", str(cfg), "stats", "--json")
        assert live.returncode == 0, live.stderr
        assert json.loads(live.stdout)["cache_bytes"] < base + SPILL_BYTES
        assert spilled.exists()
    finally:
        _kill(proc)
    assert spilled.exists()  # SIGKILL leaves it behind ...
    after = run("--config", str(cfg), "list")  # ... and the next command, any, removes it
    assert after.returncode == 0, after.stderr
    assert not spilled.exists()
    assert list((store / SPILL_DIR).iterdir()) == []


_SLOW_EXPORT = (
    "import sys, time\n"
    "import snapcache.cli.records as records\n"
    "from snapcache.cli import main\n"
    "real = records.write_atomically\n"
    "def slow(target, shown, write):\n"
    "    def held(fh):\n"
    "        write(fh); fh.flush(); print('written', flush=True); time.sleep(120)\n"
    "    real(target, shown, held)\n"
    "records.write_atomically = slow\n"
    "sys.argv = ['snapcache', *sys.argv[1:]]\n"
    "main()\n"
)


def test_an_export_killed_mid_write_leaves_a_file_the_next_export_sweeps(
    tmp_path: Path, cfg: Path
) -> None:
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    target = out_dir / "records.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_EXPORT, "--config", str(cfg), "export", "-o", str(target)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "written"
        left = [p for p in out_dir.iterdir() if p.name.startswith(EXPORT_PREFIX)]
        assert len(left) == 1 and writer_token() not in left[0].name
        assert f".{proc.pid}." in left[0].name  # the name carries its writer
    finally:
        _kill(proc)
    assert left[0].exists() and not target.exists()
    # Someone else's file that merely looks alike is never touched.
    lookalike = out_dir / ".export-notes"
    lookalike.write_text("mine\n")
    out = run("--config", str(cfg), "export", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert not left[0].exists() and lookalike.exists()
    assert len(target.read_text().splitlines()) == 6


def test_temp_files_in_the_store_are_not_counted_and_old_leftovers_are_swept(
    tmp_path: Path, cfg: Path
) -> None:
    store = tmp_path / "store"
    base = json.loads(run("--config", str(cfg), "stats", "--json").stdout)["cache_bytes"]
    # Left by releases before writer identities (tempfile's names), a day and more ago.
    old_spill = store / SPILL_DIR / "body-abc12_xy"
    old_export = store / ".export-k2j4h5g6"
    old_spill.parent.mkdir(mode=0o700, exist_ok=True)
    for path in (old_spill, old_export):
        path.write_bytes(b"x" * 100_000)
        os.utime(path, (time.time() - 2 * 86400,) * 2)
    recent = store / SPILL_DIR / "body-zzz12_xy"  # may still be written by an old release
    recent.write_bytes(b"x" * 100_000)
    stats = json.loads(run("--config", str(cfg), "stats", "--json").stdout)
    assert not old_spill.exists() and not old_export.exists() and recent.exists()
    assert stats["cache_bytes"] < base + 100_000 and stats["records"] == 6


def test_sweeping_spares_live_writers_and_files_it_does_not_know(tmp_path: Path) -> None:
    fd, mine = create_temp_file(tmp_path, SPILL_PREFIX)
    os.close(fd)
    other_host = tmp_path / f"{SPILL_PREFIX}00000000.1.1.0123456789ab"
    unknown = tmp_path / "body-notes.txt"
    for path in (other_host, unknown):
        path.write_text("x")
    assert sweep_temp_files(tmp_path) == 0
    assert mine.exists() and other_host.exists() and unknown.exists()
    os.utime(other_host, (time.time() - 2 * 86400,) * 2)  # no writer runs for a day
    assert sweep_temp_files(tmp_path) == 1 and not other_host.exists()
    # The same name under a pid that is gone: swept.
    gone = tmp_path / mine.name.replace(f".{os.getpid()}.", ".999999999.")
    gone.write_text("x")
    assert sweep_temp_files(tmp_path) == 1 and not gone.exists() and mine.exists()
