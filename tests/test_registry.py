import pytest

from zoo.registry import Registry, RegistryError, UnknownNameError


def make() -> Registry:
    reg = Registry("widget")
    for name in ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "unet"):
        reg.register(name, object())
    return reg


def test_register_get_and_decorator():
    reg = make()

    @reg.register("lraspp")
    def lraspp():
        return 1

    assert reg.get("lraspp") is lraspp
    assert "lraspp" in reg and len(reg) == 5


def test_list_filters_by_glob_and_sorts():
    reg = make()
    assert reg.list("mobilenet_v3*") == ["mobilenet_v3_large", "mobilenet_v3_small"]
    assert reg.list() == sorted(reg.list())
    assert reg.list("nothing*") == []


def test_duplicate_name_raises():
    reg = make()
    with pytest.raises(RegistryError, match="'unet' is already registered"):
        reg.register("unet", object())


def test_unknown_name_lists_valid_names_and_closest_match():
    reg = make()
    with pytest.raises(UnknownNameError) as err:
        reg.get("mobilenet_v3_lage")
    message = str(err.value)
    assert "unknown widget 'mobilenet_v3_lage'" in message
    assert "did you mean 'mobilenet_v3_large'" in message
    assert "mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small, unet" in message
    assert "\n" not in message
    assert isinstance(err.value, ValueError)


def test_unknown_name_without_close_match_has_no_hint():
    with pytest.raises(UnknownNameError) as err:
        make().get("zzzz")
    assert "did you mean" not in str(err.value)
