"""SlotLayer and merge_caches: the same keys and values as transformers' DynamicLayer, without
re-copying the cache at every step, and with rows leaving, joining and old columns dropped."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from deployments.engine.kv_cache import (
    HEADROOM,
    SlotLayer,
    cache_of_layers,
    is_mergeable,
    merge_caches,
    slot_cache,
)


def _states(batch: int, tokens: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, 2, tokens, 4)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


def _same(got: tuple[torch.Tensor, torch.Tensor], expected: tuple[torch.Tensor, ...]) -> bool:
    return torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_updates_match_dynamic_layer_and_stay_in_one_buffer() -> None:
    reference, layer = DynamicLayer(), SlotLayer()
    addresses = set()
    for index, (batch, tokens) in enumerate([(3, 5), (3, 1), (3, 1), (3, 1)]):
        keys, values = _states(batch, tokens, index)
        assert _same(layer.update(keys, values), reference.update(keys, values))
        addresses.add(layer.keys.untyped_storage().data_ptr())
    assert layer.get_seq_length() == 8
    assert len(addresses) == 1, "every step must write into the buffer reserved at the start"


def test_grows_past_its_headroom_and_keeps_what_it_held() -> None:
    reference, layer = DynamicLayer(), SlotLayer(headroom=2)
    for step in range(7):
        keys, values = _states(2, 1 + step % 3, step)
        expected, got = reference.update(keys, values), layer.update(keys, values)
    assert _same(got, expected)
    assert layer.get_seq_length() == reference.get_seq_length()


def test_rows_leave_and_repeat_like_dynamic_layer() -> None:
    reference, layer = DynamicLayer(), SlotLayer()
    prefix = _states(1, 4, 7)
    reference.update(*prefix)
    layer.update(*prefix)
    reference.batch_repeat_interleave(3)
    layer.batch_repeat_interleave(3)
    step = _states(3, 2, 8)
    assert _same(layer.update(*step), reference.update(*step))
    keep = torch.tensor([0, 2])
    reference.batch_select_indices(keep)
    layer.batch_select_indices(keep)
    step = _states(2, 1, 9)
    assert _same(layer.update(*step), reference.update(*step))
    assert layer.keys.shape[0] == 2


def test_drop_left_forgets_old_columns_without_copying() -> None:
    layer = SlotLayer()
    keys, values = _states(2, 6, 1)
    layer.update(keys, values)
    storage = layer.keys.untyped_storage().data_ptr()
    layer.drop_left(4)
    assert layer.get_seq_length() == 2
    assert torch.equal(layer.keys, keys[:, :, 4:]) and torch.equal(layer.values, values[:, :, 4:])
    assert layer.keys.untyped_storage().data_ptr() == storage
    step = _states(2, 1, 2)
    got = layer.update(*step)
    assert torch.equal(got[0], torch.cat([keys[:, :, 4:], step[0]], dim=2))


def test_merge_right_aligns_rows_and_pads_the_left_with_zeros() -> None:
    long_rows, short_row = _states(2, 5, 3), _states(1, 3, 4)
    merged = merge_caches([cache_of_layers([long_rows]), cache_of_layers([short_row])])
    layer = merged.layers[0]
    assert isinstance(layer, SlotLayer)
    assert layer.keys.shape == (3, 2, 5, 4)
    assert torch.equal(layer.keys[:2], long_rows[0])
    assert torch.equal(layer.values[2, :, 2:], short_row[1][0])
    assert not layer.keys[2, :, :2].any(), "the shorter row's missing columns are zeros"
    # The merged cache keeps room to decode into.
    assert layer._key_buffer is not None and layer._key_buffer.shape[2] == 5 + HEADROOM


def test_a_model_with_plain_layers_gets_slot_layers(tiny_model_dir) -> None:
    from transformers import AutoConfig

    class _Model:
        config = AutoConfig.from_pretrained(tiny_model_dir)

    cache = slot_cache(_Model())
    assert cache is not None and is_mergeable(cache)
    assert all(isinstance(layer, SlotLayer) for layer in cache.layers)
    assert not is_mergeable(DynamicCache(config=_Model.config))


def test_a_model_with_sliding_window_layers_keeps_its_own_cache() -> None:
    from transformers import MistralConfig

    class _Model:
        config = MistralConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            sliding_window=8,
        )

    assert slot_cache(_Model()) is None
