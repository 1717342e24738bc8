"""MACs counted from the graph, checked by hand and against the published MobileNet figures."""

import keras
import pytest

from zoo.stats import count_macs, count_params


def test_macs_of_each_layer_kind_by_hand():
    x = keras.Input((8, 8, 4))
    a = keras.layers.Conv2D(6, 3, padding="same")(x)                 # 8*8*6 * 9*4
    b = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(a)  # 4*4*6 * 9
    c = keras.layers.Conv2DTranspose(5, 2, strides=2)(b)             # 4*4*6 * 4*5
    d = keras.layers.Conv2D(4, 1, groups=1)(c)                        # 8*8*4 * 5
    e = keras.layers.GlobalAveragePooling2D()(d)
    f = keras.layers.Dense(3)(e)                                      # 4*3
    model = keras.Model(x, f)
    assert count_macs(model) == 8 * 8 * 6 * 36 + 16 * 6 * 9 + 16 * 6 * 20 + 64 * 4 * 5 + 12
    assert count_params(model) == model.count_params()


@pytest.mark.parametrize(
    ("build", "published_mmacs"),
    [(lambda: keras.applications.MobileNet(input_shape=(224, 224, 3), weights=None), 569),
     (lambda: keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None), 300)],
)
def test_classifier_macs_match_the_papers(build, published_mmacs):
    assert count_macs(build()) / 1e6 == pytest.approx(published_mmacs, rel=0.01)


def test_dynamic_shapes_are_refused():
    x = keras.Input((None, None, 3))
    model = keras.Model(x, keras.layers.Conv2D(2, 1)(x))
    with pytest.raises(ValueError, match="fixed input size"):
        count_macs(model)
