"""``configs/methods/<method>.yaml`` says what each ``--method`` is (preset, loss recipe): every file
builds, each maps to the recipe the releases use, and a bad file is refused naming it."""

import pytest

from paddle_binbert.distill.losses import LOSS_RECIPES, DistillLossConfig, loss_recipe
from paddle_binbert.distill.recipes import get_method, method_names
from paddle_binbert.quant.config import QuantConfig
from paddle_binbert.train import defaults as D


def test_every_method_file_builds_a_method():
    assert set(method_names()) == {"bibert", "bit", "bwn", "binarybert_ternary", "binarybert", "tinybert"}
    for name in method_names():
        method = get_method(name)
        assert method.name == name and method.description
        QuantConfig.from_preset(method.quant_preset)
        assert isinstance(method.default_loss(2.0), DistillLossConfig)


@pytest.mark.parametrize(
    "name, preset, weights",
    [
        (
            "bibert",
            "bibert",
            {"pred": 1.0, "hard_label": 0.5, "query": 1.0, "key": 1.0, "value": 1.0, "hid_distance": 1.0},
        ),
        ("bit", "bit", {"pred": 1.0, "hid_mse": 1.0}),
        ("bwn", "bwn", {"pred": 1.0, "att_mse": 1.0, "hid_mse": 1.0}),
        ("binarybert_ternary", "binarybert_ternary", {"att_mse": 1.0, "hid_mse": 1.0}),
        ("binarybert", "binarybert", {"pred": 1.0}),
        ("tinybert", "fp", {"pred": 1.0, "att_mse": 1.0, "hid_mse": 1.0}),
    ],
)
def test_methods_keep_their_presets_and_losses(name, preset, weights):
    method = get_method(name)
    assert method.quant_preset == preset
    assert method.default_loss().weights() == weights


def test_temperature_reaches_the_recipes_that_take_one():
    assert loss_recipe("bit", 3.0).temperature == 3.0 and loss_recipe("tinybert", 2.0).temperature == 2.0
    assert loss_recipe("bibert", 3.0).temperature == 1.0  # as a chain stage's loss: the release's T = 1
    assert loss_recipe("binarybert_stage1").lr_multiplier == 2.5
    with pytest.raises(ValueError, match=r"unknown loss recipe 'nope'; valid recipes: \['tinybert'"):
        loss_recipe("nope")
    assert all(isinstance(loss_recipe(r), DistillLossConfig) for r in LOSS_RECIPES)


def _write_methods(tmp_path, monkeypatch, **files):
    (tmp_path / "methods").mkdir()
    (tmp_path / "tasks").mkdir()
    for name, text in files.items():
        (tmp_path / "methods" / f"{name}.yaml").write_text(text)
    monkeypatch.setenv(D.CONFIG_DIR_ENV, str(tmp_path))


def test_bad_method_files_are_refused_naming_the_file(tmp_path, monkeypatch):
    _write_methods(
        tmp_path,
        monkeypatch,
        nopreset="loss: bit\ndescription: x\n",
        badpreset="quant_preset: bogus\nloss: bit\ndescription: x\n",
        badloss="quant_preset: bit\nloss: bogus\ndescription: x\n",
        mine="quant_preset: bit\nloss: tinybert\ndescription: my own recipe\nbatch_size: 8\n",
        renamed="method: bit\nquant_preset: bit\nloss: bit\ndescription: x\n",
    )
    assert method_names() == ("badloss", "badpreset", "mine", "nopreset", "renamed")
    with pytest.raises(ValueError, match=r"renamed\.yaml: method: 'bit' differs from the file name"):
        get_method("renamed")
    with pytest.raises(ValueError, match=r"nopreset\.yaml: \['quant_preset'\] must be set"):
        get_method("nopreset")
    with pytest.raises(ValueError, match=r"badpreset\.yaml: unknown quantization preset 'bogus'"):
        get_method("badpreset")
    with pytest.raises(ValueError, match=r"badloss\.yaml: unknown loss recipe 'bogus'"):
        get_method("badloss")
    with pytest.raises(ValueError, match=r"unknown --method 'bibert'; valid methods: \['badloss'"):
        get_method("bibert")
    # a new method is one file: preset + loss + defaults
    mine = get_method("mine")
    assert (mine.quant_preset, mine.default_loss().weights()) == ("bit", {"pred": 1.0, "att_mse": 1.0, "hid_mse": 1.0})
    assert D.training_defaults("mine", "SST-2")["batch_size"] == 8
