"""AmortizedPosterior (encoder + head) and the trainer."""

from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch

from bayesattn import models
from bayesattn.inference import (
    AmortizedPosterior,
    TrainingDivergedError,
    resolve_threads,
    torch_threads,
    train,
    training_lengths,
)
from bayesattn.models import ModelInputError

SMALL = {"dim": 16, "num_heads": 2}
ENCODERS = ("set-transformer", "transformer", "deepsets")


def _net(model, encoder="set-transformer", **kw):
    opts = dict(SMALL) if encoder != "deepsets" else {"dim": 16}
    return AmortizedPosterior(model, encoder=encoder, encoder_options=opts, **kw)


def _score(q, z):
    return q.log_prob(z.float() if z.is_floating_point() else z)


@pytest.mark.parametrize("name", models.names())
def test_every_model_gets_a_working_network(name):
    m = models.get(name)
    b = m.simulate(3, 7, seed=0)
    net = _net(m)
    q = net.posterior(b.x)
    assert q.batch_shape == (3,)
    lp = _score(q, b.z)
    assert lp.shape == (3,) and torch.isfinite(lp).all()
    assert net.represent(b.x).shape == (3, net.rep_dim)
    lp.sum().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("encoder", ENCODERS)
def test_network_is_permutation_and_padding_invariant(encoder):
    m = models.get("concept-mixture")
    b = m.simulate(4, 9, seed=1)
    net = _net(m, encoder).eval()
    base = _score(net.posterior(b.x), b.z)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_score(net.posterior(b.x[:, perm]), b.z), base, atol=1e-5, rtol=1e-5)
    padded = torch.cat([b.x, 5 * torch.randn(4, 6, 2, dtype=b.x.dtype)], dim=1)
    mask = torch.zeros(4, 15, dtype=torch.bool)
    mask[:, :9] = True
    torch.testing.assert_close(_score(net.posterior(padded, mask), b.z), base, atol=1e-5, rtol=1e-5)


def test_length_awareness_sees_repeated_sets():
    m = models.get("normal-mean", d=2)
    b = m.simulate(2, 5, seed=2)
    twice = torch.cat([b.x, b.x], dim=1)
    aware = _net(m, "deepsets").eval()
    blind = _net(m, "deepsets", length_aware=False).eval()
    assert not torch.allclose(aware.represent(b.x), aware.represent(twice))
    torch.testing.assert_close(blind.represent(b.x), blind.represent(twice), atol=1e-6, rtol=1e-6)


def test_bad_inputs_give_clear_errors():
    m = models.get("concept-mixture")
    net = _net(m)
    x = m.simulate(2, 4, seed=0).x
    with pytest.raises(ModelInputError, match="shape"):
        net.posterior(torch.zeros(2, 4, 3, dtype=torch.float64))
    with pytest.raises(ModelInputError, match="mask"):
        net.posterior(x, torch.ones(2, 5, dtype=torch.bool))
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match="sequence 1 has no real tokens"):
        net.posterior(x, mask)
    with pytest.raises(ValueError, match="encoder"):
        AmortizedPosterior(m, encoder="lstm")


def test_save_and_load_roundtrip(tmp_path):
    m = models.get("dirichlet-categorical", K=3)
    net = _net(m, seed=3).eval()
    b = m.simulate(3, 6, seed=4)
    path = net.save(tmp_path / "net.pt")
    again = AmortizedPosterior.load(path).eval()
    torch.testing.assert_close(_score(again.posterior(b.x), b.z), _score(net.posterior(b.x), b.z))
    assert not list(tmp_path.glob("*.tmp"))


def test_same_seed_same_network():
    m = models.get("beta-bernoulli")
    a, b = _net(m, seed=5), _net(m, seed=5)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    state = torch.random.get_rng_state()
    _net(m, seed=6)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.slow
def test_training_reaches_small_kl_on_concept_mixture():
    """Issue 3 acceptance: mean KL(exact || q) <= 0.05 nats at L = 32 (K=4, d=2)."""
    m = models.get("concept-mixture", K=4, d=2)
    net = AmortizedPosterior(m, encoder="set-transformer",
                             encoder_options={"dim": 32, "num_heads": 4}, seed=0)
    res = train(net, m, steps=400, batch_size=128, seq_len=(8, 64), objective="kl", seed=0,
                lr=3e-3, progress=False)
    assert {"step", "loss", "kl", "lr", "grad_norm"} <= set(res.history.columns)
    test = m.simulate(2000, 32, seed=99)
    with torch.no_grad():
        logq = net.posterior(test.x).logits.double()
    p = m.exact_posterior(test.x)
    kl = (p.probs * (p.logits - logq)).sum(-1)
    se = float(kl.std() / kl.numel() ** 0.5)
    assert float(kl.mean()) + 2 * se <= 0.05, (float(kl.mean()), se)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    m = models.get("gamma-poisson")
    kw = dict(steps=12, batch_size=16, seq_len=(4, 12), seed=1, progress=False,
              checkpoint_every=5)
    full = train(_net(m, seed=1), m, checkpoint_dir=tmp_path / "a", **kw).net

    def interrupt(step, row, net):
        if step == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_net(m, seed=1), m, checkpoint_dir=tmp_path / "b", callback=interrupt, **kw)
    with pytest.raises(ValueError, match=r"different run \(lr: checkpoint 0.003, this run 0.01\)"):
        train(_net(m, seed=1), m, checkpoint_dir=tmp_path / "b", resume=True,
              **{**kw, "lr": 1e-2})
    resumed = train(_net(m, seed=1), m, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    assert resumed.history["step"].tolist() == list(range(1, 13))
    assert resumed.device == torch.device("cpu") and resumed.autocast is False
    for p, q in zip(full.parameters(), resumed.net.parameters(), strict=True):
        assert torch.equal(p, q)


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    m = models.get("beta-bernoulli")

    def poison(step, row, net):
        if step == 4:
            with torch.no_grad():
                next(net.head.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match="at step 5"):
        train(_net(m), m, steps=10, batch_size=8, seq_len=6, progress=False,
              checkpoint_dir=tmp_path, checkpoint_every=2, callback=poison)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["net"].values() if v.is_floating_point())


def test_train_result_repr_is_one_short_line(tmp_path):
    m = models.get("beta-bernoulli")
    folder = tmp_path / ("a-long-folder-name-" * 8)
    res = train(_net(m), m, steps=3, batch_size=8, seq_len=5, progress=False, threads=1,
                checkpoint_dir=folder)
    text = repr(res)
    assert "\n" not in text and len(text) < 200, text
    loss = res.history["loss"].iloc[-1]
    for part in ("TrainResult(steps=3,", f"final_loss={loss:.4g},", f"seconds={res.seconds:.2f},",
                 "device='cpu',", "threads=1,", "checkpoint='...", f"{res.checkpoint.name}')"):
        assert part in text, (part, text)
    assert "autocast" not in text and "Linear" not in text and "grad_norm" not in text
    short = dataclasses.replace(res, checkpoint=None, autocast=True)
    assert repr(short).endswith("autocast=True, threads=1, checkpoint=None)")
    assert [f.name for f in dataclasses.fields(res)] == [
        "net", "history", "seconds", "checkpoint", "device", "autocast", "threads"]


def test_fixed_training_set_and_argument_checks(tmp_path):
    m = models.get("beta-bernoulli")
    res = train(_net(m), m, steps=3, batch_size=8, seq_len=5, train_size=20, progress=False)
    assert len(res.history) == 3
    with pytest.raises(ValueError, match="objective"):
        train(_net(m), m, steps=1, batch_size=2, seq_len=3, objective="elbo")
    with pytest.raises(ValueError, match="exact posterior"):
        lr = models.get("logistic-regression")
        train(_net(lr), lr, steps=1, batch_size=2, seq_len=3, objective="kl")
    with pytest.raises(ValueError, match="built for"):
        train(_net(m), models.get("gamma-poisson"), steps=1, batch_size=2, seq_len=3)
    with pytest.raises(ValueError, match="seq_len"):
        train(_net(m), m, steps=1, batch_size=2, seq_len=(5, 2))
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train(_net(m), m, steps=1, batch_size=2, seq_len=3, resume=True)


def _bayes_target_nll(m, test):
    """-log p(y | x) under the exact posterior predictive: sum_k pi_k(x) P(y | z = k)."""
    p = m.exact_posterior(test.x, test.mask).probs  # (B, K)
    channel = torch.as_tensor(m._channel())  # (K, K): P(y | z)
    return -(p @ channel).gather(-1, test.y[:, None])[:, 0].log()


@pytest.mark.slow
def test_supervised_objective_approaches_the_bayes_risk():
    m = models.get("concept-mixture", K=3, d=2, radius=1.0)
    net = _net(m, seed=0)
    train(net, m, steps=300, batch_size=128, seq_len=(2, 16), objective="supervised",
          seed=0, lr=3e-3, progress=False)
    test = m.simulate(4000, 8, seed=7)
    with torch.no_grad():
        nll = -net.predict_target(test.x).log_prob(test.y).double()
    excess = nll - _bayes_target_nll(m, test)
    se = float(excess.std() / excess.numel() ** 0.5)
    assert float(excess.mean()) - 3 * se < 0.03, (float(excess.mean()), se)


@pytest.mark.slow
def test_masked_token_prediction_approaches_the_bayes_predictive():
    """On unigram-mixture the token head can represent the exact predictive mixture."""
    m = models.get("unigram-mixture", K=3, V=12)
    net = _net(m, seed=0)
    train(net, m, steps=300, batch_size=128, seq_len=(2, 16), objective="mtp", seed=0,
          lr=3e-3, progress=False)
    test = m.simulate(4000, 9, seed=8)
    visible, new = test.x[:, :8], test.x[:, 8]
    with torch.no_grad():
        nll = -net.predict_token(visible).log_prob(new).double()
    post = m.exact_posterior(visible).probs  # (B, K)
    words = torch.as_tensor(m.params["word_probs"], dtype=torch.float64)  # (K, V)
    bayes = -(post @ words).gather(-1, new[:, None])[:, 0].log()
    excess = nll - bayes
    se = float(excess.std() / excess.numel() ** 0.5)
    assert float(excess.mean()) - 3 * se < 0.03, (float(excess.mean()), se)


def test_mtp_hides_some_but_never_all_tokens():
    from bayesattn.inference._objectives import hide_tokens as _hide_tokens

    mask = torch.ones(64, 10, dtype=torch.bool)
    mask[:, 7:] = False
    mask[0, 2:] = False  # a sequence with 2 real tokens
    hidden = _hide_tokens(mask, 0.25, seed=0)
    assert not (hidden & ~mask).any()
    n_hidden = hidden.sum(-1)
    assert int(n_hidden[0]) == 1 and bool((n_hidden[1:] == 2).all())  # round(0.25 * 7) = 2
    with pytest.raises(ValueError, match=">= 2 tokens"):
        m = models.get("beta-bernoulli")
        train(_net(m), m, steps=1, batch_size=2, seq_len=(1, 4), objective="mtp")


def test_training_touches_only_what_the_objective_uses():
    m = models.get("gamma-poisson")
    net = _net(m)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    train(net, m, steps=3, batch_size=8, seq_len=(2, 6), objective="supervised", progress=False)
    after = net.state_dict()
    for prefix in ("head.", "token_head."):
        assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("target_head."))
    assert all(p.requires_grad for p in net.parameters())


@pytest.mark.slow
def test_compiled_training_matches_eager():
    m = models.get("beta-bernoulli")
    kw = dict(steps=3, batch_size=8, seq_len=6, progress=False)
    eager = train(_net(m, seed=2), m, **kw).history["loss"]
    before = torch.distributions.Distribution._validate_args
    compiled = train(_net(m, seed=2), m, compile=True, **kw).history["loss"]
    torch.testing.assert_close(torch.tensor(compiled.to_numpy()), torch.tensor(eager.to_numpy()),
                               rtol=1e-4, atol=1e-5)
    # torch.compile switches distribution argument checks off process-wide; train restores them
    assert torch.distributions.Distribution._validate_args is before


@pytest.mark.parametrize("distribution,share", [
    ("log-uniform", (math.log(16) - math.log(8)) / (math.log(129) - math.log(8))),
    ("uniform", 8 / 121),
])
def test_training_lengths_follow_their_distribution(distribution, share):
    n = 100_000
    lengths = training_lengths(n, (8, 128), distribution=distribution, seed=3)
    assert lengths.dtype == torch.int64 and lengths.shape == (n,)
    assert int(lengths.min()) == 8 and int(lengths.max()) == 128
    # P(L < 16) against its exact value, within 4 binomial standard errors
    p = float((lengths < 16).double().mean())
    assert abs(p - share) < 4 * math.sqrt(share * (1 - share) / n)
    torch.testing.assert_close(training_lengths(5, (8, 128), distribution=distribution, seed=3),
                               lengths[:5])
    assert training_lengths(4, 7).tolist() == [7] * 4
    with pytest.raises(ValueError, match="lengths must be one of"):
        training_lengths(4, (2, 9), distribution="normal")


def test_train_draws_lengths_as_documented():
    m = models.get("normal-mean")
    seen = []
    net = _net(m, "deepsets")
    train(net, m, steps=2, batch_size=64, seq_len=(8, 128), lengths="uniform",
          device="cpu", progress=False, callback=lambda s, row, n: seen.append(row["mean_len"]))
    net = _net(m, "deepsets")
    train(net, m, steps=2, batch_size=64, seq_len=(8, 128), device="cpu", progress=False,
          callback=lambda s, row, n: seen.append(row["mean_len"]))
    # uniform on [8, 128] has mean 68, log-uniform (default) about 43
    assert min(seen[:2]) > 55 and max(seen[2:]) < 55
    with pytest.raises(ValueError, match="lengths must be one of"):
        train(net, m, steps=1, batch_size=4, seq_len=(2, 5), lengths="normal", progress=False)


def test_train_sets_and_restores_the_thread_count():
    m = models.get("normal-mean")
    before = torch.get_num_threads()
    result = train(_net(m, "deepsets"), m, steps=1, batch_size=4, seq_len=3, device="cpu",
                   progress=False, threads=1)
    assert result.threads == 1 and torch.get_num_threads() == before
    auto = resolve_threads("auto")
    assert 1 <= auto <= before
    with pytest.MonkeyPatch.context() as mp:  # torchrun: the local processes share the cores
        mp.setenv("LOCAL_WORLD_SIZE", str(4 * os.cpu_count()))
        assert resolve_threads("auto") == 1
    assert resolve_threads(None) == before
    for bad in (0, -1, 1.5, "all", True):
        with pytest.raises(ValueError, match="threads must be"):
            resolve_threads(bad)
    with pytest.raises(ValueError, match="threads must be"):
        train(_net(m, "deepsets"), m, steps=1, batch_size=4, seq_len=3, progress=False,
              threads=0)
    assert torch.get_num_threads() == before


def test_auto_threads_inside_a_threads_block_keep_its_choice():
    m = models.get("normal-mean")
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 and resolve_threads("auto") == 1
        result = train(_net(m, "deepsets"), m, steps=1, batch_size=4, seq_len=3,
                       device="cpu", progress=False)
        assert result.threads == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_posterior_in_chunks_equals_one_batch():
    m = models.get("normal-mean")
    b = m.simulate(11, 6, seed=4)
    mask = torch.arange(6)[None] < torch.randint(1, 7, (11,), generator=torch.Generator()
                                                 .manual_seed(0))[:, None]
    net = _net(m).eval()
    with torch.no_grad():
        whole = net.posterior(b.x, mask, chunk_size=None)
        for chunk in (1, 3, 11, 50):
            part = net.posterior(b.x, mask, chunk_size=chunk)
            torch.testing.assert_close(part.loc, whole.loc, atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(part.scale_tril, whole.scale_tril, atol=1e-6, rtol=1e-6)
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size must be"):
            net.posterior(b.x, chunk_size=bad)


def test_saved_networks_keep_their_architecture_across_default_changes(tmp_path):
    m = models.get("normal-mean")
    net = AmortizedPosterior(m, encoder="set-transformer", encoder_options={"dim": 16})
    assert net.config["encoder_options"] == {"num_blocks": 1, "ff_mult": 2, "dim": 16}
    assert len(AmortizedPosterior.load(net.save(tmp_path / "new.pt")).encoder.blocks) == 1
    # a network saved before the defaults were recorded: built with 2 blocks, ff_mult 4
    old = AmortizedPosterior(m, encoder="set-transformer",
                             encoder_options={"dim": 16, "num_blocks": 2, "ff_mult": 4})
    payload = {"config": {**old.config, "encoder_options": {"dim": 16}},
               "state_dict": old.state_dict()}
    del payload["config"]["config_version"]
    torch.save(payload, tmp_path / "old.pt")
    loaded = AmortizedPosterior.load(tmp_path / "old.pt")
    assert len(loaded.encoder.blocks) == 2
    b = m.simulate(3, 5, seed=0)
    torch.testing.assert_close(loaded.posterior(b.x).loc, old.posterior(b.x).loc)
