"""Permutation-invariant set encoders: ``(x (B, L, in_dim), mask (B, L)) -> (B, out_dim)``.

* :class:`SetTransformer` (Lee et al. 2019): SAB or ISAB blocks, pooled by PMA.
* :class:`TransformerEncoder`: pre-norm transformer layers, by default without positional
  encoding, pooled by a masked mean, PMA or a learned CLS token. Options (paper 2,
  docs/claims.md#paper-2): ``positional`` (``"none"``, absolute ``"sinusoidal"``, ``"relative"``
  through a position-aware kernel such as ``"bilateral"``, or ``"alibi"``) and
  ``residual`` (``"standard"``, ``"boosting"``, ``"none"``).
* :class:`DeepSets`: per-token MLP, masked mean (and/or sum) pooling, MLP; no attention.

Padded tokens (mask False) are masked out of every attention and every pooling step, so
they never change the output; with no positional encoding every encoder is invariant to
permutations of the real tokens. Blocks use pre-norm residuals (``x + f(LN(x))``).

The encoders are registered by name in :data:`ENCODERS` (a
:class:`~bayesattn._registry.Registry`): ``"set-transformer"``, ``"transformer"`` and
``"deepsets"``. A new one is a :class:`SetEncoder` subclass with
``@ENCODERS.register("name")`` above it (see :class:`SetEncoder`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from bayesattn._checks import check_choice, check_int
from bayesattn._registry import Registry

from ._attention import (
    AttentionConfig,
    AttentionInputError,
    MultiHeadAttention,
    check_mask,
    check_tokens,
)
from ._filtering import (
    BilateralKernel,
    TwicingKernel,
    check_positions,
    index_positions,
    sinusoidal_encoding,
)

RESIDUALS = ("standard", "boosting", "none")
POSITIONALS = ("none", "sinusoidal", "relative", "alibi")


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over real tokens: x ``(B, L, d)``, mask bool ``(B, L)`` or None -> ``(B, d)``."""
    if mask is None:
        return x.mean(dim=1)
    keep = mask[..., None]  # (B, L, 1)
    total = torch.where(keep, x, 0.0).sum(dim=1)  # (B, d)
    return total / keep.sum(dim=1).to(x.dtype)


def masked_sum(x: Tensor, mask: Tensor | None) -> Tensor:
    """Sum over real tokens: x ``(B, L, d)``, mask bool ``(B, L)`` or None -> ``(B, d)``."""
    return x.sum(dim=1) if mask is None else torch.where(mask[..., None], x, 0.0).sum(dim=1)


def _positive_int(value: Any, name: str) -> int:
    return check_int(value, name, low=1, error=AttentionInputError)


def _choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    return check_choice(value, name, options, error=AttentionInputError)


# ----------------------------------------------------------------------------- blocks
class FeedForward(nn.Module):
    """Token-wise MLP ``dim -> ff_mult*dim -> dim`` with GELU; x ``(B, N, dim)``."""

    def __init__(self, dim: int, ff_mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(),
                                 nn.Linear(ff_mult * dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MAB(nn.Module):
    """Pre-norm multihead attention block: ``H = X + Attn(LN(X), LN(Y))``,
    ``out = H + FF(LN(H))``.

    The attention residual is switchable (paper 2, docs/claims.md#paper-2): ``"standard"``
    ``H = X + Attn``; ``"boosting"`` ``H = X + Attn + lambda (X0 - X)`` with a learnable
    scalar lambda (initialised at 0, i.e. standard) and X0 the input of the block stack;
    ``"none"`` ``H = Attn`` (the feed-forward keeps its residual).

    Args:
        dim: Token width.
        num_heads: Attention heads.
        kernel: Attention kernel name; kernel_kwargs are passed to it.
        dropout: Dropout in attention and feed-forward.
        ff_mult: Hidden width factor of the feed-forward.
        self_attention: Attend over X itself (``y=None``) with one shared norm.
        residual: ``"standard"``, ``"boosting"`` or ``"none"`` (see above).
    """

    def __init__(self, dim: int, num_heads: int, kernel: str = "softmax", *,
                 kernel_kwargs: dict[str, Any] | None = None, dropout: float = 0.0,
                 ff_mult: int = 4, self_attention: bool = False,
                 residual: str = "standard") -> None:
        super().__init__()
        self.residual = _choice(residual, "residual", RESIDUALS)
        if residual == "boosting":
            self.boost = nn.Parameter(torch.zeros(()))  # lambda
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = None if self_attention else nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(AttentionConfig(
            dim, num_heads, kernel, dropout=dropout, kernel_kwargs=dict(kernel_kwargs or {})))
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(self, x: Tensor, y: Tensor | None, y_mask: Tensor | None,
                x0: Tensor | None = None, *, return_weights: bool = False,
                **kernel_inputs: Any) -> Tensor | tuple[Tensor, Tensor | None]:
        """x ``(B, N, dim)`` attends over y ``(B, L, dim)`` (None: self-attention) with
        y_mask bool ``(B, L)``; returns ``(B, N, dim)``, or ``(output, weights)`` with the
        attention weights ``(B, H, N, L)`` if ``return_weights`` (None for a kernel without
        weights). ``x0`` ``(B, N, dim)``: input of the block stack (boosting residual;
        default x). ``kernel_inputs`` (e.g. positions) go to the attention kernel."""
        if (y is None) != (self.norm_kv is None):
            raise AttentionInputError("a MAB built with self_attention=True takes y=None; "
                                      "one built without it needs a context y.")
        xn = self.norm_q(x)
        yn = xn if y is None else self.norm_kv(y)
        a = self.attn(xn, yn, y_mask, return_weights=return_weights, **kernel_inputs)
        a, w = a if return_weights else (a, None)  # (B, N, dim), (B, H, N, L)
        if self.residual == "standard":
            h = x + a
        elif self.residual == "boosting":
            h = x + a + self.boost * ((x if x0 is None else x0) - x)
        else:
            h = a
        out = h + self.ff(self.norm_ff(h))
        return (out, w) if return_weights else out


class SAB(nn.Module):
    """Set attention block ``MAB(X, X)``: x ``(B, L, dim)``, mask ``(B, L)`` -> ``(B, L, dim)``.
    Args as in :class:`MAB`."""

    def __init__(self, dim: int, num_heads: int, kernel: str = "softmax", **kw: Any) -> None:
        super().__init__()
        self.mab = MAB(dim, num_heads, kernel, self_attention=True, **kw)

    def forward(self, x: Tensor, mask: Tensor | None = None, x0: Tensor | None = None, *,
                return_weights: bool = False, **kernel_inputs: Any
                ) -> Tensor | tuple[Tensor, Tensor | None]:
        return self.mab(x, None, mask, x0, return_weights=return_weights, **kernel_inputs)


class ISAB(nn.Module):
    """Induced set attention block: ``H = MAB(I, X)`` with m learned inducing points, then
    ``MAB(X, H)``. Cost O(L m) instead of O(L^2). x ``(B, L, dim)``, mask ``(B, L)`` ->
    ``(B, L, dim)``. Args as in :class:`MAB`, plus ``num_inducing`` (m)."""

    def __init__(self, dim: int, num_heads: int, num_inducing: int = 16,
                 kernel: str = "softmax", **kw: Any) -> None:
        super().__init__()
        m = _positive_int(num_inducing, "num_inducing")
        self.inducing = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, m, dim)))
        self.mab_in = MAB(dim, num_heads, kernel, **kw)
        self.mab_out = MAB(dim, num_heads, kernel, **kw)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        inducing = self.inducing.expand(x.shape[0], -1, -1)  # (1, m, dim) -> (B, m, dim)
        h = self.mab_in(inducing, x, mask)  # (B, m, dim): only real tokens as keys
        return self.mab_out(x, h, None)  # (B, L, dim): every inducing point is real


class PMA(nn.Module):
    """Pooling by multihead attention: k learned seeds attend over the set.
    x ``(B, L, dim)``, mask ``(B, L)`` -> ``(B, k, dim)``. Args as in :class:`MAB`, plus
    ``num_seeds`` (k)."""

    def __init__(self, dim: int, num_heads: int, num_seeds: int = 1,
                 kernel: str = "softmax", **kw: Any) -> None:
        super().__init__()
        k = _positive_int(num_seeds, "num_seeds")
        self.seeds = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, k, dim)))
        self.mab = MAB(dim, num_heads, kernel, **kw)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        seeds = self.seeds.expand(x.shape[0], -1, -1)  # (1, k, dim) -> (B, k, dim)
        return self.mab(seeds, x, mask)


# ----------------------------------------------------------------------------- encoders
class SetEncoder(nn.Module):
    """Base of the set encoders: validates ``(x, mask)`` and calls ``encode``.

    A new encoder is one subclass in one file, registered by name with
    ``@ENCODERS.register("name")`` above the class; ``make_encoder("name", in_dim)`` and
    ``AmortizedPosterior(model, encoder="name")`` (save and load included) then build it.
    The subclass takes ``in_dim`` as its first constructor argument, sets ``in_dim`` and
    ``out_dim``, and implements ``encode(x (B, L, in_dim), mask (B, L) or None) ->
    (B, out_dim)``; it may set ``default_options`` and ``accepts_positions``.

    Attributes:
        in_dim: Token features expected in ``x``.
        out_dim: Width of the pooled representation.
        accepts_positions: The encoder has a positional encoding (takes ``positions=``).
        buckets: Groups a padded batch is packed into (see :meth:`forward`).
        default_options: Constructor options :class:`~bayesattn.inference.AmortizedPosterior`
            passes unless its ``encoder_options`` override them (they are recorded in
            the network's config, so a saved network keeps its architecture).
        legacy_options: The options networks saved before ``default_options`` were
            recorded (configs without ``config_version``) were built with; only the
            three built-in encoders need them.
    """

    in_dim: int
    out_dim: int
    accepts_positions: bool = False
    buckets: int = 4
    default_options: ClassVar[Mapping[str, Any]] = {}
    legacy_options: ClassVar[Mapping[str, Any]] = {}

    def forward(self, x: Tensor, mask: Tensor | None = None, *,
                positions: Tensor | None = None) -> Tensor:
        """Pooled representation.

        A padded batch of a permutation-invariant encoder (no positional encoding) is
        packed before it is encoded: the sequences are sorted by their number of real
        tokens into ``buckets`` groups of equal size, each sequence's real tokens are moved
        to the front (their order is kept) and every group is cut to its longest sequence,
        so padded tokens cost (almost) nothing. Each sequence is encoded on its own, so the
        output equals the padded computation up to float rounding. ``buckets = 1`` packs
        into one group; ``buckets = 0`` switches packing off.

        Args:
            x: Tokens, float ``(B, L, in_dim)``.
            mask: Bool ``(B, L)``, True = real token; None = all real.
            positions: Token positions ``(B, L)`` or ``(B, L, P)`` for an encoder with a
                positional encoding; None = token indices ``0..L-1``.

        Returns:
            Tensor of shape ``(B, out_dim)``.
        """
        mask, positions = self._checked(x, mask, positions)
        if positions is not None:
            return self.encode(x, mask, positions=positions)
        if mask is None or self.accepts_positions or self.buckets < 1 or x.shape[0] == 0:
            return self.encode(x, mask)
        return self._encode_packed(x, mask)

    def _encode_packed(self, x: Tensor, mask: Tensor) -> Tensor:
        """``encode`` group by group on packed tokens (see :meth:`forward`)."""
        counts = mask.sum(-1)  # (B,)
        order = torch.argsort(counts, stable=True)  # shortest first
        groups = torch.tensor_split(order, min(self.buckets, len(order)))
        longest = [int(n) for n in counts[torch.stack([g[-1] for g in groups])].tolist()]
        pieces = []
        for idx, n in zip(groups, longest, strict=True):
            m = mask[idx]  # (b, L)
            # real tokens first, in their order; then cut to the group's longest sequence
            front = torch.argsort((~m).to(torch.uint8), dim=1, stable=True)[:, :n]  # (b, n)
            xs = x[idx].gather(1, front[..., None].expand(-1, -1, x.shape[-1]))  # (b, n, F)
            ms = m.gather(1, front)  # (b, n)
            pieces.append(self.encode(xs, None if bool(ms.all()) else ms))
        out = torch.cat(pieces)  # (B, out_dim), in `order`
        return out[torch.argsort(order)]  # back to the input order

    def _checked(self, x: Tensor, mask: Tensor | None, positions: Tensor | None
                 ) -> tuple[Tensor | None, Tensor | None]:
        """Validate tokens, mask and positions; returns the checked ``(mask, positions)``."""
        check_tokens(x, "x", self.in_dim)
        mask = check_mask(mask, x.shape[0], x.shape[1], "mask")
        if positions is None:
            return mask, None
        if not self.accepts_positions:
            raise AttentionInputError(
                f"{type(self).__name__} has no positional encoding, so it takes no positions; "
                "use TransformerEncoder(positional=...) or drop positions=.")
        return mask, check_positions(positions, *x.shape[:2])

    def encode(self, x: Tensor, mask: Tensor | None) -> Tensor:
        raise NotImplementedError


def _check_encoder(name: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, SetEncoder)):
        raise TypeError(f"encoder {name!r}: expected a SetEncoder subclass; got {cls!r}")
    for attr in ("default_options", "legacy_options"):
        if not isinstance(getattr(cls, attr), Mapping):
            raise TypeError(f"encoder {name!r}: {attr} must be a dict of constructor "
                            f"options; got {getattr(cls, attr)!r}")


#: The registered set encoders (name -> :class:`SetEncoder` subclass).
ENCODERS: Registry[type[SetEncoder]] = Registry(
    "encoder", error=AttentionInputError, check=_check_encoder,
    hint="Register one with @ENCODERS.register('name') on a SetEncoder subclass.")


# The default options of the built-in encoders: one attention block with a 2x feed-forward,
# chosen by measurement (issue 12; normal-mean d = 2, 1,000 NPE steps of 128 sets,
# log-uniform L in [8, 128], lr 3e-3, KL(exact || q) at L = 8 / 32 / 128, 200 test sets
# each, one CPU thread on a shared 2-core machine): Set Transformer with 1 block and ff_mult
# 2: 0.026 / 0.0067 / 0.020 in 51 s; with the class defaults (2 blocks, ff_mult 4): 0.023 /
# 0.0062 / 0.024 in 173 s. Transformer with 1 layer and ff_mult 2: 0.018 / 0.0067 / 0.017 in
# 47 s; with 2 layers and ff_mult 4: 0.017 / 0.0049 / 0.013 at several times the cost. Depth
# did not buy accuracy at this budget; it cost 2-3x the time. Networks saved before these
# defaults were recorded were built with the class defaults (``legacy_options``).
@ENCODERS.register("set-transformer")
class SetTransformer(SetEncoder):
    """Set Transformer: linear embedding, ``num_blocks`` SAB/ISAB blocks, PMA pooling.

    Args:
        in_dim: Token features.
        dim: Model width (divisible by num_heads).
        num_heads: Attention heads.
        num_blocks: Number of SAB/ISAB blocks.
        block: ``"sab"`` (O(L^2)) or ``"isab"`` (O(L m)).
        num_inducing: Inducing points m of an ISAB.
        kernel: Attention kernel name; kernel_kwargs are passed to it.
        num_seeds: PMA seeds k; ``out_dim = k * dim``.
        dropout: Dropout in attention and feed-forward layers.
        ff_mult: Hidden width factor of the feed-forward layers.
    """

    default_options = {"num_blocks": 1, "ff_mult": 2}
    legacy_options = {"num_blocks": 2, "ff_mult": 4}

    def __init__(self, in_dim: int, dim: int = 64, num_heads: int = 4, num_blocks: int = 2,
                 block: str = "sab", num_inducing: int = 16, kernel: str = "softmax", *,
                 num_seeds: int = 1, dropout: float = 0.0, ff_mult: int = 4,
                 kernel_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.in_dim = _positive_int(in_dim, "in_dim")
        _choice(block, "block", ("sab", "isab"))
        kw = dict(kernel_kwargs=kernel_kwargs, dropout=dropout, ff_mult=ff_mult)
        self.embed = nn.Linear(in_dim, dim)
        self.blocks = nn.ModuleList(
            SAB(dim, num_heads, kernel, **kw) if block == "sab"
            else ISAB(dim, num_heads, num_inducing, kernel, **kw)
            for _ in range(_positive_int(num_blocks, "num_blocks")))
        self.pool = PMA(dim, num_heads, num_seeds, kernel, **kw)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = num_seeds * dim

    def encode(self, x: Tensor, mask: Tensor | None) -> Tensor:
        h = self.embed(x)  # (B, L, dim)
        for blk in self.blocks:
            h = blk(h, mask)
        s = self.norm(self.pool(h, mask))  # (B, k, dim)
        return s.reshape(s.shape[0], self.out_dim)  # (B, k, dim) -> (B, k * dim)


@ENCODERS.register("transformer")
class TransformerEncoder(SetEncoder):
    """Pre-norm transformer encoder, by default without positional encoding, then pooling.

    Args:
        in_dim: Token features.
        dim: Model width (divisible by num_heads); ``out_dim = dim``.
        num_heads: Attention heads.
        num_layers: Encoder layers.
        pooling: ``"mean"`` (masked mean), ``"pma"`` (one PMA seed) or ``"cls"`` (a learned
            token prepended as real and read out).
        kernel: Attention kernel name; kernel_kwargs are passed to it.
        dropout: Dropout in attention and feed-forward layers.
        ff_mult: Hidden width factor of the feed-forward layers.
        residual: Attention residual of every layer: ``"standard"`` ``x + Attn(x)``,
            ``"boosting"`` ``x + Attn(x) + lambda_l (x0 - x)`` (learnable lambda_l per
            layer, x0 the input of the first layer; in the first layer x = x0, so its
            lambda has no effect and gets no gradient) or ``"none"`` ``Attn(x)``.
        positional: ``"none"`` (a set encoder: permutation invariant), ``"sinusoidal"``
            (absolute encoding added to the embeddings), ``"relative"`` (positions passed to
            a position-aware kernel, e.g. ``kernel="bilateral"`` or ``"twicing"`` with
            ``base="bilateral"``) or ``"alibi"`` (shorthand for ``"relative"`` with the
            bilateral kernel's ``spatial="laplacian"`` bias). Positions default to token
            indices; pass ``positions=`` to ``forward`` for others (e.g. a 2-D grid). With
            a relative encoding, PMA pooling attends with plain softmax and ``"cls"``
            pooling is not available (the CLS token has no position).
    """

    default_options = {"num_layers": 1, "ff_mult": 2}
    legacy_options = {"num_layers": 2, "ff_mult": 4}

    def __init__(self, in_dim: int, dim: int = 64, num_heads: int = 4, num_layers: int = 2,
                 pooling: str = "mean", kernel: str = "softmax", *, dropout: float = 0.0,
                 ff_mult: int = 4, kernel_kwargs: dict[str, Any] | None = None,
                 residual: str = "standard", positional: str = "none") -> None:
        super().__init__()
        self.in_dim = _positive_int(in_dim, "in_dim")
        self.pooling = _choice(pooling, "pooling", ("mean", "pma", "cls"))
        self.positional = _choice(positional, "positional", POSITIONALS)
        self.accepts_positions = positional != "none"
        kernel_kwargs = dict(kernel_kwargs or {})
        if positional == "alibi":
            if kernel not in ("softmax", "bilateral"):
                raise AttentionInputError("positional='alibi' uses the bilateral kernel with a "
                                          "laplacian spatial term; pass kernel='softmax' or "
                                          f"'bilateral', got {kernel!r}.")
            kernel = "bilateral"
            kernel_kwargs.setdefault("spatial", "laplacian")
        if positional == "sinusoidal" and dim % 2:
            raise AttentionInputError(f"a sinusoidal encoding needs an even dim; got {dim}.")
        kw = dict(kernel_kwargs=kernel_kwargs, dropout=dropout, ff_mult=ff_mult)
        self.embed = nn.Linear(in_dim, dim)
        self.layers = nn.ModuleList(SAB(dim, num_heads, kernel, residual=residual, **kw)
                                    for _ in range(_positive_int(num_layers, "num_layers")))
        probe = self.layers[0].mab.attn.kernel
        relative = positional in ("relative", "alibi")
        if relative != probe.uses_positions:
            raise AttentionInputError(
                f"kernel {kernel!r} {'uses' if probe.uses_positions else 'does not use'} token "
                f"positions but positional={positional!r}; use positional='relative' with a "
                "position-aware kernel (e.g. 'bilateral') and 'none'/'sinusoidal' otherwise.")
        if relative and pooling == "cls":
            raise AttentionInputError("pooling='cls' needs a position for the CLS token; use "
                                      "pooling='mean' or 'pma' with a relative encoding.")
        if pooling == "cls":
            self.cls = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, dim)))
        plain = not (relative or isinstance(probe, TwicingKernel))  # PMA is cross-attention
        self.pma = (PMA(dim, num_heads, 1, kernel if plain else "softmax",
                        **(kw if plain else dict(dropout=dropout, ff_mult=ff_mult)))
                    if pooling == "pma" else None)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def tokens(self, x: Tensor, mask: Tensor | None = None, *,
               positions: Tensor | None = None, return_weights: bool = False
               ) -> Tensor | tuple[Tensor, list[Tensor | None]]:
        """Per-token outputs of the layer stack, before pooling (for per-position targets
        such as denoising, and to read the learned attention).

        Args:
            x: Tokens, float ``(B, L, in_dim)``.
            mask: Bool ``(B, L)``, True = real token; None = all real.
            positions: As in :meth:`forward` (encoders with a positional encoding only).
            return_weights: Also return every layer's attention weights.

        Returns:
            ``(B, L, dim)`` token outputs (the CLS token of ``pooling="cls"`` left out), or
            ``(outputs, weights)`` with one ``(B, H, L, L)`` tensor per layer (None for a
            kernel without weights, e.g. ``"cme"``) if ``return_weights``.
        """
        mask, positions = self._checked(x, mask, positions)
        h, _, weights = self._stack(x, mask, positions, return_weights)
        if self.pooling == "cls":
            h = h[:, 1:]
            weights = [None if w is None else w[:, :, 1:, 1:] for w in weights]
        return (h, weights) if return_weights else h

    def spatial_bandwidths(self) -> list[list[float]]:
        """Per layer, the spatial bandwidth sigma_h of each head of a bilateral kernel (used
        directly or as the base of a twicing kernel); an empty list for other kernels."""
        out = []
        for layer in self.layers:
            kernel = layer.mab.attn.kernel
            kernel = getattr(kernel, "base", kernel)
            out.append(kernel.bandwidth().detach().cpu().tolist()
                       if isinstance(kernel, BilateralKernel) else [])
        return out

    def _stack(self, x: Tensor, mask: Tensor | None, positions: Tensor | None,
               return_weights: bool = False
               ) -> tuple[Tensor, Tensor | None, list[Tensor | None]]:
        """Embedding, positional encoding, CLS token and layers: ``(h, mask, weights)``."""
        h = self.embed(x)  # (B, L, dim)
        B, L, dim = h.shape
        inputs: dict[str, Tensor] = {}
        if self.positional != "none":
            if positions is None:
                positions = index_positions(B, L, h.device)  # (B, L)
            if self.positional == "sinusoidal":
                h = h + sinusoidal_encoding(positions, dim).to(h.dtype)  # (B, L, dim)
            else:
                inputs["positions"] = positions
        if self.pooling == "cls":
            h = torch.cat([self.cls.expand(B, -1, -1), h], dim=1)  # (B, 1 + L, dim)
            if mask is not None:
                real = torch.ones(B, 1, dtype=torch.bool, device=mask.device)
                mask = torch.cat([real, mask], dim=1)  # (B, 1 + L)
        x0 = h  # input of the stack, for the boosting residual
        weights: list[Tensor | None] = []
        for layer in self.layers:
            if return_weights:
                h, w = layer(h, mask, x0, return_weights=True, **inputs)
                weights.append(w)
            else:
                h = layer(h, mask, x0, **inputs)
        return h, mask, weights

    def encode(self, x: Tensor, mask: Tensor | None, positions: Tensor | None = None
               ) -> Tensor:
        h, mask, _ = self._stack(x, mask, positions)
        if self.pooling == "mean":
            pooled = masked_mean(h, mask)  # (B, dim)
        elif self.pooling == "cls":
            pooled = h[:, 0]  # (B, dim)
        else:
            pooled = self.pma(h, mask)[:, 0]  # (B, 1, dim) -> (B, dim)
        return self.norm(pooled)


def _mlp(d_in: int, d_hidden: int, d_out: int, num_layers: int) -> nn.Sequential:
    dims = [d_in] + [d_hidden] * (num_layers - 1) + [d_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < num_layers - 1:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


@ENCODERS.register("deepsets")
class DeepSets(SetEncoder):
    """DeepSets: ``rho(pool_i phi(x_i))``, the no-attention baseline.

    Args:
        in_dim: Token features.
        dim: Hidden and output width; ``out_dim = dim``.
        num_layers: Linear layers in each of phi and rho.
        pooling: ``"mean"``, ``"sum"`` or ``"mean+sum"`` (both, concatenated) over real
            tokens.
    """

    def __init__(self, in_dim: int, dim: int = 64, num_layers: int = 2,
                 pooling: str = "mean") -> None:
        super().__init__()
        self.in_dim = _positive_int(in_dim, "in_dim")
        self.out_dim = _positive_int(dim, "dim")
        n = _positive_int(num_layers, "num_layers")
        self.pooling = _choice(pooling, "pooling", ("mean", "sum", "mean+sum"))
        self.phi = nn.Sequential(_mlp(in_dim, dim, dim, n), nn.GELU())
        self.rho = _mlp(dim * (2 if pooling == "mean+sum" else 1), dim, dim, n)

    def encode(self, x: Tensor, mask: Tensor | None) -> Tensor:
        h = self.phi(x)  # (B, L, dim)
        pooled = [masked_mean(h, mask)] if "mean" in self.pooling else []
        if "sum" in self.pooling:
            pooled.append(masked_sum(h, mask))
        return self.rho(torch.cat(pooled, dim=-1))  # (B, dim or 2 dim) -> (B, dim)


def make_encoder(name: str, in_dim: int, **cfg: Any) -> SetEncoder:
    """Build a registered set encoder by name (``ENCODERS.names()``: ``"deepsets"``,
    ``"set-transformer"``, ``"transformer"`` and any registered since).

    Args:
        name: Encoder name.
        in_dim: Token features of ``x`` ``(B, L, in_dim)``.
        **cfg: Keyword arguments of the encoder class (e.g. ``dim``, ``num_heads``); the
            class's ``default_options`` are not added here (``AmortizedPosterior`` adds
            them).

    Returns:
        A :class:`SetEncoder` mapping ``(x, mask)`` to ``(B, out_dim)``.

    Raises:
        AttentionInputError: ``name`` is not registered (the message suggests close names).
    """
    return ENCODERS.get(name)(in_dim, **cfg)


class _DefaultOptions(Mapping[str, Mapping[str, Any]]):
    """Read-only view: encoder name -> its ``default_options``, for every registered encoder."""

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        if name not in ENCODERS:
            raise KeyError(name)
        return MappingProxyType(dict(ENCODERS.get(name).default_options))

    def __iter__(self) -> Iterator[str]:
        return iter(ENCODERS.names())

    def __len__(self) -> int:
        return len(ENCODERS)

    def __repr__(self) -> str:
        return repr({name: dict(self[name]) for name in self})


#: Encoder options :class:`~bayesattn.inference.AmortizedPosterior` uses unless
#: ``encoder_options`` overrides them: each registered encoder class's ``default_options``
#: (a read-only view; set ``default_options`` on the class to change them).
DEFAULT_ENCODER_OPTIONS: Mapping[str, Mapping[str, Any]] = _DefaultOptions()
