"""PostCompiler: assembles model output into a post that meets the API contract.

Whatever the models return (and a small model returns plenty of noise), the compiled post has a
one-line title of at most 150 characters, a body cut at a sentence inside its length band and
ending with the call to action when one was asked for, exactly `num_hashtags` unique CamelCase
hashtags, no markup, and an assembled text within LinkedIn's 3000 characters.
"""

from __future__ import annotations

import math
import uuid

from deployments.injection import (
    obeys_injection,
    tag_obeys_injection,
    without_injection,
    without_payload,
)
from deployments.schemas import (
    LENGTH_BANDS,
    LINKEDIN_MAX_CHARS,
    TITLE_MAX_CHARS,
    Post,
    PostMetadata,
    PostRequest,
)
from deployments.textproc import (
    clean_model_text,
    close_sentence,
    cut_at_word,
    cut_to_band,
    drop_repeats,
    fallback_tags,
    first_sentence_end,
    normalise_whitespace,
    parse_hashtags,
    remove_hashtags,
    strip_label,
    strip_markup,
    strip_placeholders,
    strip_quotes,
    strip_special_tokens,
    unique_tags,
)

WORDS_PER_MINUTE = 200
FALLBACK_TITLE = "A few thoughts"
GENERAL_TAGS = (
    "LinkedIn",
    "Career",
    "Leadership",
    "Growth",
    "Learning",
    "Innovation",
    "Business",
    "Productivity",
    "Teamwork",
    "Success",
    "Insights",
    "Community",
    "Strategy",
    "Work",
)


# Separators a hook is left ending with once a handle or tag after them is gone ("Foo |").
_TITLE_TRAILING_JUNK = " |-\u2013\u2014:;,/"


class PostCompiler:
    """Plain class behind the Compiler deployment; no Ray needed."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def compile(
        self, request: PostRequest, title_raw: str, content_raw: str, hashtags_raw: str
    ) -> Post:
        hashtags = self.hashtags(request, hashtags_raw)
        title = self.title(request, title_raw)
        tags_line = " ".join(hashtags)
        # Room left for the body once title, hashtags and the blank lines between them are in.
        room = LINKEDIN_MAX_CHARS - len(title) - 2 - (len(tags_line) + 2 if tags_line else 0)
        content = self.content(request, content_raw, title, max_chars=room)
        text = "\n\n".join(part for part in (title, content, tags_line) if part)
        words = len(text.split())
        return Post(
            id=uuid.uuid4().hex,
            title=title,
            content=content,
            hashtags=hashtags,
            text=text,
            metadata=PostMetadata(
                characters=len(text),
                words=words,
                reading_time_seconds=math.ceil(words * 60 / WORDS_PER_MINUTE),
                model=self.model_name,
            ),
        )

    def title(self, request: PostRequest, raw: str) -> str:
        user_text = _user_text(request)
        for line in clean_model_text(raw).splitlines():
            line = without_payload(line, user_text)
            if obeys_injection(line, user_text):
                continue
            title = self._fit_title(remove_hashtags(line))
            if len(title) >= 3 and any(c.isalpha() for c in title):
                return title
        # Nothing usable from the model: the topic itself is an honest hook. The topic is user
        # text, so it gets the same cleaning as model output (a topic of "<b>" leaves nothing),
        # and loses any instruction it smuggled in.
        topic = self._fit_title(without_injection(request.topic))
        if len(topic) < 3 or not any(c.isalpha() for c in topic):
            return FALLBACK_TITLE
        return topic[:1].upper() + topic[1:]

    @staticmethod
    def _fit_title(line: str) -> str:
        """One line of at most 150 characters, ending at a sentence when the hook has one."""
        # Markup, labels and quotes can hide one another ('"Title: **Foo**"', 'Title: # Foo'):
        # peel until nothing changes (each pass only shortens the line, so this ends).
        previous = None
        while line != previous:
            previous = line
            line = " ".join(strip_quotes(strip_label(strip_markup(line))).split())
            line = line.rstrip(_TITLE_TRAILING_JUNK)
        first_sentence = first_sentence_end(line)
        if first_sentence and first_sentence >= 20:
            line = line[:first_sentence]
        if len(line) <= TITLE_MAX_CHARS:
            return line
        return cut_at_word(line, TITLE_MAX_CHARS - 1).rstrip(",;:-") + "\u2026"

    def content(self, request: PostRequest, raw: str, title: str, *, max_chars: int) -> str:
        min_chars, band_max = LENGTH_BANDS[request.length]
        lines = clean_model_text(raw).splitlines()
        # Small models often restate the hook as the first line; the title already carries it.
        if lines and _same_text(lines[0], title):
            lines = lines[1:]
        # Placeholders again: a tag glued to a handle ("#tag@handle") hid the handle until now.
        lines = [strip_placeholders(remove_hashtags(line)).strip() for line in lines]
        user_text = _user_text(request)
        kept = []
        for line in lines:
            if _is_hashtag_residue(line) or obeys_injection(line, user_text):
                continue
            cleaned = without_payload(line, user_text)
            if cleaned or not line:  # blank lines are paragraph breaks: kept
                kept.append(cleaned)
        lines = kept
        body = normalise_whitespace("\n".join(drop_repeats(lines)))
        # A call to action that is nothing but markup ("**") leaves no text: treat it as absent.
        cta_text = _plain_text(request.call_to_action or "")
        limit = min(band_max, max_chars)
        if cta_text:
            body_limit = limit - len(cta_text) - 2
            body = cut_to_band(body, max(0, min_chars - len(cta_text) - 2), body_limit)
            return f"{body}\n\n{cta_text}" if body else cta_text
        body = cut_to_band(body, min_chars, limit)
        return body or close_sentence(_plain_text(without_injection(request.topic))) or title

    def hashtags(self, request: PostRequest, raw: str) -> list[str]:
        if request.num_hashtags == 0:
            return []
        user_text = _user_text(request)
        topic = without_injection(request.topic)
        candidates = [
            *(tag for tag in parse_hashtags(raw) if not tag_obeys_injection(tag, user_text)),
            *fallback_tags(topic, GENERAL_TAGS),
        ]
        return ["#" + tag for tag in unique_tags(candidates, request.num_hashtags)]


def _user_text(request: PostRequest) -> str:
    """The request's free text, where instructions to the model could hide."""
    return "\n".join(t for t in (request.topic, request.audience) if t)


def _plain_text(text: str) -> str:
    return " ".join(strip_markup(strip_special_tokens(text)).split())


def _same_text(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return "".join(ch for ch in s.casefold() if ch.isalnum())

    return bool(norm(a)) and norm(a) == norm(b)


def _is_hashtag_residue(line: str) -> bool:
    return bool(line) and not any(c.isalnum() for c in line)
