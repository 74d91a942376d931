"""Hidden checks of q4 (instructors; exercises/grade.py): the bag of words against
reidlib.directions.text.Vocabulary.encode on random descriptions in the world's vocabulary
(filler words, repeated tokens, ';' and '.', a head that is not last), unknown words, and the
float32 dtype the text encoder needs."""

import numpy as np
import torch
from otter.test_files import test_case

from reidlib.directions.text import FILLER_WORDS, Vocabulary, describe

OK_FORMAT = False
name = "q4_hidden"

VOCABULARY = Vocabulary()


def _bag(function, texts):
    assert callable(function), "define a function called bag_of_words"
    got = function(list(texts), VOCABULARY.tokens, VOCABULARY.modifiers, VOCABULARY.heads)
    expected = (len(texts), len(VOCABULARY))
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == expected, (
        f"expected a torch tensor of shape {expected}, got {getattr(got, 'shape', got)!r}"
    )
    return got


def _differences(got, expected):
    rows = torch.nonzero((got.float() != expected).any(dim=1)).flatten().tolist()
    if not rows:
        return ""
    i = rows[0]
    def named(row):
        return {VOCABULARY.tokens[j]: float(row[j]) for j in torch.nonzero(row).flatten()}
    return f"row {i}: got {named(got[i].float())}, expected {named(expected[i])}"


def _descriptions(gen, count):
    """Descriptions as reidlib's ``describe`` writes them, from random attribute words."""
    colours = [m for m in VOCABULARY.modifiers if m not in ("solid", "hstripes", "vstripes",
               "checks", "split", "logo", "short", "long", "no")]
    texts = []
    for _ in range(count):
        extras = [e for e in ("hat", "coat", "scarf") if gen.random() < 0.3]
        texts.append(describe({
            "top": f"{gen.choice(colours)} {gen.choice(['solid', 'hstripes', 'checks', 'logo'])}"
                   f", {gen.choice(['short', 'long'])} sleeves",
            "lower": f"{gen.choice(colours)} {gen.choice(['trousers', 'shorts', 'skirt'])}",
            "bag": str(gen.choice(["none", "backpack", "handbag"])),
            "hair": str(gen.choice(["short", "long"])),
            "also": ", ".join(extras) or "-",
        }))
    return texts


@test_case(name="q4_hidden - the world's descriptions against reidlib's Vocabulary.encode",
           hidden=True)
def against_reidlib(bag_of_words):
    gen = np.random.default_rng(164)
    texts = _descriptions(gen, 40)
    got = _bag(bag_of_words, texts)
    expected = VOCABULARY.encode(texts)
    assert torch.equal(got.float(), expected), (
        f"bag_of_words(40 descriptions of the world) differs from reidlib's Vocabulary.encode: "
        f"{_differences(got, expected)}"
    )


@test_case(name="q4_hidden - free-form queries: filler, case, separators, repeats",
           hidden=True)
def free_form(bag_of_words):
    texts = [
        "Wearing a slate blue top with short sleeves and long hair",
        "RED top; red trousers. red bag",
        "dark teal checks top, teal skirt,, no bag;",
        "top red, hair long",
        "red red top",
        "the backpack, of the hat",
        "",
    ]
    got = _bag(bag_of_words, texts)
    expected = VOCABULARY.encode(texts)
    assert torch.equal(got.float(), expected), (
        f"bag_of_words({texts}) differs from reidlib's Vocabulary.encode: "
        f"{_differences(got, expected)}. Filler words ({', '.join(FILLER_WORDS)}) are skipped; "
        "tokens are counted (a repeated word counts twice); ',' ';' '.' end a phrase; a pair "
        "binds the modifiers of a phrase to its last word only when that word is a head"
    )
    assert got.dtype == torch.float32, (
        f"bag_of_words returned {got.dtype}: the text encoder's Linear layer takes float32"
    )


@test_case(name="q4_hidden - unknown words raise ValueError", hidden=True)
def unknown_words(bag_of_words):
    assert callable(bag_of_words), "define a function called bag_of_words"
    for text in ("red top, green-ish trousers", "slate top", "blue jeans", "red top, dark"):
        try:
            bag_of_words([text], VOCABULARY.tokens, VOCABULARY.modifiers, VOCABULARY.heads)
        except ValueError:
            continue
        raise AssertionError(
            f"bag_of_words([{text!r}]) returned a bag, expected a ValueError: it holds a word "
            "that is not in the vocabulary ('slate' and 'dark' exist only in 'slate blue' and "
            "'dark teal')"
        )
