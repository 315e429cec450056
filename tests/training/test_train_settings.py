"""TrainSettings: the one home of the training settings; checked when made, frozen, read from TOML."""
import dataclasses

import pytest

from labhelpers.training import TrainSettings


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("batch_size", 2.5), ("lr", 0.0), ("lr", float("nan")), ("seed", -1), ("n_seeds", True),
    ("final_relu", 1), ("max_train_rows", 1), ("patience", 0),
])
def test_a_bad_value_is_one_line_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}={value!r} must be") as err:
        TrainSettings(**{field: value})
    assert "\n" not in str(err.value)


def test_frozen_and_plain_data_round_trip():
    settings = TrainSettings(epochs=4, final_relu=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.epochs = 5
    assert TrainSettings(**settings.to_dict()) == settings
    assert settings.to_dict()["max_train_rows"] is None and settings.init_seeds(2) == [0, 0]
    assert TrainSettings(seed=3, n_seeds=2).init_seeds(2) == [3, 3, 4, 4]


def test_from_toml_defaults_zero_as_none_and_errors_name_the_table():
    where = "[search.search_space.train]"
    assert TrainSettings.from_toml({}, where) == TrainSettings()
    got = TrainSettings.from_toml({"epochs": 2, "lr": 1e-2, "max_train_rows": 0, "patience": 0}, where)
    assert got == TrainSettings(epochs=2, lr=1e-2)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\]; allowed: \['batch_size', 'epochs'"):
        TrainSettings.from_toml({"epoch": 2}, where)
    with pytest.raises(ValueError, match=r"^\[search.search_space.train\] batch_size=0 must be a positive integer"):
        TrainSettings.from_toml({"batch_size": 0}, where)
