"""Cleaning a part's text while it streams, as far as is safe before the part is whole.

The Compiler cleans a finished part (deployments/post/compiler.py) and its post is what counts;
pieces shown while the post is written only need to be safe: no chat-template token may reach
the client, even one that arrives split over several pieces ("<|im_" then "start|>").
"""

from __future__ import annotations

import re

from deployments.post.textproc import strip_special_tokens

# An opening that may still become a template token once more text comes: held back until it
# closes or grows too long to be one ("<|im_start|>", "[INST]", "</s>").
_OPEN_TOKEN = re.compile(r"(?:<[^<>\n]{0,40}|\[/?[A-Z]{0,5})$")
# A turn header's role name follows its token ("<|im_start|>assistant"): wait for a word after it.
_OPEN_HEADER = re.compile(r"<\|(?:im_start|start_header_id)\|>[ \t]*[a-z]{0,9}$")


class PieceCleaner:
    """One part's pieces in, the clean text to send out (may be empty until it is safe)."""

    def __init__(self) -> None:
        self.raw = ""
        self.sent = ""

    def feed(self, piece: str) -> str:
        self.raw += piece
        held = _OPEN_HEADER.search(self.raw) or _OPEN_TOKEN.search(self.raw)
        safe = self.raw[: held.start()] if held else self.raw
        clean = strip_special_tokens(safe)
        if not clean.startswith(self.sent):
            # Cleaning changed text already sent (a token completed across the cut): send
            # nothing more of this part; the final post is authoritative.
            return ""
        new, self.sent = clean[len(self.sent) :], clean
        return new
