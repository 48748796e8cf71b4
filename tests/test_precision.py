"""precision="auto": bf16 only where the hardware has bf16 units, fp32 elsewhere; explicit choices pass through."""

import pytest
import torch

from fkd_hf.generation import GenerateConfig
from fkd_hf.models import precision


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "amx_bf16", "amx_tile"}, "bf16"),
        ({"avx512f", "avx512_bf16"}, "bf16"),
        ({"avx2", "avx512f"}, "fp32"),
        (set(), "fp32"),
    ],
)
def test_auto_picks_bf16_only_on_cpus_with_bf16_units(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert precision.resolve_precision("auto", "cpu") == expected


def test_auto_is_fp32_on_devices_without_a_known_bf16_path():
    assert precision.resolve_precision("auto", "meta") == "fp32"


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_explicit_precision_passes_through(name):
    assert precision.resolve_precision(name, "cpu") == name


def test_unknown_precision_is_an_error_that_lists_the_choices():
    with pytest.raises(ValueError, match="auto or one of fp32, bf16, fp16"):
        precision.resolve_precision("int8", "cpu")
    with pytest.raises(ValueError, match="auto or one of fp32, bf16, fp16"):
        GenerateConfig(dataset="x", output_dir="y", precision="fp64").validate()


@pytest.mark.parametrize("flags", [{"amx_bf16"}, {"avx2"}])
def test_generation_records_the_precision_auto_chose(generate_config, monkeypatch, flags):
    from fkd_hf import generate, load_label_set

    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset(flags))
    expected = precision.resolve_precision("auto", "cpu")
    config = generate_config(precision="auto")
    generate(config)
    assert load_label_set(config.output_dir).metadata.precision == expected
    assert generate(generate_config(precision=expected)).seconds == 0.0  # the same run: nothing to redo
