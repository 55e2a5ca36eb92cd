"""The matrix products torch offers a CPU decode step, on this model's shapes, one thread:
milliseconds per call (median of 20 after 3 warm-ups) for 1 and 20 rows of activations.

    .venv/bin/python benchmarks/results/2026-12-03-float16-weights/kernels.py > kernels.md
"""

import platform
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
torch.manual_seed(0)
SHAPES = {"MLP up (1536x576)": (1536, 576), "output head (49152x576)": (49152, 576)}
ROWS = (1, 20)


def timed(call, repeats: int = 20) -> float:
    with torch.inference_mode():
        for _ in range(3):
            call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def kernels(weight: torch.Tensor, x: torch.Tensor) -> dict:
    out_features, in_features = weight.shape
    fp16 = torch.ops.quantized.linear_prepack_fp16(weight, None)
    int8_dynamic = torch.ao.nn.quantized.dynamic.Linear(in_features, out_features)
    int8_dynamic.set_weight_bias(
        torch.quantize_per_channel(
            weight,
            weight.abs().amax(1) / 127,
            torch.zeros(out_features, dtype=torch.long),
            0,
            torch.qint8,
        ),
        None,
    )
    scales = weight.abs().amax(1) / 127
    int8_weights = torch.round(weight / scales[:, None]).to(torch.int8)
    int4 = torch._convert_weight_to_int4pack_for_cpu(
        torch.randint(0, 16, weight.shape, dtype=torch.int32), 1
    )
    int4_scales = torch.rand(in_features // 32, out_features, 2)
    bf16_weight, bf16_x = weight.bfloat16(), x.bfloat16()
    return {
        "float32 (F.linear)": lambda: torch.nn.functional.linear(x, weight),
        "bfloat16 (F.linear)": lambda: torch.nn.functional.linear(bf16_x, bf16_weight),
        "float16 weights (fbgemm, kept)": lambda: torch.ops.quantized.linear_dynamic_fp16(x, fp16),
        "int8 dynamic (fbgemm, opt-in)": lambda: int8_dynamic(x),
        "int8 weights (_weight_int8pack_mm)": lambda: torch._weight_int8pack_mm(
            x, int8_weights, scales
        ),
        "int4 weights (_weight_int4pack_mm_for_cpu)": lambda: torch._weight_int4pack_mm_for_cpu(
            x, int4, 32, int4_scales
        ),
    }


def main() -> None:
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"capability {torch.backends.cpu.get_cpu_capability()}, one thread\n"
    )
    columns = [(shape, rows) for shape in SHAPES for rows in ROWS]
    print("| kernel | " + " | ".join(f"{s}, {r} row(s) ms" for s, r in columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    results: dict[str, list[float]] = {}
    for shape, rows in columns:
        weight = torch.randn(SHAPES[shape]) * 0.05
        x = torch.randn(rows, SHAPES[shape][1])
        for name, call in kernels(weight, x).items():
            results.setdefault(name, []).append(timed(call))
    for name, values in results.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")


if __name__ == "__main__":
    main()
