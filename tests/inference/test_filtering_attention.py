"""Paper 2 attention variants: bilateral kernel, twicing, boosting residual, positions.

Properties: sigma -> inf recovers plain (dot or non-local-means) attention exactly; twicing
equals the explicit (2A - A^2) V; padded keys get zero weight; a boosting residual with
lambda = 0 is the standard residual; a sinusoidal encoding breaks permutation invariance
while "none" keeps it; bad inputs raise clear errors.
"""

from __future__ import annotations

import pytest
import torch

from bayesattn.inference import BilateralKernel, TwicingKernel, sinusoidal_encoding
from bayesattn.inference._attention import (
    AttentionConfig,
    AttentionInputError,
    GaussianKernel,
    MultiHeadAttention,
    SoftmaxKernel,
    make_kernel,
)
from bayesattn.inference._encoders import TransformerEncoder, make_encoder

B, H, L, DH = 2, 3, 5, 4


def _qkv(seed: int = 0, n_q: int = L, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, n_q, DH, generator=g, dtype=dtype)
    k = torch.randn(B, H, L, DH, generator=g, dtype=dtype)
    v = torch.randn(B, H, L, DH, generator=g, dtype=dtype)
    return q, k, v


def _mask() -> torch.Tensor:
    return torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 1, 0]], dtype=torch.bool)


# ----------------------------------------------------------------------------- bilateral
@pytest.mark.parametrize(("rng", "plain"), [("dot", SoftmaxKernel), ("distance", GaussianKernel)])
@pytest.mark.parametrize("spatial", ["gaussian", "laplacian"])
def test_infinite_bandwidth_recovers_the_range_kernel(rng, plain, spatial):
    q, k, v = _qkv()
    pos = torch.randn(B, L, 2) * 10
    bil = BilateralKernel(spatial=spatial, range=rng, num_heads=H, bandwidth=1e12).double()
    ref = plain()
    for mask in (None, _mask()):
        torch.testing.assert_close(bil.weights(q, k, mask, positions=pos),
                                   ref.weights(q, k, mask), atol=1e-6, rtol=0)
        torch.testing.assert_close(bil.attend(q, k, v, mask, positions=pos),
                                   ref.attend(q, k, v, mask), atol=1e-6, rtol=0)


def test_bilateral_matches_hand_written_formula_and_learns_bandwidths():
    q, k, v = _qkv(1)
    pos = torch.arange(L, dtype=torch.float64).expand(B, L)  # 1-D, (B, L)
    sig = [0.5, 2.0, 8.0]
    bil = BilateralKernel(num_heads=H, bandwidth=sig).double()
    d2 = (pos[:, :, None] - pos[:, None, :]) ** 2  # (B, L, L)
    spatial = -d2[:, None] / (2 * torch.tensor(sig, dtype=torch.float64)[:, None, None] ** 2)
    want = torch.softmax(q @ k.transpose(-1, -2) / DH**0.5 + spatial, dim=-1)
    torch.testing.assert_close(bil.weights(q, k, positions=pos), want)
    lap = BilateralKernel("laplacian", num_heads=H, bandwidth=sig).double()
    want = torch.softmax(q @ k.transpose(-1, -2) / DH**0.5 - d2.sqrt()[:, None]
                         / torch.tensor(sig, dtype=torch.float64)[:, None, None], dim=-1)
    torch.testing.assert_close(lap.weights(q, k, positions=pos), want)
    bil.attend(q, k, v, positions=pos).sum().backward()
    assert bil.log_bandwidth.grad is not None and torch.isfinite(bil.log_bandwidth.grad).all()
    assert torch.allclose(bil.bandwidth(), torch.tensor(sig, dtype=torch.float64))


def test_bilateral_2d_positions_mask_padding_and_query_positions():
    torch.manual_seed(0)
    att = MultiHeadAttention(AttentionConfig(8, 2, "bilateral")).eval()
    assert att.kernel.log_bandwidth.shape == (2,)  # one bandwidth per head
    x = torch.randn(B, L, 8)
    rows, cols = torch.meshgrid(torch.arange(1.0), torch.arange(float(L)), indexing="ij")
    grid = torch.stack([rows, cols], -1).reshape(1, L, 2).expand(B, L, 2)  # (B, L, 2)
    mask = _mask()
    y, w = att(x, key_mask=mask, positions=grid, return_weights=True)
    assert y.shape == (B, L, 8) and w.shape == (B, 2, L, L)
    assert (w[1][..., ~mask[1]] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(B, 2, L))
    # garbage in padded tokens and their positions changes no real output
    x2, grid2 = x.clone(), grid.clone()
    x2[~mask], grid2[~mask] = 1e3, -7.0
    torch.testing.assert_close(att(x2, key_mask=mask, positions=grid2)[mask], y[mask])
    # cross-attention: 2 queries with their own positions
    yq = att(x[:, :2], x, mask, positions=grid, query_positions=grid[:, :2])
    assert yq.shape == (B, 2, 8)


# ----------------------------------------------------------------------------- twicing
@pytest.mark.parametrize(("base", "kw"), [("softmax", {}), ("gaussian", {}),
                                          ("bilateral", {"spatial": "laplacian"}),
                                          ("cme", {"float64": True})])
def test_twicing_equals_explicit_two_a_minus_a_squared(base, kw):
    q, k, v = _qkv(2)
    pos = torch.randn(B, L)
    tw = make_kernel("twicing", base=base, num_heads=H, **kw).double()
    for mask in (None, _mask()):
        a = tw.base.weights(q, k, mask, positions=pos)  # (B, H, L, L)
        want = (2 * a - a @ a) @ v
        out = tw.attend(q, k, v, mask, positions=pos)
        real = slice(None) if mask is None else mask[:, None, :, None].expand_as(out)
        torch.testing.assert_close(out[real], want[real])
        torch.testing.assert_close(tw.weights(q, k, mask, positions=pos) @ v, want)


def test_twicing_in_an_encoder_and_with_a_kernel_instance():
    tw = TwicingKernel(BilateralKernel(num_heads=2))
    assert tw.uses_positions
    enc = TransformerEncoder(3, dim=8, num_heads=2, kernel="twicing", pooling="pma",
                             kernel_kwargs={"base": "bilateral"}, positional="relative")
    assert enc.layers[0].mab.attn.kernel.base.log_bandwidth.shape == (2,)
    x, mask = torch.randn(2, 6, 3), torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    out = enc(x, mask)
    x2 = x.clone()
    x2[1, 4:] = 9.0
    torch.testing.assert_close(enc(x2, mask), out)


# ----------------------------------------------------------------------------- residuals
def test_boosting_residual_with_zero_lambda_is_the_standard_residual():
    torch.manual_seed(0)
    std = TransformerEncoder(3, dim=8, num_heads=2, num_layers=3).eval()
    boost = TransformerEncoder(3, dim=8, num_heads=2, num_layers=3, residual="boosting").eval()
    missing, unexpected = boost.load_state_dict(std.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == [f"layers.{i}.mab.boost" for i in range(3)]
    x, mask = torch.randn(2, 5, 3), _mask()
    torch.testing.assert_close(boost(x, mask), std(x, mask))
    with torch.no_grad():
        boost.layers[1].mab.boost.fill_(0.5)
    assert not torch.allclose(boost(x, mask), std(x, mask))
    boost(x, mask).sum().backward()
    assert boost.layers[2].mab.boost.grad is not None
    none = TransformerEncoder(3, dim=8, num_heads=2, residual="none")
    assert torch.isfinite(none(x, mask)).all()


# ----------------------------------------------------------------------------- positions
def test_sinusoidal_encoding_breaks_permutation_invariance_and_none_keeps_it():
    torch.manual_seed(0)
    x, perm = torch.randn(2, 6, 3), torch.tensor([5, 3, 1, 0, 2, 4])
    for positional, invariant in (("none", True), ("sinusoidal", False), ("alibi", False),
                                  ("relative", False)):
        kernel = "bilateral" if positional == "relative" else "softmax"
        enc = TransformerEncoder(3, dim=8, num_heads=2, kernel=kernel,
                                 positional=positional).eval()
        same = torch.allclose(enc(x), enc(x[:, perm]), atol=1e-5)
        assert same == invariant, positional
    pe = sinusoidal_encoding(torch.arange(4.0).expand(2, 4), 8)
    assert pe.shape == (2, 4, 8)
    torch.testing.assert_close(pe[0, 0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert sinusoidal_encoding(torch.zeros(1, 3, 2), 8).shape == (1, 3, 8)
    alibi = TransformerEncoder(3, dim=8, num_heads=2, positional="alibi")
    assert alibi.layers[0].mab.attn.kernel.spatial == "laplacian"


def test_explicit_2d_positions_reach_the_encoder():
    torch.manual_seed(0)
    enc = TransformerEncoder(3, dim=8, num_heads=2, kernel="bilateral",
                             positional="relative").eval()
    x = torch.randn(2, 4, 3)
    grid = torch.tensor([[0.0, 0], [0, 1], [1, 0], [1, 1]]).expand(2, 4, 2)
    out = enc(x, positions=grid)
    assert out.shape == (2, 8)
    assert not torch.allclose(out, enc(x, positions=grid * 5))


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_give_clear_errors():
    q, k, v = _qkv(3)
    bil = BilateralKernel(num_heads=H).double()
    with pytest.raises(AttentionInputError, match="needs token positions"):
        bil.attend(q, k, v)
    with pytest.raises(AttentionInputError, match=r"positions must have shape .*got \(2, 4\)"):
        bil.attend(q, k, v, positions=torch.zeros(2, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        bil.attend(q, k, v, positions=[0, 1, 2, 3, 4])
    q2 = q[:, :, :2]
    with pytest.raises(AttentionInputError, match="query_positions"):
        bil.attend(q2, k, v, positions=torch.zeros(B, L))
    with pytest.raises(AttentionInputError, match="coordinates"):
        bil.attend(q2, k, v, positions=torch.zeros(B, L), query_positions=torch.zeros(B, 2, 2))
    with pytest.raises(AttentionInputError, match="build it with num_heads=3"):
        BilateralKernel(num_heads=2).double().attend(q, k, v, positions=torch.zeros(B, L))
    with pytest.raises(AttentionInputError, match="spatial"):
        BilateralKernel(spatial="box")
    with pytest.raises(AttentionInputError, match="range"):
        BilateralKernel(range="cosine")
    with pytest.raises(AttentionInputError, match="bandwidth"):
        BilateralKernel(num_heads=2, bandwidth=[1.0])
    with pytest.raises(AttentionInputError, match="self-attention"):
        TwicingKernel().attend(q2, k, v)
    with pytest.raises(AttentionInputError, match="base_kwargs"):
        TwicingKernel(SoftmaxKernel(), ridge=1.0)
    with pytest.raises(AttentionInputError, match="residual"):
        TransformerEncoder(3, dim=8, num_heads=2, residual="skip")
    with pytest.raises(AttentionInputError, match="positional"):
        TransformerEncoder(3, dim=8, num_heads=2, positional="rope")
    with pytest.raises(AttentionInputError, match="positional='relative'"):
        TransformerEncoder(3, dim=8, num_heads=2, kernel="bilateral")
    with pytest.raises(AttentionInputError, match="position-aware"):
        TransformerEncoder(3, dim=8, num_heads=2, positional="relative")
    with pytest.raises(AttentionInputError, match="cls"):
        TransformerEncoder(3, dim=8, num_heads=2, positional="alibi", pooling="cls")
    with pytest.raises(AttentionInputError, match="alibi"):
        TransformerEncoder(3, dim=8, num_heads=2, positional="alibi", kernel="cme")
    with pytest.raises(AttentionInputError, match="takes no positions"):
        make_encoder("deepsets", 3, dim=8)(torch.randn(2, 4, 3), positions=torch.zeros(2, 4))
    with pytest.raises(AttentionInputError, match="divisible by 4"):
        sinusoidal_encoding(torch.zeros(1, 3, 2), 6)


# ----------------------------------------------------------------------------- token outputs
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_token_outputs_are_what_the_pooling_reads_and_weights_are_rows(pooling):
    from bayesattn.inference._encoders import masked_mean

    torch.manual_seed(0)
    enc = TransformerEncoder(3, dim=8, num_heads=2, num_layers=2, pooling=pooling).eval()
    x, mask = torch.randn(2, 5, 3), _mask()
    h, weights = enc.tokens(x, mask, return_weights=True)
    assert h.shape == (2, 5, 8) and len(weights) == 2
    torch.testing.assert_close(enc.tokens(x, mask), h)
    for w in weights:
        assert w.shape == (2, 2, 5, 5)
        assert (w[1, :, :, ~mask[1]] == 0).all()  # padded keys get no weight
        if pooling == "mean":  # with CLS, rows keep the CLS token's share
            torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 5))
    if pooling == "mean":
        torch.testing.assert_close(enc.norm(masked_mean(h, mask)), enc(x, mask))
    # without positions the token outputs are permutation equivariant
    perm = torch.tensor([4, 2, 0, 1, 3])
    torch.testing.assert_close(enc.tokens(x[:, perm]), enc.tokens(x)[:, perm])


def test_token_outputs_with_2d_positions_and_non_softmax_kernels():
    torch.manual_seed(0)
    enc = TransformerEncoder(1, dim=8, num_heads=2, num_layers=1, kernel="bilateral",
                             positional="relative").eval()
    x = torch.randn(2, 6, 1)
    grid = torch.stack(torch.meshgrid(torch.arange(2.0), torch.arange(3.0), indexing="ij"),
                       -1).reshape(1, 6, 2).expand(2, 6, 2)
    h, (w,) = enc.tokens(x, positions=grid, return_weights=True)
    assert h.shape == (2, 6, 8) and w.shape == (2, 2, 6, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 6))
    assert not torch.allclose(h, enc.tokens(x, positions=grid * 3))
    cme = TransformerEncoder(1, dim=8, num_heads=2, num_layers=1, kernel="cme").eval()
    _, weights = cme.tokens(x, return_weights=True)
    assert weights[0].shape == (2, 2, 6, 6)
    with pytest.raises(AttentionInputError, match="takes no positions"):
        TransformerEncoder(1, dim=8, num_heads=2).tokens(x, positions=grid)


def test_spatial_bandwidths_per_layer_including_a_twicing_base():
    plain = TransformerEncoder(1, dim=8, num_heads=2, num_layers=2)
    assert plain.spatial_bandwidths() == [[], []]
    bil = TransformerEncoder(1, dim=8, num_heads=2, num_layers=1, kernel="bilateral",
                             positional="relative")
    want = bil.layers[0].mab.attn.kernel.bandwidth().tolist()
    assert bil.spatial_bandwidths() == [want] and len(want) == 2
    twice = TransformerEncoder(1, dim=8, num_heads=2, num_layers=1, kernel="twicing",
                               kernel_kwargs={"base": "bilateral"}, positional="relative")
    assert twice.spatial_bandwidths() == [twice.layers[0].mab.attn.kernel.base.bandwidth()
                                          .tolist()]
