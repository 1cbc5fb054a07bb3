"""Language identification with langid, restricted to a configured candidate set.

langid's full 97-language model over-reads short captions (names, product codes) as
rare languages; restricting it to the languages a caption set really contains keeps
its guesses among plausible ones. Each candidate set gets its own identifier, because
``set_languages`` changes the identifier in place.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from langid.langid import LanguageIdentifier, model


class UnknownLanguageError(ValueError):
    """A configured language code is not one langid knows."""


@dataclass(frozen=True)
class LanguageGuess:
    language: str
    probability: float


@functools.lru_cache(maxsize=8)
def _identifier(candidates: tuple[str, ...]) -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    unknown = sorted(set(candidates) - set(identifier.nb_classes))
    if unknown:
        raise UnknownLanguageError(
            f"langid does not know the language code(s) {unknown}; "
            f"known codes: {' '.join(sorted(identifier.nb_classes))}"
        )
    identifier.set_languages(list(candidates))
    return identifier


def guess_languages(texts: Sequence[str], candidates: Sequence[str]) -> list[LanguageGuess]:
    """The most likely candidate language of each text, with its normalised probability.

    Identical texts are classified once.
    """
    identifier = _identifier(tuple(sorted(set(candidates))))
    guesses: dict[str, LanguageGuess] = {}
    for text in texts:
        if text not in guesses:
            language, probability = identifier.classify(text)
            guesses[text] = LanguageGuess(language, float(probability))
    return [guesses[text] for text in texts]
