"""Small Qwen3-style models and tokenizers built here, from configs: no weights or tokenizers are downloaded.

The closed RL loop (``training.closed_loop``) and the training tests need a model that speaks the WideSeek
protocol exactly as Qwen3 does (ChatML turns, ``<think>`` reasoning, hermes ``<tool_call>`` JSON, tool results in
``<tool_response>`` blocks) but is small enough to train in minutes. This module makes both halves:

* :func:`build_tokenizer`: a byte-level BPE (every string round-trips, as with Qwen3's tokenizer) trained on
  the texts you give it, with Qwen3's special tokens (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, the
  end of a turn being the EOS) and its added text tokens, and :data:`CHAT_TEMPLATE`, our own template that
  renders what Qwen3's does for agents: tool schemas in the system turn, earlier reasoning in ``<think>``
  blocks, hermes tool calls, tool results as ``<tool_response>`` blocks in a user turn, and
  ``enable_thinking=False`` as an empty think block.
* :func:`build_model`: a ``Qwen3ForCausalLM`` from a :class:`~transformers.Qwen3Config` of one of the
  :data:`PRESETS` (or your own sizes), randomly initialised with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ADDED = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

CHAT_TEMPLATE = r"""
{%- macro text(c) -%}
{%- if c is none -%}{%- elif c is string -%}{{ c }}{%- else -%}{%- for part in c -%}{{ part.text }}{%- endfor -%}{%- endif -%}
{%- endmacro -%}
{%- set first_is_system = messages and messages[0].role == 'system' -%}
{%- if tools -%}
<|im_start|>system
{% if first_is_system %}{{ text(messages[0].content) }}

{% endif %}# Tools

These functions are available. Their signatures are listed inside <tools></tools>:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>

To call one, write a JSON object with its name and arguments between <tool_call></tool_call> tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif first_is_system -%}
<|im_start|>system
{{ text(messages[0].content) }}<|im_end|>
{% endif -%}
{%- for m in messages -%}
{%- if m.role == 'system' and loop.first -%}
{%- elif m.role == 'user' or m.role == 'system' -%}
<|im_start|>{{ m.role }}
{{ text(m.content) }}<|im_end|>
{% elif m.role == 'assistant' -%}
{%- set reasoning = m.reasoning_content or m.reasoning -%}
<|im_start|>assistant
{% if reasoning %}<think>
{{ reasoning | trim }}
</think>

{% endif %}{{ text(m.content) }}
{%- for call in m.tool_calls or [] -%}
{%- set f = call.function if call.function is defined else call -%}
{%- if loop.first and text(m.content) %}{{ '\n' }}{% elif not loop.first %}{{ '\n' }}{% endif -%}
<tool_call>
{"name": {{ f.name | tojson }}, "arguments": {% if f.arguments is string %}{{ f.arguments }}{% else %}{{ f.arguments | tojson }}{% endif %}}
</tool_call>
{%- endfor -%}
<|im_end|>
{% elif m.role == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{ '<|im_start|>user' }}{%- endif -%}
{{ '\n<tool_response>\n' ~ text(m.content) ~ '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}{{ '<|im_end|>\n' }}{%- endif -%}
{%- else -%}
{{ raise_exception('unsupported message role: ' ~ m.role) }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% if enable_thinking is defined and enable_thinking is false %}<think>

</think>

{% endif -%}
{%- endif -%}
""".strip()

# name -> Qwen3Config sizes (vocab comes from the tokenizer). Parameter counts are for an 8192-token vocab.
PRESETS: dict[str, dict[str, int]] = {
    # ~0.3M: CPU tests of the loop's plumbing
    "test": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=32),
    # ~16M: the closed-loop run on one GPU (32 MB in bf16: small enough to carry between GPU sessions)
    "small": dict(hidden_size=320, intermediate_size=960, num_hidden_layers=8, num_attention_heads=5,
                  num_key_value_heads=5, head_dim=64),
}


def build_tokenizer(texts: Iterable[str], vocab_size: int, *, model_max_length: int = 40960) -> Any:
    """A Qwen3-style byte-level BPE tokenizer trained on ``texts`` (a ``PreTrainedTokenizerFast``)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def build_model(vocab_size: int, *, preset: str = "small", max_position_embeddings: int = 8192, seed: int = 0,
                dtype: Any = None, **overrides: int) -> Any:
    """A randomly initialised ``Qwen3ForCausalLM`` with untied input and output embeddings (``lm_head`` is a
    tensor of its own, so weight syncs and checkpoints carry every parameter by name). ``overrides`` replace
    preset sizes."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    sizes = {**PRESETS[preset], **overrides}
    cfg = Qwen3Config(vocab_size=vocab_size, max_position_embeddings=max_position_embeddings,
                      tie_word_embeddings=False, **sizes)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg)
    if dtype is not None:
        model = model.to(dtype)
    return model


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
