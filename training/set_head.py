"""A linear softmax head trained on candidate sets: the loss of "one of these genres".

For a window whose clip may be any genre of a set ``S`` the loss is
``-log sum_{k in S} p_k``: the head is free to put the mass on whichever
member the audio sounds like, and is pushed away only from genres outside
the set.  With one candidate it is the usual cross-entropy, so on
single-label data this is the class-balanced multinomial logistic regression
that :func:`genretag.training.backbone_train.fit_head` fits with
scikit-learn (same objective: ``sum_i w_i loss_i + ||W||^2 / (2 C)`` on
standardised features, weights of mean one).

Weights: every clip weighs one in total however many windows it has; then
genres are balanced (a clip's mass is shared among its candidates, and its
weight is scaled by the mean balancing factor of its candidates), so a genre
of 20 clips counts as much as one of 300; with ``balance_sources`` each
source also weighs the same, so one big collection does not set the priors
(its genre mix is not the radio's).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from genretag.training.backbone_train import ABSENT_LOGIT, LinearHead


def window_weights(
    candidates: np.ndarray, clip_ids: np.ndarray, sources: np.ndarray | None = None
) -> np.ndarray:
    """Per-window training weight (mean one); see the module docstring."""
    _, inverse, per_clip = np.unique(clip_ids, return_inverse=True, return_counts=True)
    w = 1.0 / per_clip[inverse]
    if sources is not None:
        names, src_inverse = np.unique(sources, return_inverse=True)
        src_mass = np.bincount(src_inverse, weights=w, minlength=len(names))
        w = w * (src_mass.mean() / src_mass[src_inverse])
    share = candidates / candidates.sum(axis=1, keepdims=True)
    class_mass = (w[:, None] * share).sum(axis=0)
    present = class_mass > 0
    factor = np.zeros_like(class_mass)
    factor[present] = class_mass[present].mean() / class_mass[present]
    w = w * (share @ factor)
    return w / w.mean()


def _loss_and_grad(
    params: np.ndarray, x: np.ndarray, candidates: np.ndarray, w: np.ndarray, inv_c: float
) -> tuple[float, np.ndarray]:
    k, d = candidates.shape[1], x.shape[1]
    coef, bias = params[: k * d].reshape(k, d), params[k * d :]
    logits = x @ coef.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    in_set = p * candidates
    mass = np.maximum(in_set.sum(axis=1), 1e-300)
    loss = float(-(w * np.log(mass)).sum() + 0.5 * inv_c * (coef**2).sum())
    dlogits = w[:, None] * (p - in_set / mass[:, None])  # d(-log sum_S p) / d logits
    grad_coef = dlogits.T @ x + inv_c * coef
    return loss, np.concatenate([grad_coef.ravel(), dlogits.sum(axis=0)])


def fit_set_head(
    x: np.ndarray,
    candidates: np.ndarray,
    clip_ids: np.ndarray,
    C: float,
    sources: np.ndarray | None = None,
    max_iter: int = 3000,
) -> LinearHead:
    """Fit a :class:`LinearHead` on window features ``x`` with candidate sets ``candidates``.

    Parameters
    ----------
    x : ``(n_windows, dim)`` features.
    candidates : ``(n_windows, n_labels)`` 0/1, the candidate set of each window's clip.
    clip_ids : ``(n_windows,)`` the clip of each window (for per-clip weights).
    C : inverse L2 strength, as in scikit-learn's ``LogisticRegression``.
    sources : ``(n_windows,)`` source of each window, to balance sources; None: no source balance.
    """
    candidates = np.asarray(candidates, np.float64)
    if (candidates.sum(axis=1) == 0).any():
        raise ValueError("every window needs at least one candidate label")
    present = candidates.sum(axis=0) > 0
    w = window_weights(candidates, clip_ids, sources)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    xs = ((x - mean) / scale).astype(np.float64)
    cand = candidates[:, present]
    k, d = int(present.sum()), x.shape[1]
    result = minimize(
        _loss_and_grad,
        np.zeros(k * d + k),
        args=(xs, cand, w, 1.0 / C),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter},
    )
    coef = np.zeros((candidates.shape[1], d))
    intercept = np.full(candidates.shape[1], ABSENT_LOGIT)
    coef[present] = result.x[: k * d].reshape(k, d)
    intercept[present] = result.x[k * d :]
    return LinearHead(mean, scale, coef, intercept)
