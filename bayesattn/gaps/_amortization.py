"""The amortization gap (Cremer, Li and Duvenaud, 2018), measured against exact posteriors.

An amortized network maps every dataset X through one shared encoder to a member
q_phi(z | X) of its head's family. The error KL(p || q_phi) splits into

- the *approximation* part KL(p || q*): q* is the best member of the same family for
  this one dataset (what a perfect encoder could reach), and
- the *amortization* part KL(p || q_phi) - KL(p || q*): what sharing one encoder
  across datasets costs.

Here "the same family" means the head's own output set: q* = head(h*) with the head's
weights frozen and h* a free representation fitted for each dataset by maximising
E_p[log head(h)(z)], i.e. minimising the forward KL that NPE and the KL objective
train. h* starts at the network's own representation, so q* is never worse than q_phi
on the fitting draws. KLs are exact for categorical latents and otherwise Monte Carlo
on fresh draws from p (not those used to fit h*, so the best member's KL is not
optimistically biased).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ._approximation import summarise

__all__ = ["amortization_gap"]


def _forward_kl(p, q, draws: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """KL(p || q) per dataset (B,) on the CPU: exact for Categoricals, else on ``draws``.

    ``p`` lives on the CPU (float64); ``q`` lives on ``device`` (the network's).
    """
    if isinstance(p, torch.distributions.Categorical):
        logp = p.logits.double()
        return (logp.exp() * (logp - q.logits.double().cpu())).sum(-1)
    logq = q.log_prob(draws.to(device)).double().cpu()
    return (p.log_prob(draws).double() - logq).mean(0)


def amortization_gap(
    net: Any,
    model: Any,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    fit_steps: int = 300,
    lr: float = 0.05,
    num_samples: int = 512,
    seed: int = 0,
    num_resamples: int = 1000,
    per_sequence: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Split KL(p || q_amortized) into the family's approximation part and the amortization part.

    Args:
        net: An :class:`~bayesattn.inference.AmortizedPosterior` (its head is frozen here).
        model: The model; must have an exact posterior.
        x: Tokens, shape ``(B, L, *token_shape)``.
        mask: Bool ``(B, L)``, True = real token; None = all real.
        fit_steps: Adam steps, then at most as many L-BFGS iterations, fitting one
            representation per dataset.
        lr: Adam learning rate for that fit.
        num_samples: Draws from p per dataset for fitting, and as many fresh ones for
            evaluation (continuous latents).
        seed: Seeds the draws (the global RNG is left alone).
        num_resamples: Bootstrap resamples over datasets.
        per_sequence: Also return the per-dataset frame.

    Returns:
        Tidy frame (``metric, value, ci_low, ci_high, se, n``) with the metrics
        ``kl_amortized``, ``kl_best_in_family`` and ``amortization_gap`` (nats), and
        ``amortization_fraction`` (the gap's share of ``kl_amortized``, computed from
        the means).
    """
    if not model.has_exact_posterior:
        raise ValueError(
            f"amortization_gap needs an exact posterior; {model.name} has none. Compare "
            "sample-based metrics against a NUTS reference instead."
        )
    for label, v in (("fit_steps", fit_steps), ("num_samples", num_samples)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{label}: expected an integer >= 1; got {v!r}.")
    x, mask = model.validate_tokens(x, mask)
    p = model.exact_posterior(x, mask)
    device = next(net.parameters()).device
    discrete = isinstance(p, torch.distributions.Categorical)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        fit_draws = None if discrete else p.sample((num_samples,))
        eval_draws = None if discrete else p.sample((num_samples,))
    was_training = net.training
    net.eval()
    frozen = [(q, q.requires_grad) for q in net.head.parameters()]
    try:
        for param, _ in frozen:
            param.requires_grad_(False)
        with torch.no_grad():
            h0 = net.represent(x.float() if x.is_floating_point() else x, mask).float()
            q_amortized = net.head(h0)
        h = torch.nn.Parameter(h0.clone())
        fit_on = None if discrete else fit_draws.to(device)
        p_probs = p.probs.float().to(device) if discrete else None

        def objective() -> torch.Tensor:
            # the datasets' objectives are independent, so their sum is minimised jointly
            q = net.head(h)
            if discrete:
                return -(p_probs * q.logits).sum(-1).sum()
            return -q.log_prob(fit_on).mean(0).sum()

        # Adam first (robust far from the optimum), then L-BFGS to converge
        adam = torch.optim.Adam([h], lr=lr)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + 1)
            for _ in range(int(fit_steps)):
                adam.zero_grad()
                objective().backward()
                adam.step()
            lbfgs = torch.optim.LBFGS([h], lr=1.0, max_iter=int(fit_steps),
                                      line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                lbfgs.zero_grad()
                loss = objective()
                loss.backward()
                return loss

            lbfgs.step(closure)
        with torch.no_grad():
            q_best = net.head(h)
            kl_amortized = _forward_kl(p, q_amortized, eval_draws, device)
            kl_best = _forward_kl(p, q_best, eval_draws, device)
    finally:
        for param, flag in frozen:
            param.requires_grad_(flag)
        net.train(was_training)
    per = pd.DataFrame({
        "dataset": np.tile(np.arange(x.shape[0]), 3),
        "metric": np.repeat(["kl_amortized", "kl_best_in_family", "amortization_gap"],
                            x.shape[0]),
        "value": np.concatenate([
            kl_amortized.numpy(), kl_best.numpy(), (kl_amortized - kl_best).numpy()
        ]),
    })
    summary = summarise(per, num_resamples=num_resamples, seed=seed)
    total = float(kl_amortized.mean())
    frac = float((kl_amortized - kl_best).mean()) / total if total > 0 else float("nan")
    summary = pd.concat([summary, pd.DataFrame([{
        "metric": "amortization_fraction", "value": frac, "ci_low": np.nan, "ci_high": np.nan,
        "se": np.nan, "n": int(x.shape[0]),
    }])], ignore_index=True)
    return (summary, per) if per_sequence else summary

