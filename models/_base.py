"""``ExchangeableModel``: the base class every model in the zoo subclasses.

An exchangeable latent-variable model (de Finetti) has one latent ``z`` per
sequence, tokens ``x_1..x_L`` i.i.d. given ``z`` and a target ``y ~ P(y | z)``::

    z ~ prior            x_i | z ~ likelihood(z)  (i = 1..L)       y | z ~ target(z)

A subclass states the three distributions twice, once with
``pyro.distributions`` and once with ``numpyro.distributions``, side by side
(``pyro_prior`` / ``numpyro_prior`` and so on). The base class turns them into
the two programs ``pyro_model`` and ``numpyro_model`` with the same plates and
site names, so the twins cannot drift apart in structure:

.. code-block:: python

    with plate("sequences", B, dim=-2):          # z, y: shape (B, 1, *event)
        z = sample("z", prior)
        with plate("tokens", L, dim=-1), mask(mask):
            sample("x", likelihood(z), obs=x)    # x: shape (B, L, *token_shape)
        sample("y", target(z), obs=y)

Inside the programs ``z`` and ``y`` carry a singleton token dimension
(``(B, 1, *event)``) so that they broadcast against the token plate; every
public method (``simulate``, ``log_joint``, ``exact_posterior``) uses the plain
``(B, *latent_shape)`` layout.

Example (a course exercise does exactly this)::

    import pyro.distributions as pdist, numpyro.distributions as ndist
    from torch.distributions import constraints
    from bayesattn.models import ExchangeableModel, register

    @register
    class ExponentialRate(ExchangeableModel):
        name = "exponential-rate"
        token_support = constraints.positive
        def __init__(self, a=2.0, b=1.0):
            super().__init__(a=a, b=b)
        def pyro_prior(self, device=None):
            return pdist.Gamma(self.tensor(self.params["a"], device),
                               self.tensor(self.params["b"], device))
        def pyro_likelihood(self, z):
            return pdist.Exponential(z)
        def pyro_target(self, z):
            return pdist.Exponential(z)
        def numpyro_prior(self):
            return ndist.Gamma(self.params["a"], self.params["b"])
        def numpyro_likelihood(self, z):
            return ndist.Exponential(z)
        def numpyro_target(self, z):
            return ndist.Exponential(z)
"""

from __future__ import annotations

import abc
import contextlib
import json
from typing import Any, ClassVar, Literal

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from torch.distributions import constraints

from bayesattn._checks import check_int
from bayesattn._random import seeded

from ._errors import ModelInputError, NoExactPosterior
from ._setbatch import SetBatch
from ._validation import as_tensor, check_dtype, check_latent, check_tokens

Backend = Literal["pyro", "numpyro"]


def trace_program(program: Any, num_sequences: Any, seq_len: Any, seed: Any,
                  device: Any = None) -> Any:
    """Run a Pyro program ``program(num_sequences=, seq_len=, device=)`` once, seeded.

    Checks the sizes and the seed, forks the torch RNG (CPU, and the CUDA device when
    simulating there) so the caller's global state is left alone, and returns the trace.
    """
    for label, v in (("num_sequences", num_sequences), ("seq_len", seq_len)):
        check_int(v, label, low=1, error=ModelInputError)
    check_int(seed, "seed", error=ModelInputError)
    device = torch.device(device or "cpu")
    with seeded(seed, device):
        return poutine.trace(program).get_trace(
            num_sequences=int(num_sequences), seq_len=int(seq_len), device=device
        )


class ExchangeableModel(abc.ABC):
    """Base class for exchangeable latent-variable models (``z -> x_1..x_L``, ``z -> y``).

    Class attributes a subclass sets:
        name: Short hyphenated registry name, e.g. ``"beta-bernoulli"``.
        token_support: ``torch.distributions.constraints`` object for one token
            (``real_vector``, ``boolean``, ``nonnegative_integer``,
            ``integer_interval(0, V - 1)``, ...). Used to validate input. Set it on
            the instance in ``__init__`` when it depends on parameters (e.g. V).

    Instance attributes:
        params: Dict of the fixed (hyper)parameters, JSON-serialisable.
        latent_shape: Event shape of ``z`` for one sequence.
        token_shape: Event shape of one token.
        target_shape: Event shape of ``y`` for one sequence.

    Methods a subclass implements: ``pyro_prior(device)``, ``pyro_likelihood(z)``,
    ``pyro_target(z)`` and their NumPyro twins ``numpyro_prior()``,
    ``numpyro_likelihood(z)``, ``numpyro_target(z)``; optionally
    ``exact_posterior(x, mask)`` when the posterior has a closed form.
    """

    name: ClassVar[str] = ""
    token_support: constraints.Constraint = constraints.real  # may be set per instance

    latent_shape: tuple[int, ...] = ()
    token_shape: tuple[int, ...] = ()
    target_shape: tuple[int, ...] = ()

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    # ------------------------------------------------------------------ the twins
    @abc.abstractmethod
    def pyro_prior(self, device: torch.device | str | None = None):
        """Prior of ``z`` as a ``pyro.distributions`` object (batch_shape ``()``)."""

    @abc.abstractmethod
    def pyro_likelihood(self, z: torch.Tensor):
        """Distribution of one token given ``z`` of shape ``(..., 1, *latent_shape)``."""

    @abc.abstractmethod
    def pyro_target(self, z: torch.Tensor):
        """Distribution of ``y`` given ``z`` of shape ``(..., 1, *latent_shape)``."""

    @abc.abstractmethod
    def numpyro_prior(self):
        """NumPyro twin of :meth:`pyro_prior`."""

    @abc.abstractmethod
    def numpyro_likelihood(self, z):
        """NumPyro twin of :meth:`pyro_likelihood`."""

    @abc.abstractmethod
    def numpyro_target(self, z):
        """NumPyro twin of :meth:`pyro_target`."""

    # ------------------------------------------------------------------ programs
    def pyro_model(
        self,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        *,
        num_sequences: int,
        seq_len: int,
        mask: torch.Tensor | None = None,
        device: torch.device | str | None = None,
        sample_target: bool = True,
    ) -> torch.Tensor:
        """The generative program in Pyro (the single source of truth for simulation).

        Args:
            x: Observed tokens, shape ``(B, L, *token_shape)``, or None to sample them.
            y: Observed targets, shape ``(B, *target_shape)``, or None.
            num_sequences: B.
            seq_len: L.
            mask: Bool ``(B, L)``; False marks padding, whose log density is masked out.
            device: Device for parameters and samples when ``x`` is None.
            sample_target: Set False to leave out the ``y`` site (posterior of z | x).

        Returns:
            ``z`` with shape ``(B, 1, *latent_shape)``.
        """
        if x is not None:
            device = x.device
        with pyro.plate("sequences", num_sequences, dim=-2):
            z = pyro.sample("z", self.pyro_prior(device))
            masked = poutine.mask(mask=mask) if mask is not None else contextlib.nullcontext()
            with pyro.plate("tokens", seq_len, dim=-1), masked:
                pyro.sample("x", self.pyro_likelihood(z), obs=x)
            if sample_target:
                obs = None if y is None else y.unsqueeze(1)
                pyro.sample("y", self.pyro_target(z), obs=obs)
        return z

    def numpyro_model(
        self,
        x=None,
        y=None,
        *,
        num_sequences: int,
        seq_len: int,
        mask=None,
        sample_target: bool = True,
    ):
        """The same program in NumPyro; arguments as :meth:`pyro_model` (JAX arrays).

        Run it with float64 enabled (``with jax.enable_x64(True):``) for ground truth;
        the engines in ``bayesattn.inference`` do this for you.
        """
        import numpyro

        with numpyro.plate("sequences", num_sequences, dim=-2):
            z = numpyro.sample("z", self.numpyro_prior())
            masked = (
                numpyro.handlers.mask(mask=mask) if mask is not None else contextlib.nullcontext()
            )
            with numpyro.plate("tokens", seq_len, dim=-1), masked:
                numpyro.sample("x", self.numpyro_likelihood(z), obs=x)
            if sample_target:
                obs = None if y is None else y[:, None]
                numpyro.sample("y", self.numpyro_target(z), obs=obs)
        return z

    # ------------------------------------------------------------------ derived facts
    @property
    def latent_support(self) -> constraints.Constraint:
        """Support of ``z`` (from the Pyro prior)."""
        return self.pyro_prior("cpu").support

    @property
    def latent_is_discrete(self) -> bool:
        """True when ``z`` is discrete (exact posterior by enumeration)."""
        return bool(getattr(self.latent_support, "is_discrete", False))

    @property
    def has_exact_posterior(self) -> bool:
        """True when :meth:`exact_posterior` is implemented (closed form or enumeration)."""
        return type(self).exact_posterior is not ExchangeableModel.exact_posterior

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def tensor(value: Any, device: torch.device | str | None = None) -> torch.Tensor:
        """A fixed parameter as a float64 tensor on ``device``."""
        return torch.as_tensor(np.asarray(value, dtype=np.float64), device=device)

    def validate_tokens(self, x: Any, mask: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Check tokens and mask; return ``(x, mask)`` in canonical dtype.

        Raises:
            ModelInputError: wrong shape, dtype, non-finite or out-of-support tokens,
                L = 0, or a mask of the wrong shape/dtype.
        """
        return check_tokens(
            x, mask, token_shape=tuple(self.token_shape), support=self.token_support,
            model_name=self.name or type(self).__name__,
        )

    def validate_latent(self, z: Any, batch: int) -> torch.Tensor:
        """Check ``z`` of shape ``(B, *latent_shape)`` against the prior support."""
        return check_latent(
            z, batch=batch, latent_shape=tuple(self.latent_shape),
            support=self.latent_support, model_name=self.name or type(self).__name__,
        )

    # ------------------------------------------------------------------ simulate
    def simulate(
        self,
        num_sequences: int,
        seq_len: int,
        *,
        seed: int,
        device: torch.device | str | None = None,
    ) -> SetBatch:
        """Draw ``(z, x, y)`` by running the Pyro program.

        Uses a private copy of torch's RNG seeded with ``seed`` (the global RNG state is
        restored afterwards), so the same seed gives the same batch on the same device.

        Args:
            num_sequences: B >= 1.
            seq_len: L >= 1.
            seed: Integer seed.
            device: Where to simulate (``None`` = CPU); CUDA works when present.

        Returns:
            A :class:`SetBatch` with ``z (B, *latent_shape)``, ``x (B, L, *token_shape)``,
            ``y (B, *target_shape)`` and an all-True mask.
        """
        tr = trace_program(self.pyro_model, num_sequences, seq_len, seed, device)
        z = tr.nodes["z"]["value"].squeeze(1)
        x = tr.nodes["x"]["value"]
        y = tr.nodes["y"]["value"].squeeze(1)
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return SetBatch(z=z, x=x, y=y, mask=mask)

    # ------------------------------------------------------------------ log joint
    def log_joint(
        self,
        z: Any,
        x: Any,
        y: Any = None,
        *,
        mask: Any = None,
        backend: Backend = "pyro",
    ) -> torch.Tensor:
        """log p(z, x[, y]) per sequence, evaluated by running either program.

        Args:
            z: Latents, shape ``(B, *latent_shape)``.
            x: Tokens, shape ``(B, L, *token_shape)``.
            y: Targets, shape ``(B, *target_shape)``, or None to leave the y term out.
            mask: Bool ``(B, L)``; padded tokens contribute nothing.
            backend: ``"pyro"`` or ``"numpyro"``.

        Returns:
            float64 tensor of shape ``(B,)``.
        """
        x, mask = self.validate_tokens(x, mask)
        b, length = x.shape[:2]
        z = self.validate_latent(z, b).to(x.device)
        if y is not None:
            y = as_tensor(y, "y").to(x.device)
            if tuple(y.shape) != (b, *self.target_shape):
                raise ModelInputError(
                    f"{self.name}: y must have shape (B, *target_shape) = "
                    f"{(b, *self.target_shape)}; got {tuple(y.shape)}."
                )
            support = self.pyro_target(z.unsqueeze(1)).support
            y = check_dtype(y, support, "y")
            ok = torch.as_tensor(support.check(y.unsqueeze(1)))
            if not bool(ok.all()):
                raise ModelInputError(
                    f"{self.name}: some targets y lie outside the target support {support}."
                )
        if backend == "pyro":
            return self._log_joint_pyro(z, x, y, mask)
        if backend == "numpyro":
            return self._log_joint_numpyro(z, x, y, mask)
        raise ModelInputError(f"backend must be 'pyro' or 'numpyro'; got {backend!r}.")

    def _log_joint_pyro(self, z, x, y, mask) -> torch.Tensor:
        b, length = x.shape[:2]
        conditioned = poutine.condition(self.pyro_model, data={"z": z.unsqueeze(1)})
        tr = poutine.trace(conditioned).get_trace(
            x, y, num_sequences=b, seq_len=length, mask=mask, sample_target=y is not None
        )
        tr.compute_log_prob()
        total = torch.zeros(b, dtype=torch.float64, device=x.device)
        for name in ("z", "x", "y"):
            if name in tr.nodes:
                total = total + tr.nodes[name]["log_prob"].reshape(b, -1).sum(-1)
        return total

    def _log_joint_numpyro(self, z, x, y, mask) -> torch.Tensor:
        import jax
        import jax.numpy as jnp
        from numpyro import handlers

        b, length = x.shape[:2]
        with jax.enable_x64(True):
            jz = jnp.asarray(z.unsqueeze(1).cpu().numpy())
            jx = jnp.asarray(x.cpu().numpy())
            jy = None if y is None else jnp.asarray(y.cpu().numpy())
            jm = jnp.asarray(mask.cpu().numpy())
            model = handlers.condition(self.numpyro_model, data={"z": jz})
            tr = handlers.trace(handlers.seed(model, 0)).get_trace(
                jx, jy, num_sequences=b, seq_len=length, mask=jm, sample_target=y is not None
            )
            total = jnp.zeros(b)
            for name in ("z", "x", "y"):
                if name in tr:
                    site = tr[name]
                    lp = site["fn"].log_prob(site["value"])
                    if site.get("scale") is not None:
                        lp = lp * site["scale"]
                    total = total + lp.reshape(b, -1).sum(-1)
            out = np.array(total, dtype=np.float64)
        return torch.as_tensor(out, device=x.device)

    # ------------------------------------------------------------------ exact posterior
    def exact_posterior(self, x: Any, mask: Any = None) -> torch.distributions.Distribution:
        """The exact posterior p(z | x) as a float64 torch Distribution, batch_shape ``(B,)``.

        Args:
            x: Tokens, shape ``(B, L, *token_shape)``.
            mask: Bool ``(B, L)`` (True = real token) or None.

        Raises:
            NoExactPosterior: the model has no closed form; use ``method="nuts"``.
        """
        raise NoExactPosterior(
            f"{self.name} has no closed-form posterior; use "
            "bayesattn.inference.reference_posterior(model, x, method='nuts')."
        )

    # ------------------------------------------------------------------ misc
    def cache_key(self) -> tuple:
        """A hashable key that two models share when their programs are the same.

        Compiled programs (the NumPyro NUTS sampler and its mode search) are cached by
        this key, so that rebuilding a model, as ``models.get(name, **params)`` does at
        every call, reuses what was compiled for an equal one. By default the key is
        the class and the parameters as canonical JSON: a subclass whose programs
        depend on anything not in ``params`` must override it. Parameters that JSON
        cannot hold give a key of this instance alone (nothing is shared).
        """
        try:
            params = json.dumps(self.params, sort_keys=True, allow_nan=True)
        except (TypeError, ValueError):
            return ("instance", id(self))
        return (type(self).__module__, type(self).__qualname__, params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"
