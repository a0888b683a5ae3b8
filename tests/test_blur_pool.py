import pytest
import torch

from ppsearch.config import parse_antialias
from ppsearch.layers import BlurPool2d


@pytest.mark.parametrize("size, taps", [
    (2, [1, 1]), (3, [1, 2, 1]), (4, [1, 3, 3, 1]), (5, [1, 4, 6, 4, 1]),
    (6, [1, 5, 10, 10, 5, 1]), (7, [1, 6, 15, 20, 15, 6, 1]),
])
def test_filters_are_normalised_binomial_taps(size, taps):
    t = torch.tensor(taps, dtype=torch.float32)
    expected = torch.outer(t, t) / t.sum() ** 2
    torch.testing.assert_close(BlurPool2d(2, size).filt[1, 0], expected)


@pytest.mark.parametrize("size", range(1, 8))
@pytest.mark.parametrize("hw", [1, 2, 3, 8, 9])
def test_output_shape_matches_a_strided_conv_even_on_maps_smaller_than_the_filter(size, hw):
    x = torch.randn(2, 3, hw, hw)
    y = BlurPool2d(3, size, stride=2)(x)
    assert y.shape == (2, 3, (hw + 1) // 2, (hw + 1) // 2)


def test_blur_keeps_constants_and_size_one_is_plain_subsampling():
    x = torch.full((1, 2, 6, 6), 3.0)
    torch.testing.assert_close(BlurPool2d(2, 5)(x), torch.full((1, 2, 3, 3), 3.0))
    z = torch.arange(36.0).view(1, 1, 6, 6)
    assert torch.equal(BlurPool2d(1, 1)(z), z[:, :, ::2, ::2])


def test_rect2_averages_each_2x2_cell_with_reflect_padding_after():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    expected = torch.nn.functional.avg_pool2d(x, 2)
    torch.testing.assert_close(BlurPool2d(1, 2)(x), expected)


@pytest.mark.parametrize("value, size", [("none", 0), (None, 0), ("rect2", 2), ("tri3", 3), ("Bin5", 5), (7, 7), ("4", 4)])
def test_parse_antialias_names_and_sizes(value, size):
    assert parse_antialias(value) == size


@pytest.mark.parametrize("value", ["gauss", 8, 0.5, "tri"])
@pytest.mark.bad_input
def test_parse_antialias_rejects_unknown_filters(value):
    with pytest.raises(ValueError, match="unknown antialias filter .*allowed: none, rect2, tri3, bin5, 1, 2"):
        parse_antialias(value)


def test_the_schema_allows_exactly_the_filter_sizes_the_layer_builds():
    from ppsearch import config
    from ppsearch.layers import blur_pool

    assert list(config.FILTER_SIZES) == list(blur_pool.FILTER_SIZES)
    with pytest.raises(ValueError, match=r"^filt_size must be in 1\.\.7, got 8$"):
        BlurPool2d(2, 8)
