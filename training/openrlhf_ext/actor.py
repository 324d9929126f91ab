"""Point (d), second half: the policy trainer marks DeepSpeed's accumulation boundary.

Our replay buffer makes all micro-batches of a rollout batch one optimizer step; DeepSpeed
must also know that, or (with the gradient_accumulation_steps=1 config of OpenRLHF's dynamic
batching) it reduces and drops gradients at every backward. See
:func:`training.openrlhf_ext.replay.mark_accumulation_boundary`. With ``WIDESEEK_DEBUG_DIR`` set it also
records what each rank trained on and probes the weights after every broadcast (``debug.py``).
"""

from __future__ import annotations

from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer

from . import debug
from .replay import mark_accumulation_boundary


class WideSeekActorPPOTrainer(ActorPPOTrainer):
    def training_step(self, experience, kl_ctl, step, loss_batch_info=None):
        if self.args.train.dynamic_batch_enable:
            mark_accumulation_boundary(self.actor, self.replay_buffer.dynamic_optimizer_step[step])
        if debug.enabled():
            debug.dump_actor_micro_batch(self, step, experience)
        return super().training_step(experience, kl_ctl, step, loss_batch_info)

    def broadcast_to_vllm(self):
        super().broadcast_to_vllm()
        if debug.enabled():  # evidence for the launch check: the engines' weights and logits vs ours
            debug.save_trainer_probe(self)


# When this module is what first imported ppo_actor (a Ray worker unpickling a reference to this class), the
# import hook had to wait for the class above to exist; rebind ppo_actor.ActorPPOTrainer now.
from .install import run_deferred  # noqa: E402

run_deferred()
