"""Domain-specific batch normalisation (DSBN; survey §3.4, unsupervised domain adaptation).

Chang et al., "Domain-specific batch normalization for unsupervised domain adaptation"
(CVPR 2019; code: wgchang/DSBN). Source and target share every convolution but each domain
keeps its own batch normalisation: its own running statistics *and* its own affine
parameters gamma_d, beta_d (Eq. 2 of the paper). The domain-specific information (colour,
light, style) is captured by the BN layers and the shared weights learn what the domains
have in common; at test time the target's BN is used.

This is camera-aware BN (:mod:`reidlib.camera.camera_bn`) keyed by domain instead of by
camera, so :class:`DomainBatchNorm` is a :class:`~reidlib.camera.camera_bn.CameraBatchNorm`
(its per-slot statistics, its row routing, its batch-statistics normalisation) with one
difference: the affine parameters are per domain too, (num_domains, C), where camera BN
shares one set. What the reference does and how we match it:

- ``model/dsbn.py``: one ``nn.BatchNorm2d`` per domain; a batch is forwarded through the
  BN of its domain (source and target batches are forwarded separately). We normalise the
  rows of each domain of a mixed batch with that domain's batch statistics and affine
  parameters, which equals separate forwards (tests/test_da_dsbn.py checks it against one
  plain BatchNorm per domain);
- ``model/resnetdsbn.py`` (``_update_initial_weights_dsbn``): every domain's BN starts as a
  copy of the pretrained BN (weight, bias, running mean / var, num_batches_tracked), as
  :func:`convert_domain_bn` does.

Usage::

    convert_domain_bn(model, 2)                    # in place: every BatchNorm1d/2d
    with domains(model, batch.domains):            # rows routed to their domain's BN
        out = model(x)
    with domains(model, 1):                        # test: the target's statistics
        features = extract_features(model, target_images)
"""

from __future__ import annotations

import contextlib

from torch import nn

from reidlib.camera.camera_bn import CameraBatchNorm, _convert, _routed, camera_bn_layers
from reidlib.checks import int_in_range

__all__ = ["DomainBatchNorm", "convert_domain_bn", "domain_bn_layers", "domains"]


class DomainBatchNorm(CameraBatchNorm):
    """A BatchNorm1d / 2d with running statistics *and* affine parameters per domain (DSBN).

    Built from an existing BatchNorm by :func:`convert_domain_bn`: every domain starts from
    a copy of that layer's weight, bias and running statistics. ``domain_weight`` /
    ``domain_bias``: (num_domains, C) Parameters (None when the BatchNorm had
    ``affine=False``); ``running_mean`` / ``running_var``: (num_domains, C). The inherited
    ``weight`` / ``bias`` are None: the affine step is applied per domain after the
    normalisation, which is the same function as BatchNorm's own affine step.
    """

    def __init__(self, bn: nn.BatchNorm1d | nn.BatchNorm2d, num_domains: int):
        super().__init__(bn, num_domains)
        self.num_domains = num_domains
        self.num_batches_tracked.fill_(int(bn.num_batches_tracked))  # as DSBN's weight copy
        weight, bias = self.weight, self.bias
        self.weight = self.bias = None
        for name, value in (("domain_weight", weight), ("domain_bias", bias)):
            if value is None:
                self.register_parameter(name, None)
            else:
                stacked = value.detach().expand(num_domains, -1).clone()
                self.register_parameter(name, nn.Parameter(stacked, value.requires_grad))

    def forward(self, x):
        if self._route is None:
            raise RuntimeError("a domain-specific BN layer needs the domain of each image: "
                               "call the model inside `with domains(model, domain_ids):`")
        return super().forward(x)

    def _normalise(self, x, domain: int):
        out = super()._normalise(x, domain)
        if self.domain_weight is None:
            return out
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (out * self.domain_weight[domain].view(shape)
                + self.domain_bias[domain].view(shape))

    def extra_repr(self) -> str:
        return (f"{self.num_features}, domains={self.num_domains}, eps={self.eps}, "
                f"momentum={self.momentum}, affine={self.domain_weight is not None}")


def convert_domain_bn(model: nn.Module, num_domains: int) -> nn.Module:
    """Replace every ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` of ``model`` (in place) by a
    :class:`DomainBatchNorm` with ``num_domains`` sets of statistics and affine
    parameters; returns ``model``. Domain ids must then lie in 0..num_domains-1.

    Build the optimiser after converting: the per-domain weights are new Parameters.
    """
    num_domains = int_in_range(num_domains, "num_domains", 1)
    if camera_bn_layers(model, required=False):
        raise ValueError("model already has camera-aware or domain-specific BN layers")
    if not _convert(model, num_domains, DomainBatchNorm, "domain"):
        raise ValueError(f"{type(model).__name__} has no BatchNorm1d / BatchNorm2d to convert")
    return model


def domain_bn_layers(model: nn.Module, required: bool = True) -> list[DomainBatchNorm]:
    """The model's :class:`DomainBatchNorm` layers (a clear error if none and ``required``)."""
    layers = [m for m in model.modules() if isinstance(m, DomainBatchNorm)]
    if required and not layers:
        raise ValueError(f"{type(model).__name__} has no domain-specific BN layers: convert "
                         "it first with convert_domain_bn(model, num_domains)")
    return layers


@contextlib.contextmanager
def domains(model: nn.Module, domain_ids):
    """Inside the block, the model's DSBN layers know each row's domain.

    ``domain_ids``: one domain id (every image of every batch, e.g. the target's at test
    time) or a (B,) array / tensor, one per row of the batches forwarded in the block.
    In training every domain present needs >= 2 values per channel. Blocks nest.
    """
    with _routed(model, domain_bn_layers(model), domain_ids, "domain"):  # camera BN's routing
        yield model
