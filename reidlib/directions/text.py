"""Text-to-image retrieval from attribute descriptions (survey §5, "Unsupervised text-based
cross-domain person Re-ID"; course chapter 6).

Text-based person search (Li et al., "Person search with natural language description",
CVPR 2017; survey ref. [128]) looks for a person from a description when no query image
exists: "red hstripes top, blue trousers, backpack". The synthetic worlds know every
person's clothing, so each identity gets one description in words (:func:`describe`), and
a text query ranks the image gallery.

The pieces, each small:

- :class:`Vocabulary`: the world's attribute words (``spec``'s patterns, lower garments,
  bags, hair lengths and the palettes' colour names) and a bag-of-words encoding. A plain
  bag of words loses which colour goes with which garment ("red top, blue trousers" and
  "blue top, red trousers" would be the same bag), so within each comma-separated phrase
  every modifier (colour, pattern, long / short, no) is also bound to the phrase's head
  noun (top, trousers, sleeves, hair, bag, ...) as one extra token, "red top": unigrams
  plus modifier-head pairs, the usual n-gram trick of bag-of-words models.
- :class:`TextEncoder`: the bag of words through a two-layer MLP into the image feature
  space, L2-normalised.
- :func:`fit_text_encoder`: CLIP's symmetric image-text InfoNCE (Radford et al.,
  "Learning transferable visual models from natural language supervision", ICML 2021,
  Fig. 3) between each training identity's description and one of its images, the image
  features coming from a *frozen* re-ID model (computed once, no gradient reaches it).
- :func:`text_to_image_map`: every text query ranks the whole gallery; mAP and rank-1.

Not unsupervised. The descriptions are identity-level annotations of the *training*
identities, like the attribute labels that MMFA and TJ-AIDL add to the source domain
(survey §3.4.1, where the survey notes that annotated attributes make a method not strictly
unsupervised). What this direction changes is the query modality; the image model can be
any of the course's, unsupervised ones included. The survey's open problem, adapting a
text model to an unlabelled target world, starts from here: the vocabulary is shared by
worlds A and B.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from reidlib.checks import int_in_range, real_in_range
from reidlib.data.synthetic.spec import (
    BAG_TYPES,
    COLOUR_NAMES,
    HAIR_LENGTHS,
    LOWER_TYPES,
    UPPER_PATTERNS,
)
from reidlib.evaluation.metrics import evaluate
from reidlib.utils import progress_enabled

__all__ = ["FILLER_WORDS", "TextEncoder", "Vocabulary", "ambiguous_share", "chance_ap", "clip_loss",
           "describe", "evaluate_text_queries", "fit_text_encoder", "identity_texts",
           "text_queries", "text_to_image_map"]

# Words a query may use that carry no attribute: skipped by the tokenizer.
FILLER_WORDS = ("a", "an", "and", "the", "with", "wearing", "in", "of")
# Garments present or absent (``World.describe_people``'s "also" entry).
EXTRAS = ("hat", "coat", "scarf")
DESCRIPTION_KEYS = ("top", "lower", "bag", "hair", "also")


def describe(words: Mapping[str, str]) -> str:
    """One sentence from a person's attributes in words (``World.describe_people`` output).

    Fixed order: top (colour, pattern), sleeves, lower garment (colour, type), bag, hair,
    then hat / coat / scarf when worn, e.g. ``"red hstripes top, short sleeves, blue
    trousers, backpack, short hair, hat"``. No bag reads "no bag".
    """
    missing = [key for key in DESCRIPTION_KEYS if key not in words]
    if missing:
        raise ValueError(f"describe needs the keys {DESCRIPTION_KEYS} of "
                         f"World.describe_people, missing {missing}")
    colour_pattern, sleeves = words["top"].split(", ")
    bag = "no bag" if words["bag"] == "none" else words["bag"]
    parts = [f"{colour_pattern} top", sleeves, words["lower"], bag, f"{words['hair']} hair"]
    if words["also"] != "-":
        parts += words["also"].split(", ")
    return ", ".join(parts)


class Vocabulary:
    """The attribute words of the synthetic worlds and a bag-of-words encoding.

    Tokens: the single words (colour names, multi-word ones such as "slate blue" as one
    token; patterns; lower garments; bags; long / short / no; the heads top, sleeves, hair,
    bag; hat, coat, scarf), then every modifier-head pair ("red top", "long hair",
    "no bag"). ``colours`` defaults to the colour names of both palettes (worlds A and B
    share one vocabulary); world P's "random colour" is not a word of it.

    Unknown words are an error (a ValueError naming them), never silently dropped: a typo
    such as "trosers" would otherwise turn a query into a different one. The
    :data:`FILLER_WORDS` ("a", "with", ...) are skipped.
    """

    def __init__(self, colours: Sequence[str] | None = None):
        if colours is None:
            colours = sorted(set(COLOUR_NAMES.values()))
        colours = tuple(dict.fromkeys(c.lower() for c in colours))
        self.heads = ("top", *LOWER_TYPES, "sleeves", "hair", "bag")
        self.modifiers = tuple(dict.fromkeys((*colours, *UPPER_PATTERNS, *HAIR_LENGTHS, "no")))
        words = (*self.modifiers, *self.heads, *[b for b in BAG_TYPES if b != "none"], *EXTRAS)
        words = tuple(dict.fromkeys(words))
        pairs = tuple(f"{m} {h}" for h in self.heads for m in self.modifiers)
        self.tokens = words + pairs
        self.index = {token: i for i, token in enumerate(self.tokens)}
        self._words = set(words)
        self._longest = max(len(w.split()) for w in words)

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens: {len(self._words)} words + modifier-head pairs)"

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text``: per comma-separated phrase, its words, then each modifier
        bound to the phrase's head (its last word, when that is a head noun).

        Lower case; ``,`` ``;`` ``.`` separate phrases; multi-word colours are matched
        longest first. ``"Red hstripes top, long hair"`` gives ``["red", "hstripes", "top",
        "red top", "hstripes top", "long", "hair", "long hair"]``.
        """
        if not isinstance(text, str):
            raise ValueError(f"a text must be a str, got {type(text).__name__}")
        tokens, unknown = [], []
        for phrase in re.split(r"[,;.]", text.lower()):
            words = self._phrase_words(phrase.split(), unknown)
            tokens += words
            if words and words[-1] in self.heads:
                tokens += [f"{m} {words[-1]}" for m in words[:-1] if m in self.modifiers]
        if unknown:
            raise ValueError(
                f"unknown words {sorted(set(unknown))} in {text!r}: a description uses the "
                f"attribute words {sorted(self._words)} (and the filler words {FILLER_WORDS})")
        return tokens

    def _phrase_words(self, raw: list[str], unknown: list[str]) -> list[str]:
        """Vocabulary words of one phrase, longest match first; filler skipped, unknown
        words appended to ``unknown``."""
        words, i = [], 0
        while i < len(raw):
            for n in range(min(self._longest, len(raw) - i), 0, -1):
                candidate = " ".join(raw[i:i + n])
                if candidate in self._words:
                    words.append(candidate)
                    break
            else:
                n = 1
                if raw[i] not in FILLER_WORDS:
                    unknown.append(raw[i])
            i += n
        return words

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, V) float32 bag of words: entry (i, v) counts token v in ``texts[i]``."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise ValueError(f"texts must be a sequence of str (a list), got "
                             f"{type(texts).__name__}")
        bow = torch.zeros(len(texts), len(self), dtype=torch.float32)
        for row, text in enumerate(texts):
            for token in self.tokenize(text):
                bow[row, self.index[token]] += 1
        return bow


class TextEncoder(nn.Module):
    """Bag of words -> Linear -> ReLU -> Linear -> L2-normalised (N, ``dim``) embedding.

    A linear layer on a bag of words is an embedding bag (the sum of one learnt vector per
    token); the MLP on top lets tokens interact. ``dim`` must be the image features'
    dimension, so that a text and an image compare by their dot product.
    """

    def __init__(self, vocabulary: Vocabulary, dim: int, hidden: int = 256):
        super().__init__()
        int_in_range(dim, "dim", 1)
        int_in_range(hidden, "hidden", 1)
        self.vocabulary = vocabulary
        self.net = nn.Sequential(nn.Linear(len(vocabulary), hidden), nn.ReLU(),
                                 nn.Linear(hidden, dim))

    def forward(self, bow: torch.Tensor) -> torch.Tensor:
        if bow.ndim != 2 or bow.shape[1] != len(self.vocabulary):
            raise ValueError(f"TextEncoder takes an (N, V={len(self.vocabulary)}) bag of words "
                             f"(Vocabulary.encode), got shape {tuple(bow.shape)}")
        return F.normalize(self.net(bow), dim=1)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings of ``texts`` on the encoder's device (gradients kept: wrap in
        ``torch.no_grad()`` to only retrieve)."""
        device = next(self.parameters()).device
        return self(self.vocabulary.encode(texts).to(device))


def clip_loss(text: torch.Tensor, image: torch.Tensor, temperature: float) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over a batch of B matching (text, image) rows.

    logits = text @ image.T / temperature; the loss is the mean of the cross-entropy of
    each text against the B images and of each image against the B texts, the match on
    the diagonal. CLIP learns its temperature; we fix it (one hyperparameter less to
    overfit with a few hundred identities).
    """
    logits = text @ image.T / temperature
    target = torch.arange(len(text), device=text.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _check_features(features, name: str, dim: int | None = None) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or not features.is_floating_point() \
            or features.ndim != 2 or len(features) == 0:
        raise ValueError(f"{name} must be a non-empty 2-D floating-point torch tensor (N, D), "
                         f"got {getattr(features, 'shape', type(features).__name__)}")
    if dim is not None and features.shape[1] != dim:
        raise ValueError(f"{name} must have D={dim} columns, got shape {tuple(features.shape)}")
    return features


def _check_pids(pids, n: int, name: str) -> np.ndarray:
    pids = np.asarray(pids.cpu() if isinstance(pids, torch.Tensor) else pids)
    if pids.shape != (n,) or not np.issubdtype(pids.dtype, np.integer):
        raise ValueError(f"{name} must be ({n},) integers, one per feature row, got "
                         f"shape {pids.shape} dtype {pids.dtype}")
    return pids.astype(np.int64)


def fit_text_encoder(encoder: TextEncoder, texts: Mapping[int, str], image_features, pids, *,
                     epochs: int = 30, lr: float = 1e-3, temperature: float = 0.03,
                     seed: int = 0, batch_size: int = 64, progress: bool = True) -> list[float]:
    """Train ``encoder`` with :func:`clip_loss` on training identities; returns the mean
    loss of each epoch and leaves the encoder in eval mode.

    ``texts`` maps each training pid to its description (:func:`identity_texts`);
    ``image_features`` (N, D) come from a frozen image model (detached here) with their
    ``pids`` (N,); rows of pid <= 0 (junk, distractors) are dropped, texts of pids without
    an image are unused. Each epoch draws one random image per identity and cuts the
    shuffled identities into batches of ``batch_size``, so a batch never holds two images
    of one identity (no same-identity negatives); two identities with the same
    description remain false negatives of each other (see :func:`ambiguous_share`).
    Adam. The defaults were chosen on a validation split of world A's training
    identities (quick profile), never on the test split.
    """
    dim = encoder.net[-1].out_features
    image_features = _check_features(image_features, "image_features", dim)
    pids = _check_pids(pids, len(image_features), "pids")
    epochs = int_in_range(epochs, "epochs", 1)
    batch_size = int_in_range(batch_size, "batch_size", 2)
    lr = real_in_range(lr, "lr", 0, lo_open=True)
    temperature = real_in_range(temperature, "temperature", 0, lo_open=True)
    ids = np.unique(pids[pids > 0])
    missing = [int(p) for p in ids if int(p) not in texts]
    if missing:
        raise ValueError(f"texts has no description for pids {missing[:10]} "
                         f"({len(missing)} of {len(ids)} training identities)")
    if len(ids) < 2:
        raise ValueError(f"contrastive training needs at least 2 identities, got {len(ids)}")

    device = next(encoder.parameters()).device
    bow = encoder.vocabulary.encode([texts[int(p)] for p in ids]).to(device)
    rows = np.flatnonzero(pids > 0)
    rows = rows[np.argsort(pids[rows], kind="stable")]  # one identity's rows are a run
    _, first, counts = np.unique(pids[rows], return_index=True, return_counts=True)
    features = image_features.detach().to(device=device, dtype=torch.float32)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=lr)
    encoder.train()
    history = []
    for epoch in tqdm(range(epochs), desc="text encoder", disable=not progress_enabled(progress)):
        rng = np.random.default_rng([seed, epoch])
        picked = rows[first + (rng.random(len(ids)) * counts).astype(np.int64)]
        order = rng.permutation(len(ids))
        losses = []
        for start in range(0, len(ids) - 1, batch_size):  # a last batch of one is skipped
            batch = order[start:start + batch_size]
            if len(batch) < 2:
                continue
            loss = clip_loss(encoder(bow[batch]), features[picked[batch]], temperature)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
    encoder.eval()
    return history


def identity_texts(world, pids) -> dict[int, str]:
    """The description (:func:`describe`) of each distinct real person (pid > 0) of ``pids``."""
    ids = np.unique(np.asarray(pids))
    ids = ids[ids > 0]
    return {int(p): describe(w) for p, w in zip(ids, world.describe_people(ids), strict=True)}


def text_queries(world) -> tuple[list[str], np.ndarray]:
    """(texts, pids): one description per test identity of ``world``'s query set, by pid."""
    texts = identity_texts(world, world.query.pids)
    return list(texts.values()), np.fromiter(texts, dtype=np.int64, count=len(texts))


def ambiguous_share(texts: Sequence[str]) -> float:
    """Share of the identities (one text each) whose description another one shares
    exactly: no text model can tell them apart, only their images can."""
    if len(texts) == 0:
        raise ValueError("ambiguous_share needs at least one text")
    _, inverse, counts = np.unique(np.asarray(texts, dtype=object).astype(str),
                                   return_inverse=True, return_counts=True)
    return float((counts[inverse] > 1).mean())


def chance_ap(n_relevant: np.ndarray, n_items: int) -> np.ndarray:
    """Expected AP of a uniformly random ranking of ``n_items`` with ``n_relevant`` relevant.

    AP = (1/R) sum_k rel_k prec@k; with P(rel_k) = R/N and P(rel_j rel_k) = R(R-1)/(N(N-1))
    for j != k: E[AP] = H_N / N + (R - 1)(N - H_N) / (N (N - 1)), H_N the harmonic number.
    """
    r = np.asarray(n_relevant, dtype=np.float64)
    if n_items == 1:
        return np.ones_like(r)
    harmonic = float(np.sum(1.0 / np.arange(1, n_items + 1)))
    return harmonic / n_items + (r - 1) * (n_items - harmonic) / (n_items * (n_items - 1))


def text_to_image_map(text_features, text_pids, gallery_features, gallery_pids) -> dict:
    """mAP and rank-1 of text queries, each ranking the whole gallery by dot product.

    No camera rule (a text has no camera), so :func:`reidlib.evaluation.evaluate` runs with
    the texts on a camera no image has; relevant: the gallery images of the text's pid.
    Distractors (pid 0) and junk crops (pid -1, no person: a clear mismatch for any
    description) stay in the ranking as negatives; ties count as one step, as in
    ``evaluate``. A text with no image of its pid in the gallery is skipped.

    Returns ``mAP``, ``rank1``, ``n_queries`` (texts scored) and the same for a uniformly
    random ranking, ``chance_mAP`` (:func:`chance_ap`) and ``chance_rank1`` (share of
    relevant images), averaged over the scored texts.
    """
    text_features = _check_features(text_features, "text_features")
    gallery_features = _check_features(gallery_features, "gallery_features",
                                       text_features.shape[1])
    text_pids = _check_pids(text_pids, len(text_features), "text_pids")
    gallery_pids = _check_pids(gallery_pids, len(gallery_features), "gallery_pids")
    if (text_pids <= 0).any():
        raise ValueError("text_pids must be real identities (> 0): distractor 0 and junk -1 "
                         "have no description")
    n_relevant = (text_pids[:, None] == gallery_pids[None, :]).sum(1)
    if not n_relevant.any():
        raise ValueError("no text query has an image of its pid in the gallery")
    scores = text_features.float() @ gallery_features.to(text_features).float().T
    result = evaluate(-scores, text_pids, np.maximum(gallery_pids, 0),
                      np.full(len(text_pids), -1), np.zeros(len(gallery_pids), np.int64),
                      max_rank=1)
    scored = n_relevant > 0
    return {"mAP": result["mAP"], "rank1": float(result["cmc"][0]),
            "n_queries": int(scored.sum()),
            "chance_mAP": float(chance_ap(n_relevant[scored], len(gallery_pids)).mean()),
            "chance_rank1": float((n_relevant[scored] / len(gallery_pids)).mean())}


def evaluate_text_queries(encoder: TextEncoder, world, gallery_features) -> dict:
    """:func:`text_to_image_map` of ``world``'s test identities' descriptions against its
    gallery (``gallery_features`` from the image model, in gallery order), plus
    ``ambiguous_share`` of those descriptions."""
    texts, pids = text_queries(world)
    with torch.no_grad():
        text_features = encoder.embed(texts)
    result = text_to_image_map(text_features, pids, gallery_features, world.gallery.pids)
    return {**result, "ambiguous_share": ambiguous_share(texts)}
