"""HFEngine: vLLM's generate contract over a plain HF causal LM (a tiny random Qwen3, fp32, on the CPU)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from training.engine import SamplingParamsLite, read_generation  # noqa: E402
from training.hf_engine import HFEngine, RequestError  # noqa: E402
from training.tiny_qwen3 import build_model  # noqa: E402

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(scope="module")
def tok():
    return transformers.AutoTokenizer.from_pretrained(str(ASSETS / "tiny-qwen3"))


@pytest.fixture(scope="module")
def model(tok):
    return build_model(len(tok), preset="test", max_position_embeddings=256, seed=0).float().eval()


@pytest.fixture()
def engine(model, tok):
    eng = HFEngine(model, tok, seed=1)
    yield eng
    eng.close()


def sp(**kw):
    return SamplingParamsLite(**{"max_tokens": 12, **kw})


def prompts(tok, n):
    return [tok("the search tool returns pages " * (k + 1))["input_ids"] for k in range(n)]


def teacher_forced(model, prompt, completion):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits.float()
    lp = torch.log_softmax(logits[0, len(prompt) - 1 : -1], -1)
    return lp.gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


async def test_concurrent_requests_share_forwards_and_logprobs_equal_a_teacher_forced_forward(
    engine, model, tok
):
    ps = prompts(tok, 10)
    outs = await asyncio.gather(
        *[engine.generate(p, sp(max_tokens=8 + i, logprobs=0, ignore_eos=True)) for i, p in enumerate(ps)]
    )
    for p, out in zip(ps, outs):
        gen = read_generation(out)
        assert out.prompt_token_ids == p
        assert len(gen.token_ids) == len(out.outputs[0].token_ids) and gen.finish_reason == "length"
        ref = teacher_forced(model, p, gen.token_ids)
        assert torch.allclose(torch.tensor(gen.logprobs), ref, atol=1e-4), (gen.logprobs, ref)
    # 10 requests of 8..17 tokens: batched, the decode steps follow the longest request, not the sum
    assert engine.stats.decode_steps < 2 * 17 < sum(range(8, 18))
    assert engine.stats.max_batch >= 5
    assert engine.stats.generated_tokens == sum(range(8, 18))


async def test_greedy_matches_hf_generate_and_top_k_1(engine, model, tok):
    p = prompts(tok, 3)[2]
    out = await engine.generate(p, sp(temperature=0.0, max_tokens=10, ignore_eos=True))
    with torch.no_grad():
        ref = model.generate(
            torch.tensor([p]),
            do_sample=False,
            max_new_tokens=10,
            min_new_tokens=10,
            pad_token_id=0,
            eos_token_id=None,
        )[0, len(p) :].tolist()
    assert out.outputs[0].token_ids == ref
    topk1 = await engine.generate(p, sp(temperature=1.0, top_k=1, max_tokens=10, ignore_eos=True, seed=3))
    assert topk1.outputs[0].token_ids == ref


async def test_a_seed_makes_a_request_reproducible_whatever_runs_beside_it(engine, tok):
    p = prompts(tok, 2)[1]
    alone = await engine.generate(p, sp(seed=11, max_tokens=15, ignore_eos=True))
    crowd = await asyncio.gather(
        engine.generate(p, sp(seed=11, max_tokens=15, ignore_eos=True)),
        *[engine.generate(q, sp(max_tokens=20, ignore_eos=True)) for q in prompts(tok, 6)],
    )
    assert crowd[0].outputs[0].token_ids == alone.outputs[0].token_ids
    other = await engine.generate(p, sp(seed=12, max_tokens=15, ignore_eos=True))
    assert other.outputs[0].token_ids != alone.outputs[0].token_ids


async def test_logprobs_n_returns_the_top_tokens_with_ranks(engine, tok):
    out = await engine.generate(prompts(tok, 1)[0], sp(logprobs=3, max_tokens=4, ignore_eos=True))
    for tok_id, step in zip(out.outputs[0].token_ids, out.outputs[0].logprobs):
        assert tok_id in step and 3 <= len(step) <= 4
        ranked = sorted((lp.rank, lp.logprob) for t, lp in step.items() if t != tok_id or lp.rank <= 3)
        assert [r for r, _ in ranked][:3] == [1, 2, 3]
        assert all(a[1] >= b[1] for a, b in zip(ranked, ranked[1:]))
    assert out.outputs[0].cumulative_logprob == pytest.approx(
        sum(s[t].logprob for t, s in zip(out.outputs[0].token_ids, out.outputs[0].logprobs))
    )


class _ForcedEOS(torch.nn.Module):
    """Wraps a model so that the logits force chosen tokens at chosen generation steps (EOS, stop ids)."""

    def __init__(self, inner, plan: dict[int, int]) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.generation_config = inner.generation_config
        self.plan = plan  # number of tokens already generated -> token to force
        self.calls = 0

    def forward(self, input_ids=None, cache=None, past_key_values=None, **kw):
        kw["cache" if cache is not None else "past_key_values"] = (
            cache if cache is not None else past_key_values
        )
        out = self.inner(input_ids=input_ids, **kw)
        step, self.calls = self.calls, self.calls + 1
        if step in self.plan:
            out.logits[:, -1, :] = -1e4
            out.logits[:, -1, self.plan[step]] = 1e4
        return out


async def test_eos_ends_the_request_kept_in_ids_not_text_and_ignore_eos_and_min_tokens(model, tok):
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    p = prompts(tok, 1)[0]
    eng = HFEngine(_ForcedEOS(model, {3: eos}), tok)
    try:
        out = (await eng.generate(p, sp(max_tokens=10))).outputs[0]
        assert out.finish_reason == "stop" and out.stop_reason is None
        assert len(out.token_ids) == 4 and out.token_ids[-1] == eos
        assert "<|im_end|>" not in out.text
    finally:
        eng.close()
    eng = HFEngine(_ForcedEOS(model, {3: eos}), tok)
    try:
        out = (await eng.generate(p, sp(max_tokens=10, ignore_eos=True))).outputs[0]
        assert out.finish_reason == "length" and len(out.token_ids) == 10
    finally:
        eng.close()
    eng = HFEngine(_ForcedEOS(model, {0: 5}), tok)
    try:  # a stop token id: kept in the ids, named as the stop reason
        out = (await eng.generate(p, sp(max_tokens=10, stop_token_ids=[5]))).outputs[0]
        assert out.token_ids == [5] and out.finish_reason == "stop" and out.stop_reason == 5
    finally:
        eng.close()
    eng = HFEngine(_ForcedEOS(model, {1: eos, 2: eos, 3: eos, 4: eos}), tok)
    try:  # min_tokens keeps EOS from being sampled before the minimum
        out = (await eng.generate(p, sp(max_tokens=10, min_tokens=3))).outputs[0]
        assert len(out.token_ids) >= 3 and eos not in out.token_ids[:3]
    finally:
        eng.close()


async def test_a_stop_string_cuts_the_text_and_keeps_the_token_that_completed_it(engine, tok):
    p = prompts(tok, 1)[0]
    free = (await engine.generate(p, sp(seed=5, max_tokens=12, ignore_eos=True))).outputs[0]
    text = tok.decode(free.token_ids)
    stop = text[4:7]
    assert stop.strip(), "need a non-blank stop string"
    cut = (await engine.generate(p, sp(seed=5, max_tokens=12, ignore_eos=True, stop=[stop]))).outputs[0]
    assert cut.finish_reason == "stop" and cut.stop_reason == stop
    assert cut.text == text[: text.find(stop)]
    assert free.token_ids[: len(cut.token_ids)] == cut.token_ids
    assert stop in tok.decode(cut.token_ids) and stop not in tok.decode(cut.token_ids[:-1])
    kept = (
        await engine.generate(
            p, sp(seed=5, max_tokens=12, ignore_eos=True, stop=[stop], include_stop_str_in_output=True)
        )
    ).outputs[0]
    assert kept.text == text[: text.find(stop) + len(stop)]


async def test_top_p_keeps_the_smallest_set_reaching_p(engine):
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    from training.hf_engine import _Params

    out = engine._top_k_top_p(logits.clone(), [_Params(top_p=0.8)])
    probs = torch.softmax(logits, -1)[0]
    kept = torch.isfinite(out[0]).tolist()
    # the most likely tokens until their mass reaches 0.8: 0.64 + 0.24 >= 0.8 -> two tokens
    assert probs[0] < 0.8 <= probs[0] + probs[1]
    assert kept == [True, True, False, False, False]
    assert torch.isfinite(engine._top_k_top_p(logits.clone(), [_Params(top_k=3)])[0]).tolist() == [
        True,
        True,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    "prompt, params, match",
    [
        ([], {}, "prompt is empty"),
        ([1, 2, 10**7], {}, "outside the vocabulary"),
        ([1] * 250, {"max_tokens": 10}, "exceeds the engine's context"),
        ([1] * 256, {"max_tokens": None}, "leaves no room"),
        ([1, 2], {"n": 2}, "n=1"),
        ([1, 2], {"temperature": -1.0}, "temperature"),
    ],
)
async def test_bad_requests_fail_alone_with_a_clear_error(engine, tok, prompt, params, match):
    good = asyncio.ensure_future(engine.generate(prompts(tok, 1)[0], sp(max_tokens=6, ignore_eos=True)))
    kw = {"max_tokens": 4, **params}
    n = kw.pop("n", 1)
    temperature = kw.pop("temperature", 1.0)
    with pytest.raises(RequestError, match=match):
        bad = sp(**kw)
        bad.n, bad.temperature = n, temperature
        await engine.generate(prompt, bad)
    assert len((await good).outputs[0].token_ids) == 6


class _PoisonedRow(torch.nn.Module):
    """NaN logits at prefill for every row whose prompt holds the poison token (decode steps are left alone,
    so a clean row that happens to sample that token is not poisoned)."""

    def __init__(self, inner, poison: int) -> None:
        super().__init__()
        self.inner, self.config, self.generation_config, self.poison = (
            inner,
            inner.config,
            inner.generation_config,
            poison,
        )

    def forward(self, input_ids=None, cache=None, past_key_values=None, **kw):
        kw["cache" if cache is not None else "past_key_values"] = (
            cache if cache is not None else past_key_values
        )
        out = self.inner(input_ids=input_ids, **kw)
        if input_ids.shape[1] > 1:
            out.logits[(input_ids == self.poison).any(-1)] = math.nan
        return out


async def test_nan_logits_fail_that_request_and_the_others_finish(model, tok):
    poison = 7
    eng = HFEngine(_PoisonedRow(model, poison), tok)
    try:
        clean = [p for p in prompts(tok, 4) if poison not in p]
        results = await asyncio.gather(
            eng.generate([3, poison, 4], sp(max_tokens=5)),
            *[eng.generate(p, sp(max_tokens=5, ignore_eos=True)) for p in clean],
            return_exceptions=True,
        )
        assert isinstance(results[0], RuntimeError) and "non-finite logits" in str(results[0])
        assert all(len(r.outputs[0].token_ids) == 5 for r in results[1:])
        assert eng.stats.failed == 1
    finally:
        eng.close()


async def test_load_weights_in_place_changes_the_output_and_checks_names_and_shapes(tok):
    model = build_model(len(tok), preset="test", max_position_embeddings=256, seed=0).float().eval()
    other = build_model(len(tok), preset="test", max_position_embeddings=256, seed=1).float().eval()
    eng = HFEngine(model, tok)
    try:
        p = prompts(tok, 1)[0]
        before = (
            (await eng.generate(p, sp(temperature=0.0, max_tokens=8, ignore_eos=True))).outputs[0].token_ids
        )
        with pytest.raises(ValueError, match="unknown parameter"):
            eng.load_weights([("model.nope.weight", torch.zeros(1))])
        with pytest.raises(ValueError, match="shape"):
            eng.load_weights([("lm_head.weight", torch.zeros(3, 3))])
        n = eng.load_weights(other.named_parameters())
        assert n == len(list(other.parameters())) and eng.stats.weight_loads == 1
        after = (
            (await eng.generate(p, sp(temperature=0.0, max_tokens=8, ignore_eos=True))).outputs[0].token_ids
        )
        with torch.no_grad():
            ref = other.generate(
                torch.tensor([p]),
                do_sample=False,
                max_new_tokens=8,
                min_new_tokens=8,
                pad_token_id=0,
                eos_token_id=None,
            )[0, len(p) :].tolist()
        assert after == ref and after != before
    finally:
        eng.close()


async def test_load_weights_waits_for_running_requests_which_finish_on_the_old_weights(tok):
    model = build_model(len(tok), preset="test", max_position_embeddings=256, seed=0).float().eval()
    other = build_model(len(tok), preset="test", max_position_embeddings=256, seed=1).float().eval()
    eng = HFEngine(model, tok)
    try:
        p = prompts(tok, 1)[0]
        old = (
            (await eng.generate(p, sp(temperature=0.0, max_tokens=30, ignore_eos=True))).outputs[0].token_ids
        )
        running = asyncio.ensure_future(eng.generate(p, sp(temperature=0.0, max_tokens=30, ignore_eos=True)))
        while eng.stats.generated_tokens < len(old) + 2:  # the second request is running
            await asyncio.sleep(0.001)
        await asyncio.to_thread(eng.load_weights, other.named_parameters())
        assert (await running).outputs[0].token_ids == old
    finally:
        eng.close()


async def test_a_cancelled_request_leaves_the_batch(engine, tok):
    p = prompts(tok, 1)[0]
    task = asyncio.ensure_future(engine.generate(p, sp(max_tokens=200, ignore_eos=True)))
    while engine.stats.decode_steps < 2:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    done = await engine.generate(p, sp(max_tokens=3, ignore_eos=True))
    assert len(done.outputs[0].token_ids) == 3
    assert engine.stats.aborted == 1 and engine.stats.generated_tokens < 200


def test_the_engine_serves_successive_event_loops(engine, tok):
    p = prompts(tok, 1)[0]
    for _ in range(2):
        out = asyncio.run(engine.generate(p, sp(max_tokens=3, ignore_eos=True)))
        assert len(out.outputs[0].token_ids) == 3


async def test_the_executor_runs_on_the_engine_and_rows_carry_its_exact_ids_and_logprobs(tok, tmp_path):
    """OpenRLHF's path on a CPU: AgentExecutor.execute -> in-actor endpoint -> WideSeek graph -> HFEngine."""
    from langgraph_wideseek.testing import World
    from training.agent_executor import AgentExecutor
    from training.data import convert_widesearch_task
    from training.rollout import ExecutorSettings

    world = World.generate(seed=3, n_categories=1, entities_per_category=2)
    corpus = world.write_corpus(tmp_path / "corpus.jsonl")
    task = world.named_task(0, 2)
    row = convert_widesearch_task(task.record(), task.gold_csv(), source="synthetic")
    model = build_model(len(tok), preset="test", max_position_embeddings=4096, seed=0).float().eval()
    engine = HFEngine(model, tok, seed=0)
    seen: list = []
    generate = engine.generate

    async def recording(prompt_token_ids, sampling_params, multi_modal_data=None):
        out = await generate(prompt_token_ids, sampling_params, multi_modal_data)
        seen.append(out)
        return out

    engine.generate = recording  # type: ignore[method-assign]
    settings = ExecutorSettings(
        graph={
            "search": "local",
            "corpus": str(corpus),
            "index_dir": str(tmp_path / "ix"),
            "summarize_pages": False,
            "max_retries": 0,
        },
        reward={"mode": "benchmark", "judge": "exact"},
    )
    ex = AgentExecutor(settings)
    params = SamplingParamsLite(
        temperature=1.0, top_p=1.0, top_k=-1, max_tokens=24, min_tokens=1, skip_special_tokens=False
    )
    try:
        groups = await asyncio.gather(
            *[ex.execute(row["prompt"], row["label"], params, 4096, tok, engine) for _ in range(4)]
        )
    finally:
        await ex.aclose()
        engine.close()
    rows = [r for g in groups for r in g]
    assert rows and len(rows) == len(seen)
    assert engine.stats.max_batch >= 2  # the four rollouts' lead calls shared forwards
    calls = sorted((o.prompt_token_ids, o.outputs[0].token_ids) for o in seen)
    made = sorted(
        (
            r["observation_tokens"][: r["action_ranges"][0][0]],
            r["observation_tokens"][r["action_ranges"][0][0] :],
        )
        for r in rows
    )
    assert made == calls  # every row is exactly one engine call: its prompt ids and its generated ids
    for r in rows:
        ((start, end),) = r["action_ranges"]
        assert end == len(r["observation_tokens"])
        ref = teacher_forced(model, r["observation_tokens"][:start], r["observation_tokens"][start:end])
        got = torch.tensor(r["rollout_log_probs"][start:end])
        assert torch.allclose(got, ref, atol=1e-4)
        assert r["rollout_log_probs"][:start] == [0.0] * start
