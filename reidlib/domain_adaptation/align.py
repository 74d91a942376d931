"""Domain adaptation by alignment and by mixing (survey §3.4.1, Eq. 11; "Mixup [99]").

Each method trains on the labelled source with Eq. 11 (the survey's source loss) and adds
one term that pulls the unlabelled target towards it; no clustering (Eq. 12) is involved,
so every method is trained with *fixed* labels::

    train, domain_ids = source_target_set(source, target)     # reidlib.domain_adaptation.spcl_uda
    labels = np.where(domain_ids == SOURCE, train.pids, -1)    # target rows: -1
    method = MMDAlignment(build_model(...), domain_ids)
    fit(method, train, labels=labels, domains=domain_ids, epochs=..., lr=...)

Each batch is a source half (``p`` x ``k`` over the source classes: the method's sampler)
followed by a target half of the same size (random target rows, a fresh permutation per
pass): :meth:`SourceTargetMethod.batches`. ``iters=None`` is one pass over the source.

- :class:`MMDAlignment`: multi-kernel MMD between the two halves' pooled features
  (MMFA's mid-level alignment, Lin et al., BMVC 2018; the DAN kernel);
- :class:`AttributeAlignment`: attribute heads learnt on the source, and MMD between the
  two domains' attribute predictions (MMFA / TJ-AIDL: the domains meet in attribute space);
- :class:`MMFA`: both alignments at once, as the paper;
- :class:`CrossDomainMixup`: source / target image interpolation with a soft label over the
  source classes and the target image's exemplar slot (Luo et al., ECCV 2020);
- :func:`estimate_domain_bn`: a DSBN model's target statistics re-estimated from target
  images (AdaBN; DSBN's target branch): "direct transfer with the target's BN".

A model converted with ``convert_domain_bn(model, 2)`` (:mod:`.dsbn`) trains with DSBN: the
source half through the source BN, the target half through the target BN, and ``fit``'s
extraction and validation see the model through the target's BN.

Not here: D-MMD (Mekhazni et al., ECCV 2020) as an option of :class:`MMDAlignment`. It aligns
within-class and between-class distance distributions, so the target half needs classes
(tracklets, or pseudo-labels, :func:`~.alignment.distance_distribution_mmd`), which these
unclustered random target halves do not have.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.camera.camera_bn import ESTIMATION_BATCH, ESTIMATION_IMAGES, reestimate_camera_bn
from reidlib.checks import int_in_range, labels_1d
from reidlib.data.sampler import shuffled_batches
from reidlib.domain_adaptation.alignment import mmd2
from reidlib.domain_adaptation.dsbn import domain_bn_layers, domains
from reidlib.domain_adaptation.mixup import cross_domain_mixup, mixup_loss
from reidlib.domain_adaptation.spcl_uda import SOURCE, TARGET, _check_domains
from reidlib.models.pretrained import attribute_targets
from reidlib.training.classification import check_reid_model
from reidlib.training.features import _check_images, autocast_for
from reidlib.training.losses import batch_hard_triplet_loss, cross_entropy_label_smooth
from reidlib.training.method import Method

__all__ = ["MMFA", "AttributeAlignment", "CrossDomainMixup", "MMDAlignment",
           "SourceTargetMethod", "estimate_domain_bn", "row_attributes"]


# ------------------------------------------------------------------ shared pieces


class _TargetView(nn.Module):
    """The model seen through its target BN (DSBN at test time): what ``fit`` extracts and
    validates with, since its forwards carry no domain."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        with domains(self.model, TARGET):
            return self.model(x)


def source_loss(out, labels: torch.Tensor, half: int, epsilon: float = 0.1,
                margin: float | None = 0.3) -> dict:
    """Eq. 11 on the source half (the first ``half`` rows): {"ce": CE with label smoothing
    on the logits, "triplet": batch-hard triplet on the pooled features} (Bag of tricks)."""
    y = labels[:half]
    return {"ce": cross_entropy_label_smooth(out.logits[:half].float(), y, epsilon),
            "triplet": batch_hard_triplet_loss(out.features[:half].float(), y, margin)}


class SourceTargetMethod(Method):
    """A method trained on batches of a labelled source half, then a target half.

    ``domain_ids``: (N,) 0 = source, 1 = target, one per row of the training set (pass the
    same array as ``fit``'s ``domains``). ``fit``'s ``labels``: the source rows their class,
    the target rows -1. A fresh source classifier (N(0, 0.001^2) from ``seed``) is built
    when the labels arrive. Subclasses write :meth:`loss`; :meth:`forward` routes the
    halves through their own BN when the model has DSBN.
    """

    def __init__(self, model, domain_ids, seed: int = 0, **sampler):
        super().__init__(check_reid_model(model), **sampler)
        ids = np.asarray(domain_ids)
        if ids.ndim != 1:
            raise ValueError(f"domain_ids must be a 1-D array, one per training row, got shape "
                             f"{ids.shape}")
        self.domain_ids = _check_domains(ids, len(ids))
        self.target_rows = np.flatnonzero(self.domain_ids == TARGET)
        self.dsbn = bool(domain_bn_layers(self.model, required=False))
        self._target_view = _TargetView(self.model) if self.dsbn else None
        self.seed = seed
        self.num_source_classes = 0

    def feature_model(self) -> nn.Module:
        return self._target_view if self.dsbn else self.model

    def new_labels(self, features, labels, train) -> None:
        labels = labels_1d(labels, len(self.domain_ids), "labels (one per training row)")
        source = self.domain_ids == SOURCE
        if (labels[source] < 0).any() or (labels[~source] >= 0).any():
            raise ValueError("labels must give every source row its class (>= 0) and every "
                             "target row -1: np.where(domain_ids == SOURCE, train.pids, -1)")
        self.num_source_classes = int(labels.max()) + 1
        self.model.reset_classifier(self.num_source_classes,
                                    generator=torch.Generator().manual_seed(self.seed))

    def batches(self, labels, camids, *, p, k, iters, seed, epoch):
        """Each batch: ``p * k`` source rows (the sampler over the source classes: target
        rows are -1 and never drawn), then ``p * k`` random target rows."""
        source = super().batches(labels, camids, p=p, k=k, iters=iters, seed=seed,
                                 epoch=epoch)
        if len(self.target_rows) < p * k:
            raise ValueError(f"the target half needs p * k = {p * k} target rows, the "
                             f"training set has {len(self.target_rows)}: lower p or k")
        target_seed = int(np.random.SeedSequence([seed, TARGET]).generate_state(1)[0])
        target = shuffled_batches(len(self.target_rows), p * k, target_seed, epoch,
                                  iters=len(source))
        return [np.concatenate([s, self.target_rows[t]]) for s, t in zip(source, target,
                                                                        strict=True)]

    def routed(self, half: int, size: int):
        """DSBN routing by position (our batches: source half first), else nothing."""
        if not self.dsbn:
            return contextlib.nullcontext()
        return domains(self.model, np.repeat([SOURCE, TARGET], [half, size - half]))

    def forward(self, x: torch.Tensor, half: int):
        with self.routed(half, len(x)), autocast_for(x.device):
            return self.model(x)

    def config(self) -> dict:
        return {**super().config(), "source_rows": int((self.domain_ids == SOURCE).sum()),
                "target_rows": len(self.target_rows), "dsbn": self.dsbn, "seed": self.seed}


# ------------------------------------------------------------------ MMFA: feature MMD


class MMDAlignment(SourceTargetMethod):
    """Eq. 11 on the source half + ``weight`` * MMD^2 between the source and the target
    half's pooled features (survey §3.4.1; MMFA, Lin et al., BMVC 2018).

    MMFA aligns the two datasets' mid-level features with the maximum mean discrepancy of a
    sum of Gaussian kernels, batch by batch, while learning identities (and attributes,
    :class:`AttributeAlignment`) on the source. We align the pooled feature (the one the
    triplet sees, before the BNNeck), with :func:`~.alignment.mmd2`'s biased multi-kernel
    estimate; ``bandwidths=None`` uses DAN's five around the batch's mean squared distance
    (:func:`~.alignment.default_bandwidths`). We found no public MMFA code: the kernel
    widths follow the DAN code that re-ID MMD losses reuse, and the layer is our choice.
    Source loss: CE with label smoothing ``epsilon`` + batch-hard triplet ``margin``.
    """

    name = "MMD alignment (MMFA)"

    def __init__(self, model, domain_ids, weight: float = 1.0, bandwidths=None,
                 epsilon: float = 0.1, margin: float | None = 0.3, **settings):
        super().__init__(model, domain_ids, **settings)
        if not weight >= 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.weight, self.bandwidths = float(weight), bandwidths
        self.epsilon, self.margin = epsilon, margin

    def loss(self, batch):
        half = len(batch.indices) // 2
        out = self.forward(batch.augmented(), half)
        parts = source_loss(out, batch.labels, half, self.epsilon, self.margin)
        parts["mmd"] = self.weight * mmd2(out.features[:half], out.features[half:],
                                          self.bandwidths)
        return sum(parts.values()), parts

    def config(self) -> dict:
        return {**super().config(), "weight": self.weight, "epsilon": self.epsilon,
                "margin": self.margin,
                "bandwidths": None if self.bandwidths is None else list(self.bandwidths)}


# ------------------------------------------------------------------ attributes


def row_attributes(world, pids) -> dict[str, np.ndarray]:
    """Per training row, the world's attribute labels of its person (``attribute_targets``:
    colour families, pattern, lower garment, bag, hair, sleeves, hat, coat, scarf).

    ``world``: a :class:`~reidlib.data.synthetic.world.World` (anything with ``people_pid``
    and ``people``); ``pids``: (N,) each row's person, <= 0 for rows without one (the
    target rows, distractors): they get -1. For the joined source + target set::

        row_attributes(world_a, np.where(domain_ids == SOURCE, train.pids, -1))
    """
    if not hasattr(world, "people_pid") or not hasattr(world, "people"):
        raise ValueError(f"world must be a World (people_pid and people), got "
                         f"{type(world).__name__}")
    pids = np.asarray(pids)
    if pids.ndim != 1 or not np.issubdtype(pids.dtype, np.integer):
        raise ValueError(f"pids must be a 1-D integer array, got {pids.dtype} {pids.shape}")
    people = np.asarray(world.people_pid)
    order = np.argsort(people)
    known = pids > 0
    position = np.minimum(np.searchsorted(people[order], pids[known]), len(people) - 1)
    person = order[position] if len(people) else position
    found = (people[person] == pids[known]) if len(people) else np.zeros(len(person), bool)
    if not found.all():
        raise ValueError(f"pids {np.unique(pids[known][~found])[:5].tolist()} are not people "
                         f"of this world (mark rows without a person with -1)")
    out = {}
    for name, per_person in attribute_targets(world.people).items():
        column = np.full(len(pids), -1, np.int64)
        column[known] = per_person[person]
        out[name] = column
    return out


def _check_attributes(source_attributes, domain_ids: np.ndarray) -> dict[str, np.ndarray]:
    if not isinstance(source_attributes, dict) or not source_attributes:
        raise ValueError("source_attributes must be a non-empty dict name -> (N,) labels "
                         "(row_attributes gives one)")
    checked = {}
    for name, labels in source_attributes.items():
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"attribute names must be non-empty strings without '.', got "
                             f"{name!r}")
        y = labels_1d(labels, len(domain_ids), f"source_attributes[{name!r}] (one per row)")
        if (y[domain_ids == TARGET] >= 0).any():
            raise ValueError(f"source_attributes[{name!r}] labels target rows: attributes "
                             f"are learnt on the source only, give target rows -1")
        if not (y >= 0).any():
            raise ValueError(f"source_attributes[{name!r}] labels no source row")
        checked[name] = y
    return checked


class AttributeAlignment(SourceTargetMethod):
    """Eq. 11 on the source half + attribute heads learnt on the source + ``weight`` * MMD^2
    between the source and the target half's attribute predictions (survey §3.4.1, Fig. 5).

    MMFA (Lin et al., BMVC 2018) learns identities and attributes on the source, each
    attribute with its own layer, and aligns the two datasets' mid-level (attribute)
    features with MMD; TJ-AIDL (Wang et al., CVPR 2018) learns an identity branch and an
    attribute branch on the source and transfers their joint attribute-identity space to
    the target through an identity-inferred attribute encoder. What we do, in their spirit:
    one linear head per attribute on the embedding (post-BNNeck), cross-entropy on the
    source rows that carry the attribute (summed over attributes, times
    ``attribute_weight``), and one multi-kernel MMD between the domains' *predictions*:
    each row's softmax outputs of every head, concatenated (a point of the joint attribute
    space). Not done: TJ-AIDL's encoder-decoder and its consistency and target losses.
    MMFA aligns the pooled features as well: :class:`MMFA` adds that term.

    ``source_attributes``: name -> (N,) int labels, the source rows' (-1 where unknown),
    -1 on every target row (:func:`row_attributes`). Each head has max label + 1 classes
    (at least 2).
    """

    name = "attribute alignment (MMFA / TJ-AIDL)"

    def __init__(self, model, domain_ids, source_attributes, weight: float = 1.0,
                 attribute_weight: float = 1.0, bandwidths=None, epsilon: float = 0.1,
                 margin: float | None = 0.3, **settings):
        super().__init__(model, domain_ids, **settings)
        for what, value in (("weight", weight), ("attribute_weight", attribute_weight)):
            if not value >= 0:
                raise ValueError(f"{what} must be >= 0, got {value}")
        attributes = _check_attributes(source_attributes, self.domain_ids)
        device = next(self.model.parameters()).device
        self.attributes = {k: torch.from_numpy(v).to(device) for k, v in attributes.items()}
        g = torch.Generator().manual_seed(self.seed)
        self.heads = nn.ModuleDict()
        for name, y in attributes.items():
            head = nn.Linear(self.model.feature_dim, max(int(y.max()) + 1, 2))
            nn.init.normal_(head.weight, std=0.001, generator=g)
            nn.init.zeros_(head.bias)
            self.heads[name] = head
        self.heads.to(device)
        self.weight, self.attribute_weight = float(weight), float(attribute_weight)
        self.bandwidths, self.epsilon, self.margin = bandwidths, epsilon, margin

    def parameters(self) -> list[nn.Parameter]:
        return [*self.model.parameters(), *self.heads.parameters()]

    def models(self) -> list[nn.Module]:
        return [self.model, self.heads]

    def attribute_loss(self, logits: dict, rows: torch.Tensor) -> torch.Tensor:
        """Sum over attributes of the mean CE over ``rows`` that carry that attribute."""
        total = 0.0
        for name, scores in logits.items():
            y = self.attributes[name][rows]
            known = (y >= 0).float()
            ce = F.cross_entropy(scores.float(), y.clamp(min=0), reduction="none")
            total = total + (ce * known).sum() / known.sum().clamp(min=1)
        return total

    def loss(self, batch):
        half = len(batch.indices) // 2
        parts = self.attribute_parts(self.forward(batch.augmented(), half), batch, half)
        return sum(parts.values()), parts

    def attribute_parts(self, out, batch, half: int) -> dict:
        """Eq. 11 on the source half, the attribute CE and the attribute-prediction MMD."""
        parts = source_loss(out, batch.labels, half, self.epsilon, self.margin)
        logits = {name: head(out.embeddings.float()) for name, head in self.heads.items()}
        parts["attributes"] = self.attribute_weight * self.attribute_loss(
            {k: v[:half] for k, v in logits.items()}, batch.indices[:half])
        predictions = torch.cat([v.softmax(dim=1) for v in logits.values()], dim=1)
        parts["attribute_mmd"] = self.weight * mmd2(predictions[:half], predictions[half:],
                                                    self.bandwidths)
        return parts

    def config(self) -> dict:
        return {**super().config(), "attributes": {k: h.out_features
                                                   for k, h in self.heads.items()},
                "weight": self.weight, "attribute_weight": self.attribute_weight,
                "epsilon": self.epsilon, "margin": self.margin}


class MMFA(AttributeAlignment):
    """MMFA (Lin et al., BMVC 2018; survey §3.4.1): :class:`AttributeAlignment`'s identity,
    attribute and attribute-MMD terms plus ``feature_weight`` * MMD^2 between the two
    halves' pooled features (:class:`MMDAlignment`'s term): the paper aligns the two
    datasets at both levels at once, the attribute-level and the mid-level features.

    The loss's parts are exactly those of the two classes, with their own weights
    (``weight``: the attribute MMD, ``feature_weight``: the feature MMD; both 1 by default,
    as we found no public code with the paper's values).
    """

    name = "MMFA (attributes + features aligned)"

    def __init__(self, model, domain_ids, source_attributes, feature_weight: float = 1.0,
                 **settings):
        super().__init__(model, domain_ids, source_attributes, **settings)
        if not feature_weight >= 0:
            raise ValueError(f"feature_weight must be >= 0, got {feature_weight}")
        self.feature_weight = float(feature_weight)

    def loss(self, batch):
        half = len(batch.indices) // 2
        out = self.forward(batch.augmented(), half)
        parts = self.attribute_parts(out, batch, half)
        parts["mmd"] = self.feature_weight * mmd2(out.features[:half], out.features[half:],
                                                  self.bandwidths)
        return sum(parts.values()), parts

    def config(self) -> dict:
        return {**super().config(), "feature_weight": self.feature_weight}


# ------------------------------------------------------------------ cross-domain mixup


class CrossDomainMixup(SourceTargetMethod):
    """Cross-domain mixup (Luo, Song, Zhang, ECCV 2020; survey §3.4, "Mixup [99]";
    code: LuckyDC/generalizing-reid ``models/model.py``), with :mod:`.mixup`'s pieces.

    Per batch (a source half, then a target half of the same size):

    - before ``start_epoch``: CE of the source half on the source classifier (S classes);
    - from ``start_epoch``: the source half is *replaced* by mixes of the i-th source and
      the i-th target image, ``lam ~ Beta(alpha, alpha)`` once per batch, and trained with
      :func:`~.mixup.mixup_loss` (soft label ``lam`` on the source class, ``1 - lam`` on the
      target image's virtual class, its exemplar slot); the reference's ``epoch > 1`` with
      1-based epochs is our ``start_epoch=1``;
    - the target half: its L2-normalised embeddings move their exemplar slots,
      ``m <- normalise(momentum * m + (1 - momentum) * f)`` after each step (ECN's memory),
      and, from ``exemplar_start``, ``exemplar_weight`` * the exemplar loss: CE of
      ``scale * f . memory`` over all target slots with the image's own slot as its class.

    As the reference, the BNNeck normalises the source (mixed) half with its own batch
    statistics without touching the running ones, and the target half with the neck's
    ordinary training step (so the running statistics, used at test time, are the
    target's); the backbone sees the whole batch at once. A DSBN model routes the halves
    through their own BN layers instead (neck included). The source loss is plain CE, as
    the reference (no label smoothing, no triplet).

    Deliberate differences: (1) the memory starts from ``fit``'s first extraction of the
    target rows (L2-normalised) with ``momentum`` from the first step, where the reference
    starts from N(0, 0.001^2) noise and overwrites each slot at its first visit (momentum
    0 in epoch 1); (2) the exemplar loss is the camera-agnostic instance term only (their
    ``neighbor_mode=0`` without its neighbour term, weight 0.1 after epoch 10): the
    reference's default camera-aware neighbourhood losses (intra-camera weight 1 after
    epoch 10, inter-camera 0.5 after epoch 30, neighbours within ``eps`` of the nearest)
    are left out.
    """

    name = "cross-domain mixup"

    def __init__(self, model, domain_ids, alpha: float = 0.6, start_epoch: int = 1,
                 momentum: float = 0.6, exemplar_weight: float = 0.1,
                 exemplar_start: int = 10, scale: float = 10.0, **settings):
        super().__init__(model, domain_ids, **settings)
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0 (Beta(alpha, alpha)), got {alpha}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if not exemplar_weight >= 0 or not scale > 0:
            raise ValueError(f"exemplar_weight must be >= 0 and scale > 0, got "
                             f"{exemplar_weight} and {scale}")
        self.alpha, self.momentum = float(alpha), float(momentum)
        self.mix_start = int_in_range(start_epoch, "start_epoch", 0)
        self.exemplar_start = int_in_range(exemplar_start, "exemplar_start", 0)
        self.exemplar_weight, self.scale = float(exemplar_weight), float(scale)
        slot = np.full(len(self.domain_ids), -1, np.int64)
        slot[self.target_rows] = np.arange(len(self.target_rows))
        self.slot = torch.from_numpy(slot).to(next(self.model.parameters()).device)
        self.memory: torch.Tensor | None = None
        self.epoch, self.rng, self._last = 0, np.random.default_rng(self.seed), None

    def new_labels(self, features, labels, train) -> None:
        super().new_labels(features, labels, train)
        if self.memory is None:
            rows = torch.from_numpy(self.target_rows).to(features.device)
            self.memory = F.normalize(features[rows].float(), dim=1).to(self.slot.device)

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.rng = np.random.default_rng([self.seed, epoch])  # a resumed run repeats the lams

    def _embed(self, x: torch.Tensor, half: int) -> torch.Tensor:
        """(B, D) embeddings, the neck's batch statistics per half (class docstring)."""
        model, neck = self.model, self.model.neck
        with self.routed(half, len(x)), autocast_for(x.device):
            features = model.pool(model.backbone(x))
            if self.dsbn or not isinstance(neck, nn.BatchNorm1d):
                return neck(features).float()
            source = F.batch_norm(features[:half], None, None, neck.weight, neck.bias,
                                  True, 0.0, neck.eps)
            return torch.cat([source, neck(features[half:])]).float()

    def loss(self, batch):
        if self.memory is None:
            raise RuntimeError("CrossDomainMixup needs fit's labels first (new_labels)")
        half = len(batch.indices) // 2
        x, y = batch.augmented(), batch.labels[:half]
        target_slots = self.slot[batch.indices[half:]]
        mix = None
        if self.epoch >= self.mix_start:
            mix = cross_domain_mixup(x[:half], y, x[half:], target_slots, self.alpha,
                                     rng=self.rng)
            x = torch.cat([mix.x, x[half:]])
        embeddings = self._embed(x, half)
        weight = self.model.classifier.weight
        parts = {}
        if mix is None:
            parts["ce"] = F.cross_entropy(embeddings[:half] @ weight.float().T, y)
        else:
            parts["mixup"] = mixup_loss(embeddings[:half], weight,
                                        self.memory[target_slots], mix)
        target = F.normalize(embeddings[half:], dim=1)
        if self.epoch >= self.exemplar_start and self.exemplar_weight > 0:
            scores = self.scale * target @ self.memory.T
            parts["exemplar"] = self.exemplar_weight * F.cross_entropy(scores, target_slots)
        self._last = (target.detach(), target_slots)
        return sum(parts.values()), parts

    @torch.no_grad()
    def after_step(self, batch) -> None:
        features, slots = self._last
        moved = self.momentum * self.memory[slots] + (1 - self.momentum) * features
        self.memory[slots] = F.normalize(moved, dim=1)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "memory": self.memory}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.memory = state["memory"].to(self.slot.device)

    def config(self) -> dict:
        return {**super().config(), "alpha": self.alpha, "start_epoch": self.mix_start,
                "momentum": self.momentum, "exemplar_weight": self.exemplar_weight,
                "exemplar_start": self.exemplar_start, "scale": self.scale}


# ------------------------------------------------------------------ target BN


def estimate_domain_bn(model: nn.Module, images, domain: int, batch: int = ESTIMATION_BATCH,
                       max_images: int = ESTIMATION_IMAGES, flip: bool = False,
                       seed: int = 0) -> nn.Module:
    """Re-estimate one domain's BN statistics of a DSBN model from unlabelled images.

    AdaBN (Li et al., 2016) and DSBN's target branch (Chang et al., CVPR 2019): the
    weights stay, the ``domain`` slot of every :class:`~.dsbn.DomainBatchNorm` gets the
    statistics of ``images`` (an ImageSet or uint8 (N, 3, H, W) tensor): up to
    ``max_images`` of them, forwarded in training mode without gradients in batches of
    ``batch`` with the cumulative average (``momentum=None``). This is camera BN's
    test-time step (:func:`~reidlib.camera.camera_bn.reestimate_camera_bn`) with every
    image in the one slot ``domain``; ``flip`` (off by default: the statistics of the
    images as they are) adds their mirror images. The other domains' statistics and every
    weight are untouched; the model is returned in eval mode. Applied to a source-trained
    model converted with ``convert_domain_bn(model, 2)`` and the target's training images,
    ``with domains(model, TARGET):`` then evaluates "direct transfer with the target's BN".
    """
    layers = domain_bn_layers(model)
    n = _check_images(images)
    if isinstance(domain, bool) or not isinstance(domain, (int, np.integer)) \
            or not 0 <= domain < layers[0].num_domains:
        raise ValueError(f"domain must be an integer in 0..{layers[0].num_domains - 1} (the "
                         f"model's DSBN domains), got {domain!r}")
    if n < 2:
        raise ValueError(f"BN statistics need >= 2 images, got {n}")
    reestimate_camera_bn(model, images, np.full(n, int(domain), np.int64), batch_size=batch,
                         max_images=max_images, flip=flip, seed=seed)
    return model.eval()

