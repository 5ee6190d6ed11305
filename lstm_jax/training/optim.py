"""Optax optimisers for recurrent networks: a learning-rate schedule, then clip, then update.

Recurrent networks occasionally produce exploding gradients (Pascanu et al. 2013), so every
optimiser built here clips the *global* norm of the gradient first (one norm over the whole
pytree, as ``torch.nn.utils.clip_grad_norm_`` does) and only then applies the update rule.
"""

from __future__ import annotations

from typing import Any

import optax

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "linear")


def learning_rate_schedule(
    learning_rate: float,
    *,
    schedule: str = "constant",
    total_steps: int | None = None,
    warmup_steps: int = 0,
    final_fraction: float = 0.0,
) -> optax.Schedule:
    """A learning rate as a function of the step.

    Args:
      learning_rate: the peak learning rate, > 0.
      schedule: ``"constant"``; ``"cosine"`` (cosine decay to ``final_fraction * lr`` over
        ``total_steps``); ``"warmup_cosine"`` (linear warm-up from 0 over ``warmup_steps``,
        then cosine decay); ``"linear"`` (linear decay to ``final_fraction * lr``).
      total_steps: the length of the run; required by every schedule but ``"constant"``.
      warmup_steps: steps of linear warm-up (``"warmup_cosine"`` only), < ``total_steps``.
      final_fraction: the learning rate at the end, as a fraction of the peak, in [0, 1].

    Returns:
      An ``optax.Schedule``: step (int) -> learning rate (float32 scalar).
    """
    fn = "learning_rate_schedule"
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
        raise TypeError(f"{fn}: learning_rate must be a float, got {learning_rate!r}")
    if not learning_rate > 0:
        raise ValueError(f"{fn}: learning_rate must be > 0, got {learning_rate}")
    if schedule not in SCHEDULES:
        raise ValueError(f"{fn}: schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not 0.0 <= final_fraction <= 1.0:
        raise ValueError(f"{fn}: final_fraction must be in [0, 1], got {final_fraction}")
    if schedule == "constant":
        return optax.constant_schedule(learning_rate)
    if total_steps is None or isinstance(total_steps, bool) or total_steps <= 0:
        raise ValueError(
            f"{fn}: total_steps must be a positive int for schedule={schedule!r}, "
            f"got {total_steps!r}"
        )
    if warmup_steps < 0 or warmup_steps >= total_steps:
        raise ValueError(
            f"{fn}: warmup_steps must be in [0, total_steps={total_steps}), got {warmup_steps}"
        )
    end = learning_rate * final_fraction
    if schedule == "cosine":
        return optax.cosine_decay_schedule(learning_rate, total_steps, alpha=final_fraction)
    if schedule == "linear":
        return optax.linear_schedule(learning_rate, end, total_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=total_steps,
        end_value=end,
    )


def make_optimizer(
    learning_rate: float | optax.Schedule = 1e-3,
    *,
    optimizer: str = "adam",
    clip_norm: float | None = 1.0,
    weight_decay: float = 0.0,
    **optimizer_kwargs: Any,
) -> optax.GradientTransformation:
    """Global-norm clipping followed by an Optax update rule.

    Args:
      learning_rate: a float or an ``optax.Schedule`` (see ``learning_rate_schedule``).
      optimizer: one of ``OPTIMIZERS``.
      clip_norm: the largest global gradient norm; None switches clipping off.
      weight_decay: decoupled weight decay (``"adamw"`` only).
      **optimizer_kwargs: passed to the Optax constructor (``b1``, ``momentum``, ...).

    Returns:
      An ``optax.GradientTransformation``.
    """
    fn = "make_optimizer"
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"{fn}: optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not callable(learning_rate):
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
            raise TypeError(
                f"{fn}: learning_rate must be a float or an optax schedule, got {learning_rate!r}"
            )
        if not learning_rate > 0:
            raise ValueError(f"{fn}: learning_rate must be > 0, got {learning_rate}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"{fn}: clip_norm must be > 0 or None, got {clip_norm}")
    if weight_decay < 0:
        raise ValueError(f"{fn}: weight_decay must be >= 0, got {weight_decay}")
    if weight_decay and optimizer != "adamw":
        raise ValueError(
            f"{fn}: weight_decay is only supported with optimizer='adamw', got "
            f"optimizer={optimizer!r}"
        )
    if optimizer == "adamw":
        optimizer_kwargs["weight_decay"] = weight_decay
    update = getattr(optax, optimizer)(learning_rate, **optimizer_kwargs)
    if clip_norm is None:
        return update
    return optax.chain(optax.clip_by_global_norm(clip_norm), update)
