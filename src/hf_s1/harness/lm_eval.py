"""hf-s1 as an lm-evaluation-harness model backend (`--model hf-s1`), on either engine.

lm-eval has no plugin entry point for models, so the model is registered when this module is imported;
`hf-s1-lm-eval` (or `python -m hf_s1.harness.lm_eval`) imports it and runs lm-eval's own command line with
every argument unchanged. s1's command lines run with only the model changed:

```bash
hf-s1-lm-eval --model hf-s1 --model_args pretrained=simplescaling/s1.1-32B,engine=vllm,dtype=bfloat16 \\
    --tasks aime24_nofigures --batch_size auto --apply_chat_template --output_path runs --log_samples \\
    --gen_kwargs "max_gen_toks=32768,max_tokens_thinking=auto,thinking_n_ignore=2,thinking_n_ignore_str=Wait"
```

Requests are grouped by their `gen_kwargs` and each group goes to the engine in one call (one pass per
request; the engine batches). The response is what s1's fork returns: the think-start marker, the thinking,
the cut or end marker and the answer, cut at the task's `until` strings. Each request's telemetry
(`thinking_tokens`, `answer_tokens`, `waits`, `capped`, `finish_reason`) is added to its own `gen_kwargs` under
`"hf_s1"` (a list, one entry per repeat), which lm-eval writes with the sample (`arguments`) under
`--log_samples`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import BudgetError, EvalError
from ..formats import get_format, marker_tokens
from ..prompts import check_template_kwargs
from .gen_kwargs import from_gen_kwargs

try:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as exc:  # the extra is missing: say which one
    raise ImportError(f'hf-s1\'s lm-eval backend needs lm-eval: pip install "hf-s1[lm-eval]" ({exc}).') from exc

__all__ = ["HfS1LM", "TELEMETRY_KEY", "main"]

TELEMETRY_KEY = "hf_s1"
TELEMETRY_FIELDS = ("thinking_tokens", "answer_tokens", "waits", "capped", "finish_reason")


@register_model("hf-s1")
class HfS1LM(LM):
    """Budget forcing behind lm-eval's generation tasks.

    Args:
        pretrained: a Hub id or local folder; by default the embedded SmolLM2-135M-Instruct.
        engine: `"transformers"` or `"vllm"`.
        think_format: a preset name (`hf_s1.formats.PRESETS`) when a request names none (s1's `thinking_start` /
            `thinking_end` pick it otherwise); by default read from the model (`hf_s1.formats.resolve_format`).
        chat_template_kwargs: keywords for the chat template on lm-eval's `--apply_chat_template` path, a mapping
            or its JSON object (`chat_template_kwargs='{"enable_thinking":false}'`).
        batch_size: transformers: prompts per `generate` call (`"auto"`: 8); vLLM schedules its own batches.
        max_model_len, dtype, ...: any other argument goes to `hf_s1.engines.vllm.load_llm` (vLLM only).

    Examples (`--model hf-s1 --model_args engine=vllm,max_model_len=4096`; in Python):

    ```python
    >>> from lm_eval.api.registry import get_model
    >>> get_model("hf-s1") is HfS1LM
    True

    ```
    """

    def __init__(self, pretrained: str | None = None, engine: str = "transformers", think_format: str | None = None,
                 batch_size: int | str | None = None, max_batch_size: Any = None, device: Any = None,
                 chat_template_kwargs: Any = None, **llm_kwargs: Any) -> None:
        super().__init__()
        from ..engines.base import ENGINES, load_engine

        if engine not in ENGINES:
            raise EvalError(f"model_args engine={engine!r}: use one of {', '.join(ENGINES)}.")
        if engine == "transformers" and llm_kwargs:
            raise EvalError(f"model_args {', '.join(sorted(llm_kwargs))}: only engine=vllm takes engine settings.")
        size = _batch_size(batch_size)
        self.engine = load_engine(engine, pretrained, batch_size=size, think_format=think_format, **llm_kwargs)
        self.tokenizer = self.engine.tokenizer
        self._name = str(pretrained or "embedded-smollm2")
        self._format = get_format(think_format, self.tokenizer)
        if isinstance(chat_template_kwargs, str):
            try:
                chat_template_kwargs = json.loads(chat_template_kwargs)
            except ValueError:
                raise EvalError(f"model_args chat_template_kwargs={chat_template_kwargs!r}: give a JSON object, e.g. "
                                '\'{"enable_thinking":false}\'.') from None
        self._template_kwargs = check_template_kwargs(chat_template_kwargs)

    # -- what lm-eval asks of a model ----------------------------------------------------------------------------

    @property
    def tokenizer_name(self) -> str:
        return self._name.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return getattr(self.tokenizer, "chat_template", None)

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt, **self._template_kwargs)

    def loglikelihood(self, requests: Sequence[Any]) -> list[tuple[float, bool]]:
        raise EvalError("hf-s1's lm-eval backend generates (generate_until tasks such as aime24, math500, gpqa "
                        "with generation); run log-likelihood tasks with lm-eval's --model hf or vllm.")

    def loglikelihood_rolling(self, requests: Sequence[Any]) -> list[float]:
        return self.loglikelihood(requests)  # type: ignore[return-value]

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        """One engine call per distinct `gen_kwargs`; responses in request order."""
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(json.dumps(_settings(req.args[1]), sort_keys=True, default=str), []).append(i)
        out: list[str] = [""] * len(requests)
        for rows in groups.values():
            settings = _settings(requests[rows[0]].args[1])
            ask = from_gen_kwargs(settings, default_format=self._format)
            self._check_thinking_stops(ask.thinking_stops)
            contexts = [requests[i].args[0] for i in rows]
            results = self.engine.generate(
                contexts, ask.budget, do_sample=ask.do_sample, temperature=ask.temperature, top_p=ask.top_p,
                seed=ask.seed, max_new_tokens=self._allowance(ask, contexts),
                top_k=ask.top_k, min_p=ask.min_p, think_format=ask.think_format, chat_template=False)
            for i, result in zip(rows, results):
                out[i] = ask.think_format.think_start + _cut(result.text, result.answer, ask.until)
                gen_kwargs = requests[i].args[1]
                gen_kwargs.setdefault(TELEMETRY_KEY, []).append({k: getattr(result, k) for k in TELEMETRY_FIELDS})
        return out

    def _allowance(self, ask: Any, contexts: Sequence[str]) -> int | None:
        """`max_gen_toks`, kept within the context as lm-eval's own models keep it. The s1 profile needs no
        clamp: its allowance is s1's `max_gen_toks`, and a row never runs past the context (s1's `auto` is
        computed from `max_gen_toks` and the longest prompt, as in s1's fork)."""
        context = self.engine.context_length
        if ask.max_gen_toks is None or context is None or ask.budget.profile == "s1":
            return ask.max_gen_toks
        from ..prompts import prepare_requests

        ids = prepare_requests(self.tokenizer, list(contexts), ask.budget, think_format=ask.think_format,
                               chat_template=False).input_ids
        return max(1, min(ask.max_gen_toks, context - max(len(row) for row in ids)))

    def _check_thinking_stops(self, stops: Sequence[str]) -> None:
        markers = marker_tokens(self.tokenizer, self._format)
        allowed = {markers.think_end[0], *markers.stop_ids}
        for text in stops:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if len(ids) != 1 or ids[0] not in allowed:
                raise BudgetError(f"gen_kwargs until_thinking_2={text!r}: thinking stops only at the end marker's "
                                  f"first token and the end-of-turn / end-of-sequence tokens; leave it out or name "
                                  f"one of those.")


def _settings(gen_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request's settings, without the telemetry this backend adds to them."""
    return {k: v for k, v in gen_kwargs.items() if k != TELEMETRY_KEY}


def _batch_size(value: Any) -> int:
    """lm-eval's --batch_size: a positive int, or "auto" / "auto:N", which mean 8 prompts per call."""
    if value in (None, "") or str(value).startswith("auto"):
        return 8
    try:
        if isinstance(value, bool) or float(value) != int(float(value)) or int(float(value)) < 1:
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise EvalError(f"--batch_size {value!r}: give a positive whole number or auto.") from None


def _cut(text: str, answer: str, until: Sequence[str]) -> str:
    r"""`text` with its answer cut at the first of `until` (the thinking is never cut: s1 stops thinking only at
    its markers).

    ```python
    >>> _cut("think<|im_start|>answer\nFinal Answer: 4\nQuestion: next\n", "Final Answer: 4\nQuestion: next", ["Question:"])
    'think<|im_start|>answer\nFinal Answer: 4\n'
    >>> _cut("think<|im_start|>answer\nFinal Answer: 4\n", "Final Answer: 4", [])
    'think<|im_start|>answer\nFinal Answer: 4\n'

    ```
    """
    start = text.rfind(answer) if answer else -1  # `answer` is stripped: find it rather than count from the end
    head, tail = (text[:start], text[start:]) if start >= 0 else (text, "")
    ends = [tail.find(u) for u in until if u and u in tail]
    return head + (tail[: min(ends)] if ends else tail)


def main(argv: Sequence[str] | None = None) -> None:
    """lm-eval's command line, with `--model hf-s1` available; every argument is lm-eval's."""
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
