"""Atomic, durable writes and checkpoints: whole file or nothing, permissions and symlinks
kept, fsynced, no temporary file outliving a crash; load_params refuses non-checkpoints."""
import gzip
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from data_helpers import ROOT, listing, run_unprivileged

from tinygrad_cnn import _io
from tinygrad_cnn._io import atomic_open, atomic_write, load_arrays, save_arrays
from tinygrad_cnn.models import SimpleConvNet

fcntl = pytest.importorskip("fcntl")


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def small_net(seed=0) -> SimpleConvNet:
    from tinygrad_cnn import manual_seed
    manual_seed(seed)
    return SimpleConvNet(input_dim=(1, 10, 10), conv_param={"filter_num": 3, "filter_size": 3}, hidden_size=4)


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, b"first")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask()
    atomic_write(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert listing(tmp_path) == ["f.bin"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(TypeError, match="bytes"):
        atomic_write(path, "not bytes")
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as f:
        f.write(b"half")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert listing(tmp_path) == ["f.bin"]


def test_an_existing_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "secret.npz"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    small_net().save_params(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    atomic_write(path, b"again")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "params.npz"
    target.write_bytes(b"old")
    link = tmp_path / "latest.npz"
    link.symlink_to(os.path.join("store", "params.npz"))
    net = small_net()
    net.save_params(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("store", "params.npz")
    other = small_net(seed=1)
    other.load_params(target)
    np.testing.assert_array_equal(other.params["W1"], net.params["W1"])
    assert listing(tmp_path) == ["latest.npz", "store", "store/params.npz"]


def test_file_and_folder_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(_io.os, "fsync", lambda fd: events.append(
        "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file") or real_fsync(fd))
    monkeypatch.setattr(_io.os, "replace", lambda a, b: events.append("rename") or real_replace(a, b))
    atomic_write(tmp_path / "f", b"data")
    assert events == ["file", "rename", "folder"]


def test_a_dead_writers_temp_file_goes_at_the_next_write_a_live_ones_stays(tmp_path):
    path = tmp_path / "params.npz"
    dead = tmp_path / ".params.npz.abc123.part"
    dead.write_bytes(b"left by a killed save")
    live = tmp_path / ".params.npz.def456.part"
    live.write_bytes(b"being written right now")
    other = tmp_path / ".other.npz.ghi789.part"  # another file's: not ours to judge
    other.write_bytes(b"")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        atomic_write(path, b"new")
        assert listing(tmp_path) == sorted([live.name, other.name, "params.npz"])
    atomic_write(path, b"newer")
    assert listing(tmp_path) == sorted([other.name, "params.npz"])


def test_sigkill_in_the_middle_of_a_save(tmp_path):
    """Killed after the new checkpoint is written but before the rename: the old one loads;
    the next save removes the dead temp file."""
    path = tmp_path / "params.npz"
    old = small_net(seed=0)
    old.save_params(path)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_io import small_net
        from tinygrad_cnn import _io
        def stall(fd):
            print("saving", flush=True)
            time.sleep(60)
        _io.os.fsync = stall
        small_net(seed=1).save_params({str(path)!r})
        """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout.readline() == "saving\n", child.communicate()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert len(temps) == 1 and temps[0].stat().st_size > 0  # the crash left it
    loaded = small_net(seed=2)
    loaded.load_params(path)
    for k, v in old.params.items():
        np.testing.assert_array_equal(loaded.params[k], v)
    new = small_net(seed=3)
    new.save_params(path)
    assert listing(tmp_path) == ["params.npz"]
    loaded.load_params(path)
    np.testing.assert_array_equal(loaded.params["W3"], new.params["W3"])


def test_save_into_a_read_only_folder_is_a_permission_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    os.chmod(tmp_path, 0o755)
    proc = run_unprivileged(f"""
        import sys
        sys.path.insert(0, "tests")
        from test_io import small_net
        try:
            small_net().save_params({str(folder / "p.npz")!r})
        except PermissionError as e:
            print("PermissionError", e.filename)
        """)
    assert proc.stdout.split()[0] == "PermissionError" and str(folder) in proc.stdout, proc.stderr
    assert listing(folder) == []


def test_save_arrays_round_trip_and_refuses_objects(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "file": np.array([1.5]), "b.c": np.zeros(0)}
    save_arrays(tmp_path / "x.npz", arrays)
    back = load_arrays(tmp_path / "x.npz")
    assert sorted(back) == sorted(arrays)
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype
    with np.load(tmp_path / "x.npz") as z:  # a plain .npz for numpy too
        assert sorted(z.files) == sorted(arrays)
    with pytest.raises(ValueError, match="[Oo]bject arrays"):
        save_arrays(tmp_path / "y.npz", {"o": np.array([{}, None], dtype=object)})
    assert listing(tmp_path) == ["x.npz"]


@pytest.mark.parametrize("content, what", [
    (None, "it is a single .npy array"),
    (b"W1 0.1 0.2\n", "it starts with b'W1 0.1 0'"),
    (b"", "the file is empty"),
    (gzip.compress(b"W1 0.1"), "it is a gzip file"),
])
def test_load_params_on_a_non_checkpoint_says_so(tmp_path, content, what):
    path = tmp_path / "weights.bin"
    if content is None:
        np.save(path.with_suffix(".npy"), np.zeros(3))
        path = path.with_suffix(".npy")
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        small_net().load_params(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a checkpoint ({what}")
    assert "expected one of: npz" in message and "save_params" in message


def test_load_params_on_a_damaged_or_mismatched_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "p.npz"
    small_net().save_params(path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=f"{cut}: a damaged .npz checkpoint"):
        small_net().load_params(cut)
    bigger = SimpleConvNet(input_dim=(1, 10, 10), conv_param={"filter_num": 3, "filter_size": 3}, hidden_size=5)
    with pytest.raises(ValueError, match=f"(?s){path}: Error.*loading state_dict.*shape"):
        bigger.load_params(path)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        small_net().load_params(tmp_path / "missing.npz")


def test_a_format_is_one_entry_in_the_dispatch_table(tmp_path, monkeypatch):
    """Another format is a sniffer and a reader (the book's params.pkl is one: tests/test_book.py)."""
    def read_json(path):
        return {k: np.array(v) for k, v in json.loads(open(path, "rb").read()[len(b"#json"):]).items()}
    monkeypatch.setitem(_io.CHECKPOINT_FORMATS, "json", (lambda head: head.startswith(b"#json"), read_json))
    net = small_net()
    (tmp_path / "params.json").write_text("#json" + json.dumps({k: v.tolist() for k, v in net.params.items()}))
    other = small_net(seed=1)
    other.load_params(tmp_path / "params.json")
    np.testing.assert_array_equal(other.params["b2"], net.params["b2"])
