"""A model folder with another folder's architecture and tokenizer, and random weights:

    python -m benchmarks.random_weights SOURCE OUT

For timing the engine where the real weights cannot travel (the lent GPU machine takes 64 MiB a
call; SmolLM2-135M's converted weights are 540 MB). A decode step's time depends on the shapes,
not on the weights' values, as long as each row decodes a fixed number of tokens
(benchmarks.decode_profile holds every row to its budget); the text itself is noise.
SOURCE needs only config.json and the tokenizer's files.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def write_random_model(source: Path, out: Path, seed: int = 0) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(source)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    write_random_model(args.source, args.out)


if __name__ == "__main__":
    main()
