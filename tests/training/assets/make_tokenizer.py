"""Build the tiny Qwen3-style tokenizer the training tests use (nothing is downloaded).

A byte-level BPE (so every string round-trips exactly, as with Qwen3's tokenizer) trained on a fixed corpus,
with Qwen3's special tokens (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``) and its added text tokens
(``<think>``, ``</think>``, ``<tool_call>``, ``</tool_call>``, ``<tool_response>``, ``</tool_response>``), and
a chat template of our own that renders what Qwen3's does for agents: tool schemas in the system turn, earlier
reasoning in ``<think>`` blocks, hermes ``<tool_call>`` JSON, tool results as ``<tool_response>`` blocks in a
user turn, and ``enable_thinking=False`` as an empty think block. To rewrite
tests/training/assets/tiny-qwen3/:

    /work/venv/bin/python tests/training/assets/make_tokenizer.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

OUT = Path(__file__).resolve().parent / "tiny-qwen3"
VOCAB_SIZE = 2000
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

# A fixed, varied corpus: English prose of the kind the agents read and write, JSON tool calls, markdown
# tables, URLs and a little Chinese, so common pieces get their own merges.
CORPUS = [
    "You are the lead agent. Break the task into simple, independent subtasks and give each to a subagent.",
    "Subagents run in parallel and cannot see each other, so every subtask must stand on its own.",
    "Think first inside the think block, then call a tool or give the final answer.",
    "Search for pages about the topic, then access the most useful URL and extract the facts asked for.",
    "The final answer is a markdown table inside a fenced block that opens with three backticks and "
    "markdown.",
    "# Task\nList every university ranked in the top five for each subject, with its home page and fee.",
    "# Subtask 1:\nFind the home page of the university.\n# Result:\nThe home page is "
    "https://www.example.edu/.",
    "# Search query: history of the company\n# Result:\n[Doc 1](https://en.wikipedia.org/wiki/Company): The "
    "company",
    "# Access URL: https://example.org/page\n# Info to extract: founding year\n# Result:\nIt was founded in "
    "1999.",
    '{"name": "search", "arguments": {"queries": [{"query": "tallest buildings in Asia", "count": 3}]}}',
    '{"name": "access", "arguments": {"urls": [{"url": "https://example.com/a", "info_to_extract": '
    '"year"}]}}',
    '{"name": "create_sub_agents", "arguments": {"sub_agents": [{"prompt": "Find the album list"}]}}',
    "| Album | Year | Label |\n|---|---|---|\n| First | 1999 | Blue Note |\n| Second | 2003 | Verve |",
    "This is turn 1; finish within 10 turns. Your next answer is turn 2; finish by turn 10.",
    "The search returned no results. Try another query. The page could not be read; try another URL.",
    "Ranking, university, subject, country, application deadline, application fee, website, population, "
    "area.",
    "January February March April May June July August September October November December 2024 2025.",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
    "请列出每个学科排名前五的大学，以及它们的官方网站和申请费用。",
    "搜索结果显示，这家公司成立于一九九九年，总部位于上海。",
    "0 1 2 3 4 5 6 7 8 9 10 20 50 100 1000 3.14 40.0% $75 750ml",
]


def build() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=40960,
        clean_up_tokenization_spaces=False,
    )


def main(out: Path = OUT) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    build().save_pretrained(str(out))
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
