"""Unit tests of the denoising-2d experiment (E2): nets, training, metrics and verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bayesattn.experiments.denoising_2d import EXPERIMENT, claims, nets, presets, stages

_P = {"grid_width": 4, "gp": {"kernel": "rbf", "lengthscale": 1.5, "amplitude": 1.0,
                              "noise_scale": 0.5},
      "dim": 8, "num_heads": 2, "num_layers": 2, "bandwidth": None}


def _x(b=3, seed=0):
    return torch.randn(b, 16, generator=torch.Generator().manual_seed(seed))


def test_exact_posterior_mean_is_the_2d_smoother():
    model = presets.gp_model(_P)
    x = _x(4).double()
    pm = model.exact_posterior(x).mean.numpy()
    # independent computation: S from the RBF formula on the (row, col) grid
    r, c = np.divmod(np.arange(16), 4)
    pos = np.stack([r, c], -1).astype(float)
    d2_ = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    S = np.exp(-0.5 * d2_ / 1.5**2) + 1e-8 * np.eye(16)
    W = S @ np.linalg.inv(S + 0.25 * np.eye(16))
    np.testing.assert_allclose(pm, x.numpy() @ W.T, atol=1e-8)
    pos_t = nets.grid_positions(model, 2)
    assert pos_t.shape == (2, 16, 2)
    np.testing.assert_array_equal(pos_t[0].numpy(), pos)


def test_nets_shapes_and_position_handling():
    model = presets.gp_model(_P)
    x = _x()
    pos = nets.grid_positions(model, 3)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    for v in presets.VARIANTS:
        net = nets.build_net(v, _P, seed=0).eval()
        with torch.no_grad():
            out = nets.denoise(net, x, pos)
            shifted = nets.denoise(net, x, pos + 3.0)
            permuted = nets.denoise(net, x[:, perm], pos[:, perm])
        assert out.shape == (3, 16)
        # permuting pixels together with their positions permutes the outputs (all variants)
        torch.testing.assert_close(permuted, out[:, perm], atol=1e-5, rtol=1e-5)
        if v == "sa+pe":  # absolute encoding: a shift of the grid changes the output
            assert not torch.allclose(shifted, out, atol=1e-4)
        else:  # relative (bilateral) or no positions: invariant to a shift
            torch.testing.assert_close(shifted, out, atol=1e-5, rtol=1e-5)
        bw = nets.bandwidths(net)
        assert len(bw) == (4 if v in presets.BILATERAL else 0)
    # the sa control ignores positions entirely
    net = nets.build_net("sa", _P, seed=0).eval()
    with torch.no_grad():
        torch.testing.assert_close(nets.denoise(net, x, pos), nets.denoise(net, x, pos * 0))
    # the same seed gives the same initial weights
    a, b = nets.build_net("bilateral", _P, 5), nets.build_net("bilateral", _P, 5)
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
    with pytest.raises(ValueError, match="unknown variant"):
        nets.build_net("nope", _P, 0)


def test_twicing_weights_are_2a_minus_a2():
    model = presets.gp_model(_P)
    p = dict(_P, num_layers=1)
    bil, twi = nets.build_net("bilateral", p, 0), nets.build_net("bilateral+twicing", p, 0)
    twi.load_state_dict({k.replace("kernel.", "kernel.base.") if "log_bandwidth" in k else k: v
                         for k, v in bil.state_dict().items()})
    x, pos = _x(2), nets.grid_positions(model, 2)
    with torch.no_grad():
        _, (wa,) = nets.denoise(bil, x, pos, return_weights=True)
        _, (wt,) = nets.denoise(twi, x, pos, return_weights=True)
    torch.testing.assert_close(wt, 2 * wa - wa @ wa, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wa.sum(-1), torch.ones_like(wa.sum(-1)))


def test_training_is_deterministic_and_learns():
    model = presets.gp_model(_P)
    kw = dict(steps=12, batch_size=16, lr=2e-2, weight_decay=0.0, clip=1.0, data_seed=3,
              chunk_steps=5)
    test = model.simulate(64, 16, seed=9)
    u = test.y.double().numpy()
    p = dict(_P, num_layers=1)
    before = ((nets.predict(nets.build_net("bilateral", p, seed=1), model, test.x) - u) ** 2).mean()
    runs = []
    for _ in range(2):
        net = nets.build_net("bilateral", p, seed=1)
        runs.append((nets.train_denoiser(net, model, **kw), net))
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0])
    assert list(runs[0][0]["step"]) == list(range(1, 13))
    pred = nets.predict(runs[0][1], model, test.x, chunk=10)
    assert pred.shape == (64, 16) and pred.dtype == np.float64
    np.testing.assert_array_equal(pred, nets.predict(runs[1][1], model, test.x))
    assert ((pred - u) ** 2).mean() < before
    with pytest.raises(ValueError, match="steps"):
        nets.train_denoiser(runs[0][1], model, **{**kw, "steps": 0})


def test_train_denoiser_resumes_from_its_checkpoint_exactly(tmp_path):
    """Stopped after step 7 (inside the second data chunk), then resumed: the same losses
    and weights as one uninterrupted run."""
    model = presets.gp_model(_P)
    kw = dict(steps=12, batch_size=16, lr=2e-2, weight_decay=0.0, clip=1.0, data_seed=3,
              chunk_steps=5, checkpoint_every=7)
    p = dict(_P, num_layers=1)
    whole = nets.build_net("bilateral", p, seed=1)
    full = nets.train_denoiser(whole, model, **kw)

    class Stop(Exception):
        pass

    def stop_after_7(steps):
        for step in steps:
            if step == 8:
                raise Stop
            yield step

    cut = nets.build_net("bilateral", p, seed=1)
    with pytest.raises(Stop):
        nets.train_denoiser(cut, model, checkpoint_dir=tmp_path, progress=stop_after_7, **kw)
    resumed = nets.build_net("bilateral", p, seed=1)
    again = nets.train_denoiser(resumed, model, checkpoint_dir=tmp_path, **kw)
    pd.testing.assert_frame_equal(again, full)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_image_metrics():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(5, 16))
    pm = u + 0.1
    m = stages.image_metrics(pm, u, pm, peak=4.0)
    np.testing.assert_allclose(m["mse_clean"], 0.01)
    np.testing.assert_allclose(m["psnr"], 10 * np.log10(16 / 0.01))
    np.testing.assert_allclose(m["mse_posterior"], 0.0)
    with pytest.raises(ValueError, match="one shape"):
        stages.image_metrics(u[:, :3], u, pm, 4.0)


def _summary(diff_lo, diff_hi, twicing_best=False, base=0.2):
    rows = []
    for v in (*presets.VARIANTS, *presets.REFERENCES):
        val = base
        if v in presets.BILATERAL:
            val = base - (0.02 if (v == "bilateral+twicing") == twicing_best else 0.0)
        for metric in presets.METRICS:
            rows.append({"stage": "summarise", "variant": v, "metric": metric, "value": val,
                         "ci_low": val - 0.01, "ci_high": val + 0.01, "se": 0.005, "n": 10,
                         "replicates": 1})
    for v in presets.VARIANTS[1:]:
        rows.append({"stage": "summarise", "variant": v, "against": presets.BASELINE,
                     "metric": "mse_clean_diff", "value": (diff_lo + diff_hi) / 2,
                     "ci_low": diff_lo, "ci_high": diff_hi, "se": 0.01, "n": 10,
                     "replicates": 1})
    return pd.DataFrame(rows)


def test_verdict_branches():
    params = dict(presets.PRESETS["smoke"])
    v = lambda t: claims.verdicts(t, params)[0]  # noqa: E731
    assert v(_summary(-0.05, -0.01)).verdict == "supported"  # significantly better
    assert v(_summary(-0.002, 0.003)).verdict == "supported"  # non-inferior (margin 0.004)
    assert v(_summary(-0.01, 0.02)).verdict == "inconclusive"  # wide CI
    assert v(_summary(0.001, 0.003)).verdict == "not supported"  # SA+PE significantly better
    out = v(_summary(-0.05, -0.01, twicing_best=True))
    assert "best bilateral variant bilateral+twicing, significantly better" in out.measured
    assert out.numbers["diff_bilateral"] == pytest.approx(-0.03)
    assert claims.decide(None, 0.2) == "inconclusive"
    assert claims.decide({"ci_low": float("nan"), "ci_high": 1.0}, 0.2) == "inconclusive"


def test_presets_registered():
    exp = EXPERIMENT
    assert exp.claims == ("E2",) and set(exp.presets) >= {"smoke", "quick", "full"}
    assert exp.stage_names == ("train", "evaluate", "summarise")


def _convergence_results(excess_bilateral, sa_drop):
    """A synthetic results frame: floor MSE 0.1, sa+pe and twicing within 0.5% of it."""
    rows = [{"stage": "evaluate", "variant": "posterior-mean", "replicate": 0,
             "metric": "mse_clean", "value": 0.1, "se": 0.001}]
    values = {"sa+pe": 0.1005, "sa": 0.2, "bilateral": 0.1 + excess_bilateral,
              "bilateral+twicing": 0.1002}
    for v, val in values.items():
        rows.append({"stage": "evaluate", "variant": v, "replicate": 0, "metric": "mse_clean",
                     "value": val, "se": 0.001})
        drop = sa_drop if v == "sa" else 0.0
        rows += [{"stage": "train", "variant": v, "replicate": 0, "metric": "plateau_drop",
                  "value": drop, "se": 0.001},
                 {"stage": "train", "variant": v, "replicate": 0,
                  "metric": "plateau_relative_drop", "value": drop / 0.2}]
    return pd.DataFrame(rows)


def test_convergence_against_the_posterior_mean_floor():
    params = {**presets.PRESETS["quick"], "train_seeds": 1}
    conv = claims.convergence(_convergence_results(0.005, 0.0), params).set_index("network")
    assert list(conv.index) == [f"{v} (seed 0)" for v in presets.VARIANTS]
    assert conv.loc["sa+pe (seed 0)", "converged"]  # 0.0005 <= 1% of 0.1
    assert conv.loc["bilateral+twicing (seed 0)", "converged"]
    assert not conv.loc["bilateral (seed 0)", "converged"]  # 0.005 > 0.001
    assert conv.loc["bilateral (seed 0)", "excess"] == pytest.approx(0.005)
    assert conv.loc["sa (seed 0)", "converged"] and np.isnan(conv.loc["sa (seed 0)", "floor"])
    conv = claims.convergence(_convergence_results(0.0005, 0.05), params).set_index("network")
    assert conv.loc["bilateral (seed 0)", "converged"]
    assert not conv.loc["sa (seed 0)", "converged"]  # its training loss still falls


def test_work_grows_with_the_preset_size():
    smoke, quick, full = (presets.PRESETS[k] for k in ("smoke", "quick", "full"))
    assert 0 < presets.work(smoke) < presets.work(quick) < presets.work(full)
    base = dict(quick)
    for key, bigger in (("grid_width", 12), ("steps", 1400), ("batch_size", 128),
                        ("dim", 64), ("num_layers", 3), ("train_seeds", 3),
                        ("test_images", 2048), ("num_resamples", 2000)):
        assert presets.work({**base, key: bigger}) > presets.work(base), key
    assert EXPERIMENT.work is presets.work and EXPERIMENT.convergence is claims.convergence
