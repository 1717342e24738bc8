"""Named archs, option routing and the bad inputs of build_model."""

import numpy as np
import pytest

import zoo
from zoo.errors import ConfigError
from zoo.models import ARCHS
from zoo.registry import UnknownNameError


def small_alpha(backbone: str) -> float:
    return 0.25 if backbone == "mobilenet_v1" else 0.35


@pytest.mark.parametrize("arch", zoo.list_archs())
def test_every_named_arch_builds(arch):
    spec = ARCHS.get(arch)
    model = zoo.build_model(arch, alpha=small_alpha(spec.backbone), input_size=(64, 96),
                            num_classes=5)
    assert model(np.zeros((1, 64, 96, 3), "float32")).shape == (1, 64, 96, 5)
    assert model.name == arch


def test_one_named_arch_per_backbone_family():
    families = {ARCHS.get(a).backbone for a in zoo.list_archs()}
    assert families == set(zoo.list_backbones())


def test_mobileunet_is_mobilenet_v1_with_transposed_unet():
    spec = ARCHS.get("mobileunet")
    assert (spec.backbone, spec.head, dict(spec.head_options)) == (
        "mobilenet_v1", "unet", {"upsample": "transpose"})


def test_options_reach_backbone_and_head():
    model = zoo.build_model("mobilenet_v3_small_lraspp", alpha=0.35, input_size=64,
                            minimalistic=True, filters=32)
    assert not any("squeeze_excite" in layer.name for layer in model.layers)
    assert model.get_layer("lraspp_cbr_conv").filters == 32


def test_none_options_keep_the_arch_defaults():
    model = zoo.build_model("mobileunet", alpha=0.25, input_size=64, upsample=None)
    assert any(layer.name == "unet_up1_transpose" for layer in model.layers)


def test_named_arch_with_a_swapped_head():
    model = zoo.build_model("mobileunet", head="lraspp", alpha=0.25, input_size=64)
    assert model.name == "mobilenet_v1_lraspp"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"arch": "mobileunett"}, UnknownNameError, "did you mean 'mobileunet'"),
        ({"backbone": "mobilenet_v5", "head": "unet"}, UnknownNameError,
         "unknown backbone 'mobilenet_v5'"),
        ({"backbone": "mobilenet_v2", "head": "unett"}, UnknownNameError,
         "did you mean 'unet'"),
        ({"backbone": "mobilenet_v2"}, ConfigError, "give arch=NAME, or both"),
        ({"arch": "mobileunet", "alpha": 0.3}, ConfigError, "allowed: 0.25, 0.5, 0.75, 1.0"),
        ({"arch": "mobileunet", "input_size": 100}, ConfigError, "multiple of 32"),
        ({"arch": "mobileunet", "input_size": 0}, ConfigError, "multiple of 32"),
        ({"arch": "mobileunet", "num_classes": 0}, ConfigError, "num_classes must be"),
        ({"arch": "mobileunet", "num_classes": 2.5}, ConfigError, "num_classes must be"),
        ({"arch": "mobileunet", "dropout": 0.1}, ConfigError, "unknown option 'dropout'"),
    ],
)
def test_bad_input_raises_a_one_line_value_error(kwargs, error, message):
    with pytest.raises(error, match=message) as err:
        zoo.build_model(**{"alpha": 0.25, "input_size": 64, **kwargs})
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
