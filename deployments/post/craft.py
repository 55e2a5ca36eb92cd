"""What the Compiler removes so that a post reads as the user's own: the Compiler's craft rules.

A 135M model, asked for a LinkedIn post, often writes around the post: it introduces itself with
an invented name ("Hey everyone, I'm Alexei, a professional and AI assistant."), talks as an
assistant ("let me know if ..."), describes its own text ("This message conveys ..."), wraps the
post in code (`document.write("...")`) or quotes, and labels its sections ("Introduction:").
These functions take such pieces out of one line at a time, the way `textproc.clean_model_text`
takes out prompt echoes. The quality harness judges the result with checks of its own
(`benchmarks/craft.py`), written apart from these rules so that it can catch what they miss.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_QUOTE_PAIRS = {"\u201c": "\u201d", "\u00ab": "\u00bb"}
_QUOTES = '"' + "".join(_QUOTE_PAIRS) + "".join(_QUOTE_PAIRS.values())
# A sentence inside a line: up to . ! ? or an ellipsis, closing quotes and brackets included.
_SENTENCE = re.compile(r"\S.*?(?:[.!?\u2026]+[\"”'’)\]]*(?=\s|$)|$)")

# Capitalised words that follow "I'm" in ordinary sentences ("I'm Excited" in a headline).
_NOT_A_NAME_TEXT = """
a an the not so very just also always still now really here there back only going glad happy
excited proud thrilled grateful honored honoured humbled delighted ready sure sorry new
working writing sharing looking passionate curious convinced certain confident learning
building leading starting currently finally today in on at from with of for to and but or as
by ai
"""
_NOT_A_NAME = frozenset(_NOT_A_NAME_TEXT.split())
_SELF_INTRODUCTION = re.compile(
    r"\b(?:I['’]m|I\s+am|(?i:my\s+name\s+is|my\s+name['’]s|name['’]s|call\s+me))\s*,?\s+"
    r"(?P<name>[A-Z][a-z\u00e0-\u00ff]+)\b(?!['’])"
)
_ASSISTANT_TALK = re.compile(
    r"\b(?:ai|virtual|digital)\s+assistant\b|\bghost\s*-?\s*writer\b|\blanguage\s+model\b"
    r"|\bas\s+an\s+ai\b|\b(?:i['’]?m|i\s+am)\s+(?:here|happy|glad|always\s+here)\s+to\s+help\b"
    r"|\blet\s+me\s+know\s+if\b|\bfeel\s+free\s+to\s+(?:ask|reach\s+out|let\s+me)\b"
    r"|\bi\s+hope\s+(?:this|that)\s+helps\b|\bhow\s+can\s+i\s+(?:help|assist)\b"
    r"|\bas\s+(?:you\s+)?requested\b"
    # The model describing its own text: "This message conveys ...", "The post highlights",
    # "In my latest post, I'll be sharing ...", "share this post", "the link below".
    r"|\b(?:this|the)\s+(?:linkedin\s+)?(?:post|message|text|article|caption)\s+(?:conveys"
    r"|highlights|emphasi[sz]es|aims\s+to|is\s+designed|is\s+intended|showcases|captures"
    r"|is\s+written|is\s+about|will|was\s+inspired)\b"
    r"|\bin\s+(?:this|my\s+(?:latest|last|previous|next))\s+(?:blog\s+)?(?:post|article)\b"
    r"|\bthis\s+blog\s+post\b|\bshare\s+this\s+post\b|\bthe\s+link\s+below\b"
    r"|\bconcrete\s+(?:insight|example)\b|\bthe\s+topic\s+(?:of|below)\b"
    # A letter or a direct message, not a post: "Dear ...", "I hope you're doing well".
    r"|\bi\s+hope\s+(?:you['’]re|you\s+are|this\s+(?:message|email|post)\s+finds)\b"
    r"|\b(?:i['’]?m|i\s+am)\s+(?:writing|reaching\s+out)\s+to\b"
    r"|\bi['’]?ve\s+been\s+following\s+your\b|\bhow\s+i\s+can\s+(?:help|assist)\s+you\b"
    r"|\b(?:hear|learn|know)\s+more\s+about\s+your\s+(?:work|projects?|experiences?|company"
    r"|business|team|needs)\b"
    # A service offered to the reader rather than a post of one's own: "I'm here to support
    # you", "your go-to person", "I'll be happy to talk to you about it", "I hope that's helpful".
    r"|\b(?:i['’]?m|i\s+am)\s+(?:here|always\s+here)\s+(?:to\s+(?:help|support|assist|give"
    r"|guide|answer)|for\s+you)\b|\bgo-to\s+person\b|\bhelp\s+you\s+with\s+whatever\b"
    r"|\b(?:i['’]?l{1,2}|i\s+will|i['’]?d|i\s+would)\s+be\s+(?:happy|glad)\s+to\s+(?:talk|chat"
    r"|help|assist|answer)\b|\bi\s+hope\s+(?:this|that)(?:['’]s|\s+is|\s+was)\s+helpful\b"
    r"|\bjust\s+let\s+me\s+know\b|\bdon['’]?t\s+hesitate\s+to\b"
    r"|\b(?:i\s+will|i['’]ll)\s+(?:need\s+your|be\s+providing\s+you|provide\s+you)\b"
    r"|\bhow\s+i\s+(?:can|could|might)\s+(?:help|assist|support)\b"
    r"|\bwhere\s+your\s+career\s+takes\s+you\b"
    r"|\b(?:relevant|related)\s+to\s+your\s+(?:field|work|industry)\b"
    # "This is a simple example of a LinkedIn post", "Attached is a copy of the LinkedIn post".
    r"|\blinkedin\s+posts?\b",
    re.IGNORECASE,
)
# Signatures: "Best, Alex", "Best regards," then "Alex", "— Maria". A name the user gave is kept.
_SIGN_OFF = re.compile(
    r"^\s*(?:best|cheers|regards|best\s+regards|kind\s+regards|warm\s+regards|warmly"
    r"|sincerely|yours|all\s+the\s+best|(?P<thanks>thanks|thank\s+you))\s*,?\s*"
    r"(?P<name>(?-i:[A-Z][a-z]+)(?:\s+(?-i:[A-Z][a-z]+))?)?\s*[.!]?\s*$",
    re.IGNORECASE,
)
_DASH_NAME = re.compile(r"^\s*[-\u2013\u2014~]+\s*(?P<name>[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)\s*$")
_NAME_LINE = re.compile(r"^\s*(?P<name>[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)\s*[.!]?\s*$")
# `document.write("...")`, `print('...')`, `console.log(` ... `);`: the text inside is kept.
_CODE_CALL = re.compile(
    r"^\s*(?:[A-Za-z_][\w.]*\.)?(?:write(?:ln)?|log|print(?:ln|f)?|echo|alert)\s*\(\s*"
    r"(?:[\"'`]\s*)?",
    re.IGNORECASE,
)
_CODE_CALL_END = re.compile(r"\s*[\"'`]?\s*\)\s*;?\s*$")
_CODE_FENCE = re.compile(r"`{3,}\w*")
_SECTION_LABEL = re.compile(
    r"^\s*(?:introduction|intro|conclusion|summary|outro|opening(?:\s+line)?|closing(?:\s+line)?"
    r"|paragraph\s*\d*|section\s*\d*|part\s*\d+|main\s+(?:body|points?)|final\s+thoughts"
    r"|call[\s-]to[\s-]action|cta|background|context|story|key\s+takeaways?|premise)"
    r"\s*\d*\s*(?::|\s[\-\u2013\u2014])\s*",
    re.IGNORECASE,
)
# A line that is only a heading: "Key Points:", "My Story".
_HEADING = re.compile(r"^[^\W\d_][\w'’ &/-]{0,40}:$")
# "Hey everyone,", "Hi there!", "Dear Sir,", "Hey!", "Ladies and gentlemen": no hook.
_GREETING = re.compile(
    r"^(?:(?:hey|hi|hello|greetings|dear)\b[^.!?\n,]{0,30}?"
    r"(?:\b(?:everyone|all|folks|linkedin|network|friends|connections|there|team|community)\b)"
    r"\s*[,!.:\u2014-]*|(?:hey|hi|hello|greetings|dear)(?:\s+[\w’']+){0,2}\s*[,!:]+"
    r"|ladies\s+and\s+gentlemen\b[,!.:]*)\s*",
    re.IGNORECASE,
)
# A hook line that is a label of the prompt's: "Premise: ...", "Tone range: friendly".
_META_LABEL = re.compile(
    r"^\s*(?:premise|tone(?:\s+\w+)?|style|option|version|example|response|answer|output"
    r"|draft)\s*\d*\s*:\s*",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?\u2026][\"')\]\u201d\u2019\u00bb]*$")


def sentences(line: str) -> list[str]:
    """'He said "ship it." Then we left.' -> ['He said "ship it."', 'Then we left.']"""
    return _SENTENCE.findall(line)


def balance_quotes(line: str) -> str:
    """Drop the double quotes of a line that never close (or never opened), and unwrap a line
    that is one quotation from end to end: a post is the user's own words, not a quotation."""
    chars = list(line)
    straight = [i for i, c in enumerate(chars) if c == '"']
    if len(straight) % 2:
        # The usual case is an opening quote that never closes: it goes; otherwise the last.
        first = straight[0]
        lone = first if not line[:first].strip() else straight[-1]
        chars[lone] = ""
    for left, right in _QUOTE_PAIRS.items():
        stack: list[int] = []
        for i, c in enumerate(chars):
            if c == left:
                stack.append(i)
            elif c == right:
                if stack:
                    stack.pop()
                else:
                    chars[i] = ""
        for i in stack:
            chars[i] = ""
    text = "".join(chars).strip()
    inner = text[1:-1]
    if (
        len(text) > 2
        and text[0] in _QUOTES
        and text[-1] in _QUOTES
        and not any(q in inner for q in _QUOTES)
    ):
        text = inner.strip()
    return text


def unwrap_code(line: str) -> str:
    """'document.write("Text")' -> 'Text'; a fence or a bare ');' goes."""
    line = _CODE_FENCE.sub("", line)
    call = _CODE_CALL.match(line)
    if call:
        line = _CODE_CALL_END.sub("", line[call.end() :])
    elif re.fullmatch(r"\s*[\"'`]?\s*\)\s*;?\s*", line):
        return ""
    return line


def introduces_someone(sentence: str, given_words: set[str]) -> bool:
    """'I'm Alexei, a ...' with a name the request did not give."""
    for match in _SELF_INTRODUCTION.finditer(sentence):
        name = match.group("name").casefold()
        if name not in _NOT_A_NAME and name not in given_words:
            return True
    return False


def is_assistant_talk(sentence: str) -> bool:
    """Talk of an assistant, about the post itself, or of a letter rather than a post."""
    return bool(_ASSISTANT_TALK.search(sentence))


def signature_lines(lines: list[str], given_words: set[str]) -> set[int]:
    """Indexes of the lines that sign the post with a name the request did not give, or close
    it as a letter ("Best regards,"), with the name on the line after when it stands there."""
    found: set[int] = set()

    def invented(name: str | None) -> bool:
        return bool(name) and name.split()[0].casefold() not in given_words  # type: ignore[union-attr]

    def name_after(i: int) -> int | None:
        """The next non-empty line when it is only an invented name."""
        following = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), None)
        name_line = _NAME_LINE.match(lines[following]) if following is not None else None
        return following if name_line and invented(name_line.group("name")) else None

    for i, line in enumerate(lines):
        sign_off, dash = _SIGN_OFF.match(line), _DASH_NAME.match(line)
        if dash and invented(dash.group("name")):
            found.add(i)
        elif sign_off:
            name = name_after(i)
            # "Thanks," alone can close a post; "Thanks,", then "Alex.", signs it.
            if invented(sign_off.group("name")) or not sign_off.group("thanks") or name:
                found.add(i)
            if name is not None:
                found.add(name)
    # A name alone on the body's last line ("Emily."), under a paragraph of text, signs it too
    # (a closing word with "!", "Onwards!", is no signature; "Thanks." was seen above).
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if len(filled) > 1:
        tail = lines[filled[-1]]
        last = _NAME_LINE.match(tail)
        if (
            last
            and invented(last.group("name"))
            and not tail.rstrip().endswith("!")
            and not _SIGN_OFF.match(tail)
            and len(lines[filled[-2]].split()) > 3
        ):
            found.add(filled[-1])
    return found


def without_meta_label(line: str) -> str:
    return _META_LABEL.sub("", line, count=1)


def without_section_label(line: str) -> str:
    """'Introduction: Teams ...' -> 'Teams ...'; a heading alone on its line -> ''."""
    if _HEADING.match(line.strip()):
        return ""
    return _SECTION_LABEL.sub("", line, count=1)


def without_greeting(line: str) -> str:
    """'Hey everyone, today we ...' -> 'Today we ...': a greeting is no hook."""
    rest = _GREETING.sub("", line, count=1)
    if rest == line or not rest.strip():
        return line if rest == line else ""
    return rest[:1].upper() + rest[1:]


def is_headline(line: str) -> bool:
    """A short line in Title Case with no sentence end: a title, not a paragraph of a body."""
    words = _WORD.findall(line)
    if not words or len(words) > 24 or _SENTENCE_END.search(line.strip()):
        return False
    long_words = [w for w in words if len(w) > 3]
    capitalised = [w for w in long_words if w[0].isupper()]
    return len(long_words) >= 2 and len(capitalised) >= 0.75 * len(long_words)


def words_of(texts: Iterable[str]) -> set[str]:
    """The words of the user's own text, casefolded ("Priya's" gives "priya" too)."""
    words = {w.casefold() for text in texts for w in _WORD.findall(text)}
    return words | {part for w in words for part in re.split(r"['’]", w) if part}


def clean_line(line: str, given_words: set[str]) -> str:
    """One line of a body with the writing-around-the-post taken out."""
    line = without_section_label(balance_quotes(unwrap_code(line)))
    kept = [
        s
        for s in sentences(line)
        if not introduces_someone(s, given_words) and not is_assistant_talk(s)
    ]
    line = " ".join(kept)
    return balance_quotes(line) if line else ""


def clean_body_lines(lines: list[str], given_words: set[str], topic: str, title: str) -> list[str]:
    """Every line of a body through `clean_line`; headlines and lines restating the topic or the
    hook go, and a greeting is taken off the body's first line."""
    topic_key, title_key = _key(topic), _key(title)
    signatures = signature_lines(lines, given_words)
    kept: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            kept.append("")
            continue
        if i in signatures:
            continue
        cleaned = clean_line(line, given_words)
        if not cleaned or _key(cleaned) in (topic_key, title_key) or is_headline(cleaned):
            continue
        if not any(k.strip() for k in kept):
            cleaned = without_greeting(cleaned)
        if cleaned:
            kept.append(cleaned)
    return kept


def _key(text: str) -> str:
    return " ".join(w.casefold() for w in _WORD.findall(text))
