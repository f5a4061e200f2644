"""Tokenization shared by the lexical index and the query side, so both see the same terms."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

import snowballstemmer

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_MENTION = re.compile(r"(?<![\w@])@([\w][\w.\-]*)")

# Function words carry no routing signal; kept short so that domain words are never dropped.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just let me more most my myself no nor not now of off on once only or other our ours ourselves
    out over own please same she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours yourself yourselves also may
    might must shall thank thanks hi hello hey ok okay yes sure really much many well like via
    etc using use used uses want wants need needs i'm im it's don't can't""".split()
)

# Function words that mark a prompt as English: STOPWORDS less the short ones other Latin-script
# languages share ("a", "in", "no", "so", "me", ...).
_ENGLISH_MARKERS = STOPWORDS - frozenset("a i in no on so am an me die hi ok".split())


def looks_english(text: str) -> bool:
    """A cheap language check (microseconds): ASCII letters only, and an English function word
    unless the prompt is two words or fewer. Misjudged English costs speed, not accuracy: the
    multilingual encoder reads English too."""
    if any(ord(ch) > 127 and ch.isalpha() for ch in text):
        return False
    found = [w.lower() for w in _WORD.findall(text) if not w.isdigit()]
    return len(found) <= 2 or any(w in _ENGLISH_MARKERS for w in found)


# Request verbs and filler nouns ("options", "a tool") that appear in almost every prompt and
# tool description: they rank by accident, so the query side counts them at a fraction.
GENERIC = frozenset(
    """get gets getting make makes making create creates creating help helps find finds finding
    show shows tell tells give gives provide provides know see look looking write writes
    return returns run runs do perform performs check checks go try work working take takes
    set sets new current specific specified given based information info data details result
    results list lists retrieve retrieves fetch fetches option options way ways thing things
    something anything everything idea ideas kind lot stuff tool tools plugin plugins app apps
    service recommend suggest assist assistance able""".split()
)

_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Stem one lowercase word; cached because catalogs and prompts repeat words constantly."""
    if not word.isascii():
        return word
    return _stemmer.stemWord(word)


@lru_cache(maxsize=1)
def _generic_stems() -> frozenset[str]:
    return frozenset(stem(w) for w in GENERIC)


def split_identifier(text: str) -> str:
    """Spread ``snake_case``, ``kebab-case`` and ``camelCase`` into words."""
    return _CAMEL.sub(" ", text).replace("_", " ").replace("-", " ")


def words(text: str) -> Iterator[str]:
    """Lowercase words of ``text``; CJK runs become single characters so they can match at all."""
    for raw in _WORD.findall(split_identifier(text)):
        if _CJK.search(raw):
            yield from (ch for ch in raw if not ch.isspace())
            continue
        yield raw.lower()


def tokens(text: str) -> list[str]:
    """Index terms of ``text``: split, lowercased, stopwords dropped, stemmed."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1 or _CJK.match(w)]


def query_terms(text: str, *, weight: float = 1.0) -> dict[str, float]:
    """Weighted query terms: generic request verbs count for less than content words."""
    weighted: dict[str, float] = {}
    for w in words(text):
        if w in STOPWORDS or (len(w) < 2 and not _CJK.match(w)):
            continue
        term = stem(w)
        term_weight = weight * (0.3 if w in GENERIC or term in _generic_stems() else 1.0)
        weighted[term] = max(weighted.get(term, 0.0), term_weight)
    return weighted


def schema_text(schema: Mapping[str, Any] | None) -> str:
    """Parameter names and descriptions of a JSON schema, one level of nesting deep."""
    if not isinstance(schema, Mapping):
        return ""
    parts: list[str] = []
    for name, spec in _properties(schema):
        parts.append(split_identifier(name))
        if isinstance(spec, Mapping):
            if isinstance(spec.get("description"), str):
                parts.append(spec["description"])
            for child, child_spec in _properties(spec.get("items") or spec):
                parts.append(split_identifier(child))
                if isinstance(child_spec, Mapping) and isinstance(
                    child_spec.get("description"), str
                ):
                    parts.append(child_spec["description"])
    return " ".join(parts)


def _properties(schema: Any) -> Iterable[tuple[str, Any]]:
    if not isinstance(schema, Mapping):
        return ()
    props = schema.get("properties")
    return props.items() if isinstance(props, Mapping) else ()


def slug(name: str) -> str:
    """Comparable form of a server name: ``@github`` matches ``GitHub`` and ``git-hub``."""
    return "".join(words(name))


def mentions(text: str) -> tuple[list[str], str]:
    """``@name`` mentions in ``text`` and the text with them removed."""
    found = _MENTION.findall(text)
    stripped = _MENTION.sub(" ", text) if found else text
    return found, " ".join(stripped.split())


# Punctuation that ends a request, in Latin and CJK scripts.
_CLOSING = re.compile(r"[\s.!?\u3002\uff01\uff0e\uff1f]+$")


def without_closing_punctuation(text: str) -> str:
    """``text`` without the punctuation that ends it ("... in Paris?" → "... in Paris").

    How a request is phrased is not what it needs, but the dense encoders weigh a final "?",
    and most plain-chat examples are questions: "what time is it in Paris?" read as plain chat
    and "what time is it in Paris" as the time server. Applied to prompts and to the plain-chat
    examples alike (not to tools' own texts: measured, that lowered plain-chat accuracy).
    """
    return _CLOSING.sub("", text) or text


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n")


def example_requests(name: str, description: str) -> list[str]:
    """Request-shaped sentences for a tool, from its own name and first sentence only."""
    first = _SENTENCE.split(description.strip(), maxsplit=1)[0].strip().rstrip(".!?。")[:200]
    examples = [f"I need {name.lower()}."]
    if first:
        examples.append(f"Can you help me {first[0].lower()}{first[1:]}?")
    return examples


# Where a multi-part request splits into parts: sentence ends, semicolons and "then"/"also"
# style connectives. Each part is scored on its own so one server's words cannot drown another's.
_CLAUSE = re.compile(
    r"(?<=[.!?;])\s+|\n+|,?\s+(?:and then|then|after that|afterwards|also|as well as|"
    r"and also|additionally|finally|next)\s+|,\s+and\s+",
    re.IGNORECASE,
)

_LEADING = re.compile(r"^(?:and then|then|after that|afterwards|also|finally|next|and),?\s+", re.I)


def clauses(text: str, *, limit: int = 4, min_terms: int = 2) -> list[str]:
    """The parts of a multi-part request with at least ``min_terms`` non-generic content words."""
    parts = [_LEADING.sub("", p.strip(" ,.;")) for p in _CLAUSE.split(text) if p]
    parts = [p for p in parts if p]
    parts = [p for p in parts if sum(w >= 1.0 for w in query_terms(p).values()) >= min_terms]
    if len(parts) > limit:
        # Keep every word: the last part takes the rest of the request.
        parts = [*parts[: limit - 1], " ".join(parts[limit - 1 :])]
    return parts if len(parts) > 1 else []


# Needs a prompt implies without naming a tool: a path to a plain file or a folder means reading
# or writing files, a URL means fetching a page. Each detected need adds a short request for it,
# scored like one more part of the prompt. Paths to office documents, spreadsheets, PDFs and media
# imply nothing here: the prompt names the format, and a format-specific tool is what handles it
# (measured: counting them too offered file servers where a document server was needed).
# (Relative dates implying "current time" were tried and hurt.)
_PATH = re.compile(
    r"(?:^|(?<=[\s'\"(`]))(~?/[\w.\-]+(?:/[\w.\-]*)*|[A-Za-z]:\\[\w\\.\-]+"
    r"|[\w\-]+\.[A-Za-z][A-Za-z0-9]{0,4})(?=$|[\s'\",;:)`]|[.!?](?:\s|$))"
)
_FORMAT_SPECIFIC = frozenset(
    """pdf doc docx odt rtf xls xlsx ods csv tsv ppt pptx odp png jpg jpeg gif bmp webp svg tif
    tiff wav mp3 flac ogg m4a mp4 mov avi mkv webm""".split()
)
# A bare name ("notes.txt") counts only with a plain-file extension: "Node.js" or "e.g." do not.
_PLAIN_EXTENSIONS = frozenset(
    """md markdown txt log json yaml yml toml ini cfg conf env py ts tsx jsx sh sql xml html htm
    css ipynb bib tex rst""".split()
)
_URL = re.compile(r"https?://\S+|\bwww\.\S+")
FILE_NEED = "read or write a file in a local directory"
URL_NEED = "fetch the content of a web page URL"


def _is_plain_file_path(path: str) -> bool:
    """A folder, or a file whose format needs no special tool (text, markdown, code, config)."""
    path = path.rstrip(".")
    located = path.startswith(("/", "~")) or "\\" in path
    name = re.split(r"[/\\]", path.rstrip("/\\"))[-1]
    if "." not in name:
        return located
    extension = name.rsplit(".", 1)[1].lower()
    if located:
        return extension not in _FORMAT_SPECIFIC
    return extension in _PLAIN_EXTENSIONS


def implied_needs(text: str) -> list[str]:
    """Requests implied by paths to plain files or folders and by URLs in ``text``."""
    without_urls = _URL.sub(" ", text)
    needs = []
    if any(_is_plain_file_path(m.group(1)) for m in _PATH.finditer(without_urls)):
        needs.append(FILE_NEED)
    if _URL.search(text):
        needs.append(URL_NEED)
    return needs
