"""Public checks of q4, the bag-of-words encoding of attribute descriptions (students run
grader.check("q4"))."""

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q4"

HINT = (
    "Hint: pairs = {f'{m} {h}' for h in heads for m in modifiers}; words = the tokens not in "
    "pairs. For each text: for phrase in re.split(r'[,;.]', text.lower()): walk "
    "phrase.split(), at each position trying the longest vocabulary word first (2 words, "
    "then 1), skip a filler word, raise ValueError on any other; if the phrase's last word "
    "is a head, add f'{m} {head}' for each other word m that is a modifier; count every token "
    "in row i, column tokens.index(token), of a float32 zero tensor."
)

# A small vocabulary in the library's layout: the words, then the modifier-head pairs.
MODIFIERS = ("red", "blue", "slate blue", "hstripes", "long", "no")
HEADS = ("top", "trousers", "hair", "bag")
WORDS = MODIFIERS + HEADS + ("backpack", "hat")
TOKENS = WORDS + tuple(f"{m} {h}" for h in HEADS for m in MODIFIERS)


def _bag(function, texts, what):
    assert callable(function), "define a function called bag_of_words (run its cell first)"
    got = function(list(texts), TOKENS, MODIFIERS, HEADS)
    assert got is not None, "bag_of_words returned None: did you forget the return?"
    expected = (len(texts), len(TOKENS))
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == expected, (
        f"bag_of_words({what}) should return a torch tensor of shape {expected} (one row per "
        f"text, one column per token), got {getattr(got, 'shape', got)!r}"
    )
    return got


def _row(counts):
    row = torch.zeros(len(TOKENS))
    for token, count in counts.items():
        row[TOKENS.index(token)] = count
    return row


def _named(row):
    return {TOKENS[i]: round(float(row[i]), 2) for i in torch.nonzero(row).flatten().tolist()}


@test_case(name="q4 - the notebook's example", failure_message=HINT)
def worked_example(bag_of_words):
    texts = ["Red hstripes top, blue trousers", "blue hstripes top, red trousers"]
    got = _bag(bag_of_words, texts, "the notebook's two texts")
    unigrams = {"red": 1, "hstripes": 1, "top": 1, "blue": 1, "trousers": 1}
    expected = [{**unigrams, "red top": 1, "hstripes top": 1, "blue trousers": 1},
                {**unigrams, "blue top": 1, "hstripes top": 1, "red trousers": 1}]
    for text, row, counts in zip(texts, got, expected, strict=True):
        assert torch.allclose(row.float(), _row(counts)), (
            f"bag_of_words([{text!r}]) gave the tokens {_named(row)}, expected {counts}: "
            "lower case; each comma-separated phrase counts its words and, because its last "
            "word is a head (top, trousers), a pair of each modifier before it with that "
            "head (red top, hstripes top). The two texts have the same words: only the pairs "
            "tell them apart"
        )


@test_case(name="q4 - multi-word colours, other separators, unknown words",
           failure_message=HINT)
def separators_and_colours(bag_of_words):
    text = "slate blue top; long hair. no bag, hat"
    got = _bag(bag_of_words, [text], repr(text))[0]
    counts = {"slate blue": 1, "top": 1, "slate blue top": 1, "long": 1, "hair": 1,
              "long hair": 1, "no": 1, "bag": 1, "no bag": 1, "hat": 1}
    assert torch.allclose(got.float(), _row(counts)), (
        f"bag_of_words([{text!r}]) gave the tokens {_named(got)}, expected {counts}: ';' and "
        "'.' separate phrases as ',' does, and 'slate blue' is one word of the vocabulary "
        "(match the longest word first), so 'blue' alone is not counted"
    )
    try:
        bad = bag_of_words(["red trosers"], TOKENS, MODIFIERS, HEADS)
    except ValueError:
        return
    raise AssertionError(
        f"bag_of_words(['red trosers']) returned {_named(bad[0]) if bad is not None else bad}, "
        "expected a ValueError: 'trosers' is not a word of the vocabulary, and dropping it "
        "silently would turn the query into another one"
    )
