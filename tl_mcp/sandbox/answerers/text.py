"""Word-level text helpers every answerer shares: tokens for usage counts, content terms, stream deltas."""

from __future__ import annotations

import re

WORD = re.compile(r"[\w']+", re.UNICODE)
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_STOPWORDS_TEXT = """
a an and are as at be been but by can could did do does for from had has have how i in into is it
its me my of on or our please show so than that the their them then there these they this those to
tell us was we were what when where which who whom why will with would you your about any all also
video videos clip clips moment moments find list give describe say said says mention mentioned
happen happens happened does did get got knowledge store
"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def count_tokens(text: str) -> int:
    """A token-ish count (words and punctuation), honest enough for usage numbers."""
    return len(_TOKEN.findall(text))


def content_terms(text: str) -> list[str]:
    """Lower-cased words that carry meaning, in order of first appearance, without stopwords."""
    seen: dict[str, None] = {}
    for word in WORD.findall(text.lower()):
        word = word.strip("'")
        if len(word) > 1 and word not in _STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)


def chunk_text(text: str, words_per_chunk: int = 3) -> list[str]:
    """Split text into phrase-sized deltas that concatenate back to exactly ``text``."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    chunks: list[str] = []
    for i in range(0, len(pieces), words_per_chunk):
        chunks.append("".join(pieces[i : i + words_per_chunk]))
    return chunks


def timestamp(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def marker(start: float, end: float) -> str:
    # Round the end up so a 2.4 s - 5.6 s moment reads [00:02-00:06] and still covers the cue.
    end_whole = int(end) if float(end).is_integer() else int(end) + 1
    return f"[{timestamp(start)}-{timestamp(max(end_whole, int(start)))}]"
