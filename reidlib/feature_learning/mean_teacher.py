"""Temporal-average ("mean") teachers for learning from noisy pseudo-labels (survey §3.2).

MMT (Ge, Chen, Li, "Mutual Mean-Teaching: pseudo label refinery for unsupervised domain
adaptation on person re-identification", ICLR 2020) trains two networks on the clustering
pseudo-labels and lets each learn the *soft* labels that the other's temporally averaged
copy predicts. The average comes from Mean Teacher (Tarvainen, Valpola, "Mean teachers are
better role models", NeurIPS 2017): after every optimiser step

    theta_teacher <- alpha * theta_teacher + (1 - alpha) * theta_student     (alpha ~ 0.999)

An average over many steps forgets the errors of any single batch of wrong labels, so its
predictions are steadier targets than the student's own.

This module holds only the averaging; the MMT loop itself (losses, two networks) lives in the
chapter's training code.

What about buffers (BatchNorm running statistics)? MMT's code averages *parameters only*
(``_update_ema_variables`` zips ``ema_model.parameters()``), and runs the teachers forward in
train mode on every batch, so each teacher's BN statistics follow its own activations through
BN's own momentum. A teacher that is only ever run in eval mode would, in that scheme, keep
the running statistics of the moment it was copied: its BN layers would then normalise with
stale means while its weights move. ``ema_update`` therefore offers three choices:

- ``buffers="average"`` (default): floating-point buffers get the same average as the
  parameters (timm's ``ModelEmaV2`` does the same). Correct whichever mode the teacher runs in.
- ``buffers="keep"``: MMT's behaviour; use it when the teacher runs forward in train mode.
- ``buffers="copy"``: take the student's buffers as they are.

Integer buffers (BatchNorm's ``num_batches_tracked``, a step counter) are never averaged: an
average of counters means nothing and would be truncated to an integer. They are copied from
the student under "average" and "copy", and left alone under "keep". The counter is only read
by BatchNorm when ``momentum=None`` (a cumulative average), never with the default momentum.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

BUFFER_MODES = ("average", "keep", "copy")


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student`` to be its mean teacher (survey §3.2, MMT, Mean Teacher).

    A deep copy (same device, dtype, training mode, weights and buffers) whose parameters do
    not require gradients: the teacher is only ever changed by :func:`ema_update`, never by an
    optimiser, and autograd then builds no graph through its forward passes. It works in eval
    mode as any model (``extract_features(teacher, ...)``); call ``teacher.train()`` to have
    it return a ``ReidOutput`` with logits, as MMT's loop does.
    """
    if not isinstance(student, nn.Module):
        raise TypeError(f"student must be a torch.nn.Module, got {type(student).__name__}")
    teacher = copy.deepcopy(student)
    teacher.requires_grad_(False)
    return teacher


def warmup_alpha(alpha: float, step: int) -> float:
    """The averaging weight at optimiser step ``step`` (0-based): ``min(1 - 1/(step+1), alpha)``.

    From Mean Teacher's and MMT's code: early on, the teacher is the plain mean of all student
    weights seen so far (step 0: a copy of the student; step 1: the mean of two), so it does
    not stay anchored for thousands of steps to a random or stale starting point, which the
    fixed weight alpha = 0.999 would do.
    """
    _check_alpha(alpha)
    if int(step) != step or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    return min(1.0 - 1.0 / (int(step) + 1), float(alpha))


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float,
               buffers: str = "average") -> None:
    """In place: teacher <- alpha * teacher + (1 - alpha) * student (survey §3.2; MMT, Mean
    Teacher's temporal average).

    Args:
        teacher: the averaged model (see :func:`make_teacher`); changed in place.
        student: the trained model, same architecture (same parameter and buffer names and
            shapes) and same device.
        alpha: weight of the old teacher, in [0, 1]; 0 copies the student, 1 changes nothing.
            MMT uses 0.999, with :func:`warmup_alpha` over the first steps.
        buffers: "average" | "keep" | "copy", what happens to BatchNorm running statistics;
            see the module docstring for why "average" is the default.
    """
    _check_alpha(alpha)
    if buffers not in BUFFER_MODES:
        raise ValueError(f"buffers must be one of {BUFFER_MODES}, got {buffers!r}")
    if teacher is student:
        raise ValueError("teacher and student are the same module; make the teacher with "
                         "make_teacher(student)")
    t_params, s_params = _matching(teacher, student, "parameters")
    t_buffers, s_buffers = _matching(teacher, student, "buffers")
    for t, s in zip(t_params, s_params, strict=True):
        t.lerp_(s.to(t.dtype), 1.0 - alpha)  # t + (1 - alpha) (s - t)
    if buffers == "keep":
        return
    for t, s in zip(t_buffers, s_buffers, strict=True):
        if buffers == "average" and t.is_floating_point():
            t.lerp_(s.to(t.dtype), 1.0 - alpha)
        else:
            t.copy_(s)


@dataclass
class MeanTeacherPair:
    """A student and its mean teacher, with the step count that :func:`warmup_alpha` needs.

    Usage in a training loop (survey §3.2, MMT)::

        pair = MeanTeacherPair.from_student(model, alpha=0.999)
        ...  # loss from pair.student(x) and soft targets from pair.teacher(x)
        optimizer.step()
        pair.update()
    """

    student: nn.Module
    teacher: nn.Module
    alpha: float = 0.999
    buffers: str = "average"
    step: int = 0

    @classmethod
    def from_student(cls, student: nn.Module, alpha: float = 0.999,
                     buffers: str = "average") -> MeanTeacherPair:
        _check_alpha(alpha)
        return cls(student=student, teacher=make_teacher(student), alpha=alpha, buffers=buffers)

    def update(self) -> float:
        """One EMA step after an optimiser step; returns the alpha it used."""
        alpha = warmup_alpha(self.alpha, self.step)
        ema_update(self.teacher, self.student, alpha, buffers=self.buffers)
        self.step += 1
        return alpha


def _check_alpha(alpha) -> None:
    if not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")


def _matching(teacher: nn.Module, student: nn.Module, what: str):
    """The teacher's and the student's parameters (or buffers), paired by name, checked."""
    t_named = dict(getattr(teacher, f"named_{what}")())
    s_named = dict(getattr(student, f"named_{what}")())
    if t_named.keys() != s_named.keys():
        only_t = sorted(t_named.keys() - s_named.keys())[:5]
        only_s = sorted(s_named.keys() - t_named.keys())[:5]
        # The usual cause: the student's classifier was reset at a re-clustering and the
        # teacher's was not (MMT resets both, with the same initial weights).
        raise ValueError(
            f"teacher and student {what} differ: only in the teacher {only_t}, only in the "
            f"student {only_s} (reset both classifiers at each re-clustering)"
        )
    for name, t in t_named.items():
        s = s_named[name]
        if t.shape != s.shape:
            raise ValueError(f"{what[:-1]} {name!r}: teacher shape {tuple(t.shape)} != student "
                             f"shape {tuple(s.shape)} (reset both classifiers at re-clustering)")
        if t.device != s.device:
            raise ValueError(f"{what[:-1]} {name!r}: teacher on {t.device}, student on "
                             f"{s.device}; keep both models on one device")
    return list(t_named.values()), [s_named[n] for n in t_named]
