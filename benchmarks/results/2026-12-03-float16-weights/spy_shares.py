"""Share of a decode step's py-spy samples by what they were doing (inclusive, first match).

py-spy record -f raw -r 200 -o spy.txt -- .venv/bin/python spy_step.py 1
python spy_shares.py spy.txt "float16 weights, 1 row"
"""

import sys
from collections import Counter
from pathlib import Path

REST = "the rest: module calls, masks, glue (Python)"
GROUPS = [
    ("Linear layers (weights x activations)", ("HalfWeightLinear.forward", "Linear.forward")),
    ("attention (SDPA)", ("sdpa_attention_forward",)),
    ("KV cache writes", ("SlotLayer.update", "Cache.update")),
    ("RMSNorm", ("LlamaRMSNorm.forward",)),
    ("rotary embeddings", ("apply_rotary_pos_emb", "LlamaRotaryEmbedding.forward")),
    (
        "sampling and row bookkeeping",
        ("DecodeBatch._choose", "DecodeBatch._take", "DecodeBatch._keep"),
    ),
]


def main() -> None:
    counts: Counter[str] = Counter()
    total = 0
    for line in Path(sys.argv[1]).read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if "DecodeBatch.step" not in stack:
            continue
        total += int(samples)
        group = next((name for name, keys in GROUPS if any(k in stack for k in keys)), REST)
        counts[group] += int(samples)
    print(f"| what | share of a step ({sys.argv[2]}) |")
    print("| --- | ---: |")
    for name in [*(name for name, _ in GROUPS), REST]:
        print(f"| {name} | {100 * counts[name] / total:.0f}% |")
    print(f"\n{total} samples")


if __name__ == "__main__":
    main()
