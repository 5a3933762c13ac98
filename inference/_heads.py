"""Posterior heads: a pooled representation ``h`` of shape (B, F) -> a distribution over z.

A head is an MLP (float32) from ``h`` to the parameters of a distribution with
batch_shape ``(B,)`` and event_shape ``model.latent_shape`` whose samples always lie
in ``model.latent_support``. Native heads use the family that lives on the support
(Categorical, Dirichlet, Beta, Gamma); the generic continuous heads (Gaussian
diagonal / full / mixture and a Pyro conditional normalizing flow) are built on the
unconstrained space and pushed through ``biject_to(model.latent_support)``, so the
log density includes the Jacobian.

>>> from bayesattn import models
>>> head = make_head(models.get("normal-inverse-gamma"), in_dim=32)
>>> q = head(torch.zeros(8, 32))          # batch_shape (8,), event_shape (2,)

The returned distributions cast floating values to float32 in ``log_prob``, so the
float64 ``z`` of ``model.simulate`` can be scored directly.

Every head kind is a :class:`PosteriorHead` subclass registered by name in :data:`HEADS`
(a :class:`~bayesattn._registry.Registry`); the class says which latents it fits
(``native`` support families, ``generic``), its extra options and how strongly ``"auto"``
prefers it, so :func:`make_head`, :func:`fitting_kinds` and ``KINDS`` read everything
from the registry. A new head is one subclass with ``@HEADS.register("kind")`` above it
(see :class:`PosteriorHead`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, ClassVar

import pyro.distributions as pdist
import torch
import torch.nn.functional as F
from pyro.distributions import transforms as ptransforms
from torch import nn
from torch.distributions import biject_to, constraints
from torch.distributions.transforms import AffineTransform, ReshapeTransform

from bayesattn._checks import check_int
from bayesattn._random import seeded
from bayesattn._registry import Registry

#: Options every head takes (the :class:`PosteriorHead` constructor's).
_COMMON_CFG = {"hidden", "depth", "min_scale", "seed"}
#: The latent support families (see :func:`support_family`).
FAMILIES = ("discrete", "simplex", "unit", "positive", "real", "other")
_DTYPE = torch.float32


class HeadError(ValueError):
    """A head kind, configuration or input that does not fit; the message says how to fix it."""


# ---------------------------------------------------------------- distributions
class _Float32Values:
    """Mixin: ``log_prob`` casts floating values (e.g. float64 ground truth) to float32."""

    def log_prob(self, value):
        if torch.is_tensor(value) and value.is_floating_point() and value.dtype != _DTYPE:
            value = value.to(_DTYPE)
        return super().log_prob(value)


def _f32(cls: type) -> type:
    """``cls`` with the float32-casting ``log_prob`` (picklable: named like its module global)."""
    name = "_" + cls.__name__
    return type(name, (_Float32Values, cls), {"__module__": __name__, "__qualname__": name})


_Independent, _Normal, _Gamma, _MultivariateNormal, _MixtureSameFamily, _TransformedDistribution = (
    _f32(c) for c in (pdist.Independent, pdist.Normal, pdist.Gamma, pdist.MultivariateNormal,
                      pdist.MixtureSameFamily, pdist.TransformedDistribution)
)


class _Beta(_Float32Values, pdist.Beta):
    """Beta whose samples are clamped to [eps, 1 - eps]: never exactly 0 or 1 in float32."""

    def rsample(self, sample_shape=()):
        x = super().rsample(sample_shape)
        eps = torch.finfo(x.dtype).eps
        return x.clamp(eps, 1.0 - eps)


class _Dirichlet(_Float32Values, pdist.Dirichlet):
    """Dirichlet whose sampled components are never exactly 0 in float32."""

    def rsample(self, sample_shape=()):
        x = super().rsample(sample_shape).clamp(min=torch.finfo(_DTYPE).tiny)
        return x / x.sum(-1, keepdim=True)


# ---------------------------------------------------------------- supports
def support_family(support: constraints.Constraint) -> str:
    """One of 'discrete', 'simplex', 'unit', 'positive', 'real' or 'other' (continuous)."""
    base = support
    while isinstance(base, constraints.independent):
        base = base.base_constraint
    if support.is_discrete or base.is_discrete:
        return "discrete"
    if isinstance(base, type(constraints.simplex)):
        return "simplex"
    if isinstance(base, type(constraints.real)):
        return "real"
    if isinstance(base, constraints.interval) and _is(base.lower_bound, 0) and _is(
        base.upper_bound, 1
    ):
        return "unit"
    if isinstance(base, (constraints.greater_than, constraints.greater_than_eq)) and _is(
        base.lower_bound, 0
    ):
        return "positive"
    return "other"


def _is(bound: Any, value: float) -> bool:
    """True when the (scalar) ``bound`` equals ``value``."""
    t = torch.as_tensor(bound)
    return t.numel() == 1 and float(t) == value


def _model_facts(model: Any) -> tuple[tuple[int, ...], constraints.Constraint]:
    try:
        shape, support = tuple(int(s) for s in model.latent_shape), model.latent_support
    except AttributeError as err:
        raise TypeError(
            "expected a bayesattn model (with latent_shape and latent_support); got "
            f"{type(model).__name__}. Pass e.g. bayesattn.models.get('normal-mean')."
        ) from err
    if not isinstance(support, constraints.Constraint):
        raise TypeError(f"model.latent_support must be a torch Constraint; got {support!r}.")
    return shape, support


def _categorical_ok(shape: tuple[int, ...], support: constraints.Constraint) -> bool:
    return (shape == () and isinstance(support, constraints.integer_interval)
            and _is(support.lower_bound, 0))


def fitting_kinds(model: Any) -> tuple[str, ...]:
    """Registered head kinds that fit ``model``'s latent, the one ``"auto"`` picks first
    (highest ``auto_priority``, then by name); ``"auto"`` fits when this is non-empty."""
    shape, support = _model_facts(model)
    fits = [HEADS.get(kind) for kind in HEADS.names()]
    fits = [cls for cls in fits if cls.fits(shape, support)]
    return tuple(cls.kind for cls in sorted(fits, key=lambda cls: -cls.auto_priority))


def unconstrained_shape(model: Any) -> tuple[int, ...]:
    """Shape of ``biject_to(model.latent_support).inv(z)`` for one z (e.g. (K-1,) for a simplex)."""
    shape, support = _model_facts(model)
    if support.is_discrete:
        raise HeadError(f"a discrete latent (support {support}) has no unconstrained space.")
    return tuple(biject_to(support).inverse_shape(torch.Size(shape)))


def unconstrained_dim(model: Any) -> int:
    """Number of unconstrained real coordinates of one z, e.g. K-1 for a K-simplex."""
    return math.prod(unconstrained_shape(model))


# ---------------------------------------------------------------- heads
def _check_int(name: str, value: Any) -> int:
    return check_int(value, name, low=1, error=HeadError)


def _softplus_inv(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def _mlp(in_dim: int, hidden: int, depth: int, out_dim: int, bias: torch.Tensor) -> nn.Sequential:
    """MLP in_dim -> hidden (x depth, GELU) -> out_dim with a small last layer and given bias."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden, dtype=_DTYPE), nn.GELU()]
        width = hidden
    last = nn.Linear(width, out_dim, dtype=_DTYPE)
    with torch.no_grad():
        last.weight.mul_(0.1)
        last.bias.copy_(bias)
    return nn.Sequential(*layers, last)


def _positive(raw: torch.Tensor, floor: float) -> torch.Tensor:
    return F.softplus(raw) + floor


def _log_positive(raw: torch.Tensor, floor: float) -> torch.Tensor:
    """``floor + exp(raw)``: a concentration that can grow by orders of magnitude (a
    posterior concentration grows like L) with small steps in ``raw``."""
    return torch.exp(raw.clamp(-30.0, 30.0)) + floor


def _scale_tril(diag_raw: torch.Tensor, off_raw: torch.Tensor, floor: float) -> torch.Tensor:
    """Lower-Cholesky factor (..., d, d): softplus diagonal + floor, free strictly-lower part."""
    d = diag_raw.shape[-1]
    tril = torch.diag_embed(_positive(diag_raw, floor))
    if d > 1:
        rows, cols = torch.tril_indices(d, d, offset=-1, device=diag_raw.device)
        lower = torch.zeros_like(tril)
        lower[..., rows, cols] = off_raw
        tril = tril + lower
    return tril


class PosteriorHead(nn.Module):
    """Base class: ``forward(h (B, F)) -> Distribution`` (batch_shape (B,), event latent_shape).

    A new head kind is one subclass in one file, registered with
    ``@HEADS.register("kind")`` above it; ``make_head(model, in_dim, "kind")`` and
    ``AmortizedPosterior(model, head="kind")`` (save and load included) then build it, and
    :func:`fitting_kinds` lists it for every model it fits. The subclass sets ``kind`` (the
    registered name) and ``native`` and/or ``generic``; it may set ``options`` and
    ``auto_priority`` (or override :meth:`fits`). Its constructor takes ``(in_dim,
    latent_shape, support, **cfg)``, passes ``cfg`` on to this one and builds the layers;
    it implements ``_distribution(h (B, in_dim), float32) -> Distribution`` with batch
    ``(B,)`` and event ``latent_shape`` whose samples lie in ``support`` (a generic head
    builds a distribution on the unconstrained space, event ``unc_shape``, and returns
    ``self.to_support(base)``).

    Class attributes:
        kind: The registered head kind (``HEADS.names()``).
        native: Latent support families (:data:`FAMILIES`: "discrete", "simplex",
            "unit", "positive", ...) the head's own distribution lives on.
        generic: The head fits any continuous latent (a distribution on the unconstrained
            space pushed through ``biject_to(support)``).
        options: Constructor options beyond ``hidden``, ``depth``, ``min_scale`` and
            ``seed``; :func:`make_head` refuses others.
        auto_priority: ``make_head(kind="auto")`` picks the fitting head with the highest
            (ties: by name). Built in: the native heads 2, gaussian-full 1, the other
            generic heads 0.

    Attributes:
        in_dim: F, the width of ``h``.
        latent_shape: Event shape of z.
        support: ``model.latent_support``; samples always lie in it.
        family: ``support_family(support)``.
        unc_shape, unc_dim: Shape and size of one z on the unconstrained space (``()``
            and 1 for a discrete latent).
    """

    kind: ClassVar[str] = ""
    native: ClassVar[tuple[str, ...]] = ()
    generic: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()
    auto_priority: ClassVar[int] = 0

    def __init__(self, in_dim: int, latent_shape: tuple[int, ...], support, *, hidden: int = 64,
                 depth: int = 1, min_scale: float = 1e-3, seed: int | None = None) -> None:
        super().__init__()
        self.in_dim, self.latent_shape, self.support = in_dim, tuple(latent_shape), support
        self.hidden, self.depth, self.min_scale, self.seed = hidden, depth, float(min_scale), seed
        self.family = support_family(support)
        self.unc_shape = (() if support.is_discrete
                          else tuple(biject_to(support).inverse_shape(torch.Size(latent_shape))))
        self.unc_dim = math.prod(self.unc_shape)

    @classmethod
    def fits(cls, shape: tuple[int, ...], support: constraints.Constraint) -> bool:
        """Whether this head serves a latent of event ``shape`` on ``support``: its support
        family is ``native``, or the head is ``generic`` and the latent continuous."""
        family = support_family(support)
        return family in cls.native or (cls.generic and family != "discrete")

    def forward(self, h: torch.Tensor) -> torch.distributions.Distribution:
        """q(z | h).

        Args:
            h: Pooled representation, shape (B, in_dim), any floating dtype (cast to float32).

        Returns:
            A Distribution with batch_shape (B,) and event_shape ``latent_shape``.
        """
        if not torch.is_tensor(h) or not h.is_floating_point():
            raise TypeError(f"h must be a floating torch.Tensor of shape (B, {self.in_dim}); got "
                            f"{type(h).__name__} {getattr(h, 'dtype', '')}. Use h.float().")
        if h.ndim != 2 or h.shape[1] != self.in_dim or h.shape[0] < 1:
            raise HeadError(f"h must have shape (B, {self.in_dim}) with B >= 1; got "
                            f"{tuple(h.shape)}. Pool tokens first (e.g. net.represent(x)).")
        fp32 = (torch.autocast(h.device.type, enabled=False) if h.device.type in ("cpu", "cuda")
                else contextlib.nullcontext())
        with fp32:
            return self._distribution(h.to(_DTYPE))

    def _distribution(self, h: torch.Tensor) -> torch.distributions.Distribution:
        raise NotImplementedError

    def to_support(self, base: torch.distributions.Distribution, flat: bool = False):
        """Send ``base`` on the unconstrained space (event ``unc_shape``, or ``(unc_dim,)``
        when ``flat``) through ``biject_to(support)`` (log densities include the Jacobian)."""
        ts = []
        if flat and self.unc_shape != (self.unc_dim,):
            ts.append(ReshapeTransform(torch.Size([self.unc_dim]), torch.Size(self.unc_shape)))
        if self.family != "real":
            ts.append(biject_to(self.support))
        return _TransformedDistribution(base, ts) if ts else base

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, in_dim={self.in_dim}, latent_shape={self.latent_shape}"


def _check_head(name: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, PosteriorHead)):
        raise TypeError(f"head {name!r}: expected a PosteriorHead subclass; got {cls!r}")
    if cls.kind != name:
        raise ValueError(f"head {name!r}: the class's kind is {cls.kind!r}; set kind = "
                         f"{name!r} on {cls.__name__}")
    unknown = set(cls.native) - set(FAMILIES)
    if isinstance(cls.native, str) or unknown:
        raise ValueError(f"head {name!r}: native must be a tuple of support families "
                         f"{FAMILIES}; got {cls.native!r}")
    if isinstance(cls.options, str) or set(cls.options) & _COMMON_CFG:
        raise ValueError(f"head {name!r}: options must be a tuple of option names other "
                         f"than {sorted(_COMMON_CFG)}; got {cls.options!r}")


#: The registered posterior heads (kind -> :class:`PosteriorHead` subclass).
HEADS: Registry[type[PosteriorHead]] = Registry(
    "head kind", error=HeadError, check=_check_head,
    hint="Register one with @HEADS.register('kind') on a PosteriorHead subclass.")


def __getattr__(name: str) -> Any:
    if name == "KINDS":  # the registered head kinds, read when asked (so new ones count)
        return tuple(HEADS.names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@HEADS.register("categorical")
class CategoricalHead(PosteriorHead):
    """K logits -> Categorical over {0..K-1}."""
    kind = "categorical"
    native = ("discrete",)
    auto_priority = 2

    @classmethod
    def fits(cls, shape, support):
        return _categorical_ok(shape, support)  # scalar z in {0..K-1}

    def __init__(self, in_dim, latent_shape, support, **cfg):
        super().__init__(in_dim, latent_shape, support, **cfg)
        self.num_classes = int(support.upper_bound) + 1
        self.net = _mlp(in_dim, self.hidden, self.depth, self.num_classes,
                        torch.zeros(self.num_classes))

    def _distribution(self, h):
        return pdist.Categorical(logits=self.net(h))


class _ElementwiseHead(PosteriorHead):
    """Two positive parameters per latent element (Beta, Gamma): ``floor + exp(raw)``,
    initialised at (1, 1). The log scale lets them grow with L (issue 12: with softplus the
    Dirichlet head's KL at L = 8 / 32 / 128 after 1,000 steps was 0.88 / 0.071 / 1.22, with
    exp 0.22 / 0.019 / 0.31)."""

    def __init__(self, in_dim, latent_shape, support, **cfg):
        super().__init__(in_dim, latent_shape, support, **cfg)
        n = 2 * math.prod(self.latent_shape)
        self.net = _mlp(in_dim, self.hidden, self.depth, n,
                        torch.full((n,), math.log(1.0 - self.min_scale)))

    def _distribution(self, h):
        p = _log_positive(self.net(h), self.min_scale).view(h.shape[0], 2, *self.latent_shape)
        d = self._dist_cls(p[:, 0], p[:, 1])
        return _Independent(d, len(self.latent_shape)) if self.latent_shape else d


@HEADS.register("beta")
class BetaHead(_ElementwiseHead):
    """Two positive concentrations -> Beta on (0, 1); samples never hit 0 or 1 exactly."""
    kind = "beta"
    native = ("unit",)
    auto_priority = 2
    _dist_cls = staticmethod(_Beta)


@HEADS.register("gamma")
class GammaHead(_ElementwiseHead):
    """Positive (concentration, rate) -> Gamma on (0, inf)."""
    kind = "gamma"
    native = ("positive",)
    auto_priority = 2
    _dist_cls = staticmethod(_Gamma)


@HEADS.register("dirichlet")
class DirichletHead(PosteriorHead):
    """K positive concentrations (``floor + exp(raw)``, initialised at 1) -> Dirichlet.

    The posterior concentration grows like L; on the log scale the MLP reaches it with
    small steps (issue 12, dirichlet-categorical K = 4, DeepSets, 1,000 NPE steps, L in
    [8, 128]: KL(exact || q) at L = 8 / 32 / 128 was 0.88 / 0.071 / 1.22 with softplus,
    0.22 / 0.019 / 0.31 with exp)."""
    kind = "dirichlet"
    native = ("simplex",)
    auto_priority = 2

    def __init__(self, in_dim, latent_shape, support, **cfg):
        super().__init__(in_dim, latent_shape, support, **cfg)
        k = self.latent_shape[-1]
        self.net = _mlp(in_dim, self.hidden, self.depth, k,
                        torch.full((k,), math.log(1.0 - self.min_scale)))

    def _distribution(self, h):
        return _Dirichlet(_log_positive(self.net(h), self.min_scale))


@HEADS.register("gaussian-diag")
class GaussianDiagHead(PosteriorHead):
    """Normal(loc, softplus scale).to_event on the unconstrained space, then biject_to."""
    kind = "gaussian-diag"
    generic = True

    def __init__(self, in_dim, latent_shape, support, **cfg):
        super().__init__(in_dim, latent_shape, support, **cfg)
        d = self.unc_dim
        bias = torch.cat([torch.zeros(d), torch.full((d,), _softplus_inv(1.0))])
        self.net = _mlp(in_dim, self.hidden, self.depth, 2 * d, bias)

    def _distribution(self, h):
        loc, raw = self.net(h).view(h.shape[0], 2, *self.unc_shape).unbind(1)
        base = _Normal(loc, _positive(raw, self.min_scale))
        if self.unc_shape:
            base = _Independent(base, len(self.unc_shape))
        return self.to_support(base, flat=False)


@HEADS.register("gaussian-full")
class GaussianFullHead(PosteriorHead):
    """MultivariateNormal(loc, scale_tril) on R^unc_dim, then reshape and biject_to."""
    kind = "gaussian-full"
    generic = True
    auto_priority = 1  # "auto" for a latent without a native head

    def __init__(self, in_dim, latent_shape, support, **cfg):
        super().__init__(in_dim, latent_shape, support, **cfg)
        d = self.unc_dim
        n_off = d * (d - 1) // 2
        bias = torch.cat([torch.zeros(d), torch.full((d,), _softplus_inv(1.0)), torch.zeros(n_off)])
        self.net = _mlp(in_dim, self.hidden, self.depth, 2 * d + n_off, bias)

    def _distribution(self, h):
        d = self.unc_dim
        loc, diag, off = self.net(h).split([d, d, d * (d - 1) // 2], dim=-1)
        tril = _scale_tril(diag, off, self.min_scale)
        return self.to_support(_MultivariateNormal(loc, scale_tril=tril), flat=True)


@HEADS.register("gaussian-mixture")
class GaussianMixtureHead(PosteriorHead):
    """Mixture of ``components`` diagonal or full Gaussians on R^unc_dim, then biject_to."""
    kind = "gaussian-mixture"
    generic = True
    options = ("components", "covariance")

    def __init__(self, in_dim, latent_shape, support, *, components: int = 3,
                 covariance: str = "diag", **cfg):
        super().__init__(in_dim, latent_shape, support, **cfg)
        _check_int("components", components)
        if covariance not in ("diag", "full"):
            raise HeadError(f"covariance must be 'diag' or 'full'; got {covariance!r}.")
        self.components, self.covariance = components, covariance
        m, d = components, self.unc_dim
        self._sizes = [m, m * d, m * d, m * d * (d - 1) // 2 if covariance == "full" else 0]
        spread = torch.linspace(-1.0, 1.0, m) if m > 1 else torch.zeros(1)
        bias = torch.cat([torch.zeros(m), spread.repeat_interleave(d),
                          torch.full((m * d,), _softplus_inv(1.0)), torch.zeros(self._sizes[3])])
        self.net = _mlp(in_dim, self.hidden, self.depth, sum(self._sizes), bias)

    def _distribution(self, h):
        b, m, d = h.shape[0], self.components, self.unc_dim
        logits, loc, diag, off = self.net(h).split(self._sizes, dim=-1)
        loc, diag = loc.view(b, m, d), diag.view(b, m, d)
        if self.covariance == "full":
            tril = _scale_tril(diag, off.view(b, m, -1), self.min_scale)
            comp = _MultivariateNormal(loc, scale_tril=tril)
        else:
            comp = _Independent(pdist.Normal(loc, _positive(diag, self.min_scale)), 1)
        mix = _MixtureSameFamily(pdist.Categorical(logits=logits), comp)
        return self.to_support(mix, flat=True)


@HEADS.register("flow")
class FlowHead(PosteriorHead):
    """Pyro conditional normalizing flow on R^unc_dim conditioned on h, then biject_to.

    Base N(0, I) -> ``num_layers`` x [conditional affine coupling, reversal permutation]
    (dim >= 2) or conditional splines (dim 1) -> a final conditional spline (dim >= 2)
    -> affine(loc(h), scale(h)) -> reshape -> biject_to(support).
    """
    kind = "flow"
    generic = True
    options = ("num_layers", "count_bins", "bound")

    def __init__(self, in_dim, latent_shape, support, *, num_layers: int = 2,
                 count_bins: int = 8, bound: float = 5.0, **cfg):
        super().__init__(in_dim, latent_shape, support, **cfg)
        _check_int("num_layers", num_layers)
        _check_int("count_bins", count_bins)
        d, hid = self.unc_dim, [self.hidden, self.hidden]
        if d == 1:
            layers = [ptransforms.conditional_spline(1, in_dim, hid, count_bins, bound)
                      for _ in range(num_layers)]
        else:
            layers = [ptransforms.conditional_affine_coupling(d, in_dim, hid)
                      for _ in range(num_layers)]
            layers.append(ptransforms.conditional_spline(d, in_dim, hid, count_bins, bound))
        self.layers = nn.ModuleList(layers)
        for layer in self.layers:  # start near the identity
            last = [mod for mod in layer.modules() if isinstance(mod, nn.Linear)][-1]
            with torch.no_grad():
                last.weight.mul_(0.01)
                last.bias.zero_()
        self.register_buffer("perm", torch.arange(d - 1, -1, -1), persistent=False)
        bias = torch.cat([torch.zeros(d), torch.full((d,), _softplus_inv(1.0))])
        self.net = _mlp(in_dim, self.hidden, self.depth, 2 * d, bias)
        self.to(_DTYPE)

    def _distribution(self, h):
        b, d = h.shape[0], self.unc_dim
        loc, raw = self.net(h).split([d, d], dim=-1)
        ts: list = []
        for i, layer in enumerate(self.layers):
            ts.append(layer)
            if d > 1 and i < len(self.layers) - 1:
                ts.append(ptransforms.Permute(self.perm))
        ts.append(AffineTransform(loc, _positive(raw, self.min_scale), event_dim=1))
        zero = h.new_zeros(b, d)
        base = _Independent(pdist.Normal(zero, torch.ones_like(zero)), 1)
        cond = pdist.ConditionalTransformedDistribution(base, ts).condition(h)
        return self.to_support(_TransformedDistribution(cond.base_dist, cond.transforms), flat=True)


def make_head(model: Any, in_dim: int, kind: str = "auto", **cfg: Any) -> PosteriorHead:
    """Build a posterior head for ``model``'s latent.

    Args:
        model: A bayesattn model (uses ``latent_shape`` and ``latent_support``).
        in_dim: F, the width of the pooled representation h of shape (B, F).
        kind: ``"auto"`` or a registered kind (``HEADS.names()``) that fits the model (see
            :func:`fitting_kinds`). Auto: the first of ``fitting_kinds(model)``; with the
            built-in heads categorical (discrete), dirichlet (simplex), beta (unit
            interval), gamma (positive), else gaussian-full (through biject_to where
            constrained).
        **cfg: ``hidden`` (64), ``depth`` (1 hidden layer), ``min_scale`` (1e-3, floor of
            positive parameters), ``seed`` (None: global RNG; an int initialises the weights
            reproducibly without touching the global RNG state), and the head class's
            ``options``: gaussian-mixture ``components`` (3), ``covariance`` ("diag" |
            "full"); flow ``num_layers`` (2), ``count_bins`` (8), ``bound`` (5.0).

    Returns:
        A :class:`PosteriorHead` whose ``forward(h (B, F))`` gives a Distribution with
        batch_shape (B,) and event_shape ``model.latent_shape``.

    Raises:
        HeadError: ``kind`` does not fit the model or a configuration value is invalid.
        TypeError: ``model`` is not a model, or an unknown configuration key.
    """
    shape, support = _model_facts(model)
    name = getattr(model, "name", type(model).__name__)
    _check_int("in_dim (the width of h)", in_dim)
    fits = fitting_kinds(model)
    if not fits:
        raise HeadError(f"no head kind fits {name}: latent support {support}, shape {shape}. "
                        "Heads support categorical {0..K-1} scalars and continuous latents.")
    if kind == "auto":
        kind = fits[0]
    if kind not in HEADS:
        raise HeadError(f"{HEADS.unknown(kind)} The kinds that fit {name} are "
                        f"{['auto', *fits]}.")
    if kind not in fits:
        raise HeadError(f"head kind {kind!r} does not fit {name} (latent support {support}); "
                        f"the kinds that fit are {['auto', *fits]}.")
    cls = HEADS.get(kind)
    allowed = _COMMON_CFG | set(cls.options)
    unknown = set(cfg) - allowed
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)} for a {kind!r} head; expected "
                        f"some of {sorted(allowed)}.")
    for key in ("hidden", "depth"):
        _check_int(key, cfg.get(key, 1))
    if not float(cfg.get("min_scale", 1e-3)) > 0:
        raise HeadError(f"min_scale must be > 0; got {cfg['min_scale']!r}.")
    seed = cfg.get("seed")
    if seed is None:
        return cls(in_dim, shape, support, **cfg)
    with seeded(seed):
        return cls(in_dim, shape, support, **cfg)
