"""Extending bayesattn.inference: a new set encoder and a new posterior head, each in one place.

Attention kernels, set encoders and posterior heads are each kept in a registry
(``KERNELS``, ``ENCODERS``, ``HEADS``: a :class:`bayesattn._registry.Registry`). A new one
is a subclass with the registry's decorator above it; nothing else changes:
``AmortizedPosterior(model, encoder="max-deepsets", head="laplace-diag")`` builds it,
:func:`~bayesattn.inference.train` trains it and save / load rebuild it by name.

The examples below register their class in a fixture and remove it afterwards, so that the
rest of the test suite sees only the built-in names. In your own code the decorator sits
above the class at module level.
"""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bayesattn import models
from bayesattn.inference import (
    DEFAULT_ENCODER_OPTIONS,
    ENCODERS,
    HEADS,
    KERNELS,
    AmortizedPosterior,
    AttentionInputError,
    HeadError,
    PosteriorHead,
    SetEncoder,
    SoftmaxKernel,
    fitting_kinds,
    kernel_names,
    make_encoder,
    make_head,
    make_kernel,
    register_kernel,
    train,
)

TRAIN = {"steps": 3, "seq_len": 5, "batch_size": 8, "progress": False, "threads": 1}


# ----------------------------------------------------------------------------- a new encoder
@pytest.fixture
def max_deepsets():
    """Register the example encoder "max-deepsets" for one test."""

    @ENCODERS.register("max-deepsets")
    class MaxDeepSets(SetEncoder):
        """DeepSets with max pooling: ``rho(max_i phi(x_i))`` over the real tokens.

        Args:
            in_dim: Token features (every encoder takes this first).
            dim: Hidden and output width.
        """

        # what AmortizedPosterior passes unless its encoder_options say otherwise
        default_options = {"dim": 32}

        def __init__(self, in_dim: int, dim: int = 64) -> None:
            super().__init__()
            self.in_dim, self.out_dim = in_dim, dim  # every encoder sets both
            self.phi = nn.Sequential(nn.Linear(in_dim, dim), nn.GELU())
            self.rho = nn.Linear(dim, dim)

        def encode(self, x, mask):
            # x: (B, L, in_dim) float; mask: (B, L) bool, True = real token, or None
            h = self.phi(x)  # (B, L, dim)
            if mask is not None:  # padded tokens never win the max
                h = h.masked_fill(~mask[..., None], float("-inf"))
            return self.rho(h.max(dim=1).values)  # (B, dim) -> (B, dim)

    yield MaxDeepSets
    ENCODERS.unregister("max-deepsets")


def test_a_new_encoder_trains_saves_and_loads_by_name(max_deepsets, tmp_path):
    model = models.get("normal-mean")
    net = AmortizedPosterior(model, encoder="max-deepsets", encoder_options={"dim": 16})
    assert isinstance(net.encoder, max_deepsets) and net.encoder.out_dim == 16
    assert net.config["encoder_options"] == {"dim": 16}  # on top of default_options
    assert DEFAULT_ENCODER_OPTIONS["max-deepsets"] == {"dim": 32}
    assert AmortizedPosterior(model, encoder="max-deepsets").encoder.out_dim == 32

    result = train(net, model, **TRAIN)
    assert len(result.history) == 3 and result.history["loss"].notna().all()

    loaded = AmortizedPosterior.load(net.save(tmp_path / "net.pt"))
    assert isinstance(loaded.encoder, max_deepsets) and loaded.config == net.config
    x = model.simulate(4, 6, seed=0).x
    torch.testing.assert_close(loaded.posterior(x).loc, net.posterior(x).loc)


def test_a_new_encoder_is_permutation_and_padding_invariant(max_deepsets):
    enc = make_encoder("max-deepsets", 3, dim=8)
    x = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    out = enc(x, mask)  # (2, 8)
    torch.testing.assert_close(enc(x[:, [2, 0, 1, 3, 4]], mask), out)
    torch.testing.assert_close(enc(x[:1, :3])[0], out[0])  # padding changes nothing


# ----------------------------------------------------------------------------- a new head
@pytest.fixture
def laplace_head():
    """Register the example posterior head "laplace-diag" for one test."""

    @HEADS.register("laplace-diag")
    class LaplaceDiagHead(PosteriorHead):
        """Independent Laplace(loc, scale) on each unconstrained coordinate of z, pushed
        onto the latent's support: a heavier-tailed "gaussian-diag"."""

        kind = "laplace-diag"  # the registered name
        generic = True  # fits any continuous latent: built on the unconstrained space

        def __init__(self, in_dim, latent_shape, support, **cfg):
            # the base class sets hidden, depth, min_scale, unc_shape and unc_dim
            super().__init__(in_dim, latent_shape, support, **cfg)
            self.net = nn.Sequential(nn.Linear(in_dim, self.hidden), nn.GELU(),
                                     nn.Linear(self.hidden, 2 * self.unc_dim))

        def _distribution(self, h):
            # h: (B, in_dim) float32 -> a distribution with batch (B,), event latent_shape
            out = self.net(h).view(h.shape[0], 2, *self.unc_shape)  # (B, 2, *unc_shape)
            loc, raw = out.unbind(1)  # each (B, *unc_shape)
            scale = F.softplus(raw) + self.min_scale
            base = dist.Laplace(loc, scale).to_event(len(self.unc_shape))  # event unc_shape
            return self.to_support(base)  # through biject_to(support)

    yield LaplaceDiagHead
    HEADS.unregister("laplace-diag")


def test_a_new_head_trains_saves_and_loads_by_name(laplace_head, tmp_path):
    model = models.get("normal-mean")
    net = AmortizedPosterior(model, encoder="deepsets", encoder_options={"dim": 16},
                             head="laplace-diag", head_options={"hidden": 16})
    assert isinstance(net.head, laplace_head)

    result = train(net, model, **TRAIN)
    assert len(result.history) == 3 and result.history["loss"].notna().all()

    loaded = AmortizedPosterior.load(net.save(tmp_path / "net.pt"))
    assert isinstance(loaded.head, laplace_head)
    b = model.simulate(4, 6, seed=0)
    z = b.z.float()  # (4, *latent_shape)
    torch.testing.assert_close(loaded.posterior(b.x).log_prob(z), net.posterior(b.x).log_prob(z))


def test_a_new_head_fits_by_support_and_auto_keeps_its_choice(laplace_head):
    assert "laplace-diag" in fitting_kinds(models.get("normal-mean"))
    assert "laplace-diag" in fitting_kinds(models.get("beta-bernoulli"))  # via biject_to
    assert "laplace-diag" not in fitting_kinds(models.get("concept-mixture"))  # discrete
    assert make_head(models.get("normal-mean"), 4).kind == "gaussian-full"  # auto_priority
    q = make_head(models.get("beta-bernoulli"), 4, "laplace-diag")(torch.zeros(3, 4))
    z = q.sample((5,))  # (5, 3): inside (0, 1)
    assert bool(((z > 0) & (z < 1)).all()) and q.log_prob(z).shape == (5, 3)
    with pytest.raises(TypeError, match="unknown option"):
        make_head(models.get("normal-mean"), 4, "laplace-diag", components=2)


# ----------------------------------------------------------------------------- the registries
def test_registries_hold_the_built_in_names():
    assert ENCODERS.names() == ["deepsets", "set-transformer", "transformer"]
    assert HEADS.names() == ["beta", "categorical", "dirichlet", "flow", "gamma",
                             "gaussian-diag", "gaussian-full", "gaussian-mixture"]
    assert KERNELS.names() == ["bilateral", "cme", "gaussian", "softmax", "twicing"]
    assert kernel_names() == KERNELS.names()
    assert dict(DEFAULT_ENCODER_OPTIONS) == {
        "deepsets": {}, "set-transformer": {"num_blocks": 1, "ff_mult": 2},
        "transformer": {"num_layers": 1, "ff_mult": 2}}


def test_unknown_names_suggest_close_ones():
    model = models.get("normal-mean")
    with pytest.raises(ValueError, match="did you mean 'set-transformer'"):
        AmortizedPosterior(model, encoder="set-transfomer")
    with pytest.raises(AttentionInputError, match="unknown encoder 'deepset'.*'deepsets'"):
        make_encoder("deepset", 2)
    with pytest.raises(HeadError, match="did you mean 'gaussian-full'.*kinds that fit"):
        AmortizedPosterior(model, head="gausian-full")
    with pytest.raises(AttentionInputError, match="did you mean 'softmax'"):
        make_kernel("sofmax")


def test_a_taken_name_or_a_wrong_class_is_refused():
    class Other(SetEncoder):
        pass

    with pytest.raises(ValueError, match="'deepsets' is already registered"):
        ENCODERS.register("deepsets", Other)
    with pytest.raises(ValueError, match="'softmax' is already registered"):
        register_kernel("softmax")(type("Other", (SoftmaxKernel,), {}))
    with pytest.raises(ValueError, match="'flow' is already registered"):
        HEADS.register("flow", type("Other", (PosteriorHead,), {"kind": "flow"}))
    with pytest.raises(ValueError, match="set kind = 'my-head'"):
        HEADS.register("my-head", type("Other", (PosteriorHead,), {"kind": "flow"}))
    with pytest.raises(TypeError, match="SetEncoder subclass"):
        ENCODERS.register("my-encoder", nn.Linear)
    assert "my-head" not in HEADS and "my-encoder" not in ENCODERS
