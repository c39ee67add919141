"""Close synonyms from WordNet 3.0, for the lexical-perturbation positive (paper §3.1).

WordNet is read from a folder with nltk's ``WordNetCorpusReader`` (nothing is downloaded): the
``folder`` argument, else ``$PERSRM_WORDNET_DIR``, else nltk_data's ``corpora/wordnet`` or Debian's
``wordnet-base`` (``/usr/share/wordnet``).
"""

from __future__ import annotations

import difflib
import functools
import os
import random
import re
import shutil
from pathlib import Path

from ..core.jsonl import atomic_write

WORDNET_ENV = "PERSRM_WORDNET_DIR"
DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")  # Debian/Ubuntu package `wordnet-base`
_REQUIRED_FILES = ("index.noun", "data.noun", "index.verb", "data.verb", "index.adj", "data.adj")
_TOKEN_RE = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)*|\d[\d,.]*")
MIN_WORD_LETTERS = 4
SPELLING_VARIANT_RATIO = 0.8  # difflib similarity at or above which two words are one word spelt two ways
# WordNet 3.0's lexicographer files (number, name, syntactic category), as documented in its
# lexnames(5WN) page. nltk's reader needs a `lexnames` file; Debian compiles the list into
# libwordnet instead of shipping it, so a folder without one is read from a cached copy with one.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def find_wordnet_dir(folder: str | Path | None = None) -> Path:
    """The WordNet folder to read (search order: the module docstring); FileNotFoundError when none has it."""
    candidates: list[Path] = []
    if folder is not None:
        candidates.append(Path(folder))
    elif os.environ.get(WORDNET_ENV):
        candidates.append(Path(os.environ[WORDNET_ENV]))
    else:
        try:
            import nltk

            candidates.append(Path(str(nltk.data.find("corpora/wordnet"))))
        except LookupError:
            pass
        candidates.append(DEBIAN_WORDNET_DIR)
    for candidate in candidates:
        if all((candidate / name).is_file() for name in _REQUIRED_FILES):
            return candidate
    raise FileNotFoundError(
        f"WordNet not found (looked in {', '.join(str(c) for c in candidates)}); install Debian's wordnet-base "
        f"(apt-get install -y wordnet-base) or set {WORDNET_ENV} to a folder with index.noun, data.noun, ..."
    )


def readable_wordnet_dir(folder: Path) -> Path:
    """``folder`` when it has a ``lexnames`` file, else a cached copy of it (about 30 MB, once; nltk
    refuses linked files) with ``lexnames`` written from :data:`_LEXNAMES`."""
    if (folder / "lexnames").is_file():
        return folder
    from ..core.paths import cache_dir

    target = cache_dir() / "wordnet-3.0"
    target.mkdir(parents=True, exist_ok=True)
    for item in sorted(folder.iterdir()):
        link = target / item.name
        if item.is_file() and (not link.is_file() or link.stat().st_size != item.stat().st_size):
            tmp = target / f"{item.name}.tmp"
            shutil.copyfile(item, tmp)
            tmp.replace(link)
    lexnames = "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))
    if not (target / "lexnames").is_file() or (target / "lexnames").read_text() != lexnames:
        atomic_write(target / "lexnames", lexnames)
    return target


@functools.lru_cache(maxsize=4)
def _reader(folder: str):
    import warnings

    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    # nltk only reads corpora under its data path (a security check); authorise this folder.
    if folder not in nltk.data.path:
        nltk.data.path.append(folder)

    class LocalWordNetReader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            # nltk maps any WordNet it reads onto its own downloaded 3.0 copy (for the
            # multilingual data); this folder is WordNet 3.0 itself and nothing is downloaded.
            return None

    with warnings.catch_warnings():  # "multilingual functions are not available": not needed here
        warnings.simplefilter("ignore", UserWarning)
        return LocalWordNetReader(folder, None)


class WordNetSynonyms:
    """Close synonyms from WordNet and the lexical perturbation built on them.

    A word is swapped only when lower case, 4+ letters, not a function word and its own base
    form; its synonym is a single lower-case word of its most frequent sense.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = find_wordnet_dir(folder)
        self.wordnet = _reader(str(readable_wordnet_dir(self.folder)))
        self._cache: dict[str, str | None] = {}

    def close_synonym(self, word: str) -> str | None:
        """A single-word synonym of ``word`` from its most frequent sense, or ``None``: only words
        with one part of speech (no tagger here), whose first sense lists ``word`` itself (no
        re-inflection); its most used other single lower-case lemma.
        """
        if word in self._cache:
            return self._cache[word]
        synonym = None
        synsets = self.wordnet.synsets(word)
        parts_of_speech = {"a" if s.pos() == "s" else s.pos() for s in synsets}
        if len(parts_of_speech) == 1:
            lemmas = synsets[0].lemmas()
            if any(lemma.name().lower() == word for lemma in lemmas):
                others = sorted(
                    (lemma for lemma in lemmas if self._distinct_word(lemma.name(), word)),
                    key=lambda lemma: (-lemma.count(), lemma.name()),
                )
                synonym = others[0].name() if others else None
        self._cache[word] = synonym
        return synonym

    @staticmethod
    def _distinct_word(candidate: str, word: str) -> bool:
        """A single lower-case word that is not a spelling variant of ``word`` (favorable / favourable)."""
        if not (candidate.isalpha() and candidate.islower()) or candidate == word:
            return False
        return difflib.SequenceMatcher(None, candidate, word).ratio() < SPELLING_VARIANT_RATIO

    def swappable(self, word: str) -> bool:
        """Whether ``word`` may be swapped: lower case letters only, 4+ letters, not a function word."""
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return word.isalpha() and word.islower() and len(word) >= MIN_WORD_LETTERS and word not in ENGLISH_STOP_WORDS

    def perturb(self, text: str, rng: random.Random, n_swaps: int) -> tuple[str, list[tuple[str, str]]]:
        """Swap ``n_swaps`` words of ``text`` (the paper: 3-4) for close synonyms, chosen by the seeded
        ``rng``: the new text and the ``(word, synonym)`` swaps made, in text order (fewer than
        ``n_swaps`` when the text has fewer swappable words)."""
        tokens = list(_TOKEN_RE.finditer(text))
        candidates = [i for i, m in enumerate(tokens) if self.swappable(m.group())]
        rng.shuffle(candidates)
        chosen: list[tuple[int, str]] = []
        for i in candidates:
            if len(chosen) == n_swaps:
                break
            synonym = self.close_synonym(tokens[i].group())
            if synonym is not None:
                chosen.append((i, synonym))
        chosen.sort()
        out = text
        for i, synonym in reversed(chosen):  # from the end: earlier offsets stay valid
            out = out[: tokens[i].start()] + synonym + out[tokens[i].end() :]
        return out, [(tokens[i].group(), synonym) for i, synonym in chosen]
