"""The engine interface: sampling params built without (or with) vLLM, and vLLM-shaped outputs read back."""

from __future__ import annotations

import pytest

from training.engine import (
    CompletionOutput,
    Logprob,
    RequestOutput,
    SamplingParamsLite,
    make_sampling_params,
    read_generation,
)


def test_lite_params_take_overrides_and_keep_the_rest():
    base = SamplingParamsLite(temperature=1.0, top_k=-1, max_tokens=None, min_tokens=1, skip_special_tokens=False)
    new = make_sampling_params(base, max_tokens=64, temperature=0.7, seed=None)
    assert isinstance(new, SamplingParamsLite) and new is not base
    assert (new.max_tokens, new.temperature, new.top_k, new.min_tokens, new.skip_special_tokens, new.seed) == (
        64, 0.7, -1, 1, False, None)
    assert base.max_tokens is None  # the caller's object is never mutated


def test_dict_base_and_validation():
    new = make_sampling_params({"temperature": 0.5, "not_a_field": 1}, factory=SamplingParamsLite, max_tokens=3)
    assert isinstance(new, SamplingParamsLite) and new.temperature == 0.5 and new.max_tokens == 3
    with pytest.raises(TypeError, match="unknown sampling fields"):
        make_sampling_params(SamplingParamsLite(), best_of=2)
    with pytest.raises(ValueError, match="temperature"):
        make_sampling_params(SamplingParamsLite(), temperature=-1.0)
    with pytest.raises(ValueError, match="max_tokens"):
        make_sampling_params(SamplingParamsLite(), max_tokens=0)


def test_read_generation_takes_each_sampled_tokens_logprob():
    out = RequestOutput("r", None, [1, 2], [CompletionOutput(
        0, "ab", [5, 6, 7], -0.6,
        [{5: Logprob(-0.1), 9: Logprob(-2.0)}, {6: Logprob(-0.2)}, {7: Logprob(-0.3), 1: Logprob(-0.01)}],
        finish_reason="length")])
    g = read_generation(out)
    assert g.token_ids == [5, 6, 7] and g.logprobs == [-0.1, -0.2, -0.3] and g.finish_reason == "length"


def test_read_generation_never_invents_a_missing_logprob():
    out = RequestOutput("r", None, [1], [CompletionOutput(0, "a", [5, 6], None, [{5: Logprob(-0.1)}, {8: Logprob(-1)}],
                                                          finish_reason="stop")])
    assert read_generation(out).logprobs is None
    out.outputs[0].logprobs = None
    assert read_generation(out).logprobs is None
    with pytest.raises(ValueError, match="no completion outputs"):
        read_generation(RequestOutput("r", None, [1], []))


@pytest.mark.slow
def test_with_real_vllm_classes():
    """The exact objects OpenRLHF 0.11.2 hands over and vLLM 0.29 returns (vLLM imports on CPU here)."""
    vllm = pytest.importorskip("vllm")
    from vllm.logprobs import FlatLogprobs
    from vllm.logprobs import Logprob as VLogprob
    from vllm.outputs import CompletionOutput as VCompletion
    from vllm.outputs import RequestOutput as VRequest

    # what SamplesGenerator._dispatch_prompts_to_vllm builds
    base = vllm.SamplingParams(temperature=1.0, top_p=1.0, top_k=-1, max_tokens=None, min_tokens=1,
                               skip_special_tokens=False, logprobs=None, stop_token_ids=[42])
    new = make_sampling_params(base, max_tokens=100, temperature=0.6, top_k=20, seed=5, logprobs=1,
                               stop=["</answer>"])
    assert type(new) is vllm.SamplingParams
    assert (new.max_tokens, new.temperature, new.top_k, new.seed, new.logprobs) == (100, 0.6, 20, 5, 1)
    assert new.min_tokens == 1 and new.skip_special_tokens is False and new.stop_token_ids == [42]
    assert new.output_text_buffer_length == len("</answer>") - 1  # derived again by vLLM, not copied
    with pytest.raises(Exception, match="temperature"):
        make_sampling_params(base, temperature=-1.0)

    for steps in ([{11: VLogprob(-0.5, 1)}, {12: VLogprob(-0.25, 1)}], None):
        comp = VCompletion(index=0, text="xy", token_ids=[11, 12], cumulative_logprob=-0.75, logprobs=steps,
                           finish_reason="stop")
        req = VRequest(request_id="r", prompt=None, prompt_token_ids=[1, 2, 3], prompt_logprobs=None,
                       outputs=[comp], finished=True)
        g = read_generation(req)
        assert g.token_ids == [11, 12] and g.finish_reason == "stop"
        assert g.logprobs == ([-0.5, -0.25] if steps else None)
    flat = FlatLogprobs()
    flat.append({11: VLogprob(-0.5, 1)})
    flat.append({12: VLogprob(-0.25, 1)})
    comp = VCompletion(index=0, text="xy", token_ids=[11, 12], cumulative_logprob=None, logprobs=flat,
                       finish_reason="length")
    assert read_generation(VRequest("r", None, [1], None, [comp], True)).logprobs == [-0.5, -0.25]


def test_read_generation_keeps_the_stop_reason():
    out = RequestOutput("r", None, [1], [CompletionOutput(0, "a", [5], None, None, finish_reason="stop",
                                                          stop_reason="</answer>")])
    assert read_generation(out).stop_reason == "</answer>"
    out.outputs[0].stop_reason = None
    assert read_generation(out).stop_reason is None
