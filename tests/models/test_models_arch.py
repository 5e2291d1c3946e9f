"""Architecture config: reference sizes, width multiplier, validation errors."""

import pytest

from ditmos.errors import DitmosError
from ditmos.models.arch import architecture_from_dict, block_lengths, check_fits, costs, default_architecture_dict


def test_reference_macs_match_the_authors_model():
    # the paper's cost (docs/method.md): selector 91,752 MACs + one classifier 131,176 MACs on 151x3, 17 classes
    arch = architecture_from_dict(default_architecture_dict("har"))
    c = costs(arch, (151, 3), 17)
    assert c["selector"]["macs"] == 91_752
    assert c["classifier"]["macs"] == 131_176
    assert c["ditmos"]["macs"] == 91_752 + 131_176
    assert c["ditmos"]["params"] == c["selector"]["params"] + 6 * c["classifier"]["params"]
    assert c["ditmos"]["flash_bytes"] == c["ditmos"]["weights"] + 4 * c["ditmos"]["biases"]


def test_block_lengths_valid_conv_and_floor_pool():
    arch = architecture_from_dict(default_architecture_dict("har"))
    assert block_lengths(arch.selector, 128) == [57, 24, 10]
    assert block_lengths(arch.selector, 151) == [68, 30, 13]


def test_width_scales_selector_and_classifier_channels_not_strong():
    base = default_architecture_dict("har")
    half = architecture_from_dict(base, width=0.5)
    assert [b.filters for b in half.selector.blocks] == [4, 4, 2]
    assert [b.filters for b in half.classifier.blocks] == [4, 4, 2]
    assert half.classifier.fc == (32,)
    assert [b.filters for b in half.strong.blocks] == [64, 64, 32, 32, 32, 16]
    tiny = architecture_from_dict(base, width=0.01)
    assert min(b.filters for b in tiny.selector.blocks) == 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(colour="red"), "unknown key(s) ['colour'] in config 'architecture'"),
        (lambda d: d["selector"]["blocks"][0].update(stride=2), "unknown key(s) ['stride']"),
        (lambda d: d.update(shared_blocks=[3]), "shared_blocks entry 3 must be a block number in 1..2"),
        (lambda d: d.update(K=1), "architecture.K' must be an integer >= 2"),
        (lambda d: d["classifier"]["blocks"].pop(), "classifier has 2 blocks but the selector has 3"),
        (lambda d: d["selector"]["blocks"][0].update(filters=0), "filters' must be an integer >= 1"),
    ],
)
def test_bad_architecture_is_rejected_with_a_clear_message(mutate, message):
    d = default_architecture_dict("har")
    mutate(d)
    with pytest.raises(DitmosError) as e:
        architecture_from_dict(d)
    assert message in str(e.value)


def test_shapes_that_do_not_fit_are_rejected():
    arch = architecture_from_dict(default_architecture_dict("har"))
    with pytest.raises(DitmosError, match="block 1 \\(kernel 15\\) does not fit.*12 steps"):
        check_fits(arch, (12, 3))
    d = default_architecture_dict("har")
    d["classifier"]["blocks"][0]["kernel"] = 13  # selector block 1 is 15: lengths differ
    with pytest.raises(DitmosError, match="shared blocks need equal lengths"):
        check_fits(architecture_from_dict(d), (128, 6))
    check_fits(architecture_from_dict(default_architecture_dict("mfcc")), (32, 13))


@pytest.mark.parametrize(
    "spec, shape",
    [("hapt", (128, 6)), ("unimib:/data", (151, 3)), ("fsdd", (32, 13)), ("speech_commands:/d", (49, 13))],
)
def test_presets_fit_their_dataset_families(spec, shape):
    from ditmos.training.config import architecture, resolve_config

    for preset in ("quick", "full"):
        for width in (0.25, 0.5, 1.0):
            check_fits(architecture(resolve_config(spec, preset, width=width)), shape)
