"""The batched trainer gives each network the result of training it alone.

Tolerance proved here, and why: the batched path computes the same arithmetic as
``labhelpers.training.train`` (same init, same batches, per-network mean loss, elementwise Adam), but
``bmm`` and ``nn.Linear`` sum their products in different orders, so float32 results differ in the
last bits (~1e-7 relative per operation). Over the 60 Adam steps of these tests the weights of
every network stay within 1e-5 (absolute, on weights of order 0.1..1; observed: < 1e-6), training
losses within 1e-5, and validation/test accuracies within 0.2 percentage points (observed: equal).
Padded buckets are tested too: padding must not move any real unit.

Over a full run the rounding differences grow with the number of steps (training is chaotic), so
the 0.2-point goal is measured, not unit-tested: benchmarks/batched_equivalence.py, 50 networks, 10
epochs (1250 steps) on the simulated JSC gave |batched - alone| final val accuracy mean 0.030, max
0.169 points (50/50 within 0.2), test accuracy mean 0.032, max 0.265 (49/50 within 0.2), against
a seed-to-seed spread of 8.8 points (mean) for the same architectures.
"""
import pytest
import torch

from labhelpers import metrics, models, training
from labhelpers.training import TrainSettings
from lab4_data import small_jsc

HIDDEN = [(16, 16), (32, 64), (16, 16), (80, 48), (8, 8)]
SEEDS = [0, 1, 2, 3, 4]
DATA_SEED = 7
EPOCHS = 3
BATCH = 128
WEIGHT_ATOL = 1e-5
ACCURACY_ATOL = 0.002  # 0.2 percentage points


@pytest.fixture(scope="module")
def jsc(tmp_path_factory):
    return small_jsc(tmp_path_factory.mktemp("jsc"))


@pytest.fixture(scope="module")
def separately(jsc):
    """Each network on its own: models.build after manual_seed(seed), then training.train(seed=DATA_SEED)."""
    cache = {}

    def get(final_relu):
        if final_relu not in cache:
            cache[final_relu] = _separately(jsc, final_relu)
        return cache[final_relu]
    return get


def _separately(jsc, final_relu):
    out = []
    for hidden, seed in zip(HIDDEN, SEEDS):
        torch.manual_seed(seed)
        model = models.build("jsc-three-linear", hidden=list(hidden), final_relu=final_relu)
        history = training.train(model, jsc, TrainSettings(epochs=EPOCHS, batch_size=BATCH, seed=DATA_SEED),
                                 progress=False)
        out.append((model, history, metrics.accuracy_loss(model, jsc, "val"), metrics.accuracy_loss(model, jsc, "test")))
    return out


@pytest.mark.parametrize("final_relu", [True, False])
@pytest.mark.parametrize("overhead_macs", [0, 10**9])  # 0: one exact bucket per width; 1e9: all padded into one
def test_batched_equals_separate_training(jsc, separately, final_relu, overhead_macs):
    settings = TrainSettings(seed=DATA_SEED, epochs=EPOCHS, batch_size=BATCH, final_relu=final_relu)
    result = training.train_many(HIDDEN, jsc, settings, seeds=SEEDS, return_models=True, overhead_macs=overhead_macs,
                                 dtype=torch.float32, progress=False)  # training.train's precision
    n_buckets = len(training.plan_buckets(HIDDEN, overhead_macs))
    assert n_buckets == (4 if overhead_macs == 0 else 1)  # (16, 16) twice shares a bucket even at 0
    for k, (model, history, val, test) in enumerate(separately(final_relu)):
        row = result.table.loc[k]
        assert (row.h1, row.h2, row.seed) == (*HIDDEN[k], SEEDS[k])
        ref, got = model.state_dict(), result.models[k].state_dict()
        assert ref.keys() == got.keys()
        for name in ref:  # weights, biases and BatchNorm running statistics
            torch.testing.assert_close(got[name].float(), ref[name].float(), atol=WEIGHT_ATOL, rtol=0, msg=name)
        assert abs(row.train_loss - history["train_loss"].iloc[-1]) < 1e-5
        hist = result.history[result.history.network == k].set_index("epoch")
        assert (hist["val_accuracy"] - history["val_accuracy"]).abs().max() <= ACCURACY_ATOL
        assert abs(row.val_accuracy - val["accuracy"]) <= ACCURACY_ATOL
        assert abs(row.test_accuracy - test["accuracy"]) <= ACCURACY_ATOL
        assert abs(row.test_loss - test["loss"]) < 1e-4
        assert row.params == sum(p.numel() for p in model.parameters())


def test_the_networks_learn_and_differ(jsc):
    """Guard against a trivially 'equal' trainer that trains nothing."""
    result = training.train_many(HIDDEN[:2], jsc, TrainSettings(seed=0, epochs=EPOCHS, batch_size=BATCH, lr=1e-2),
                                 progress=False)
    assert (result.table.val_accuracy > 0.5).all()  # chance is 0.2
    assert result.table.val_accuracy.nunique() == 2
    assert list(result.history.columns) == ["network", "epoch", "train_loss", "val_loss", "val_accuracy"]
    assert len(result.history) == 2 * EPOCHS


def test_same_seed_retrains_to_the_same_result(jsc):
    settings = TrainSettings(seed=3, epochs=2, batch_size=BATCH)
    a = training.train_many([(32, 16)], jsc, settings, progress=False).table
    b = training.train_many([(32, 16), (8, 8)], jsc, settings, progress=False).table
    assert a.loc[0, "val_accuracy"] == b.loc[0, "val_accuracy"]
    assert abs(a.loc[0, "val_loss"] - b.loc[0, "val_loss"]) < 1e-6


def test_plan_buckets_covers_every_network_once():
    hidden = [(w1, w2) for w1 in range(8, 129, 8) for w2 in range(8, 129, 8)] + [(16, 16)] * 3
    buckets = training.plan_buckets(hidden)
    assert sorted(i for b in buckets for i in b) == list(range(len(hidden)))
    same = [b for b in buckets if any(hidden[i] == (16, 16) for i in b)]
    assert len(same) == 1  # identical architectures never get split


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden": [(16, 0)]}, "two positive integer widths"),
    ({"hidden": [(16, 16)], "seeds": [1, 2]}, "one per network"),
    ({"hidden": [(16, 16)], "epochs": 0}, "epochs=0"),
    ({"hidden": [(16, 16)], "lr": 0.0}, "lr=0.0"),
    ({"hidden": []}, "at least one"),
    ({"hidden": [(16, 16)], "patience": 2}, "patience=2: the batched trainer runs every epoch"),
    ({"hidden": [(16, 16)], "seeds": [1], "n_seeds": 2}, "seeds .* or n_seeds, not both"),
])
def test_bad_arguments(jsc, kwargs, message):
    settings = {k: kwargs.pop(k) for k in ("epochs", "lr", "patience", "n_seeds") if k in kwargs}
    with pytest.raises(ValueError, match=message):
        training.train_many(data=jsc, settings=TrainSettings(**settings), progress=False, **kwargs)
