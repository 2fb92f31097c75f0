"""Budget forcing through `transformers`' `custom_generate` mechanism.

`export_custom_generate(folder, policy)` writes `custom_generate/generate.py` (a thin file that calls
`budget_forcing_generate` with the policy baked in) and `custom_generate/requirements.txt`. Once the folder is
on the Hub (or used as a local path), one line applies budget forcing:

    model.generate(**inputs, custom_generate="me/repo", trust_remote_code=True, tokenizer=tokenizer)

and a model loaded with `from_pretrained("me/repo", trust_remote_code=True)` has it as its `generate`.
"""

from __future__ import annotations

import os
import pprint
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Union

from ..budget import BudgetError, ThinkingBudget
from ..formats import ThinkFormat
from .policy import BudgetPolicy, stored_policy

__all__ = ["budget_forcing_generate", "export_custom_generate", "custom_generate_files"]

_POLICY_LINE = "DEFAULT_POLICY = None"


def custom_generate_files(policy: BudgetPolicy | None = None) -> dict[str, bytes]:
    """The `custom_generate/` files (path in repo -> content) with `policy` baked in as the default."""
    from .. import __version__

    template = resources.files(__package__).joinpath("templates").joinpath("custom_generate").joinpath("generate.py").read_text("utf-8")
    if template.count(_POLICY_LINE) != 1:  # the template and this function must agree
        raise RuntimeError("the custom_generate template lost its DEFAULT_POLICY line.")
    literal = "None" if policy is None else pprint.pformat(policy.to_dict(), indent=4, sort_dicts=False)
    code = template.replace(_POLICY_LINE, f"DEFAULT_POLICY = {literal}")
    requirements = f"hf-s1>={__version__}\n"
    return {"custom_generate/generate.py": code.encode(), "custom_generate/requirements.txt": requirements.encode()}


def export_custom_generate(folder: Union[str, os.PathLike], policy: BudgetPolicy | None = None) -> Path:
    """Write the `custom_generate/` layout into `folder` (a model folder or an empty code-only repo folder).

    Args:
        folder: where to write; `folder/custom_generate/` is created.
        policy: the default policy when neither the call nor the model's generation config gives one.

    Returns:
        The path of the written `generate.py`.
    """
    folder = Path(folder)
    for path, content in custom_generate_files(policy).items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return folder / "custom_generate" / "generate.py"


def _resolve_policy(thinking_budget: Any, think_format: Any, model: Any, default_policy: Any) -> BudgetPolicy:
    """The call's budget, else the model's `generation_config.thinking_budget`, else the repo default."""
    stored = stored_policy(model)
    default = None if default_policy is None else BudgetPolicy.from_dict(default_policy)
    for source in (thinking_budget, stored, default):
        if source is None:
            continue
        if not isinstance(source, (ThinkingBudget, BudgetPolicy, Mapping)):
            raise BudgetError(f"thinking_budget must be a ThinkingBudget or a dict of its fields, got {type(source).__name__}.")
        policy = BudgetPolicy.from_dict(source)
        fmt = think_format if think_format is not None else policy.think_format
        # A call-level budget without a format keeps the repo's format.
        if fmt is None and source is thinking_budget:
            fmt = next((other.think_format for other in (stored, default) if other is not None
                        and other.think_format is not None), None)
        return BudgetPolicy(policy.budget, fmt)
    raise BudgetError(
        "no thinking budget: pass thinking_budget=ThinkingBudget(...) (or a dict) to generate, or publish the model "
        "with hf_s1.hub.push_model(..., budget=...)."
    )


def _load_tokenizer(model: Any) -> Any:
    name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    if not name:
        raise BudgetError("budget forcing needs the tokenizer: pass tokenizer=... to generate.")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise BudgetError(f"could not load the tokenizer of {name!r} ({exc}): pass tokenizer=... to generate.") from None


def budget_forcing_generate(
    model: Any,
    inputs: Any = None,
    generation_config: Any = None,
    logits_processor: Any = None,
    *,
    thinking_budget: Union[ThinkingBudget, Mapping[str, Any], None] = None,
    think_format: Union[str, ThinkFormat, None] = None,
    default_policy: Union[Mapping[str, Any], None] = None,
    **kwargs: Any,
) -> Any:
    """`model.generate` with s1 budget forcing; what `custom_generate/generate.py` calls.

    The budget is the call's `thinking_budget`, else the model's `generation_config.thinking_budget` (written
    by `push_model`), else `default_policy` (baked into the exported file). Sampling settings (from the call
    or the generation config) are honoured: an end of thinking is replaced by "Wait" with exactly the
    probability the sampler gives it. Without `max_new_tokens`/`max_length`, the allowance the budget needs is
    used. With `return_dict_in_generate=True` the output also holds `budget_stats` (one `BudgetStats` per row).

    Args:
        model: the model whose `generate` is called (passed by `transformers`).
        inputs, generation_config, logits_processor: as in `generate`; user processors run first.
        thinking_budget: a `ThinkingBudget` or dict for this call.
        think_format: `"s1"`, `"r1"` or a `ThinkFormat` (default: the policy's, else detected).
        default_policy: the repository's policy (`BudgetPolicy.to_dict()`), baked in by `export_custom_generate`.
        kwargs: everything else `generate` takes; `tokenizer=` is needed unless the model's folder has one.

    Examples:

    ```python
    >>> from hf_s1 import load_default_model
    >>> from hf_s1.hub import budget_forcing_generate
    >>> model, tokenizer = load_default_model()
    >>> inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True,
    ...                                        return_tensors="pt", return_dict=True)
    >>> out = budget_forcing_generate(model, **inputs, tokenizer=tokenizer, return_dict_in_generate=True,
    ...                               thinking_budget={"max_thinking_tokens": 6, "max_answer_tokens": 2})
    >>> out.budget_stats[0].thinking_tokens, out.budget_stats[0].capped
    (6, True)

    ```
    """
    from transformers import LogitsProcessorList
    from transformers.generation.utils import GenerationMixin

    from ..engines.transformers import prepare_generate

    kwargs.pop("trust_remote_code", None)
    kwargs.pop("custom_generate", None)
    tokenizer = kwargs.get("tokenizer") or _load_tokenizer(model)
    policy = _resolve_policy(thinking_budget, think_format, model, default_policy)
    input_ids = inputs if inputs is not None else kwargs.get("input_ids")
    processor, kwargs = prepare_generate(model, tokenizer, policy.budget, think_format=policy.think_format,
                                         generation_config=generation_config, prompt_ids=input_ids, **kwargs)
    processors = LogitsProcessorList([*(logits_processor or []), processor])
    # GenerationMixin.generate, not model.generate: from_pretrained(trust_remote_code=True) rebinds the latter
    # to this very function.
    out = GenerationMixin.generate(model, inputs, generation_config=generation_config, logits_processor=processors,
                                   **kwargs)
    if kwargs.get("return_dict_in_generate"):
        prompt_len = 0 if input_ids is None else int(input_ids.shape[-1])
        out["budget_stats"] = processor.stats(out.sequences[:, prompt_len:])
    return out
