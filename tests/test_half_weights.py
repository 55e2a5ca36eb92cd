"""float16 weights on the CPU (deployments.engine.half_weights): the same numbers as a Linear
layer whose weights were rounded to float16, float32 everywhere else; the default for a float32
CPU model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deployments.engine.half_weights import HalfWeightLinear, use_half_weights
from deployments.engine.model_loader import load_model, resolve_quantization
from deployments.settings import ModelSettings


@pytest.mark.parametrize("bias", [False, True])
def test_a_half_weight_layer_computes_the_float16_rounded_weights_in_float32(bias: bool) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40, bias=bias)
    half = HalfWeightLinear(linear)
    x = torch.randn(3, 5, 96)
    rounded = torch.nn.functional.linear(
        x, linear.weight.detach().half().float(), None if linear.bias is None else linear.bias
    )
    out = half(x)
    assert out.dtype == torch.float32 and out.shape == (3, 5, 40)
    torch.testing.assert_close(out, rounded, atol=1e-4, rtol=1e-4)
    # and differs from the float32 layer only by that rounding
    assert (out - linear(x)).abs().max() < 1e-2


def test_every_linear_layer_is_replaced_and_the_model_still_generates(
    tiny_model_dir: Path,
) -> None:
    from deployments.engine.generator import TextGenerator
    from deployments.post.prompts import build_job
    from deployments.schemas import GenerationResult, PostRequest
    from deployments.settings import GenerationSettings

    loaded = load_model(ModelSettings(model=str(tiny_model_dir), device="cpu"))
    assert (loaded.dtype, loaded.quantization) == ("float32", "float16_weights"), "the default"
    modules = list(loaded.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in modules), "a Linear layer stayed float32"
    assert isinstance(loaded.model.lm_head, HalfWeightLinear)
    job = build_job("title", PostRequest(topic="Half weights"), 5, GenerationSettings())
    result = TextGenerator(loaded, GenerationSettings()).generate_batch([job])[0]
    assert isinstance(result, GenerationResult) and 0 < result.new_tokens <= job.max_new_tokens


def test_the_embeddings_keep_their_float32_weights(tiny_model_dir: Path) -> None:
    plain = load_model(ModelSettings(model=str(tiny_model_dir), device="cpu", quantization="none"))
    embeddings = plain.model.get_input_embeddings().weight.detach().clone()
    assert use_half_weights(plain.model) > 0
    assert torch.equal(plain.model.get_input_embeddings().weight, embeddings)


def test_auto_means_float16_weights_only_for_a_float32_model_on_cpu() -> None:
    assert resolve_quantization("auto", "cpu", torch.float32) == "float16_weights"
    assert resolve_quantization("auto", "cpu", torch.bfloat16) == "none"
    assert resolve_quantization("auto", "cuda", torch.bfloat16) == "none"
    assert resolve_quantization("none", "cpu", torch.float32) == "none"
    assert resolve_quantization("int8", "cpu", torch.float32) == "int8"


def test_float16_weights_on_an_explicit_gpu_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="float16_weights"):
        ModelSettings(device="cuda", quantization="float16_weights")
