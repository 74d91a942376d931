"""Reference solutions of exercises/06_benchmark (instructors only, never in the notebook).

Each function replaces the stub of the same name in ``06_benchmark.py``; ``grade.py
--solutions`` and tests/test_exercises_06.py paste them into the notebook and check that every
public and hidden check passes. Keep each function self-contained apart from the imports below:
they are pasted into the notebook one cell at a time, with these imports above them.
"""

import re

import numpy as np
import torch
import torch.nn.functional as F


def approach_frontier(results, target):
    """(approach, year, method, mAP, frontier): each approach's best mAP per year on
    ``target`` (ties: the method listed first) and its running best over the years."""
    rows = results[(results["target"] == target) & results["mAP"].notna()]
    rows = rows.reset_index(drop=True)  # positions: "listed first" is the smaller one
    best = rows.loc[rows.groupby(["approach", "year"], sort=True)["mAP"].idxmax()]
    best = best[["approach", "year", "method", "mAP"]].reset_index(drop=True)
    best["frontier"] = best.groupby("approach")["mAP"].cummax()
    return best


def gap_closed(adapted, direct, supervised):
    """(adapted - direct) / (supervised - direct); a ValueError when there is no gap."""
    if not supervised > direct:
        raise ValueError(f"supervised ({supervised}) must be above direct transfer ({direct})")
    return (adapted - direct) / (supervised - direct)


def nt_xent_loss(z1, z2, temperature):
    """SimCLR's NT-Xent: 2N anchors, cosine / temperature, the other view the positive, the
    other 2N - 2 views the negatives, mean over the anchors."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    self_pairs = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))
    n = len(z1)
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, positive)


def bag_of_words(texts, tokens, modifiers, heads):
    """(N, V) float32 token counts: per phrase, the vocabulary's words (longest first,
    filler skipped, unknown words a ValueError), then each modifier bound to the head."""
    filler = ("a", "an", "and", "the", "with", "wearing", "in", "of")
    pairs = {f"{m} {h}" for h in heads for m in modifiers}
    words = {t for t in tokens if t not in pairs}
    longest = max(len(w.split()) for w in words)
    column = {t: i for i, t in enumerate(tokens)}
    bow = torch.zeros(len(texts), len(tokens), dtype=torch.float32)
    for row, text in enumerate(texts):
        for phrase in re.split(r"[,;.]", text.lower()):
            raw, found, i = phrase.split(), [], 0
            while i < len(raw):
                n = next((n for n in range(min(longest, len(raw) - i), 0, -1)
                          if " ".join(raw[i:i + n]) in words), 0)
                if n:
                    found.append(" ".join(raw[i:i + n]))
                elif raw[i] not in filler:
                    raise ValueError(f"unknown word {raw[i]!r} in {text!r}")
                i += max(n, 1)
            if found and found[-1] in heads:
                found += [f"{m} {found[-1]}" for m in found[:-1] if m in modifiers]
            for token in found:
                bow[row, column[token]] += 1
    return bow


def text_average_precision(similarities, query_pid, gallery_pids):
    """AP of one text query: relevant = the gallery images of its pid, everything else a
    negative, no camera rule; tied similarities are one step. NaN without a relevant image."""
    scores, pids = np.asarray(similarities), np.asarray(gallery_pids)
    relevant = scores[pids == query_pid]
    if len(relevant) == 0:
        return float("nan")
    above = (scores[None, :] >= relevant[:, None]).sum(axis=1)  # images ranked up to it
    hits = (relevant[None, :] >= relevant[:, None]).sum(axis=1)  # relevant ones among them
    return float(np.mean(hits / above))
