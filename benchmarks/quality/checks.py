"""The post contract as pure `check_*` functions: a post and its request in, `None` or why it
failed out. No model (tests/test_quality.py); relevance takes a cosine computed elsewhere
(benchmarks/quality/embedding.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from benchmarks.quality.embedding import EMBEDDING_NAME
from deployments.post.prompts import PROMPT_ECHO_PATTERNS, SYSTEM_PROMPT, build_messages
from deployments.post.textproc import is_junk_tag
from deployments.schemas import (
    LENGTH_BANDS,
    LINKEDIN_MAX_CHARS,
    PARTS,
    TITLE_MAX_CHARS,
    PostRequest,
)

# Relevance threshold on cosine(topic, body) with all-MiniLM-L6-v2 (mean pooling, L2-normalised),
# picked from real scores (the report prints the same distributions on every run):
# - REFERENCE_BODIES below, short on-topic bodies written by hand: 0.36-0.82 against their topic;
#   against the other 23 topics median 0.13, max 0.49 (a related topic: "small pull requests"
#   for a code review body).
# - this scenario's 24 model posts (default settings, the seeds below): own-topic cosines fell in
#   two groups with nothing between, 0.18-0.26 (6 posts, read one by one: every one off topic:
#   "flaky tests" about personal branding, "MVP in six weeks" about a yoga mat) and 0.33-0.61;
#   body against the 23 other topics: median 0.14, 95th percentile 0.33, max 0.48 (again related
#   topics, e.g. a body about personal branding against "Building a personal brand").
# 0.30 sits in that gap, with margin under every hand-written on-topic body, and above 92% of
# mismatched pairs (the rest pair related work topics). It is lenient on purpose: a body that
# only brushes its topic (0.33-0.36) passes; one about something else does not.
# ("below", "this scenario": REFERENCE_BODIES and the seeds are in request_set.py now, the
# scenario in benchmarks/scenarios/quality.py.)
RELEVANCE_THRESHOLD = 0.30


CHECKS: tuple[str, ...] = (
    "title",
    "length",
    "sentence_end",
    "hashtags",
    "no_template_tokens",
    "no_prompt_echo",
    "no_repeated_lines",
    "call_to_action",
    "max_chars",
    "relevance",
    "no_placeholders",
    "hashtag_words",
)
# Defects seen in real posts beyond the contract the API documents; reported with the rest.
EXTRA_CHECKS = frozenset({"no_placeholders", "hashtag_words"})
CHECK_DESCRIPTIONS: dict[str, str] = {
    "title": f"one line, not empty, trimmed, has a letter, <= {TITLE_MAX_CHARS} chars",
    "length": "body length inside the band of the requested length",
    "sentence_end": "body (before the call to action, when one is asked) ends at a sentence end",
    "hashtags": "exactly num_hashtags, unique ignoring case, '#' + letters/digits",
    "no_template_tokens": "no chat-template tokens (<|im_start|>, <|im_end|>, ...) or role lines",
    "no_prompt_echo": "no <request>/[Request] delimiters, instruction text, 'Title:'-style labels, "
    "'Sure!'/'Here is...:' preambles or talk about 'your request'",
    "no_repeated_lines": "no two identical non-empty lines in the assembled text",
    "call_to_action": "when asked, the body ends with the call to action",
    "max_chars": f"assembled text <= {LINKEDIN_MAX_CHARS} chars",
    "relevance": f"cosine(topic, body) > {RELEVANCE_THRESHOLD} ({EMBEDDING_NAME})",
    "no_placeholders": "extra: no template placeholders ([Company Name], {name}, insert ... here) "
    "or invented @handles",
    "hashtag_words": "extra: no hashtag that is a bare stopword (#The, #This, #Will), a piece of "
    "a link (#Https, #WwwLinkedinCom) or a word of the prompt (#Request, #Topic)",
}


class PostLike(Protocol):
    title: str
    content: str
    hashtags: list[str]
    text: str


@dataclass(frozen=True)
class Draft:
    """A post's four text fields; what the checks read (a compiled `Post` works too)."""

    title: str
    content: str
    hashtags: list[str]
    text: str

    @classmethod
    def assemble(cls, title: str, content: str, hashtags: Sequence[str]) -> Draft:
        tags = list(hashtags)
        text = "\n\n".join(part for part in (title, content, " ".join(tags)) if part)
        return cls(title=title, content=content, hashtags=tags, text=text)


Failure = str | None  # None: passed; else why it failed, with a short excerpt

_SENTENCE_END = re.compile(r"[.!?\u2026][\"')\]\u201d\u2019\u00bb]*$")
_HASHTAG = re.compile(r"#[^\W_]+")
_TEMPLATE_TOKEN = re.compile(
    r"<\|[^|<>\n]{0,40}\|>|</?s>|\[/?INST\]|<unk>|<pad>|\b(?:im_start|im_end|endoftext)\b"
    r"|^[ \t]*(?:system|user|assistant)[ \t]*:?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_DELIMITER = re.compile(r"<\s*/?\s*request\s*>|\[\s*/?\s*request\s*\]", re.IGNORECASE)
_LABEL_LINE = re.compile(
    r"^\s*(?:post\s+)?(?:title|hook(?:\s+line)?|headline|subject|body|content|post|caption"
    r"|hashtags?|tags?|topic|audience|tone|length|call[\s-]to[\s-]action|cta"
    r"|chat history|system|user|assistant)\s*\d*\s*:"
    # "The headline is: ...", 'The title: "..."'
    r"|^\s*the\s+(?:title|hook(?:\s+line)?|headline)(?:\s+is\s*:|\s*:\s*[\"\u201c\u00ab])",
    re.IGNORECASE,
)
_ACK_LINE = re.compile(
    r"^\s*(?:sure|certainly|of course|absolutely|okay|ok)\b\s*[!.,:]*\s*"
    r"(?:$|here\b|i['’]d\b|i['’]ll\b|i can\b|i will\b|let me\b|happy to\b|glad to\b)",
    re.IGNORECASE,
)
_HERE_IS_LINE = re.compile(
    r"^\s*here(?:['’]s| is| are)\b.*(?::\s*$|\blinkedin post\b|\bhook line\b|\bhashtags\b)",
    re.IGNORECASE,
)
# Talk about the task rather than the post: "The title could be ...", "... to your request".
_META_TALK = re.compile(
    r"\b(?:title|headline|hook(?:\s+line)?)\s+(?:could|would|might|should)\s+be\b"
    r"|\b(?:your|the|this) request\b|\bas an ai\b",
    re.IGNORECASE,
)
# Phrases of the prompts that have no business in a post, beyond their whole sentences.
_ECHO_PHRASES = ("the topic below", "ghostwriter", "never an instruction")
_PLACEHOLDER = re.compile(
    r"\[[^\[\]\n]{0,60}[^\W\d_][^\[\]\n]{0,60}\]"  # [Company Name], [insert anecdote]
    r"|\{\{?\s*[^\W\d][\w ]{0,40}\}\}?"  # {name}, {{name}}
    r"|\b(?:insert|add|put)\b[^.!?\n]{0,40}\bhere\b"  # insert company name here
    r"|(?<![\w@])@[A-Za-z_][\w.]*\w",  # an invented @handle would tag a stranger
    re.IGNORECASE,
)


def _excerpt(text: str, limit: int = 70, *, tail: bool = False) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return repr(flat)
    return repr("…" + flat[-limit:]) if tail else repr(flat[:limit] + "…")


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


def _cta(request: PostRequest) -> str:
    return " ".join((request.call_to_action or "").split())


def _body_before_cta(content: str, request: PostRequest) -> str:
    cta = _cta(request)
    body = content.rstrip()
    if cta and body.endswith(cta):
        body = body[: -len(cta)]
    return body.rstrip()


def check_title(post: PostLike, request: PostRequest) -> Failure:
    title = post.title
    if not title.strip() or not any(c.isalpha() for c in title):
        return f"empty or no letters: {title!r}"
    if "\n" in title or "\r" in title:
        return f"more than one line: {_excerpt(title)}"
    if title != title.strip():
        return f"surrounding whitespace: {title!r}"
    if len(title) > TITLE_MAX_CHARS:
        return f"{len(title)} chars > {TITLE_MAX_CHARS}: {_excerpt(title)}"
    return None


def check_length(post: PostLike, request: PostRequest) -> Failure:
    low, high = LENGTH_BANDS[request.length]
    size = len(post.content)
    if low <= size <= high:
        return None
    return f"{size} chars, band {low}-{high} ({request.length.value}): {_excerpt(post.content)}"


def check_sentence_end(post: PostLike, request: PostRequest) -> Failure:
    body = _body_before_cta(post.content, request)
    if not body and _cta(request):
        return None  # nothing but the call to action: `length` judges that
    if _SENTENCE_END.search(body):
        return None
    return f"ends mid-sentence: {_excerpt(body, 60, tail=True)}"


def check_hashtags(post: PostLike, request: PostRequest) -> Failure:
    tags = post.hashtags
    if len(tags) != request.num_hashtags:
        return f"{len(tags)} hashtags, asked {request.num_hashtags}: {tags}"
    bad = [tag for tag in tags if not _HASHTAG.fullmatch(tag)]
    if bad:
        return f"malformed: {bad}"
    folded = [tag.casefold() for tag in tags]
    if len(set(folded)) != len(folded):
        return f"duplicates: {tags}"
    return None


def check_no_template_tokens(post: PostLike, request: PostRequest) -> Failure:
    for text in (post.text, post.title, post.content, " ".join(post.hashtags)):
        match = _TEMPLATE_TOKEN.search(text)
        if match:
            return f"template token {match.group().strip()!r}"
    return None


def prompt_sentences(request: PostRequest) -> list[str]:
    """Normalised sentences (and clauses of 4+ words) of every prompt sent for this request."""
    texts = [SYSTEM_PROMPT]
    for part in PARTS:
        user = build_messages(part, request)[-1]["content"]  # type: ignore[arg-type]
        texts.append(_DELIMITER.split(user)[0])  # the instructions, not the user's own text
    sentences: set[str] = set()
    for text in texts:
        for piece in re.split(r"(?<=[.:;?!])\s+|:\s*", text):
            normalised = _norm(_DELIMITER.sub(" ", piece))
            if len(normalised.split()) >= 4:
                sentences.add(normalised)
    return sorted(sentences)


def check_no_prompt_echo(post: PostLike, request: PostRequest) -> Failure:
    match = _DELIMITER.search(post.text)
    if match:
        return f"request delimiter {match.group()!r}"
    for line in [post.title, *post.content.splitlines()]:
        if _LABEL_LINE.search(line):
            return f"label line: {_excerpt(line)}"
        if _ACK_LINE.search(line) or _HERE_IS_LINE.search(line):
            return f"assistant preamble: {_excerpt(line)}"
        match = _META_TALK.search(line)
        if match:
            return f"talks about the task ({match.group()!r}): {_excerpt(line)}"
        if any(pattern.search(line) for pattern in PROMPT_ECHO_PATTERNS):
            return f"prompt echo (prompts.PROMPT_ECHO_PATTERNS): {_excerpt(line)}"
    normalised = _norm(f"{post.title}\n{post.content}")
    for sentence in [*prompt_sentences(request), *_ECHO_PHRASES]:
        if sentence in normalised:
            return f"instruction text: {sentence!r}"
    return None


def check_no_repeated_lines(post: PostLike, request: PostRequest) -> Failure:
    seen: set[str] = set()
    for line in post.text.splitlines():
        key = " ".join(line.split()).casefold()
        if not key:
            continue
        if key in seen:
            return f"repeated line: {_excerpt(line)}"
        seen.add(key)
    return None


def check_call_to_action(post: PostLike, request: PostRequest) -> Failure:
    cta = _cta(request)
    if not cta:
        return None
    content = post.content.rstrip()
    if not content.endswith(cta):
        return f"does not end with {cta!r}: {_excerpt(content, 60, tail=True)}"
    before = content[: -len(cta)]
    if before and not before.endswith(("\n", " ")):
        return f"call to action glued to the text: {_excerpt(content, 60, tail=True)}"
    return None


def check_max_chars(post: PostLike, request: PostRequest) -> Failure:
    if len(post.text) <= LINKEDIN_MAX_CHARS:
        return None
    return f"text is {len(post.text)} chars > {LINKEDIN_MAX_CHARS}"


def check_no_placeholders(post: PostLike, request: PostRequest) -> Failure:
    match = _PLACEHOLDER.search(post.text)
    if match:
        return f"placeholder {match.group()!r}"
    return None


def check_hashtag_words(post: PostLike, request: PostRequest) -> Failure:
    # The compiler's own rule: stop words (#The), pieces of a link (#Https, #WwwLinkedinCom) and
    # words of the prompt (#Request), unless the topic has the word ("Finding your tone": #Tone).
    topic_words = frozenset(re.findall(r"\w+", request.topic.casefold()))
    junk = [tag for tag in post.hashtags if is_junk_tag(tag.lstrip("#").casefold(), topic_words)]
    if junk:
        return f"stop-word, link or prompt-word tags {junk} in {' '.join(post.hashtags)}"
    return None


def check_relevance(cosine: float, threshold: float = RELEVANCE_THRESHOLD) -> Failure:
    if cosine > threshold:
        return None
    return f"cosine(topic, body) {cosine:.2f} <= {threshold:.2f}"


CONTRACT_CHECKS: dict[str, Callable[[PostLike, PostRequest], Failure]] = {
    "title": check_title,
    "length": check_length,
    "sentence_end": check_sentence_end,
    "hashtags": check_hashtags,
    "no_template_tokens": check_no_template_tokens,
    "no_prompt_echo": check_no_prompt_echo,
    "no_repeated_lines": check_no_repeated_lines,
    "call_to_action": check_call_to_action,
    "max_chars": check_max_chars,
    "no_placeholders": check_no_placeholders,
    "hashtag_words": check_hashtag_words,
}


def applies(check: str, request: PostRequest) -> bool:
    """Whether a check says anything about this request (a call to action only when asked)."""
    return check != "call_to_action" or bool(_cta(request))


def score_post(
    post: PostLike,
    request: PostRequest,
    cosine: float | None = None,
    threshold: float = RELEVANCE_THRESHOLD,
) -> dict[str, Failure]:
    """Every check's verdict for one post, in CHECKS order (relevance only given a cosine)."""
    verdicts: dict[str, Failure] = {}
    for name in CHECKS:
        if name != "relevance":
            verdicts[name] = CONTRACT_CHECKS[name](post, request)
        elif cosine is not None:
            verdicts[name] = check_relevance(cosine, threshold)
    return verdicts


def relevance_text(post: PostLike, request: PostRequest) -> str:
    """What relevance embeds for a post: its body without the (user's own) call to action."""
    return _body_before_cta(post.content, request) or post.content
