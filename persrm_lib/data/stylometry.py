"""Measured writing-style features of a text (stylometry), deterministic and CPU-only.

The features are what the PersRM-R1 paper's criteria talk about (arXiv 2508.14076, §3.1: sentence
rhythm, vocabulary, punctuation, tone), measured instead of described (:data:`SCALAR_FEATURES`, the
function-word profile, a character n-gram profile). Every rate is "per 100 words" (punctuation) or a
share in [0, 1]; a text without words measures as all zeros.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

# Common English function words (articles, pronouns, prepositions, conjunctions, auxiliaries,
# adverbs): topic-independent, the classic authorship signal (Mosteller & Wallace). Fixed order.
FUNCTION_WORDS: tuple[str, ...] = (
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "but", "by", "can", "could", "did", "do", "does", "each", "even", "every", "for",
    "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it",
    "its", "just", "may", "me", "might", "more", "most", "much", "must", "my", "no", "nor", "not",
    "now", "of", "on", "one", "only", "or", "other", "our", "over", "shall", "she", "should", "so",
    "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "though", "to", "upon", "us", "very", "was", "we", "were", "what", "when",
    "where", "which", "while", "who", "whom", "why", "will", "with", "would", "yet", "you", "your",
)  # fmt: skip

# The scalar features, in a fixed order, with the words the stylometric teacher uses for them.
SCALAR_FEATURES: dict[str, str] = {
    "sentence_length_mean": "mean sentence length (words)",
    "sentence_length_std": "spread of sentence length (words, standard deviation)",
    "word_length_mean": "mean word length (letters)",
    "long_word_rate": "share of long words (7+ letters)",
    "type_token_ratio": "type-token ratio",
    "mattr": "moving-average type-token ratio (50-word window)",
    "yules_k": "Yule's K (vocabulary repetitiveness)",
    "hapax_rate": "share of words used once",
    "comma_rate": "commas per 100 words",
    "semicolon_rate": "semicolons per 100 words",
    "colon_rate": "colons per 100 words",
    "dash_rate": "dashes per 100 words",
    "exclamation_rate": "exclamation marks per 100 words",
    "question_rate": "question marks per 100 words",
    "quote_rate": "quotation marks per 100 words",
    "parenthesis_rate": "parentheses per 100 words",
    "capitalised_word_rate": "share of capitalised words",
    "uppercase_char_rate": "share of uppercase letters",
    "digit_rate": "digits per 100 words",
    "function_word_rate": "share of function words",
}
FUNCTION_WORD_FEATURES: tuple[str, ...] = tuple(f"fw_{w}" for w in FUNCTION_WORDS)
FEATURE_NAMES: tuple[str, ...] = tuple(SCALAR_FEATURES) + FUNCTION_WORD_FEATURES

MATTR_WINDOW = 50
LONG_WORD = 7

_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
# A sentence ends at . ! ? (or an ellipsis), optionally followed by closing quotes or brackets,
# then whitespace; the text's end closes the last sentence.
_SENTENCE_END_RE = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")
_DASH_RE = re.compile(r"—|–|--+|(?<=\s)-(?=\s)")
_QUOTE_RE = re.compile(r"[\"“”«»]|(?<![^\W\d_])['‘’]|['‘’](?![^\W\d_])")
_PUNCTUATION: dict[str, re.Pattern[str]] = {
    "comma_rate": re.compile(r","),
    "semicolon_rate": re.compile(r";"),
    "colon_rate": re.compile(r":"),
    "dash_rate": _DASH_RE,
    "exclamation_rate": re.compile(r"!"),
    "question_rate": re.compile(r"\?"),
    "quote_rate": _QUOTE_RE,
    "parenthesis_rate": re.compile(r"[()\[\]]"),
}
_FUNCTION_WORD_INDEX = {w: i for i, w in enumerate(FUNCTION_WORDS)}


def words(text: str) -> list[str]:
    """The words of ``text`` (letters, with inner apostrophes), in order, case kept."""
    return _WORD_RE.findall(text)


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences on ``.``, ``!``, ``?`` (or an ellipsis) followed by whitespace."""
    return [s.strip() for s in _SENTENCE_END_RE.split(text.strip()) if s.strip()]


def mattr(tokens: Sequence[str], window: int = MATTR_WINDOW) -> float:
    """Moving-average type-token ratio (Covington & McFall 2010); the plain TTR below ``window``."""
    n = len(tokens)
    if n == 0:
        return 0.0
    if n <= window:
        return len(set(tokens)) / n
    counts = Counter(tokens[:window])
    total = len(counts)
    for i in range(window, n):
        counts[tokens[i]] += 1
        old = tokens[i - window]
        counts[old] -= 1
        if counts[old] == 0:
            del counts[old]
        total += len(counts)
    return total / (n - window + 1) / window


def yules_k(tokens: Sequence[str]) -> float:
    """Yule's K = 10^4 * (sum_i i^2 V_i - N) / N^2 (higher: more repetitive vocabulary)."""
    n = len(tokens)
    if n == 0:
        return 0.0
    spectrum = Counter(Counter(tokens).values())
    return 1e4 * (sum(i * i * v for i, v in spectrum.items()) - n) / (n * n)


def style_features(text: str) -> dict[str, float]:
    """``{name: value}`` for every name in :data:`FEATURE_NAMES`, in order: the scalar features, then
    ``fw_<word>``, the share of the words that are that function word. TypeError for a non-``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"style_features expects a str, got {type(text).__name__}")
    out = dict.fromkeys(FEATURE_NAMES, 0.0)
    tokens = words(text)
    n = len(tokens)
    if n == 0:
        return out
    lower = [t.lower() for t in tokens]
    sentence_lengths = np.array([len(words(s)) for s in sentences(text)], dtype=float)
    sentence_lengths = sentence_lengths[sentence_lengths > 0]
    word_lengths = np.array([len(t.replace("'", "").replace("’", "")) for t in tokens], dtype=float)
    letters = [c for c in text if c.isalpha()]
    counts = Counter(lower)

    out["sentence_length_mean"] = float(sentence_lengths.mean()) if sentence_lengths.size else float(n)
    out["sentence_length_std"] = float(sentence_lengths.std()) if sentence_lengths.size else 0.0
    out["word_length_mean"] = float(word_lengths.mean())
    out["long_word_rate"] = float((word_lengths >= LONG_WORD).mean())
    out["type_token_ratio"] = len(counts) / n
    out["mattr"] = mattr(lower)
    out["yules_k"] = yules_k(lower)
    out["hapax_rate"] = sum(1 for c in counts.values() if c == 1) / n
    for name, pattern in _PUNCTUATION.items():
        out[name] = 100.0 * len(pattern.findall(text)) / n
    out["capitalised_word_rate"] = sum(1 for t in tokens if t[0].isupper()) / n
    out["uppercase_char_rate"] = sum(1 for c in letters if c.isupper()) / len(letters)
    out["digit_rate"] = 100.0 * sum(1 for c in text if c.isdigit()) / n
    function_total = 0
    for word, count in counts.items():
        if word in _FUNCTION_WORD_INDEX:
            out[f"fw_{word}"] = count / n
            function_total += count
    out["function_word_rate"] = function_total / n
    return out


def feature_matrix(texts: Sequence[str], names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """Stack :func:`style_features` of ``texts`` into a ``(len(texts), len(names))`` float array."""
    rows = [style_features(t) for t in texts]
    return np.array([[row[name] for name in names] for row in rows], dtype=float).reshape(len(rows), len(names))


def function_word_profile(text: str) -> np.ndarray:
    """The function-word shares of ``text`` as a vector in :data:`FUNCTION_WORDS` order."""
    features = style_features(text)
    return np.array([features[name] for name in FUNCTION_WORD_FEATURES], dtype=float)


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    """Cosine similarity; 0.0 when either vector is all zeros."""
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu == 0.0 or nv == 0.0:
        return 0.0
    return float(np.dot(u, v) / (nu * nv))


def char_ngram_similarity(
    exemplars: Sequence[str], candidates: Sequence[str], ngram_range: tuple[int, int] = (3, 5)
) -> np.ndarray:
    """Cosine in [0, 1] of each candidate to the mean character n-gram TF-IDF profile of the
    exemplars (scikit-learn's ``TfidfVectorizer``, ``char_wb``, sublinear tf, fitted on exemplars and
    candidates together: the idf weights depend on this one comparison only). ValueError without a
    non-empty exemplar.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not exemplars or not any(str(e).strip() for e in exemplars):
        raise ValueError("char_ngram_similarity needs at least one non-empty exemplar")
    texts = [str(t) for t in exemplars] + [str(t) for t in candidates]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, sublinear_tf=True, lowercase=False)
    matrix = vectorizer.fit_transform(texts)
    centroid = np.asarray(matrix[: len(exemplars)].mean(axis=0)).ravel()
    rows = matrix[len(exemplars) :].toarray()
    return np.array([max(0.0, cosine(row, centroid)) for row in rows], dtype=float)


def describe(name: str) -> str:
    """Human words for a feature name (``fw_the`` -> ``share of the function word 'the'``)."""
    if name in SCALAR_FEATURES:
        return SCALAR_FEATURES[name]
    if name.startswith("fw_") and name[3:] in _FUNCTION_WORD_INDEX:
        return f"share of the function word {name[3:]!r}"
    raise KeyError(f"unknown style feature {name!r}")
