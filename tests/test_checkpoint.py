"""Self-describing checkpoints: atomic save, weights_only load, clear errors for foreign/truncated files."""
import os

import pytest
import torch

from vidanime.checkpoint import check_state_dict, load_checkpoint, read_torch_file, save_checkpoint
from vidanime.errors import CheckpointError
from vidanime.fileio import atomic_path


def test_save_load_round_trip(tmp_path):
    lin = torch.nn.Linear(3, 2)
    p = save_checkpoint(tmp_path / "m.pt", format="test.linear", config={"a": 1}, state_dict=lin.state_dict(),
                        latent_avg=torch.ones(4), step=7)
    ck = load_checkpoint(p, format="test.linear")
    assert ck["format"] == "test.linear" and ck["version"] == 1 and ck["config"] == {"a": 1} and ck["step"] == 7
    assert torch.equal(ck["state_dict"]["weight"], lin.weight.detach())
    assert torch.equal(ck["latent_avg"], torch.ones(4))
    # it is a plain weights_only file
    torch.load(p, weights_only=True)
    assert not [f for f in os.listdir(tmp_path) if "partial" in f]


def test_wrong_format_and_foreign_file(tmp_path):
    p = save_checkpoint(tmp_path / "m.pt", format="a", config={}, state_dict={})
    with pytest.raises(CheckpointError, match="is a 'a' checkpoint, expected 'b'"):
        load_checkpoint(p, format="b")
    foreign = tmp_path / "f.pt"
    torch.save({"g_ema": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a vidanime checkpoint"):
        load_checkpoint(foreign)


def test_truncated_empty_missing(tmp_path):
    p = save_checkpoint(tmp_path / "m.pt", format="a", config={}, state_dict={"w": torch.randn(100, 100)})
    data = p.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a torch file"):
        read_torch_file(cut)
    empty = tmp_path / "e.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_torch_file(empty)
    with pytest.raises(CheckpointError, match="not found"):
        read_torch_file(tmp_path / "missing.pt")


def test_pickled_code_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"obj": torch.nn.Linear(1, 1)}, p)  # a module object = pickled code
    with pytest.raises(CheckpointError, match="pickled"):
        read_torch_file(p)


def test_check_state_dict_names_keys():
    m = torch.nn.Linear(3, 2)
    sd = {"weight": torch.zeros(2, 4), "extra": torch.zeros(1)}
    with pytest.raises(CheckpointError) as e:
        check_state_dict(m, sd, "file.pt")
    msg = str(e.value)
    assert "missing keys: bias" in msg and "unexpected keys: extra" in msg and "weight (2, 4) vs (2, 3)" in msg


def test_atomic_path_gives_normal_permissions(tmp_path):
    import stat

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "o.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "o.bin").stat().st_mode) == 0o644


def test_atomic_path_removes_partial_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_random_bytes_are_not_called_pickled_objects(tmp_path):
    """A file of random bytes is 'not a torch checkpoint', not 'holds pickled objects' (torch's weights-only error);
    a legacy (non-zip) torch pickle still loads."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(7, 256)) * 20)
    with pytest.raises(CheckpointError, match="is not a torch checkpoint"):
        read_torch_file(junk)
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(read_torch_file(legacy)["w"], torch.ones(2))
