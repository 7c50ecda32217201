"""Every demo task builds, trains a few steps and gets better; models are deterministic."""

import copy

import pytest
import torch

from secateurs.zoo import TASKS, RowRNN, TinyViT, get_task
from secateurs.zoo.charlm import CharLM, lm_loss, perplexity
from secateurs.zoo.gan import GAN, train_gan


def _fixed_batch(task, data):
    x, y = next(iter(data.train))
    return x, y


def _loss(task, model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
        return float(
            lm_loss(out, y) if task.name == "charlm" else torch.nn.functional.cross_entropy(out, y)
        )


@pytest.mark.parametrize("name", ["mlp", "cnn", "vit", "lstm", "charlm"])
def test_supervised_task_lowers_its_loss(name):
    task = TASKS[name]
    model = task.model(0)
    data = task.data(0, batch_size=32)
    x, y = _fixed_batch(task, data)
    before = _loss(task, model, x, y)
    fit = task.train(model, data, steps=60)
    assert len(fit.steps) == 60
    after = _loss(task, model, x, y)
    assert after < 0.9 * before, (before, after)
    # the recorded training losses went down too
    losses = fit.losses
    assert sum(losses[-5:]) < sum(losses[:5])


@pytest.mark.parametrize("name", ["wgan", "dcgan"])
def test_gan_task_improves_its_sample_score(name):
    task = TASKS[name]
    model = task.model(0)
    data = task.data(0)
    before = task.evaluate(model, data)["frechet"]
    fit = task.train(model, data, steps=30)
    after = task.evaluate(model, data)["frechet"]
    assert len(fit.steps) == 30 and len(fit.critic_losses) == 30
    assert after < 0.7 * before, (before, after)


def test_registry_names_metrics_and_is_read_only():
    assert list(TASKS) == ["mlp", "cnn", "vit", "lstm", "charlm", "wgan", "dcgan"]
    assert {t.metric for t in TASKS.values()} == {"accuracy", "perplexity", "frechet"}
    with pytest.raises(TypeError):
        TASKS["x"] = TASKS["mlp"]  # type: ignore[index]
    with pytest.raises(ValueError, match=r"unknown model 'nope'.*mlp"):
        get_task("nope")
    t = TASKS["charlm"]
    assert t.better(5.0, 6.0) and not t.better(6.0, 5.0)
    assert t.reached(t.target) and not t.reached(t.target + 1)
    with pytest.raises(ValueError, match="steps"):
        TASKS["mlp"].train(TASKS["mlp"].model(0), TASKS["mlp"].data(0), steps=0)
    with pytest.raises(ValueError, match="lr"):
        TASKS["mlp"].train(TASKS["mlp"].model(0), TASKS["mlp"].data(0), steps=1, lr=0.0)
    with pytest.raises(ValueError, match="split"):
        TASKS["mlp"].evaluate(TASKS["mlp"].model(0), TASKS["mlp"].data(0), "train")


@pytest.mark.parametrize("name", list(TASKS))
def test_model_is_deterministic_per_seed_and_runs_on_its_example(name):
    task = TASKS[name]
    a, b, c = task.model(1), task.model(1), task.model(2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    data = task.data(0)
    dep = task.deployable(a).eval()
    with torch.no_grad():
        out = dep(data.example)
    assert out.shape[0] == data.example.shape[0]
    assert torch.isfinite(out).all()


def test_gan_deployable_is_the_generator_and_clip_rules_reach_both_nets():
    task = TASKS["wgan"]
    model = task.model(0)
    assert task.deployable(model) is model.generator
    seen = []

    def rule(m):
        seen.append(m)

    data = task.data(0)
    train_gan(model, data.train, steps=2, clip=rule, aux_clip=lambda m: seen.append(("aux", m)))
    assert seen.count(model.generator) == 2
    assert sum(1 for s in seen if isinstance(s, tuple) and s[1] is model.critic) == 10  # 5/step
    # the WGAN critic's weights stay inside [-c, c] (weight clipping after every critic step)
    c = 0.05
    assert max(float(p.detach().abs().max()) for p in model.critic.parameters()) <= c + 1e-7


def test_skipped_clip_stats_skip_the_gan_update():
    model = GAN("dcgan")
    before = copy.deepcopy(model.generator.state_dict())

    class Skip:
        skipped = True

    real = torch.rand(64, 1, 8, 8)
    train_gan(model, real, steps=1, clip=lambda m: Skip())
    after = model.generator.state_dict()
    # BatchNorm running statistics move in the forward pass; the weights must not
    assert all(
        torch.equal(before[k], after[k])
        for k in before
        if "running" not in k and "num_batches" not in k
    )


def test_model_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="patch"):
        TinyViT(image=8, patch=3)
    with pytest.raises(ValueError, match="heads"):
        TinyViT(dim=30, heads=4)
    with pytest.raises(ValueError, match="cell"):
        RowRNN(cell="tanh")
    with pytest.raises(ValueError, match="kind"):
        GAN("vae")
    with pytest.raises(ValueError, match="context"):
        CharLM(context=8)(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        train_gan(GAN("wgan"), torch.rand(10, 1, 8, 8), steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_gan(GAN("wgan"), torch.rand(100, 1, 8, 8), steps=0)


def test_charlm_is_causal():
    torch.manual_seed(0)
    model = CharLM(context=16, dim=32, depth=2, heads=4).eval()
    ids = torch.randint(0, 90, (2, 16))
    changed = ids.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 90
    with torch.no_grad():
        a, b = model(ids), model(changed)
    # positions before the change see exactly the same logits; later ones differ
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_perplexity_of_uniform_model_is_vocabulary_size():
    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, ids):
            return torch.zeros(*ids.shape, 97) + self.p

    windows = torch.randint(0, 97, (5, 9))
    assert perplexity(Uniform(), windows, batch_size=2) == pytest.approx(97.0, rel=1e-12)
    with pytest.raises(ValueError, match="windows"):
        perplexity(Uniform(), torch.zeros(0, 9, dtype=torch.long))
