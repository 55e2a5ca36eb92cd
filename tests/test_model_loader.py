"""Model loading helpers: dtype choice; publish_folder (a folder appears whole or not at all)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deployments.engine.model_loader import COMPLETE_MARKER, pick_dtype, publish_folder


def test_published_folder_is_complete_and_replaces_an_old_one(tmp_path: Path) -> None:
    target = tmp_path / "weights"
    target.mkdir()
    (target / "stale.bin").write_text("old")
    publish_folder(target, lambda folder: (folder / "model.bin").write_text("new"))
    assert sorted(p.name for p in target.iterdir()) == [COMPLETE_MARKER, "model.bin"]
    assert list(tmp_path.iterdir()) == [target], "no staging folder left behind"


def test_a_failed_fill_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "weights"

    def fail(folder: Path) -> None:
        (folder / "half.bin").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_folder(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_auto_dtype_is_float32_on_cpu() -> None:
    assert pick_dtype("auto", "cpu") is torch.float32


def test_requested_dtype_wins() -> None:
    assert pick_dtype("float32", "cpu") is torch.float32
    assert pick_dtype("float16", "cuda") is torch.float16


def test_int8_quantization_replaces_every_linear_layer_and_still_generates(
    tiny_model_dir: Path,
) -> None:
    from deployments.engine.generator import TextGenerator
    from deployments.engine.model_loader import load_model
    from deployments.post.prompts import build_job
    from deployments.schemas import GenerationResult, PostRequest
    from deployments.settings import GenerationSettings, ModelSettings

    settings = ModelSettings(model=str(tiny_model_dir), device="cpu", quantization="int8")
    loaded = load_model(settings)
    assert (loaded.dtype, loaded.quantization) == ("float32", "int8")
    modules = list(loaded.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in modules), "a Linear layer stayed float"
    assert any("quantized" in type(m).__module__ for m in modules)
    job = build_job("title", PostRequest(topic="Int8 decoding"), 5, GenerationSettings())
    result = TextGenerator(loaded, GenerationSettings()).generate_batch([job])[0]
    assert isinstance(result, GenerationResult) and 0 < result.new_tokens <= job.max_new_tokens


def test_int8_on_an_explicit_gpu_is_refused() -> None:
    from pydantic import ValidationError

    from deployments.settings import ModelSettings

    with pytest.raises(ValidationError, match="int8"):
        ModelSettings(device="cuda", quantization="int8")


def test_a_gguf_file_is_converted_once_then_its_weights_are_a_hit(tmp_path: Path) -> None:
    from deployments.engine.model_loader import load_model
    from deployments.settings import ModelSettings

    settings = ModelSettings(device="cpu", converted_dir=tmp_path)  # the default GGUF model
    assert load_model(settings).converted_weights == "converted"
    assert load_model(settings).converted_weights == "hit"
    # The converted folder itself, named as a model: a transformers folder, nothing converted.
    # Its lock file lies beside it, and iterdir's order is the filesystem's.
    (converted,) = [entry for entry in tmp_path.iterdir() if entry.is_dir()]
    folder = ModelSettings(device="cpu", model=str(converted))
    assert load_model(folder).converted_weights == "none"
