"""The closed RL loop on one machine: a tiny Qwen3 learns the WideSeek protocol from a scripted player (SFT),
then improves with GRPO on its own multi-agent rollouts, the updated weights fed back to the rollout engine
after every step. Run it with ``python -m training.closed_loop`` (see ``__main__``) and read the results in
``docs/training.md``."""
