"""One training loop for every chapter (d2l's ``Trainer.fit`` / ``fit_epoch``).

A *method* (one small class per paper, :class:`reidlib.training.method.Method`) says what
to build when labels change, which batches to train on and what loss a batch gets; the
loop owns the rest: epochs, where labels come from, the optimiser and its learning-rate
schedule, validation, snapshots, checkpoints and resuming. Labels come from one of

- ``labels=``: fixed labels (supervised training, chapter 0; the noise study of chapter 2);
- ``cluster=``: a clustering of the method's features, redone every ``recluster_every``
  epochs (1: Cluster Contrast / SpCL / MMT, chapter 2; n: PUL's rounds, chapter 1).

Each epoch:

1. when labels are due: extract the method's features (or take the ones it clusters,
   SpCL's memory), ``cluster`` them, drop clusters of one, let ``select`` mark doubtful
   rows -1 (DCML), score the labels against the hidden ids and keep an explorer snapshot,
   then ``method.new_labels(features, labels, train)``;
2. ``method.start_epoch(epoch)`` (per-epoch schedules such as ECN's momentum);
3. the method's batches (``method.batches``): a P x K pass, a fixed number of iterations of
   the reference samplers, plain random batches; each :class:`Batch` carries images,
   training-set rows, labels, camera ids and domains. ``method.loss(batch)``, one optimiser
   step, ``method.after_step(batch)`` (memory and teacher updates);
4. optional validation (model selection on a split of *training* identities), then an
   atomic checkpoint of everything a resumed run needs (models, memories, teachers,
   optimiser, labels, best weights, history). A run killed mid-epoch resumes at the start
   of that epoch and ends with the same weights as an uninterrupted one: the batches and
   augmentations of an epoch depend only on ``(seed, epoch)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from reidlib.data.augment import train_augment
from reidlib.data.imageset import ImageSet
from reidlib.evaluation import evaluate, pairwise_distance
from reidlib.pseudo_labels.labels import check_labels, contiguous, trainable
from reidlib.pseudo_labels.quality import record_round
from reidlib.training.checkpoint import FORMAT, read_checkpoint
from reidlib.training.features import extract_features, model_device
from reidlib.utils import atomic_torch_save, progress_enabled
from reidlib.viz.explorer import Snapshot

SCHEDULES = ("constant", "step", "cosine")


@dataclass
class Batch:
    """One batch as a method sees it; every tensor is on the model's device.

    ``images``: uint8 (B, 3, H, W); ``indices``: (B,) training-set rows (what memories are
    indexed by); ``labels``: (B,) this epoch's labels 0..C-1 (-1 for rows no cluster holds);
    ``camids``: (B,) camera ids; ``domains``: (B,) domain ids (0 unless the caller gave
    others, e.g. source vs target). ``augmented()`` gives a fresh random view each call.
    """

    images: torch.Tensor
    indices: torch.Tensor
    labels: torch.Tensor
    camids: torch.Tensor
    domains: torch.Tensor
    generator: torch.Generator
    colour: float = 0.0
    channels_last: bool = True

    def augmented(self, channels_last: bool | None = None) -> torch.Tensor:
        """A fresh random view of ``images``, in channels_last unless ``channels_last`` (or,
        when None, the batch's own flag, which :func:`fit` sets) is false."""
        x = train_augment(self.images, self.generator, colour=self.colour)
        if channels_last is None:
            channels_last = self.channels_last
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


@dataclass
class EpochRecord:
    """What one epoch did. ``labels`` / ``quality`` / ``snapshot`` are set on the epochs that
    (re)computed labels: the labels it trained on, their score against the hidden ids and
    an explorer snapshot. ``val``: validation mAP / rank-1 / mINP when evaluated."""

    epoch: int
    losses: dict
    lr: float
    seconds: float
    cluster_seconds: float
    images: int
    labels: np.ndarray | None = None
    quality: dict | None = None
    snapshot: Snapshot | None = None
    val: dict | None = None


@dataclass
class History:
    """Every epoch's record, plus the model-selection outcome; iterable over the records."""

    records: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = -1
    best_mAP: float = float("nan")
    finished: bool = False
    config: dict = field(default_factory=dict)

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]

    @property
    def wall_time(self) -> float:
        return sum(r.seconds for r in self.records)

    def earlier_seconds(self, fit_seconds: float) -> float:
        """The seconds of the epochs trained before the call of ``fit`` that took
        ``fit_seconds`` (a run resumed after a kill; 0 for an unbroken one): what the
        records hold beyond it. A resumed run's wall time is ``fit_seconds`` plus this, so
        a kill does not make a method look faster."""
        return max(0.0, self.wall_time - fit_seconds)

    @property
    def images_per_s(self) -> float:
        train_s = sum(r.seconds - r.cluster_seconds for r in self.records)
        return sum(r.images for r in self.records) / train_s if train_s > 0 else float("nan")

    def column(self, key: str) -> list:
        """One value per epoch: a loss name, ``"lr"``, ``"val_mAP"``, ``"val_rank1"``..."""
        if key.startswith("val_"):
            return [None if r.val is None else r.val[key[4:]] for r in self.records]
        if key in {f.name for f in dataclasses.fields(EpochRecord)}:
            return [getattr(r, key) for r in self.records]
        return [r.losses.get(key) for r in self.records]

    def to_state(self) -> dict:
        """Plain types and tensors only (checkpoints are read with ``weights_only=True``)."""
        def record(r: EpochRecord) -> dict:
            out = dataclasses.asdict(dataclasses.replace(r, snapshot=None, labels=None))
            out["labels"] = None if r.labels is None else torch.from_numpy(r.labels)
            out["snapshot"] = None if r.snapshot is None else {
                k: (torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v)
                for k, v in vars(r.snapshot).items()}
            return out
        return {"records": [record(r) for r in self.records], "best_epoch": self.best_epoch,
                "best_mAP": self.best_mAP, "finished": self.finished, "config": self.config}

    @classmethod
    def from_state(cls, state: dict) -> History:
        def record(d: dict) -> EpochRecord:
            d = dict(d)
            d["labels"] = None if d["labels"] is None else d["labels"].numpy()
            if d["snapshot"] is not None:
                d["snapshot"] = Snapshot(**{k: (v.numpy() if isinstance(v, torch.Tensor) else v)
                                            for k, v in d["snapshot"].items()})
            return EpochRecord(**d)
        return cls([record(r) for r in state["records"]], state["best_epoch"],
                   state["best_mAP"], state["finished"], state["config"])


# ------------------------------------------------------------------------- optimiser


def param_groups(params, weight_decay: float, decay: str = "matrices") -> list[dict]:
    """Adam's parameter groups: weight decay on every parameter (``decay="all"``: the
    reference code of Cluster Contrast, SpCL and MMT) or on weight matrices / kernels only
    (``"matrices"``: our supervised recipe, which spares BatchNorm scales and GeM's p, since
    pulling p towards 0 degenerates the pooling)."""
    params = [p for p in params if p.requires_grad]
    if decay == "all":
        return [{"params": params, "weight_decay": weight_decay}]
    if decay != "matrices":
        raise ValueError(f"decay must be 'all' or 'matrices', got {decay!r}")
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def lr_at(t: float, base_lr: float, epochs: int, warmup_epochs: int = 0,
          schedule: str = "step", milestones=()) -> float:
    """Learning rate at fractional epoch ``t``: optional linear warmup from lr/10, then

    - ``"step"``: divided by 10 at each epoch in ``milestones`` (PyTorch's MultiStepLR;
      Cluster Contrast and SpCL use StepLR(20) over 50 epochs: milestones (20, 40));
    - ``"cosine"``: cosine decay to 1% of ``base_lr`` at ``epochs`` (our supervised recipe);
    - ``"constant"``: ``base_lr`` throughout (MMT).
    """
    if t < warmup_epochs:
        return base_lr * (0.1 + 0.9 * t / warmup_epochs)
    if schedule == "step":
        return base_lr * 0.1 ** sum(t >= m for m in milestones)
    if schedule == "cosine":
        progress = (t - warmup_epochs) / max(epochs - warmup_epochs, 1e-8)
        return base_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
    if schedule == "constant":
        return base_lr
    raise ValueError(f"unknown schedule {schedule!r}: expected one of {SCHEDULES}")


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Augmentation randomness as a function of (seed, epoch): resumed runs repeat it."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def data_fingerprint(images: ImageSet) -> str:
    """A hash of pixels and labels: a checkpoint is only resumed / reused on the same data."""
    h = hashlib.blake2b(digest_size=16)
    for arr in (images.images, images.pids, images.camids):
        h.update(np.ascontiguousarray(arr).data)
    h.update(str(images.images.shape).encode())
    return h.hexdigest()


def validate(model, query: ImageSet, gallery: ImageSet, progress: bool = False,
             camera_norm: bool = False) -> dict:
    """mAP / CMC / mINP of ``model`` on any query / gallery pair (in training: validation)."""
    qf = extract_features(model, query, progress=progress)
    gf = extract_features(model, gallery, progress=progress)
    return score_features(qf, gf, query, gallery, camera_norm=camera_norm)


def score_features(qf: torch.Tensor, gf: torch.Tensor, query: ImageSet, gallery: ImageSet,
                   camera_norm: bool = False) -> dict:
    """``evaluate`` on query / gallery features; ``camera_norm`` first removes each camera's
    mean and scale from query and gallery features together (survey §3.3, camera ids only)."""
    if camera_norm:
        from reidlib.handcrafted import per_camera_normalise

        both = per_camera_normalise(torch.cat([qf, gf]).float(),
                                    np.concatenate([query.camids, gallery.camids]))
        qf, gf = both[:len(qf)], both[len(qf):]
    return evaluate(pairwise_distance(qf, gf), query.pids, gallery.pids,
                    query.camids, gallery.camids)


# ----------------------------------------------------------------------------- loop


@dataclass
class _Run:
    """The loop's mutable state between epochs: what a checkpoint stores."""

    history: History
    labels: np.ndarray | None = None
    optimizer: torch.optim.Optimizer | None = None
    params_key: tuple = ()
    best: dict | None = None


def fit(method, train: ImageSet, *, epochs: int, lr: float, p: int = 16, k: int = 4,
        labels=None, cluster: Callable[[np.ndarray], np.ndarray] | None = None,
        recluster_every: int = 1,
        select: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        iters: int | None = None, weight_decay: float = 5e-4, decay: str = "all",
        schedule: str = "step", milestones=(), warmup_epochs: int = 0,
        colour_jitter: float = 0.15, seed: int = 0, domains=None,
        val: tuple[ImageSet, ImageSet] | None = None, eval_every: int = 1,
        keep_best: bool = False, checkpoint=None, resume: bool = True,
        snapshot_rows=None, progress: bool = True, channels_last: bool = True,
        on_epoch_end: Callable[[EpochRecord], None] | None = None,
        on_step: Callable[[int, int], None] | None = None) -> History:
    """Train ``method`` on ``train`` (module docstring). The one loop of the course.

    Args:
        method: a :class:`~reidlib.training.method.Method`; its models train in place, on
            their own device.
        train: the training set. With ``cluster`` its pids only score the pseudo-labels and
            colour snapshots (junk rows, pid < 0, must be dropped first).
        epochs, lr: loop length and Adam's learning rate.
        p, k: batch shape: ``p * k`` images, ``k`` per label (the method's sampler decides
            how; :meth:`Method.batches`). ``iters``: batches per epoch for samplers with a
            fixed epoch length (the reference scripts' ``--iters``); None = one pass.
        labels: fixed (N,) labels (-1 = not trained on), or ``cluster``: ``(N, D) float32
            L2-normalised features -> (N,) int labels``, redone every ``recluster_every``
            epochs. ``select``: optional ``(features, labels) -> labels`` (DCML).
        weight_decay, decay, schedule, milestones, warmup_epochs: see :func:`param_groups`
            and :func:`lr_at`.
        domains: optional (N,) domain id per row, carried into each batch.
        val: (query, gallery) to validate on every ``eval_every`` epochs; ``keep_best``
            restores the weights of the best validation mAP at the end.
        checkpoint: a path: saved atomically after every epoch; with ``resume`` a run
            continues from it (its settings must match).
        snapshot_rows: the rows kept in each snapshot (default: all).
        channels_last: models and augmented batches in the channels_last memory format (the
            same arithmetic in another order): faster on CUDA, and on our 2-core CPU about 12%
            faster per step (``benchmarks/RESULTS.md``, issue #12); False keeps the models'
            own format.
        on_epoch_end: called with each :class:`EpochRecord`; ``on_step(epoch, step)``
            before each step (tests use it to stop a run mid-epoch).

    Returns the :class:`History`; the method's models are left in eval mode.
    """
    n = len(train)
    if epochs < 1 or p < 1 or k < 1 or recluster_every < 1:
        raise ValueError(f"epochs, p, k and recluster_every must be >= 1, got {epochs}, {p}, "
                         f"{k}, {recluster_every}")
    if (labels is None) == (cluster is None):
        raise ValueError("give exactly one of labels= (fixed labels) and cluster= (pseudo-labels)")
    if cluster is not None and (train.pids < 0).any():
        raise ValueError(f"train has {(train.pids < 0).sum()} junk images (pid < 0) that cannot "
                         "be scored; drop them first: train.subset(train.pids >= 0)")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: expected one of {SCHEDULES}")
    fixed = None if labels is None else contiguous(check_labels(labels, n))[0]
    domains = np.zeros(n, np.int64) if domains is None else check_labels(domains, n, "domains")
    config = {"method": method.name, "epochs": epochs, "lr": lr, "p": p, "k": k,
              "iters": iters, "recluster_every": recluster_every, "weight_decay": weight_decay,
              "decay": decay, "schedule": schedule, "milestones": list(milestones),
              "warmup_epochs": warmup_epochs, "colour_jitter": colour_jitter, "seed": seed,
              "n": n, "method_config": method.config()}
    if checkpoint is not None:  # resume only on the same data
        config["data"] = data_fingerprint(train)
    device = model_device(method.feature_model())
    if channels_last:
        for model in method.models():
            model.to(memory_format=torch.channels_last)
    run = _Run(History(config=config))
    if checkpoint is not None and resume and Path(checkpoint).exists():
        run = _load(checkpoint, method, config, lr, weight_decay, decay)
    images = train.tensor(device)
    columns = {name: torch.as_tensor(value, device=device)
               for name, value in (("camids", train.camids), ("domains", domains))}

    for epoch in tqdm(range(len(run.history), epochs), desc=method.name,
                      disable=not progress_enabled(progress)):
        t0 = time.perf_counter()
        record = {}
        if fixed is not None and run.labels is None:  # once: a memory starts from features
            run.labels = fixed
            features = extract_features(method.feature_model(), train, flip=False,
                                        progress=False)
            method.new_labels(features.to(device), fixed, train)
        elif cluster is not None and epoch % recluster_every == 0:
            record = _relabel(method, train, cluster, select, epoch, snapshot_rows, device)
            run.labels = record["labels"]
        method.start_epoch(epoch)
        cluster_seconds = time.perf_counter() - t0

        if run.optimizer is None or _params_key(method) != run.params_key:
            run.optimizer, run.params_key = _adam(method, lr, weight_decay, decay)
        batches = method.batches(run.labels, train.camids, p=p, k=k, iters=iters, seed=seed,
                                 epoch=epoch)
        losses = _fit_epoch(method, run.optimizer, images, run.labels, columns, batches, epoch,
                            lambda t: lr_at(t, lr, epochs, warmup_epochs, schedule, milestones),
                            epoch_generator(seed, epoch), colour_jitter, channels_last,
                            progress, on_step)
        scores = None
        if val is not None and ((epoch + 1) % eval_every == 0 or epoch == epochs - 1):
            r = validate(method.feature_model(), *val)
            scores = {"mAP": r["mAP"], "rank1": float(r["cmc"][0]), "mINP": r["mINP"]}
        entry = EpochRecord(epoch, losses, lr_at(epoch, lr, epochs, warmup_epochs, schedule,
                                                 milestones),
                            time.perf_counter() - t0, cluster_seconds,
                            sum(len(b) for b in batches), val=scores, **record)
        _select_best(run, method, scores, keep_best, epoch)
        run.history.records.append(entry)
        run.history.finished = epoch == epochs - 1
        if progress_enabled(progress):
            tqdm.write(_summary(entry))
        if checkpoint is not None:
            _save(checkpoint, method, run)
        if on_epoch_end is not None:
            on_epoch_end(entry)

    if keep_best and run.best is not None:
        method.load_state_dict(run.best)
    for model in method.models():
        model.eval()
    return run.history


def _relabel(method, train, cluster, select, epoch, snapshot_rows, device) -> dict:
    """Features -> checked labels -> scores and snapshot -> ``method.new_labels``."""
    features = method.cluster_features()
    if features is None:
        features = extract_features(method.feature_model(), train, flip=False, progress=False)
    array = features.float().cpu().numpy()
    labels = trainable(cluster(array), len(train), f"epoch {epoch}: cluster(features)")
    if select is not None:
        labels = trainable(select(array, labels), len(train),
                           f"epoch {epoch}: select(features, labels)")
    labels = contiguous(labels)[0]
    quality, snapshot = record_round(epoch, array, labels, train,
                                     name=f"{method.name}, epoch {epoch}", rows=snapshot_rows)
    method.new_labels(features.to(device), labels, train)
    return {"labels": labels, "quality": quality, "snapshot": snapshot}


def train_step(method, optimizer, batch: Batch) -> tuple[torch.Tensor, dict]:
    """One step of the loop: the method's loss, backward, the optimiser, ``after_step``."""
    loss, parts = method.loss(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    method.after_step(batch)
    return loss, parts


def _fit_epoch(method, optimizer, images, labels, columns, batches, epoch, lr_of, generator,
               colour, channels_last, progress, on_step) -> dict:
    for model in method.models():
        model.train()
    device = images.device
    labels_t = torch.as_tensor(labels, device=device)
    sums: dict[str, torch.Tensor] = {}
    bar = tqdm(batches, desc=f"epoch {epoch + 1}",
               disable=not progress_enabled(progress), leave=False)
    for i, idx in enumerate(bar):
        if on_step is not None:
            on_step(epoch, i)
        for group in optimizer.param_groups:
            group["lr"] = lr_of(epoch + i / len(batches))
        rows = torch.as_tensor(idx, device=device)
        batch = Batch(images[rows], rows, labels_t[rows], columns["camids"][rows],
                      columns["domains"][rows], generator, colour, channels_last)
        loss, parts = train_step(method, optimizer, batch)
        for name, value in {"loss": loss, **parts}.items():
            sums[name] = sums.get(name, 0) + value.detach().float()
        if i % 20 == 0:  # .item() waits for the GPU: only now and then
            bar.set_postfix(loss=f"{sums['loss'].item() / (i + 1):.3f}")
    return {name: (total / len(batches)).item() for name, total in sums.items()}


def _params_key(method) -> tuple:
    """Which parameters the method trains now (a new classifier means new ones)."""
    return tuple(id(q) for q in method.parameters() if q.requires_grad)


def _adam(method, lr: float, weight_decay: float, decay: str):
    """(Adam over the method's trainable parameters, their key); rebuilt when they change."""
    params = [q for q in method.parameters() if q.requires_grad]
    return torch.optim.Adam(param_groups(params, weight_decay, decay), lr=lr), _params_key(method)


def _select_best(run: _Run, method, scores: dict | None, keep_best: bool, epoch: int) -> None:
    """Best so far by validation mAP (``not <=`` is true while best_mAP is still NaN)."""
    if not keep_best or scores is None or scores["mAP"] <= run.history.best_mAP:
        return
    run.best = _cpu(method.state_dict())
    run.history.best_epoch, run.history.best_mAP = epoch, scores["mAP"]


def _summary(r: EpochRecord) -> str:
    head = f"epoch {r.epoch + 1}: loss {r.losses.get('loss', float('nan')):.3f}"
    if r.snapshot is not None:
        head = f"{r.snapshot.title.replace(chr(10), ': ')}; {head}"
    if r.val is not None:
        head += f"  val mAP {r.val['mAP']:.3f}  rank-1 {r.val['rank1']:.3f}"
    return f"{head}; {r.seconds:.1f} s"


# ----------------------------------------------------------------------- checkpoints


def _cpu(state):
    """A detached CPU copy of a nested state (dicts, lists, tensors, plain values)."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [_cpu(v) for v in state]
    return state


def _save(path, method, run: _Run) -> None:
    atomic_torch_save({
        "format": FORMAT, "kind": "fit", "method": method.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "labels": None if run.labels is None else torch.from_numpy(run.labels),
        "best": run.best, "history": run.history.to_state(),
    }, path)


def _load(path, method, config: dict, lr: float, weight_decay: float, decay: str) -> _Run:
    """The run state of the last complete epoch in ``path``; the settings must match."""
    payload = read_checkpoint(path)
    if payload.get("kind") != "fit":
        raise RuntimeError(f"{path} is not a checkpoint of reidlib.training.fit; delete it "
                           "or pass resume=False")
    saved = payload["history"]["config"]
    if saved != config:
        diff = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
        raise ValueError(f"checkpoint {path} was written by a run with other settings "
                         f"(saved, now): {diff}; delete it or pass resume=False to start over")
    method.load_state_dict(payload["method"])
    optimizer, key = _adam(method, lr, weight_decay, decay)
    optimizer.load_state_dict(payload["optimizer"])
    labels = payload["labels"]
    return _Run(History.from_state(payload["history"]),
                None if labels is None else labels.numpy(), optimizer, key, payload["best"])
