"""Reading a verdict out of the model's text, deterministically.

FakeVLM answers "This is a fake image. <explanation>" or "This is a real image. <explanation>". The
upstream evaluation looked for the substring "real" before "fake" (so "not real" and "unrealistic" read as
real) and fell back to a *random* label. Here the first sentence that is not a question decides (a model
that repeats the prompt's question first is then read after it), whole words are matched, negation flips the
word it governs, and anything undecidable is "unknown" — never a guess: both polarities, or a negation or
hedge that governs no verdict word ("I don't think this image is real", "There is no evidence that it is
fake", "It is not clear whether it is real").
"""

from __future__ import annotations

import re

REAL, FAKE, UNKNOWN = "real", "fake", "unknown"

_FAKE_WORDS = {
    "fake", "fakes", "faked", "generated", "synthetic", "synthesized", "synthesised", "manipulated",
    "forged", "forgery", "artificial", "deepfake", "deepfaked", "unrealistic", "unreal", "inauthentic",
    "doctored", "tampered", "counterfeit", "ai-generated", "computer-generated", "edited",
}
# ("natural" is not one: natural lighting is said of fakes too)
_REAL_WORDS = {"real", "authentic", "genuine", "original", "unedited", "unmanipulated"}
_NEGATIONS = {"not", "no", "never", "neither", "nor", "isn't", "isnt", "doesn't", "doesnt", "aren't",
              "wasn't", "hardly", "n't", "without"}
# Words that may sit between a negation and the word it governs ("not a real", "not entirely fake").
_FILLERS = {"a", "an", "the", "at", "all", "really", "entirely", "completely", "quite", "truly", "very",
            "actually", "be", "been", "look", "looks", "appear", "appears", "seem", "seems", "like", "is",
            "image", "photo", "picture", "ai", "to", "likely", "this", "it", "that"}
# Words that make a sentence's verdict word uncertain when no adjacency rule ties them to it.
_HEDGES = {"nothing", "none", "nobody", "impossible", "unlikely", "doubt", "doubtful", "whether", "unclear",
           "uncertain", "cannot", "far", "if", "might", "may", "could", "possibly", "perhaps", "maybe"}

# A sentence ends at . ! ? and blanks, but not at an ellipsis ("looks real... but") nor after an initialism
# ("A.I. generated"); a line break always ends one.
_SENTENCE_END = re.compile(r"(?<!\.\.)(?<![A-Z]\.[A-Z]\.)(?<=[.!?])\s+|\n+")
# Words, and the punctuation that ends a clause: a negation never reaches across it ("No, it is fake.").
_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*|n't|[,;:]")
_CLAUSE_END = {",", ";", ":"}


def split_verdict(text: str) -> tuple[str, str]:
    """Split an answer into its verdict sentence (the first that is not a question: a repeated prompt goes
    before it) and the rest (the explanation)."""
    rest = (text or "").strip()
    while rest:
        parts = _SENTENCE_END.split(rest, maxsplit=1)
        first = parts[0].strip()
        rest = parts[1].strip() if len(parts) > 1 else ""
        if not first.endswith("?") or not rest:
            return first, rest
    return "", ""


def parse_verdict(text: str) -> str:
    """Return "real", "fake" or "unknown" for an answer, judged by its verdict sentence only."""
    first, _ = split_verdict(text)
    if not first or "?" in first:
        return UNKNOWN  # a question ("Is this real or fake?") is not an answer
    found: set[str] = set()
    words = _WORD.findall(first.lower().replace("\u2019", "'"))
    since = 0  # where the words that may govern the next verdict word start: its clause, after any earlier one
    for i, word in enumerate(words):
        if word in _CLAUSE_END:
            since = i + 1
            continue
        polarity = FAKE if word in _FAKE_WORDS else REAL if word in _REAL_WORDS else None
        if polarity is None:
            continue
        if _negated(words, i):
            polarity = REAL if polarity == FAKE else FAKE
        elif any(_negation(w) or w in _HEDGES for w in words[since:i]):
            return UNKNOWN  # a negation or hedge governs it in a way this reader cannot tell
        found.add(polarity)
        since = i + 1
    if len(found) == 1:
        return found.pop()
    return UNKNOWN  # nothing said, or both ("real or fake", "a real face on a fake body")


def _negation(word: str) -> bool:
    return word in _NEGATIONS or word.endswith("n't")


def _negated(words: list[str], index: int) -> bool:
    """True when a negation governs words[index], looking back over a few filler words."""
    j = index - 1
    while j >= 0 and index - j <= 4:
        word = words[j]
        if word in _CLAUSE_END:
            return False
        if _negation(word):
            return True
        if word not in _FILLERS:
            return False
        j -= 1
    return False


def upstream_verdict(generated: str, choose) -> str:
    """The verdict as upstream's evaluation reads it, re-implemented from opendatalab/FakeVLM scripts/eval.py
    (`validate`, at commit fdcdcf1; scripts/eval_vllm.py reads the same way): not the reader above, for
    researchers who want upstream's exact number.

    Upstream decodes prompt and answer together and keeps what follows the last "?" (the prompt ends with one,
    so an answer with no "?" is kept whole); then, in the first "."-separated piece and failing that the
    second, the substring "real" (lower-cased) means real and is checked before "fake" ("not real",
    "unrealistic" and "surreal" read real; "realistic fake" too). An answer with neither in those two pieces
    gets a random label: `choose(("fake", "real"))` draws it (a seeded `random.Random().choice` gives upstream's
    `random.choice([0, 1])` index for index, 0 being fake there).
    """
    response = (generated or "").split("?")[-1]
    for piece in response.split(".")[:2]:
        lowered = piece.lower()
        if "real" in lowered:
            return REAL
        if "fake" in lowered:
            return FAKE
    return choose((FAKE, REAL))
