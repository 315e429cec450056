"""Lab 4 NAS helpers: spaces, the ground-truth table, uniform multipliers and their checkpoints."""
import pandas as pd
import pytest
import torch

from labhelpers import metrics, models, nas, training
from labhelpers.nbtools import cells
from labhelpers.training import TrainSettings
from lab4_data import small_jsc


@pytest.fixture(scope="module")
def jsc(tmp_path_factory):
    return small_jsc(tmp_path_factory.mktemp("jsc"), n_rows=2000)


def test_spaces():
    assert len(nas.grid(nas.PER_LAYER_WIDTHS)) == 25
    assert len(nas.grid(nas.LARGE_WIDTHS)) == 256
    assert nas.uniform_hidden((1, 2, 5)) == [(16, 16), (32, 32), (80, 80)]
    assert nas.uniform_hidden((0.5,)) == [(8, 8)]
    with pytest.raises(ValueError, match="whole widths"):
        nas.uniform_hidden((0.3,))
    with pytest.raises(ValueError, match="positive integer"):
        nas.grid((16, 0))
    assert nas.params_of((32, 64)) == 32 + (16 * 32 + 32) + (32 * 64 + 64) + (64 * 5 + 5)


def test_ground_truth_has_one_row_per_architecture(jsc):
    table = nas.ground_truth(jsc, settings=TrainSettings(epochs=1, batch_size=256), progress=False)
    assert len(table) == 25
    assert not table.duplicated(["h1", "h2"]).any()
    assert set(zip(table.h1, table.h2)) == set(nas.grid(nas.PER_LAYER_WIDTHS))
    assert table.val_accuracy.between(0, 1).all() and table.test_accuracy.between(0, 1).all()
    assert (table.params == [nas.params_of(h) for h in zip(table.h1, table.h2)]).all()
    assert nas.heatmap(table).shape == (5, 5)
    with pytest.raises(ValueError, match="more than once"):
        nas.ground_truth(jsc, [(16, 16), (16, 16)], TrainSettings(epochs=1), progress=False)


def test_ground_truth_row_equals_training_that_architecture_alone(jsc):
    """The table is a lookup of 'train this architecture with this seed': the same numbers alone."""
    settings = TrainSettings(epochs=2, batch_size=256, seed=5)
    table = nas.ground_truth(jsc, [(8, 24), (24, 8)], settings, progress=False)
    torch.manual_seed(5)
    model = models.build("jsc-three-linear", hidden=[24, 8])
    training.train(model, jsc, settings, progress=False)
    val = metrics.accuracy_loss(model, jsc, "val")
    assert abs(table.loc[1, "val_accuracy"] - val["accuracy"]) <= 0.002


def test_subsample(jsc):
    small = training.subsample(jsc, 100)
    assert len(small.x_train) == 100 and torch.equal(small.x_val, jsc.x_val)
    assert training.subsample(jsc, None) is jsc
    with pytest.raises(ValueError, match="max_train_rows"):
        training.subsample(jsc, 1)


def test_uniform_search_saves_loadable_checkpoints(jsc, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=256)
    result = nas.uniform_search(jsc, (1, 2), settings, progress=False)
    assert result.table["multiplier"].tolist() == [1, 2]
    assert result.table["params"].tolist() == [661, 32 + 544 + 1056 + 165]
    paths = nas.save_checkpoints(result, jsc, tmp_path, settings)
    model, meta = models.load(paths[1], expected_model="jsc-three-linear", fingerprint=jsc.fingerprint)
    assert meta["channel_multiplier"] == 2 and meta["model_kwargs"] == {"hidden": [32, 32], "final_relu": True}
    val = metrics.accuracy_loss(model, jsc, "val")
    assert val["accuracy"] == pytest.approx(result.table.loc[1, "val_accuracy"], abs=1e-6)  # torchmetrics is float32


def test_ground_truth_means_over_init_seeds(jsc):
    one = {s: nas.ground_truth(jsc, [(8, 16)], TrainSettings(epochs=1, batch_size=256, seed=s), costs=False,
                               progress=False)
           for s in (4, 5)}
    both = nas.ground_truth(jsc, [(8, 16)], TrainSettings(epochs=1, batch_size=256, seed=4, n_seeds=2), costs=False,
                            progress=False)
    # init seeds 4 and 5 share seed 4's batch order: retrain seed 5's network on that order to compare
    torch.manual_seed(5)
    model = models.build("jsc-three-linear", hidden=[8, 16])
    training.train(model, jsc, TrainSettings(epochs=1, batch_size=256, seed=4), progress=False)
    second = metrics.accuracy_loss(model, jsc, "val")["accuracy"]
    expected = (one[4].loc[0, "val_accuracy"] + second) / 2
    assert both.loc[0, "val_accuracy"] == pytest.approx(expected, abs=0.002)
    assert "val_accuracy_std" in both.columns and "val_accuracy_std" not in one[4].columns
    with pytest.raises(ValueError, match="n_seeds=0"):
        nas.ground_truth(jsc, [(8, 16)], TrainSettings(epochs=1, n_seeds=0), progress=False)


def test_costs_come_from_metrics(jsc):
    table = nas.ground_truth(jsc, [(16, 32)], TrainSettings(epochs=1, batch_size=256), progress=False)
    row = table.iloc[0]
    assert row["params"] == 1013 and row["macs"] == 16 * 16 + 16 + 16 * 32 + 32 * 5  # BatchNorm folds to 16 MACs
    assert row["flops"] >= 2 * (16 * 16 + 16 * 32 + 32 * 5)
    assert row["bops"] > 0


def test_costs_follow_final_relu(jsc):
    """The ReLU on the logits adds 5 comparisons (FLOPs) and nothing else; tables count the network as trained."""
    with_relu, without = nas.costs_of((16, 32), final_relu=True), nas.costs_of((16, 32), final_relu=False)
    assert with_relu["flops"] - without["flops"] == 5
    assert {k: v for k, v in with_relu.items() if k != "flops"} == {k: v for k, v in without.items() if k != "flops"}
    table = nas.ground_truth(jsc, [(16, 32)], TrainSettings(epochs=1, batch_size=256, final_relu=False), progress=False)
    assert table.iloc[0]["flops"] == without["flops"]


def test_final_relu_variant_and_seed_summary(jsc, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=256, n_seeds=2, final_relu=False)
    result = nas.uniform_search(jsc, (1, 2), settings, progress=False)
    assert result.table["multiplier"].tolist() == [1, 2, 1, 2]
    assert result.history.groupby("seed").size().to_dict() == {0: 2, 1: 2}
    summary = nas.seed_summary(result.table, "multiplier")
    assert summary["seeds"].tolist() == [2, 2] and summary["params"].tolist() == [661, 1797]
    paths = nas.save_checkpoints(result, jsc, tmp_path, settings)
    assert len(paths) == 2  # only init seed 0
    model, meta = models.load(paths[0])
    assert meta["model_kwargs"] == {"hidden": [16, 16], "final_relu": False}
    assert not isinstance(model.seq_blocks[-1], torch.nn.ReLU)


def test_evaluate_architecture_is_its_ground_truth_row(jsc):
    settings = TrainSettings(epochs=1, batch_size=256, seed=2, n_seeds=2, final_relu=False)
    measured = nas.evaluate_architecture((16, 8), jsc, settings)
    row = nas.ground_truth(jsc, [(16, 8)], settings, progress=False).iloc[0]
    assert measured["accuracy"] == row["val_accuracy"] and measured["params"] == row["params"]
    assert isinstance(measured["params"], int)
    with pytest.raises(ValueError, match="split='train'"):
        nas.evaluate_architecture((16, 8), jsc, split="train")


def test_saved_table_round_trips_exactly_and_refuses_other_settings(tmp_path):
    table = pd.DataFrame({"h1": [8, 16], "h2": [8, 8], "val_accuracy": [0.1 + 0.2, 1 / 3], "bops": [2.5e5, 8.839149e6]})
    path = nas.save_table(table, tmp_path / "t.csv", TrainSettings(epochs=4), {"widths": [8, 16]})
    loaded = nas.load_table(path, TrainSettings(epochs=4), {"widths": [8, 16]})
    assert (loaded.to_numpy() == table.to_numpy()).all() and list(loaded.columns) == list(table.columns)
    with pytest.raises(ValueError, match=r"other settings \(epochs: stored \[4\], asked \[10\]\)"):
        nas.load_table(path, TrainSettings(epochs=10), {"widths": [8, 16]})
    with pytest.raises(FileExistsError, match="--force"):
        nas.save_table(table, path, TrainSettings(epochs=4), {})
    with pytest.raises(FileNotFoundError, match="retrain_large"):
        nas.load_table(tmp_path / "missing.csv", TrainSettings(), {})


def test_committed_large_table_matches_the_lab_settings():
    from labhelpers import data

    jsc = data.load_jsc("sim", verbose=False)
    settings = TrainSettings(epochs=4, batch_size=512, lr=1e-3, seed=0, final_relu=False)
    context = {"dataset_fingerprint": jsc.fingerprint, "widths": list(range(8, 129, 8)), "dtype": "float64"}
    table = nas.load_table(cells.repo_dir() / "data" / "lab4_large_architectures.csv", settings, context)
    assert len(table) == 256 and {(h1, h2) for h1, h2 in zip(table.h1, table.h2)} == set(nas.grid(context["widths"]))
