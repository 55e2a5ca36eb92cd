"""Linear layers whose weights are kept in float16 on the CPU, activations in float32.

A decode step at the batch sizes this service runs is mostly reading weights: a float32
SmolLM2-135M reads ~540 MB per step, which on these machines' memory takes longer than the
arithmetic (benchmarks/results/2026-12-03-engine-profile/). Kept in float16, the same layers read
half of that. fbgemm's float16 GEMM (in torch itself: `quantized.linear_prepack_fp16` and
`quantized.linear_dynamic_fp16`) widens the weights to float32 inside its kernel with F16C, so
activations, accumulation and outputs stay float32: the only loss is rounding each weight to
float16's 11 bits (a GGUF model's weights come from 4- or 8-bit blocks, far coarser).

Measured on the AVX2 machines here, against what else torch offers for a CPU: bfloat16 matmuls
and torch's int8/int4 weight-only kernels (`_weight_int8pack_mm`, `_weight_int4pack_mm_for_cpu`,
the CPU paths torchao's weight-only layouts call) ran 2-40x slower than float32 at 20 rows; only
fbgemm's kernels beat it. Its int8 kernel (`model.quantization: int8`) also quantizes the
activations, which cost quality; float16 weights do not.
"""

from __future__ import annotations

import torch


def half_weights_supported() -> bool:
    """Whether this torch has fbgemm's float16 GEMM (x86 builds do)."""
    return "fbgemm" in torch.backends.quantized.supported_engines and hasattr(
        torch.ops.quantized, "linear_dynamic_fp16"
    )


class HalfWeightLinear(torch.nn.Module):
    """`torch.nn.Linear` with its weight packed in float16 for fbgemm; float32 in and out."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        bias = None if linear.bias is None else linear.bias.detach().float()
        self._packed = torch.ops.quantized.linear_prepack_fp16(
            linear.weight.detach().float().contiguous(), bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A decode step calls this ~200 times: no conversion or copy that is not needed.
        flat = x.reshape(-1, self.in_features)
        if flat.dtype != torch.float32:
            flat = flat.float()
        out = torch.ops.quantized.linear_dynamic_fp16(flat.contiguous(), self._packed)
        out = out.view(*x.shape[:-1], self.out_features)
        return out if x.dtype == torch.float32 else out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, float16 weights"


def use_half_weights(model: torch.nn.Module) -> int:
    """Every Linear layer of `model` (the output head included) as a HalfWeightLinear, in place;
    returns how many. A head tied to the input embeddings gets a float16 copy of its own; the
    embeddings keep theirs (a lookup reads one row per token, never the whole matrix)."""
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(module, name, HalfWeightLinear(child))
                replaced += 1
    return replaced
