"""Pure functions that turn raw model output into clean LinkedIn text."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from itertools import pairwise

from deployments.post.craft import sentences
from deployments.post.prompts import PROMPT_ECHO_PATTERNS

# A chat-template turn header takes its role name with it: "<|im_start|>assistant" is no text.
_SPECIAL_TOKENS = re.compile(
    r"<\|(?:im_start|start_header_id)\|>[ \t]*(?:system|user|assistant)\b[ \t]*"
    r"(?:<\|end_header_id\|>)?|<\|[^|<>]{0,40}\|>|</?s>|\[/?INST\]|<unk>|<pad>"
)
_HTML_TAGS = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,200}>|<!--.*?-->", re.DOTALL)
_MD_LINK = re.compile(r"!?\[([^\]\n]{0,200})\]\([^)\n]{0,500}\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`{1,3}|~~)")
_MD_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_MD_BULLET = re.compile(r"^\s*(?:[*+]|\d{1,2}[.)])\s+", re.MULTILINE)
# "Title:", "Hook 2 -"; "The headline is: ...", 'The title: "..."' (but "The title: a lesson."
# is a sentence).
_LABEL_PREFIX = re.compile(
    r"^\s*(?:(?:the\s+(?:title|hook(?:\s+line)?|headline)(?:\s+is\s*:|\s*:(?=\s*[\"\u201c\u00ab])))"
    r"\s*|(?:post\s+)?(?:title|hook(?:\s+line)?|headline|subject|body|content|post|caption"
    r"|hashtags?|tags?)\s*(?:\d+)?(?::|\s+[\-\u2013\u2014])\s*)+",
    re.IGNORECASE,
)
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb`"
_DOUBLE_QUOTES = '"\u201c\u201d\u00ab\u00bb'  # never an apostrophe inside a word ("can't")
_URL = re.compile(r"\b(?:https?://|www\.)\S*", re.IGNORECASE)
_LINK_TAG_PREFIXES = ("http", "www")
# Words of the prompts themselves: a tag made of one ("#Request", from "<request>") is an echo.
PROMPT_WORDS = frozenset({"request", "topic", "audience", "tone", "hashtag", "hashtags", "title"})
_HASHTAG_IN_TEXT = re.compile(r"(?<![\w#])#[^\W_][\w]*")
_SENTENCE_END = re.compile(r"[.!?\u2026](?:[\"')\u201d\u2019\]]*)(?=\s|$)|\n\n")
_TRAILING_JOINERS = re.compile(r"[\s,;:\-\u2013\u2014(]+$")
_CAMEL_SPLIT = re.compile(r"[^\W_]+")
# Template holes ("[insert link]", "[Your Name]") and @handles: a small model invents both, and
# a post pasted with them would publish a blank to fill or tag a stranger.
# "[mentor}" and "{name}" are holes too.
_PLACEHOLDER = re.compile(
    r"[ \t]*(?:\[[^\[\]\n]{0,80}[\]}]|\{\{?[^{}\n]{0,40}\}\}?|(?<![\w@])@[A-Za-z_][\w.]*\w)"
)
_INVENTED_TURN = re.compile(r"^\s*[<\[]\s*/?\s*request\s*[>\]]|^\s*chat history\s*:", re.I)
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+(?=[.,;:!?])")
# Spaces and the control characters that str.splitlines() does not already treat as line breaks.
_SPACE_RUN = re.compile(r"[ \t\u00a0\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]+")

_STOPWORDS_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just
me more most my myself no nor not now of off on once only or other our ours ourselves out over
own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves make makes making get gets use
using way ways thing things via vs
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
MAX_TAG_WORDS = 3


def strip_special_tokens(text: str) -> str:
    return _SPECIAL_TOKENS.sub(" ", text)


def strip_markup(text: str) -> str:
    """Remove HTML and Markdown; LinkedIn shows both as literal characters."""
    text = html.unescape(_HTML_TAGS.sub(" ", text))
    text = _HTML_TAGS.sub(" ", text)  # tags that were entity-escaped
    text = text.replace("<", "").replace(">", "")
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_HEADER.sub("", text)
    text = _MD_BULLET.sub("", text)
    return _MD_EMPHASIS.sub("", text)


def strip_placeholders(text: str) -> str:
    """'Visit [insert link] @acme.' -> 'Visit.'"""
    return _SPACE_BEFORE_PUNCT.sub("", _PLACEHOLDER.sub("", text))


def drop_placeholder_sentences(line: str) -> str:
    """'I work at [Company]. We ship.' -> 'We ship.': a sentence with a hole in it reads broken
    once the hole is gone ("I work at."), so it goes whole."""
    if not _PLACEHOLDER.search(line):
        return line
    return " ".join(s for s in sentences(line) if not _PLACEHOLDER.search(s))


def strip_label(line: str) -> str:
    """'Title: "Foo"' -> '"Foo"'."""
    return _LABEL_PREFIX.sub("", line, count=1)


def strip_quotes(text: str) -> str:
    """'"Foo"' -> 'Foo'; also a lone quote left at either end by a cut."""
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    if text[:1] in _QUOTES and not any(q in text[1:] for q in _QUOTES):
        text = text[1:].strip()
    if text[-1:] in _QUOTES and not any(q in text[:-1] for q in _QUOTES):
        text = text[:-1].strip()
    # A double quote opened and never closed (the rest may hold apostrophes: "you can't").
    if text[:1] in _DOUBLE_QUOTES and not any(q in text[1:] for q in _DOUBLE_QUOTES):
        text = text[1:].strip()
    return text


def is_prompt_echo(line: str) -> bool:
    # A quoted echo ('"Here's a LinkedIn post:"') is an echo too: the patterns anchor at the start.
    unquoted = line.lstrip(_QUOTES + " \t")
    return any(p.search(line) or p.search(unquoted) for p in PROMPT_ECHO_PATTERNS)


def normalise_whitespace(text: str) -> str:
    """Collapse runs of spaces, keep paragraph breaks (at most one blank line).

    Control characters (a model can emit ESC or NUL) become spaces: they have no place in a post.
    """
    lines = [_SPACE_RUN.sub(" ", line).strip() for line in text.splitlines()]
    out = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", out).strip()


def remove_hashtags(text: str) -> str:
    return _HASHTAG_IN_TEXT.sub("", text)


def _line_key(line: str) -> str:
    return re.sub(r"\W+", " ", line.casefold()).strip()


def drop_repeats(lines: Iterable[str]) -> list[str]:
    """Drop lines (and sentences) already seen: small models loop."""
    seen_lines: set[str] = set()
    seen_sentences: set[str] = set()
    kept: list[str] = []
    for line in lines:
        key = _line_key(line)
        if not key:
            kept.append("")
            continue
        if key in seen_lines:
            continue
        seen_lines.add(key)
        sentences = re.split(r"(?<=[.!?])\s+", line)
        fresh = []
        for sentence in sentences:
            skey = _line_key(sentence)
            if skey and len(skey) > 12 and skey in seen_sentences:
                continue
            seen_sentences.add(skey)
            fresh.append(sentence)
        if fresh:
            kept.append(" ".join(fresh))
    return kept


def clean_model_text(raw: str, *, drop_holes: bool = False) -> str:
    """Shared first pass for every part: tokens, markup, placeholders, prompt echoes, labels.

    `drop_holes`: a sentence holding a placeholder goes whole (a body's "I work at [Company]."
    would read "I work at."); otherwise only the placeholder goes (a hook's trailing "@handle").
    """
    text = strip_markup(strip_special_tokens(raw))
    lines = []
    for line in text.splitlines():
        if _INVENTED_TURN.search(line):
            break  # the model goes on to invent a conversation: nothing after it is the post
        line = drop_placeholder_sentences(line) if drop_holes else strip_placeholders(line)
        if is_prompt_echo(line):
            continue
        lines.append(strip_label(line))
    return normalise_whitespace("\n".join(lines))


def close_sentence(text: str) -> str:
    """End a fragment cleanly with a full stop."""
    text = _TRAILING_JOINERS.sub("", text.rstrip())
    if not text:
        return text
    if _SENTENCE_END.search(text[-3:] + " ") is None and text[-1] not in ".!?\u2026":
        text += "."
    return text


def first_sentence_end(text: str) -> int | None:
    match = _SENTENCE_END.search(text)
    return match.end() if match else None


def cut_at_word(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_chars // 2 else text[:max_chars]).rstrip()


def cut_to_band(text: str, min_chars: int, max_chars: int) -> str:
    """Cut text at a sentence boundary inside [min_chars, max_chars] when one exists.

    Text that fits is kept whole (its last sentence closed); text with no boundary in the band is
    cut at a word boundary and closed, so the body never ends mid-word.
    """
    text = text.strip()
    # Only punctuation ends a sentence here: a paragraph break after "Blog Post: by Alex" does not.
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if m.group() != "\n\n"]
    fitting = [e for e in ends if e <= max_chars]
    in_band = [e for e in fitting if e >= min_chars]
    if len(text) <= max_chars:
        if ends and ends[-1] == len(text):
            return text
        # A dangling fragment at the end: drop it if that still leaves enough, else close it.
        if in_band:
            return text[: in_band[-1]].rstrip()
        closed = close_sentence(text)
        if len(closed) <= max_chars:
            return closed
        # Exactly max_chars long: the full stop would not fit, so fall through to the word cut.
    elif in_band:
        return text[: in_band[-1]].rstrip()
    return close_sentence(cut_at_word(text, max_chars - 1))


def to_camel_tag(word: str) -> str | None:
    """'machine_learning' -> 'MachineLearning'; 'DevOps' stays; letters and digits only."""
    parts = _CAMEL_SPLIT.findall(word)
    if not parts:
        return None
    tag = "".join(p if any(c.isupper() for c in p[1:]) else _upper_first(p) for p in parts)
    tag = _upper_first(tag)
    if not any(c.isalpha() for c in tag) or len(tag) > 40:
        return None
    return tag


def _upper_first(word: str) -> str:
    # Some letters upper-case to a letter plus a combining mark ('ǰ' -> 'J̌'), which is not a word
    # character and would break the tag: those keep their lower-case form.
    head = word[:1].upper()
    return (head if _CAMEL_SPLIT.fullmatch(head) else word[:1]) + word[1:]


def topic_keywords(topic: str) -> list[str]:
    words = [w for w in _CAMEL_SPLIT.findall(topic) if w.casefold() not in STOPWORDS]
    return [w for w in words if len(w) > 1 and any(c.isalpha() for c in w)]


def parse_hashtags(raw: str) -> list[str]:
    """Candidate tags from model output: '#Foo', 'foo, bar', '1. Foo Bar' all count."""
    # A link's pieces are no tags ("https://www.linkedin.com/..." -> #Https #WwwLinkedinCom).
    raw = _URL.sub(" ", raw)
    text = strip_markup(strip_special_tokens(raw))
    tokens = re.findall(r"#([^\s#,;]+)", text)
    if not tokens:
        # Without '#', a list item of up to three words is a tag ("machine learning" ->
        # MachineLearning); longer items are prose ("I'm ready when you are"), not tags.
        phrases = re.split(r"[,;\n|/]+", clean_model_text(raw))
        tokens = [p for p in phrases if 0 < len(p.split()) <= MAX_TAG_WORDS]
    tags = (to_camel_tag(tok) for tok in tokens)
    return [t for t in tags if t and len(t) > 1 and not is_junk_tag(t.casefold())]


def is_junk_tag(word: str, topic_words: frozenset[str] = frozenset()) -> bool:
    """Whether a tag (case-folded, without '#') is a stop word, a piece of a link or a word of the
    prompt; a prompt word that the topic itself has (`topic_words`) is a fine tag."""
    if word in PROMPT_WORDS:
        return word not in topic_words
    # A link's scheme or host left whole or half-written ("https:", "www") is no tag either.
    return word in STOPWORDS or word.startswith(_LINK_TAG_PREFIXES)


def unique_tags(candidates: Iterable[str], limit: int) -> list[str]:
    seen: set[str] = set()
    tags: list[str] = []
    for tag in candidates:
        if len(tags) >= limit:
            break
        key = tag.casefold()
        if key in seen:
            continue
        seen.add(key)
        tags.append(tag)
    return tags


def fallback_tags(topic: str, extra: Sequence[str]) -> list[str]:
    """Tags derived from the topic: keywords, then adjacent keyword pairs, then general ones."""
    keywords = topic_keywords(topic)
    singles = [t for t in (to_camel_tag(w) for w in keywords) if t]
    pairs = [t for t in (to_camel_tag(f"{a} {b}") for a, b in pairwise(keywords)) if t]
    return [*singles, *pairs, *extra]
