"""PostCompiler: assembles model output into a post that meets the API contract.

Whatever the models return (and a small model returns plenty of noise), the compiled post has a
one-line title of at most 150 characters, a body cut at a sentence inside its length band and
ending with the call to action when one was asked for, exactly `num_hashtags` unique CamelCase
hashtags, no markup, and an assembled text within LinkedIn's 3000 characters.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence

from deployments.post.craft import (
    balance_quotes,
    clean_body_lines,
    introduces_someone,
    is_assistant_talk,
    unwrap_code,
    without_greeting,
    without_meta_label,
    words_of,
)
from deployments.post.injection import (
    obeys_injection,
    tag_obeys_injection,
    without_injection,
    without_payload,
)
from deployments.post.textproc import (
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
    topic_keywords,
    unique_tags,
)
from deployments.schemas import (
    LENGTH_BANDS,
    LINKEDIN_MAX_CHARS,
    TITLE_MAX_CHARS,
    GenerationResult,
    Post,
    PostMetadata,
    PostPart,
    PostRequest,
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

    def compile_candidates(
        self, request: PostRequest, candidates: Mapping[PostPart, Sequence[GenerationResult]]
    ) -> Post:
        """The post from each part's results as the writer gathers them (every hook line and
        body; the one hashtag list, none when no hashtags were asked)."""
        hashtags = candidates.get("hashtags")
        return self.compile(
            request,
            [result.text for result in candidates["title"]],
            [result.text for result in candidates["content"]],
            hashtags[0].text if hashtags else "",
        )

    def compile(
        self,
        request: PostRequest,
        title_raw: str | Sequence[str],
        content_raw: str | Sequence[str],
        hashtags_raw: str,
    ) -> Post:
        """The post from each part's model text. A part may come as several candidates (best
        of n): the first hook line that makes a hook wins, and the body that ranks best
        (`_body_rank`)."""
        titles = [title_raw] if isinstance(title_raw, str) else list(title_raw)
        contents = [content_raw] if isinstance(content_raw, str) else list(content_raw)
        hashtags = self.hashtags(request, hashtags_raw)
        model_title = next(filter(None, (self.model_title(request, raw) for raw in titles)), None)
        title = model_title or self.fallback_title(request)
        tags_line = " ".join(hashtags)
        # Room left for the body once title, hashtags and the blank lines between them are in.
        room = LINKEDIN_MAX_CHARS - len(title) - 2 - (len(tags_line) + 2 if tags_line else 0)
        # Each body as the post would carry it. With no hook from the model, the body's first
        # sentence opens the post rather than the topic restated as a headline (never longer
        # than the fallback title it replaces plus the body it leaves: the room above holds);
        # the body is ranked without it, as the reader gets it.
        drafts = []
        for raw in contents or [""]:
            body = self.content(request, raw, title, max_chars=room)
            hook, body = (title, body) if model_title else _hook_from_body(request, title, body)
            drafts.append((hook, body, raw))
        title, content, _ = max(drafts, key=lambda draft: _body_rank(request, *draft[1:]))
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

    def model_title(self, request: PostRequest, raw: str) -> str | None:
        """The first line of the model's that makes a hook; None when none does."""
        user_text = _user_text(request)
        given = words_of([user_text, request.call_to_action or ""])
        for line in clean_model_text(raw).splitlines():
            line = without_payload(unwrap_code(line), user_text)
            if obeys_injection(line, user_text):
                continue
            if introduces_someone(line, given) or is_assistant_talk(line):
                continue
            line = without_meta_label(without_greeting(balance_quotes(remove_hashtags(line))))
            title = self._fit_title(line)
            if len(title) < 3 or not any(c.isalpha() for c in title):
                continue
            # The topic restated as a headline wastes the hook; so does a line the token budget
            # cut mid-sentence ("... to reflect on the lessons we").
            if _restates(title, request.topic) or _looks_cut(title):
                continue
            return title
        return None

    def fallback_title(self, request: PostRequest) -> str:
        """The topic itself: an honest hook when neither the model's hook line nor its body
        gives one. The topic is user text, so it gets the same cleaning as model output (a
        topic of "<b>" leaves nothing), and loses any instruction it smuggled in."""
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
            line = _without_dangling_end(line.rstrip(_TITLE_TRAILING_JUNK))
        first_sentence = first_sentence_end(line)
        if first_sentence and first_sentence >= 20:
            line = line[:first_sentence]
        if len(line) <= TITLE_MAX_CHARS:
            return line
        return cut_at_word(line, TITLE_MAX_CHARS - 1).rstrip(",;:-") + "\u2026"

    def content(self, request: PostRequest, raw: str, title: str, *, max_chars: int) -> str:
        min_chars, band_max = LENGTH_BANDS[request.length]
        lines = clean_model_text(raw, drop_holes=True).splitlines()
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
        lines = clean_body_lines(
            kept, words_of([user_text, request.call_to_action or ""]), request.topic, title
        )
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


def body_below_band(request: PostRequest, content: str) -> bool:
    """The compiled body is shorter than its length band."""
    return len(content) < LENGTH_BANDS[request.length][0]


def body_off_topic(request: PostRequest, content: str) -> bool:
    """The compiled body holds under about half of the topic's words (fewer than two quarters
    of `topic_coverage`). Of the 336 candidate bodies of the 168 posts in the saved corpora, the
    quality harness's embedding found 25 of 38 such bodies on topic, and 290 of the other 298."""
    return round(topic_coverage(request.topic, content) * 4) < 2


def wants_another_body(request: PostRequest, content: str, *, idle: bool) -> bool:
    """The writer asks for one more body: the clean-up left this one short of its band, or, while
    the writer is idle (best of n), it wandered off the topic. Under load, an off-topic body is
    kept: at 32 clients about one post in nine would take a second body, which cost 0.82x the
    posts/s in one run (benchmarks/results/2026-12-03-post-relevance)."""
    return body_below_band(request, content) or (idle and body_off_topic(request, content))


def _same_text(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return "".join(ch for ch in s.casefold() if ch.isalnum())

    return bool(norm(a)) and norm(a) == norm(b)


# Words a hook cannot end on ("... Team Building & Leadership by"): what follows was cut off.
_DANGLING_TEXT = """
a an the and or but of to for with in on at by from as that your my our their into
"""
_DANGLING_WORDS = frozenset(_DANGLING_TEXT.split())


def _without_dangling_end(line: str) -> str:
    words = line.split()
    while len(words) > 3 and words[-1].casefold() in _DANGLING_WORDS:
        words.pop()
    return " ".join(words).rstrip(_TITLE_TRAILING_JUNK) if words else line


_CUT_HOOK_WORDS = 14  # a hook line this long with no sentence end ran out of tokens
# Words a line the token budget cut tends to stop on ("... product managers are").
_CUT_ENDINGS_TEXT = """
is are was were be we they you i it will can has have had who which
"""
_CUT_ENDINGS = frozenset(_CUT_ENDINGS_TEXT.split())


def _word_keys(text: str) -> list[str]:
    """Words, casefolded; "I'm" is one word."""
    return re.findall(r"[^\W_]+(?:['’][^\W_]+)*", text.casefold())


def _restates(title: str, topic: str) -> bool:
    """The topic restated: word for word, or four in five of its words (by their first five
    letters) in a line not much longer than it ("Delegating works without losing quality",
    "How customer interviews changed my product roadmap.")."""
    title_words, topic_words = _word_keys(title), _word_keys(topic)
    if not topic_words:
        return False
    title_key, topic_key = " ".join(title_words), " ".join(topic_words)
    if title_key == topic_key or title_key.startswith(topic_key + " "):
        return True
    stems = {word[:5] for word in topic_words}
    covered = len(stems & {word[:5] for word in title_words}) / len(stems)
    return len(stems) >= 3 and covered >= 0.8 and len(title_words) <= 1.6 * len(topic_words) + 1


def _looks_cut(title: str) -> bool:
    """Cut by the hook's token budget, or by `_fit_title` at TITLE_MAX_CHARS."""
    if title.endswith("\u2026") and len(title) >= TITLE_MAX_CHARS - 10:
        return True
    if first_sentence_end(title) is not None:
        return False
    words = title.split()
    return len(words) >= _CUT_HOOK_WORDS or words[-1].casefold() in _CUT_ENDINGS


def _hook_from_body(request: PostRequest, title: str, content: str) -> tuple[str, str]:
    """The body's first sentence as the hook (its first clause when the sentence is too long
    for a hook line), when that makes a hook and the body keeps its length band without the
    sentence; otherwise the title and body as they were."""
    min_chars = LENGTH_BANDS[request.length][0]
    first_paragraph, _, rest = content.partition("\n\n")
    cta = _plain_text(request.call_to_action or "")
    if not first_paragraph or first_paragraph == cta:
        return title, content
    end = first_sentence_end(first_paragraph) or len(first_paragraph)
    sentence = first_paragraph[:end].strip()
    remainder = first_paragraph[end:].strip()
    body = "\n\n".join(part for part in (remainder, rest) if part.strip())
    hook = sentence if len(sentence) <= TITLE_MAX_CHARS else _first_clause(sentence)
    if len(hook) < 20 or len(body) < min_chars or first_sentence_end(hook) is None:
        return title, content
    if _restates(hook, request.topic) or without_greeting(hook) != hook:
        return title, content
    return hook, body


# Where a long sentence splits into a clause that stands alone: ", but I believe ...".
_CLAUSE_BREAK = re.compile(
    r"\s*(?:[;:\u2014]|\s[-\u2013]\s|,\s+(?=(?:but|and|as|so|because|while)\b))"
)


def _first_clause(sentence: str) -> str:
    """'Negotiation is personal, but I believe ...' -> 'Negotiation is personal.'"""
    breaks = [
        m.start() for m in _CLAUSE_BREAK.finditer(sentence) if m.start() <= TITLE_MAX_CHARS - 1
    ]
    return sentence[: breaks[-1]].rstrip(" ,;:") + "." if breaks else ""


def topic_coverage(topic: str, body: str) -> float:
    """Share of the topic's keywords the body holds, matched by their first five letters (so
    "tickets" finds "ticket"): a cheap stand-in for relevance."""
    keywords = {word.casefold()[:5] for word in topic_keywords(topic)}
    if not keywords:
        return 1.0
    present = {word[:5] for word in _word_keys(body)}
    return len(keywords & present) / len(keywords)


def _body_rank(request: PostRequest, body: str, raw: str) -> tuple[bool, int, float]:
    """Which of several bodies to keep: one inside its length band first, then the one holding
    more of the topic's words (`topic_coverage`, in quarters), then the one that lost least to
    clean-up (a body the compiler had to cut up reads cut up)."""
    low, high = LENGTH_BANDS[request.length]
    kept = min(1.0, len(body) / max(1, len(raw.strip())))
    return low <= len(body) <= high, round(topic_coverage(request.topic, body) * 4), kept


def _is_hashtag_residue(line: str) -> bool:
    return bool(line) and not any(c.isalnum() for c in line)
