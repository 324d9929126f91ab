"""Build the tiny Qwen3-style tokenizer the training tests use (nothing is downloaded).

``training.tiny_qwen3.build_tokenizer`` (a byte-level BPE with Qwen3's special tokens and our Qwen3-style chat
template) trained on the fixed corpus below. To rewrite tests/training/assets/tiny-qwen3/:

    /work/venv/bin/python tests/training/assets/make_tokenizer.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from transformers import PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from training.tiny_qwen3 import build_tokenizer  # (the template and special tokens live there)

OUT = Path(__file__).resolve().parent / "tiny-qwen3"
VOCAB_SIZE = 2000
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
    return build_tokenizer(CORPUS * 4, VOCAB_SIZE)


def main(out: Path = OUT) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    build().save_pretrained(str(out))
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
