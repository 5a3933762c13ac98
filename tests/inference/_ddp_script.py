"""Run by test_ddp.py under torchrun: train with DDP (gloo, CPU) and save the history."""

import sys

import torch.distributed as dist

from bayesattn import models
from bayesattn.inference import AmortizedPosterior, train

if __name__ == "__main__":
    out = sys.argv[1]
    dist.init_process_group("gloo")
    m = models.get("normal-mean", d=2)
    net = AmortizedPosterior(m, encoder="deepsets", encoder_options={"dim": 16}, seed=0)
    res = train(net, m, steps=6, batch_size=8, seq_len=(4, 10), seed=3, device="cpu",
                progress=False)
    if dist.get_rank() == 0:
        res.history.to_csv(out, index=False)
    dist.destroy_process_group()
