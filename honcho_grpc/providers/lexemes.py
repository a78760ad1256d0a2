"""The words of a text as message search indexes them, in Python.

Search's full-text arm runs in PostgreSQL with the `english` text search configuration
(`to_tsvector('english', ...)` in store/search.py and the `search_text` column of the
messages table): the default parser's word tokens, the Snowball English stemmer and the
`english.stop` stop words. The offline `local` LLM provider reads text with the same analysis,
from this module, so that what it takes for "the same word" is what search does; nothing else
in the service stems or drops stop words.

The stemmer is the Snowball English algorithm from the `snowballstemmer` package, pinned
below 3: PostgreSQL 18 carries Snowball 2.x's English rules, which 3.0 changed (it no longer
conflates "organ"/"organize" or "univers(e|ity)"). The 2.2 release differs from PostgreSQL's
copy only where a three-letter stem ends in a doubled consonant ("added": PostgreSQL `add`,
here `ad`). tests/providers/test_lexemes.py compares both on a corpus against the real
database.

The tokenizer covers prose: words (letters, with digits or not), decimal and dotted numbers,
hyphenated compounds (the compound and each part, as PostgreSQL does). Apostrophes split
words ("maya's" -> "maya", "s", a stop word). Where PostgreSQL's parser knows more (URLs,
e-mail addresses, file paths, signed numbers, a word with a typographic apostrophe), the
text is split into its word parts here instead.
"""

from __future__ import annotations

import functools
import re

import snowballstemmer

# PostgreSQL's tsearch_data/english.stop, which the `english` configuration applies before
# stemming (the Snowball project's English list).
_STOP_WORDS = """
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
she her hers herself it its itself they them their theirs themselves what which who whom
this that these those am is are was were be been being have has had having do does did doing
a an the and but if or because as until while of at by for with about against between into
through during before after above below to from up down in out on off over under again
further then once here there when where why how all any both each few more most other some
such no nor not only own same so than too very s t can will just don should now
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())

# A number with dots (3.5, 1.2.3), a hyphenated compound of letter-only parts, or a word.
_TOKEN = re.compile(r"\d+(?:\.\d+)+|[^\W\d_]+(?:-[^\W\d_]+)+|[^\W_]+")
_stemmer = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball English stem of a lower-case word."""
    return str(_stemmer.stemWord(word))


def tokens(text: str) -> list[str]:
    """The lower-case tokens of `text`, in order; a hyphenated compound is followed by its
    parts."""
    found: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        found.append(token)
        if "-" in token:
            found += token.split("-")
    return found


def lexemes(text: str) -> list[str]:
    """The lexemes of `text` in order, with repeats: what `to_tsvector('english', text)`
    holds, stop words dropped. Words are stemmed (a compound too: `_TOKEN` makes one of
    letters only); tokens with digits are kept as they are (PostgreSQL's `simple`
    dictionary for numbers and words with digits)."""
    found: list[str] = []
    for token in tokens(text):
        if token.isalpha() or "-" in token:
            if token not in STOP_WORDS:
                found.append(stem(token))
        else:
            found.append(token)
    return found
