r"""Label features :math:`Y` for the label kernel of the ``hsic`` estimator."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def label_features(labels: Tensor, ignore_index: int = -100) -> Tensor:
    r"""Turn a batch of labels into a feature matrix :math:`Y`, one row per example.

    - class labels, integer ``(n,)``: one-hot over the classes present in the batch;
    - regression targets, float ``(n,)``: the column ``labels[:, None]``;
    - token labels, integer ``(n, T)`` with ``ignore_index`` skipped: the normalised
      bag of target tokens, :math:`Y_{ic} = \#\{t : y_{it} = c\} / \#\{t : y_{it} \ne
      \text{ignore}\}` over the tokens present in the batch (order-free, so the
      shift of causal-LM labels does not matter);
    - float ``(n, c)`` (soft or multi-label targets): used as given.

    Compacting to the classes / tokens present in the batch (``torch.unique``)
    leaves the linear kernel :math:`YY^\top` unchanged and keeps :math:`Y` small.

    Shapes:
        labels ``(n,)`` or ``(n, T)`` -> ``(n, c)`` float.
    """
    if labels.dim() == 1 and labels.is_floating_point():
        return labels[:, None]
    if labels.dim() == 1:
        _, index = torch.unique(labels, return_inverse=True)
        return F.one_hot(index).to(torch.get_default_dtype())
    if labels.dim() == 2 and labels.is_floating_point():
        return labels
    if labels.dim() == 2:
        return _bag_of_tokens(labels, ignore_index)
    raise ValueError(
        f"label_features: labels of shape {tuple(labels.shape)} are not understood; pass class "
        "labels (n,), token labels (n, T) with ignore_index for padding, or float targets (n, c)"
    )


def _bag_of_tokens(labels: Tensor, ignore_index: int) -> Tensor:
    valid = labels != ignore_index  # (n, T)
    vocab, index = torch.unique(labels[valid], return_inverse=True)  # index: (num_valid,)
    rows = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(labels)[valid]
    bag = torch.zeros(labels.shape[0], vocab.numel(), device=labels.device)  # (n, c)
    bag.index_put_((rows, index), torch.ones_like(rows, dtype=bag.dtype), accumulate=True)
    return bag / bag.sum(1, keepdim=True).clamp_min(1.0)
