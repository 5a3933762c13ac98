"""Attention kernels, multi-head attention and set encoders.

Properties: every encoder (and every kernel inside the attention encoders) is invariant to
permutations of the real tokens and to padding; kernels match hand-written references
(CME against an explicit float64 numpy kernel ridge solution); bad input raises clear
errors; gradients are finite.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesattn.inference._attention import (
    KERNELS,
    AttentionConfig,
    AttentionInputError,
    CMEKernel,
    GaussianKernel,
    LogitKernel,
    MultiHeadAttention,
    SoftmaxKernel,
    kernel_names,
    make_kernel,
    register_kernel,
)
from bayesattn.inference._encoders import (
    ISAB,
    PMA,
    SAB,
    DeepSets,
    SetTransformer,
    TransformerEncoder,
    make_encoder,
)

IN_DIM = 3
ATT = {"dim": 16, "num_heads": 2}
SPECS = {
    "st-sab-softmax": ("set-transformer", ATT),
    "st-sab-gaussian": ("set-transformer", {**ATT, "kernel": "gaussian"}),
    "st-sab-cme": ("set-transformer", {**ATT, "kernel": "cme"}),
    "st-isab-softmax": ("set-transformer", {**ATT, "block": "isab", "num_inducing": 3}),
    "st-isab-cme-linear": ("set-transformer", {**ATT, "block": "isab", "num_inducing": 3,
                                               "kernel": "cme",
                                               "kernel_kwargs": {"kappa": "linear"}}),
    "st-2seeds": ("set-transformer", {**ATT, "num_seeds": 2}),
    "tf-mean-softmax": ("transformer", ATT),
    "tf-mean-gaussian": ("transformer", {**ATT, "kernel": "gaussian"}),
    "tf-mean-cme": ("transformer", {**ATT, "kernel": "cme"}),
    "tf-pma": ("transformer", {**ATT, "pooling": "pma"}),
    "tf-cls": ("transformer", {**ATT, "pooling": "cls"}),
    "tf-cls-cme": ("transformer", {**ATT, "pooling": "cls", "kernel": "cme"}),
    "deepsets-mean": ("deepsets", {"dim": 16}),
    "deepsets-mean+sum": ("deepsets", {"dim": 16, "pooling": "mean+sum"}),
}
FEW = settings(max_examples=5, deadline=None, derandomize=True)


@functools.cache
def _encoder(spec: str):
    name, cfg = SPECS[spec]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return make_encoder(name, IN_DIM, **cfg).eval()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_mask(g: torch.Generator, batch: int, length: int) -> torch.Tensor:
    mask = torch.rand(batch, length, generator=g) < 0.7
    mask[torch.arange(batch), torch.randint(length, (batch,), generator=g)] = True
    return mask


sets = st.tuples(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 7),
                 st.integers(1, 4))


def _close(a, b, tol=1e-5):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


# ----------------------------------------------------------------------------- encoders
@pytest.mark.parametrize("spec", SPECS)
@FEW
@given(draw=sets)
def test_encoder_is_permutation_invariant(spec, draw):
    seed, batch, length, _ = draw
    g = _gen(seed)
    x = torch.randn(batch, length, IN_DIM, generator=g)
    mask = _random_mask(g, batch, length)
    enc = _encoder(spec)
    perm = torch.randperm(length, generator=g)
    with torch.no_grad():
        _close(enc(x[:, perm], mask[:, perm]), enc(x, mask))
        _close(enc(x[:, perm]), enc(x))


@pytest.mark.parametrize("spec", SPECS)
@FEW
@given(draw=sets)
def test_encoder_ignores_padding(spec, draw):
    seed, batch, length, pad = draw
    g = _gen(seed)
    x = torch.randn(batch, length, IN_DIM, generator=g)
    enc = _encoder(spec)
    junk = 5 * torch.randn(batch, pad, IN_DIM, generator=g)
    padded = torch.cat([x, junk], dim=1)
    mask = torch.cat([torch.ones(batch, length, dtype=torch.bool),
                      torch.zeros(batch, pad, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        base = enc(x)
        _close(enc(padded, mask), base)
        # padding interleaved with the real tokens, other junk values
        perm = torch.randperm(length + pad, generator=g)
        _close(enc(torch.cat([x, -junk], dim=1)[:, perm], mask[:, perm]), base)


@pytest.mark.parametrize("spec", SPECS)
@FEW
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 9), length=st.integers(1, 8),
       buckets=st.integers(1, 5))
def test_packing_padded_batches_changes_nothing(spec, seed, batch, length, buckets):
    """Packed (sorted into length buckets, real tokens moved to the front, cut to the
    longest) = the padded computation, for outputs and gradients."""
    g = _gen(seed)
    x = torch.randn(batch, length, IN_DIM, generator=g)
    mask = _random_mask(g, batch, length)
    name, cfg = SPECS[spec]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = make_encoder(name, IN_DIM, **cfg)
    weights = torch.randn(batch, enc.out_dim, generator=g)
    outs, grads = [], []
    for b in (0, buckets):  # 0: no packing
        enc.buckets = b
        enc.zero_grad()
        out = enc(x, mask)
        (out * weights).sum().backward()
        outs.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for p in enc.parameters() if p.grad is not None]))
    _close(outs[1], outs[0])
    _close(grads[1], grads[0], tol=1e-4)


@pytest.mark.parametrize("spec", ["st-sab-softmax", "tf-mean-softmax", "deepsets-mean"])
def test_packing_an_empty_batch_gives_an_empty_output(spec):
    enc = _encoder(spec)
    mask = torch.ones(0, 5, dtype=torch.bool)
    with torch.no_grad():
        assert enc(torch.zeros(0, 5, IN_DIM), mask).shape == (0, enc.out_dim)


def test_packing_cuts_padding_and_runs_each_bucket_once():
    enc = make_encoder("set-transformer", IN_DIM, **ATT)
    seen = []
    encode = enc.encode
    enc.encode = lambda x, mask: seen.append((tuple(x.shape), mask is None)) or encode(x, mask)
    lengths = torch.tensor([3, 1, 7, 2, 2, 5, 4, 7])
    mask = torch.arange(10)[None] < lengths[:, None]  # padded to 10
    mask = mask[:, torch.randperm(10, generator=_gen(0))]  # padding anywhere
    enc.buckets = 4
    out = enc(torch.randn(8, 10, IN_DIM, generator=_gen(1)), mask)
    assert out.shape == (8, enc.out_dim)
    # sorted lengths 1 2 | 2 3 | 4 5 | 7 7: groups of 2, each cut to its longest
    assert seen == [((2, 2, IN_DIM), False), ((2, 3, IN_DIM), False),
                    ((2, 5, IN_DIM), False), ((2, 7, IN_DIM), True)]


@pytest.mark.parametrize("spec", SPECS)
def test_encoder_shapes_and_gradients(spec):
    enc = _encoder(spec)
    g = _gen(1)
    x = torch.randn(3, 6, IN_DIM, generator=g)
    mask = _random_mask(g, 3, 6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net = make_encoder(SPECS[spec][0], IN_DIM, **SPECS[spec][1])
    out = net(x, mask)
    assert out.shape == (3, enc.out_dim) and out.dtype == torch.float32
    out.pow(2).sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) > 0 for gr in grads) >= 0.8 * len(grads)


def test_out_dims():
    assert SetTransformer(2, dim=8, num_heads=2, num_seeds=3).out_dim == 24
    assert TransformerEncoder(2, dim=8, num_heads=2).out_dim == 8
    assert DeepSets(2, dim=12, pooling="sum").out_dim == 12
    x, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    assert SAB(8, 2)(x, mask).shape == (2, 5, 8)
    assert ISAB(8, 2, num_inducing=4)(x, mask).shape == (2, 5, 8)
    assert PMA(8, 2, num_seeds=3)(x, mask).shape == (2, 3, 8)


def test_training_mode_with_dropout_runs():
    net = make_encoder("transformer", 2, dim=8, num_heads=2, dropout=0.5).train()
    out = net(torch.randn(2, 5, 2), torch.ones(2, 5, dtype=torch.bool))
    assert torch.isfinite(out).all()


# ----------------------------------------------------------------------------- kernels
def _qkv(seed: int, B=2, H=3, Q=4, L=6, dh=5, dtype=torch.float32):
    g = _gen(seed)
    q, k, v = (torch.randn(B, H, n, dh, generator=g, dtype=dtype) for n in (Q, L, L))
    return q, k, v, _random_mask(g, B, L)


@FEW
@given(seed=st.integers(0, 10_000))
def test_softmax_kernel_matches_hand_written_attention(seed):
    q, k, v, mask = _qkv(seed)
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    w = logits.masked_fill(~mask[:, None, None, :], float("-inf")).softmax(-1)
    kern = SoftmaxKernel()
    _close(kern.attend(q, k, v, mask), w @ v)
    _close(kern.weights(q, k, mask), w)


@FEW
@given(seed=st.integers(0, 10_000))
def test_gaussian_kernel_matches_non_local_means(seed):
    q, k, v, mask = _qkv(seed)
    sq = (q[:, :, :, None, :] - k[:, :, None, :, :]).pow(2).sum(-1)  # (B, H, Q, L)
    w = (-sq / (2 * math.sqrt(q.shape[-1]))).masked_fill(~mask[:, None, None, :],
                                                        float("-inf")).softmax(-1)
    kern = GaussianKernel()
    _close(kern.attend(q, k, v, mask), w @ v)
    _close(kern.weights(q, k, mask), w)


def _cme_reference(q, k, v, mask, kappa, ridge, bandwidth):
    """Explicit numpy float64 kernel ridge regression over the real keys."""
    q, k, v = (t.detach().numpy().astype(np.float64) for t in (q, k, v))
    B, H, Q, dh = q.shape
    h2 = bandwidth**2 if bandwidth is not None else math.sqrt(dh)

    def kern(a, b):
        if kappa == "linear":
            return a @ b.T
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * h2))

    out = np.zeros((B, H, Q, v.shape[-1]))
    for b in range(B):
        real = mask[b].numpy()
        n = real.sum()
        for h in range(H):
            kb, vb = k[b, h][real], v[b, h][real]
            alpha = np.linalg.solve(kern(kb, kb) + n * ridge * np.eye(n), kern(kb, q[b, h]))
            out[b, h] = alpha.T @ vb
    return out


@pytest.mark.parametrize("kappa,bandwidth,learn", [("linear", None, True),
                                                   ("gaussian", None, False),
                                                   ("gaussian", 1.7, True)])
@FEW
@given(seed=st.integers(0, 10_000))
def test_cme_kernel_matches_kernel_ridge(kappa, bandwidth, learn, seed):
    kern = CMEKernel(kappa, ridge=0.3, learn_ridge=learn, bandwidth=bandwidth, float64=True)
    ridge = kern.ridge(torch.float64).item()
    assert ridge == pytest.approx(0.3, rel=1e-6)
    q, k, v, mask = _qkv(seed, dtype=torch.float64)
    ref = _cme_reference(q, k, v, mask, kappa, ridge, bandwidth)
    out = kern.attend(q, k, v, mask)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-6, atol=1e-9)
    # float32 inputs in float64 mode: computed in float64, cast back to float32
    q32, k32, v32 = q.float(), k.float(), v.float()
    ref32 = _cme_reference(q32, k32, v32, mask, kappa, ridge, bandwidth)
    out32 = kern.attend(q32, k32, v32, mask)
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.detach().numpy(), ref32, rtol=1e-6,
                               atol=1e-6 * np.abs(ref32).max())
    # the smoother weights reproduce the output
    w = kern.weights(q, k, mask)
    assert torch.all(w.masked_select(~mask[:, None, None, :].expand_as(w)) == 0)
    _close(w @ v.masked_fill(~mask[:, None, :, None], 0), out, tol=1e-10)


@pytest.mark.parametrize("float64", [True, False])
def test_cme_kernel_ignores_padded_keys(float64):
    kern = CMEKernel("gaussian", float64=float64)
    q, k, v, _ = _qkv(3, B=1, L=5)
    mask = torch.tensor([[True, False, True, True, False]])
    base = kern.attend(q, k[:, :, mask[0]], v[:, :, mask[0]])
    tol = 1e-12 if float64 else 1e-5
    _close(kern.attend(q, k, v, mask), base, tol)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, ~mask[0]] = 100.0
    v2[:, :, ~mask[0]] = -1e6
    _close(kern.attend(q, k2, v2, mask), base, tol)


def test_cme_linear_kernel_is_the_bayesian_linear_regression_predictive_mean():
    """Paper 1: linear-kernel CME with n*lambda = sigma^2/tau^2 equals phi(q)^T mu_n."""
    g = _gen(7)
    n, d, sigma, tau = 9, 4, 0.5, 2.0
    keys = torch.randn(1, 1, n, d, generator=g, dtype=torch.float64)
    z = tau * torch.randn(d, generator=g, dtype=torch.float64)
    vals = (keys @ z + sigma * torch.randn(n, generator=g, dtype=torch.float64))[..., None]
    queries = torch.randn(1, 1, 3, d, generator=g, dtype=torch.float64)
    kern = CMEKernel("linear", ridge=sigma**2 / tau**2 / n, learn_ridge=False, float64=True)
    phi, y = keys[0, 0], vals[0, 0]
    mu = torch.linalg.solve(phi.T @ phi + sigma**2 / tau**2 * torch.eye(d, dtype=phi.dtype),
                            phi.T @ y)
    _close(kern.attend(queries, keys, vals)[0, 0], queries[0, 0] @ mu, tol=1e-10)


def test_cme_ridge_is_learnable():
    kern = CMEKernel()
    q, k, v, mask = _qkv(0)
    kern.attend(q, k, v, mask).sum().backward()
    assert kern.raw_ridge.grad is not None and torch.isfinite(kern.raw_ridge.grad)


# ----------------------------------------------------------------------------- layer
@pytest.mark.parametrize("kernel", ["softmax", "gaussian", "cme"])
def test_multihead_attention_weights_and_cross_attention(kernel):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        att = MultiHeadAttention(AttentionConfig(dim=8, num_heads=2, kernel=kernel, dim_kv=5))
    g = _gen(0)
    query, ctx = torch.randn(2, 3, 8, generator=g), torch.randn(2, 6, 5, generator=g)
    mask = _random_mask(g, 2, 6)
    out, w = att(query, ctx, mask, return_weights=True)
    assert out.shape == (2, 3, 8) and w.shape == (2, 2, 3, 6)
    assert torch.all(w.masked_select(~mask[:, None, None, :].expand_as(w)) == 0)
    if kernel != "cme":
        _close(w.sum(-1), torch.ones(2, 2, 3))
    _close(att(query, ctx, mask), out)


def test_a_new_kernel_plugs_in_by_name():
    @register_kernel("test-scaled-dot")
    class ScaledDot(LogitKernel):
        def __init__(self, temperature: float = 2.0):
            super().__init__()
            self.temperature = temperature

        def logits(self, q, k, **inputs):
            return q @ k.transpose(-1, -2) / self.temperature

    try:
        assert "test-scaled-dot" in kernel_names()
        net = TransformerEncoder(2, dim=8, num_heads=2, kernel="test-scaled-dot",
                                 kernel_kwargs={"temperature": 3.0}).eval()
        assert net.layers[0].mab.attn.kernel.temperature == 3.0
        x, mask = torch.randn(2, 4, 2), torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0]]).bool()
        _close(net(x, mask), net(x[:, [3, 2, 1, 0]], mask[:, [3, 2, 1, 0]]))
    finally:
        KERNELS.unregister("test-scaled-dot")


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_give_clear_errors():
    enc = make_encoder("set-transformer", 2, dim=8, num_heads=2)
    x = torch.randn(2, 4, 2)
    with pytest.raises(ValueError, match=r"expected|\(batch, L, 2\).*got \(2, 4, 3\)"):
        enc(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"mask must have shape .*\(2, 4\).*got \(2, 5\)"):
        enc(x, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        enc(x, torch.ones(2, 4))
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match="sequence 1 has no real tokens"):
        enc(x, mask)
    with pytest.raises(ValueError, match="floating"):
        enc(torch.ones(2, 4, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        enc(np.zeros((2, 4, 2)))
    with pytest.raises(AttentionInputError, match="unknown encoder 'lstm'"):
        make_encoder("lstm", 2)
    with pytest.raises(ValueError, match="block"):
        make_encoder("set-transformer", 2, block="mab")
    with pytest.raises(ValueError, match="pooling"):
        make_encoder("transformer", 2, pooling="max")


def test_attention_config_and_layer_errors():
    with pytest.raises(ValueError, match="divisible"):
        AttentionConfig(dim=10, num_heads=4)
    with pytest.raises(ValueError, match="unknown attention kernel 'rbf'"):
        AttentionConfig(dim=8, kernel="rbf")
    with pytest.raises(ValueError, match="unknown attention kernel"):
        make_kernel("rbf")
    with pytest.raises(ValueError, match="ridge"):
        CMEKernel(ridge=0.0)
    with pytest.raises(ValueError, match="kappa"):
        CMEKernel(kappa="poly")
    att = MultiHeadAttention(AttentionConfig(dim=8, num_heads=2, dim_kv=3))
    with pytest.raises(ValueError, match=r"query must have shape \(batch, L, 8\)"):
        att(torch.randn(1, 2, 7), torch.randn(1, 4, 3))
    with pytest.raises(ValueError, match=r"context must have shape \(batch, L, 3\)"):
        att(torch.randn(1, 2, 8), torch.randn(1, 4, 8))
    with pytest.raises(ValueError, match="key_mask"):
        att(torch.randn(1, 2, 8), torch.randn(1, 4, 3), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="sequence 0 has no real tokens"):
        SoftmaxKernel().attend(*_qkv(0)[:3], torch.zeros(2, 6, dtype=torch.bool))
