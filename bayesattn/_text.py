"""Small wording helpers for messages (the lowest layer: imports nothing from bayesattn)."""

from __future__ import annotations

# words that start with a vowel letter but a consonant sound ("a uniform", "a one-hot")
_CONSONANT_SOUND = ("one", "uni", "use", "usu", "uti", "eu")


def short_path(path: object, width: int = 60) -> str:
    """``repr`` of a path for one-line reprs, keeping its last ``width`` characters
    (``'...tail'``); ``"None"`` for None."""
    if path is None:
        return "None"
    text = str(path)
    return repr(text if len(text) <= width else "..." + text[-(width - 3):])


def a_or_an(word: str) -> str:
    """``word`` with its indefinite article: ``"an int"``, ``"a float"``, ``"an ndarray"``.

    Decided by the first letter (a, e, i, o, u take "an"), with the common exceptions
    that sound like a consonant ("a Uniform", "a OneHotCategorical") and "an" before
    an ``n`` of ``ndarray``-like names read letter by letter.
    """
    text = str(word)
    low = text.lower()
    vowel = low[:1] in ("a", "e", "i", "o", "u") and not low.startswith(_CONSONANT_SOUND)
    return f"{'an' if vowel or low.startswith('ndarray') else 'a'} {text}"
