"""rsl-rl's PPO with an early stop on the policy's KL divergence (``target_kl``), as CleanRL's
PPO and ResiP's code have it: the update makes up to ``num_learning_epochs`` passes over the
batch, and before each pass after the first it measures the mean KL between the policy that
collected the batch and the current one (on the pass's first mini-batch); past ``target_kl`` it
stops. ResiP's code runs 50 passes over one full batch with target_kl 0.1: a batch moves the
residual as far as the trust region allows, not a fixed 4 small steps.

Everything else is rsl-rl's ``PPO.update``; its mean losses are taken over the passes that ran,
and ``epochs`` (passes run) is added to the losses it reports. Selected by ``RLConfig.target_kl``
> 0 (``policies/rl.py``).
"""

from __future__ import annotations

import torch
from rsl_rl.algorithms import PPO


class KLStopPPO(PPO):
    def __init__(self, *args, target_kl: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not target_kl > 0:
            raise ValueError(f"KLStopPPO: target_kl must be > 0, got {target_kl}")
        self.target_kl = target_kl
        self.epochs_run = 0

    @torch.no_grad()
    def kl(self, batch) -> float:
        """Mean KL(policy that collected ``batch`` || current policy) on ``batch``."""
        self.actor(batch.observations, masks=batch.masks, hidden_state=batch.hidden_states[0], stochastic_output=True)
        new = tuple(p[:batch.observations.batch_size[0]] for p in self.actor.output_distribution_params)
        return float(self.actor.get_kl_divergence(batch.old_distribution_params, new).mean())

    def update(self) -> dict[str, float]:
        storage = self.storage
        if self.actor.is_recurrent or self.critic.is_recurrent:
            raise NotImplementedError("KLStopPPO: feed-forward models only")
        own = storage.mini_batch_generator
        self.epochs_run = 0

        def batches(num_mini_batches: int, num_epochs: int):
            for i, batch in enumerate(own(num_mini_batches, num_epochs)):
                if i % num_mini_batches == 0:
                    if i and self.kl(batch) > self.target_kl:
                        return
                    self.epochs_run += 1
                yield batch

        storage.mini_batch_generator = batches  # this update only: the instance attribute shadows the method
        try:
            losses = super().update()
        finally:
            del storage.mini_batch_generator
        scale = self.num_learning_epochs / max(self.epochs_run, 1)  # rsl-rl divides by every pass
        return {**{k: v * scale for k, v in losses.items()}, "epochs": float(self.epochs_run)}
