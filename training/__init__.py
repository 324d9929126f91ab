"""Multi-agent RL training of the WideSeek graph's shared model on OpenRLHF 0.11.2.

Pieces (each a small module with one job; see docs/training.md):

- ``endpoint``        an OpenAI-compatible chat endpoint served inside a vLLM Ray actor, on its own loop
- ``engine``          the token-in/token-out engine interface OpenRLHF hands to an executor, and vLLM-free
                      stand-ins
- ``agent_executor``  the file given to ``--train.agent_func_path`` (thin; the logic is in ``rollout``)
- ``rollout``         one graph rollout per ``execute``: endpoint, graph, reward, rows
- ``reward``          the WideSeek-R1 reward from dataset labels, or a custom reward function
- ``rows``            trajectory -> per-call training rows (shared by training and offline export)
- ``data``            training/eval task files -> OpenRLHF prompt datasets (``python -m training.data``)
- ``refresh``         push saved HF checkpoints into an external ``vllm serve``
                      (``python -m training.refresh``)
- ``testing``         a scripted engine for tests and CPU dry runs
- ``launch/``         single-node and multi-node launch scripts
- ``openrlhf_ext``    the multi-row extension of OpenRLHF (batching, advantages, weighting)
- ``advantages``      the GRPO and dual-level weighting math

Nothing here imports OpenRLHF, vLLM or torch at import time, so the data, rows and refresh tools run on a
machine without the GPU stack.
"""
