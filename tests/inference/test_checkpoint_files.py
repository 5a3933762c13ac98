"""Damaged torch files: checkpoints fall back to the previous one, loads name the file,
and saving is byte-reproducible (no temporary name inside the archive)."""

from __future__ import annotations

import pytest
import torch

from bayesattn import models
from bayesattn._files import torch_bytes
from bayesattn.inference import AmortizedPosterior, DamagedFileError, load_checkpoint, train

KW = dict(steps=12, batch_size=16, seq_len=(4, 12), seed=1, progress=False, checkpoint_every=5)
DAMAGE = {"empty": b"", "garbage": b"not a torch file " * 20, "truncated": None}


def _net(model):
    return AmortizedPosterior(model, encoder="deepsets", encoder_options={"dim": 16}, seed=1)


def _interrupted(tmp_path, model):
    def stop(step, row, net):
        if step == 11:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_net(model), model, checkpoint_dir=tmp_path, callback=stop, **KW)
    return tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"


def _damage(path, how):
    data = path.read_bytes()
    path.write_bytes(DAMAGE[how] if DAMAGE[how] is not None else data[: len(data) // 2])


def test_two_checkpoints_are_kept(tmp_path):
    m = models.get("gamma-poisson")
    last, prev = _interrupted(tmp_path, m)
    assert load_checkpoint(tmp_path)["step"] == 10
    assert torch.load(prev, weights_only=True)["step"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_last_checkpoint_falls_back_and_resume_still_matches(tmp_path, how):
    m = models.get("gamma-poisson")
    full = train(_net(m), m, checkpoint_dir=tmp_path / "full", **KW).net
    last, _ = _interrupted(tmp_path / "cut", m)
    _damage(last, how)
    with pytest.warns(UserWarning, match=r"checkpoint .*checkpoint\.pt .*previous checkpoint"):
        resumed = train(_net(m), m, checkpoint_dir=tmp_path / "cut", resume=True, **KW)
    assert resumed.history["step"].tolist() == list(range(1, 13))
    for p, q in zip(full.parameters(), resumed.net.parameters(), strict=True):
        assert torch.equal(p, q)


def test_no_intact_checkpoint_is_the_librarys_error_naming_the_files(tmp_path):
    m = models.get("gamma-poisson")
    last, prev = _interrupted(tmp_path, m)
    _damage(last, "truncated")
    _damage(prev, "empty")
    with pytest.raises(DamagedFileError) as info:
        train(_net(m), m, checkpoint_dir=tmp_path, resume=True, **KW)
    text = str(info.value)
    assert str(last) in text and str(prev) in text and "weights_only" not in text


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_network_file_names_itself(tmp_path, how):
    m = models.get("beta-bernoulli")
    path = _net(m).save(tmp_path / "net.pt")
    _damage(path, how)
    with pytest.raises(DamagedFileError, match=f"network file {path}") as info:
        AmortizedPosterior.load(path)
    assert "weights_only" not in str(info.value)
    torch.save({"something": torch.ones(1)}, path)
    with pytest.raises(DamagedFileError, match="holds no saved AmortizedPosterior"):
        AmortizedPosterior.load(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AmortizedPosterior.load(tmp_path / "missing.pt")


def test_saving_is_byte_reproducible_whatever_the_file_name(tmp_path):
    m = models.get("beta-bernoulli")
    a, b = _net(m).save(tmp_path / "a.pt"), _net(m).save(tmp_path / "sub" / "b.pt")
    assert a.read_bytes() == b.read_bytes() == torch_bytes(
        {"config": _net(m).config, "state_dict": _net(m).state_dict()})
