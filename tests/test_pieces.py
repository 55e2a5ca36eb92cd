"""PieceCleaner: streamed text never carries a chat-template token, however it is split."""

from __future__ import annotations

import pytest

from deployments.post.pieces import PieceCleaner
from deployments.post.textproc import strip_special_tokens


def _stream(text: str, size: int) -> str:
    cleaner = PieceCleaner()
    return "".join(cleaner.feed(text[i : i + size]) for i in range(0, len(text), size))


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 1000])
@pytest.mark.parametrize(
    "text",
    [
        "Small pull requests ship faster.",
        "Reviews help.<|im_end|><|im_start|>assistant Sure! Here it is.",
        "A [INST] echo [/INST] and </s> end, <b>bold</b> stays for the Compiler.",
        "Costs fell 30% <3 and we <celebrated>.",
    ],
)
def test_no_template_token_in_any_split(text: str, size: int) -> None:
    sent = _stream(text, size)
    for token in ("<|im_end|>", "<|im_start|>", "assistant Sure", "[INST]", "</s>"):
        assert token not in sent
    # What is sent is what the Compiler's first step makes of the text, up to what is held back.
    assert strip_special_tokens(text).startswith(sent)


def test_plain_text_streams_as_it_comes() -> None:
    cleaner = PieceCleaner()
    assert cleaner.feed("Hello ") == "Hello "
    assert cleaner.feed("world.") == "world."
    assert cleaner.feed(" <|im") == " "
    assert cleaner.feed("_end|> More.") == "  More."
