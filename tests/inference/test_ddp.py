"""Data parallel training under torchrun (gloo, 2 CPU processes) matches one process
training on the doubled batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bayesattn import models
from bayesattn.inference import AmortizedPosterior, train


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_doubled_batch(tmp_path):
    out = tmp_path / "ddp.csv"
    script = Path(__file__).with_name("_ddp_script.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(out)],
        check=True, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    ddp = pd.read_csv(out)
    m = models.get("normal-mean", d=2)
    net = AmortizedPosterior(m, encoder="deepsets", encoder_options={"dim": 16}, seed=0)
    one = train(net, m, steps=6, batch_size=16, data_shards=2, seq_len=(4, 10), seed=3,
                device="cpu", progress=False).history
    assert len(ddp) == len(one) == 6
    pd.testing.assert_series_equal(ddp["loss"], one["loss"], rtol=1e-4, check_names=False)
