"""Test-time scaling methods as evaluation runs: budget forcing and the paper's baselines.

A method expands into `RunSpec`s, one per setting (one point of the scaling curve, or one curve of majority
votes). Every method reaches the model through the same engines and the same `ThinkingBudget`; no budget rule
lives here, only which budget, prompt and sampling each run uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..budget import ThinkingBudget
from .errors import EvalError

__all__ = ["METHODS", "PASS_AT_1_METHODS", "RunSpec", "expand_runs", "pass_at_1_name", "TOKEN_CONDITIONAL_SUFFIX",
           "CLASS_CONDITIONAL_SUFFIXES"]

# Paper §3.2 / Table 3: token-conditional control appends this to the question.
TOKEN_CONDITIONAL_SUFFIX = "\n\nThink for up to {n} tokens."
# Class-conditional control: a generic request for short or long thinking (paper, appendix on baselines).
CLASS_CONDITIONAL_SUFFIXES = {
    "short": "\n\nAnswer after a short amount of thinking. Do not spend excessive time double-checking your work.",
    "long": (
        "\n\nAnswer after a long amount of thinking. If you feel like you are finished early, spend the extra time "
        "trying to double-check your work until you are absolutely sure that you have the correct answer."
    ),
}

METHODS = (
    "budget-forcing",
    "token-conditional",
    "token-conditional+budget-forcing",
    "class-conditional",
    "rejection-sampling",
    "majority-vote",
    "budget-forcing+majority-vote",
)
# The single-sample methods, which `pass_at_1=N` repeats with N sampled generations per question.
PASS_AT_1_METHODS = ("budget-forcing", "token-conditional", "token-conditional+budget-forcing", "class-conditional")
AUTO = "auto"  # a thinking cap the engine resolves per batch (s1: generation allowance minus prompt and margins)
DEFAULT_PROFILE = "hf-s1"


def pass_at_1_name(samples: int) -> str:
    """The metric name of pass@1 estimated from `samples` generations per question, as lighteval writes it.

    Examples:

    ```python
    >>> pass_at_1_name(4)
    'pass@1:4_samples'

    ```
    """
    return f"pass@1:{samples}_samples"


@dataclass(frozen=True)
class RunSpec:
    """One evaluation run: how every question is prompted, budgeted and sampled.

    Args:
        method: one of `METHODS`.
        label: the setting within the method (e.g. `"max=512,waits=1"`); `method/label` is the run's key.
        budget: the thinking budget each generation uses.
        prompt_suffix: appended to each question's prompt (token- and class-conditional control).
        do_sample, temperature, top_p: sampling settings (greedy when `do_sample` is false).
        samples: generations per question (majority voting draws `max(vote_k)`).
        max_tries: rejection sampling: draws per sample until one thinks at most `accept_max` tokens.
        accept_max: rejection sampling's acceptance bound (`None`: every draw is accepted).
        a_min, a_max: the thinking bounds Control checks (`None`: open side; both `None`: no Control).
        vote_k: majority voting: report maj@k for these k.
        max_new_tokens: the generation allowance per row (s1 uses 32768); `None` leaves it to the engine. An
            `"auto"` thinking cap is resolved from it.
    """

    method: str
    label: str
    budget: ThinkingBudget
    prompt_suffix: str = ""
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    samples: int = 1
    max_tries: int = 1
    accept_max: int | None = None
    a_min: int | None = None
    a_max: int | None = None
    vote_k: tuple[int, ...] = field(default=())
    max_new_tokens: int | None = None

    @property
    def key(self) -> str:
        return f"{self.method}/{self.label}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budget"] = self.budget.to_dict()
        d["vote_k"] = list(self.vote_k)
        if d["max_new_tokens"] is None:  # run folders written before the field existed stay comparable
            del d["max_new_tokens"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        data = dict(data)
        data["budget"] = ThinkingBudget.from_dict(data["budget"])
        data["vote_k"] = tuple(data.get("vote_k", ()))
        return cls(**data)


def _ints(name: str, values: Sequence[int | str | None], *, allow_none: bool = False) -> list[Any]:
    out = list(values)
    for v in out:
        if allow_none and (v is None or v == AUTO):
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            extra = " (or none / 'auto')" if allow_none else ""
            raise EvalError(f"{name} must hold non-negative ints{extra}, got {v!r}.")
    if not out:
        raise EvalError(f"{name} is empty: give at least one value.")
    return out


def _cap_text(cap: int | str | None) -> str:
    return "none" if cap is None else str(cap)


def expand_runs(
    methods: Sequence[str],
    *,
    max_thinking: Sequence[int | str | None] = (None,),
    num_waits: Sequence[int] = (0,),
    samples: Sequence[int] = (1, 2, 4, 8),
    max_tries: int = 8,
    temperature: float = 0.0,
    sampling_temperature: float = 1.0,
    top_p: float = 1.0,
    max_answer_tokens: int | None = None,
    thinking_ceiling: int | None = None,
    extrapolation: str | Sequence[str] = "Wait",
    profile: str = DEFAULT_PROFILE,
    max_new_tokens: int | None = None,
    pass_at_1: int | None = None,
    pass_at_1_temperature: float = 0.6,
    pass_at_1_top_p: float = 0.95,
) -> list[RunSpec]:
    """The runs of a sweep: every method crossed with its settings.

    Args:
        methods: names from `METHODS`.
        max_thinking: thinking caps N (budget forcing's cut, the N of "Think for up to N tokens.", rejection
            sampling's bound). `None` in the list means no cap; `"auto"` (budget forcing) lets the engine set
            the cap per batch from the generation allowance (s1's `max_tokens_thinking="auto"`). Methods that
            need a number of tokens (token-conditional, rejection sampling) skip `None` and `"auto"`.
        num_waits: budget forcing's extensions: how many ends of thinking become "Wait".
        samples: majority voting's k values; `max(samples)` generations are drawn per question.
        max_tries: rejection sampling's bound on draws per sample.
        temperature: sampling temperature of the single-sample methods (0 = greedy, s1's setting).
        sampling_temperature: temperature of rejection sampling and majority voting (they need sampling).
        top_p: nucleus sampling for sampled runs.
        max_answer_tokens: cap on the answer after thinking.
        thinking_ceiling: safety cap for methods that do not cap thinking themselves (token- and
            class-conditional, majority voting); it must lie above every N so that it does not decide Control.
        extrapolation: the string(s) budget forcing appends.
        profile: the `ThinkingBudget` profile: `"hf-s1"` (default) or `"s1"` (the reference implementation's
            rules). A run with a non-default profile carries it in its label (`...,profile=s1`).
        max_new_tokens: the generation allowance per row (`None`: the engine's default); s1 uses 32768.
        pass_at_1: also run every single-sample method (`PASS_AT_1_METHODS`) with this many sampled generations
            per question and report pass@1 over them (lighteval's `pass@1:N_samples`, as open-r1 reports it):
            the mean over questions of the share of correct samples. Labels end in `,pass@1:N_samples`.
        pass_at_1_temperature, pass_at_1_top_p: the sampling of those runs (open-r1's 0.6 and 0.95).

    Examples:

    ```python
    >>> runs = expand_runs(["budget-forcing", "token-conditional"], max_thinking=[64, 128], num_waits=[0, 1])
    >>> [r.key for r in runs]
    ['budget-forcing/max=64,waits=0', 'budget-forcing/max=64,waits=1', 'budget-forcing/max=128,waits=0', 'budget-forcing/max=128,waits=1', 'token-conditional/N=64', 'token-conditional/N=128']
    >>> runs[-1].prompt_suffix, runs[-1].a_max
    ('\\n\\nThink for up to 128 tokens.', 128)
    >>> [r.label for r in expand_runs(["budget-forcing"], max_thinking=["auto"], num_waits=[1], pass_at_1=4)]
    ['max=auto,waits=1', 'max=auto,waits=1,pass@1:4_samples']

    ```
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise EvalError(f"unknown method(s) {unknown or methods}: choose from {', '.join(METHODS)}.")
    caps = _ints("max_thinking", max_thinking, allow_none=True)
    waits = _ints("num_waits", num_waits)
    ks = sorted(set(_ints("samples", samples)))
    if ks[0] < 1:
        raise EvalError("samples (majority voting's k) must be >= 1.")
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise EvalError(f"max_tries must be a positive int, got {max_tries!r}.")
    if temperature < 0 or sampling_temperature <= 0:
        raise EvalError("temperature must be >= 0 (0 = greedy) and sampling_temperature > 0.")
    if pass_at_1 is not None and (isinstance(pass_at_1, bool) or not isinstance(pass_at_1, int) or pass_at_1 < 1):
        raise EvalError(f"pass_at_1 must be a positive int (samples per question), got {pass_at_1!r}.")
    if pass_at_1 and not pass_at_1_temperature > 0:
        raise EvalError("pass@1 over samples needs sampling: pass_at_1_temperature must be > 0 (open-r1 uses 0.6).")
    if max_new_tokens is not None and (isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int)
                                       or max_new_tokens < 1):
        raise EvalError(f"max_new_tokens must be a positive int (or None for the engine's default), got {max_new_tokens!r}.")
    numeric = [c for c in caps if isinstance(c, int)]
    if thinking_ceiling is not None and numeric and thinking_ceiling <= max(numeric):
        raise EvalError(
            f"thinking_ceiling ({thinking_ceiling}) must be above every max_thinking ({max(numeric)}): it is a safety "
            f"net for uncapped methods, not a budget."
        )

    def budget(cap: int | str | None, n_waits: int = 0) -> ThinkingBudget:
        kwargs = {} if profile == DEFAULT_PROFILE else {"profile": profile}
        return ThinkingBudget(max_thinking_tokens=cap, num_waits=n_waits, extrapolation=extrapolation,
                              max_answer_tokens=max_answer_tokens, **kwargs)

    def setting(*parts: str) -> str:
        return ",".join(parts + (() if profile == DEFAULT_PROFILE else (f"profile={profile}",)))

    greedy = dict(do_sample=temperature > 0, temperature=temperature if temperature > 0 else 1.0, top_p=top_p,
                  max_new_tokens=max_new_tokens)
    sampled = dict(do_sample=True, temperature=sampling_temperature, top_p=top_p, max_new_tokens=max_new_tokens)

    def need_caps(method: str) -> list[int]:
        if not numeric:
            raise EvalError(f"{method} needs token budgets: pass max_thinking (e.g. --max-thinking 512,1024).")
        return numeric

    runs: list[RunSpec] = []
    for method in dict.fromkeys(methods):
        if method == "budget-forcing":
            for cap in caps:
                for w in waits:
                    runs.append(RunSpec(method, setting(f"max={_cap_text(cap)}", f"waits={w}"), budget(cap, w),
                                        a_max=cap if isinstance(cap, int) else None, **greedy))
        elif method == "token-conditional":
            for n in need_caps(method):
                runs.append(RunSpec(method, setting(f"N={n}"), budget(thinking_ceiling),
                                    TOKEN_CONDITIONAL_SUFFIX.format(n=n), a_max=n, **greedy))
        elif method == "token-conditional+budget-forcing":
            for n in need_caps(method):
                runs.append(RunSpec(method, setting(f"N={n}"), budget(n), TOKEN_CONDITIONAL_SUFFIX.format(n=n),
                                    a_max=n, **greedy))
        elif method == "class-conditional":
            for name, suffix in CLASS_CONDITIONAL_SUFFIXES.items():
                runs.append(RunSpec(method, setting(name), budget(thinking_ceiling), suffix, **greedy))
        elif method == "rejection-sampling":
            for n in need_caps(method):
                # A draw past N is rejected whatever it does next, so it is cut at N + 1 instead of finished.
                runs.append(RunSpec(method, setting(f"N={n}"), budget(n + 1), max_tries=max_tries, accept_max=n,
                                    a_max=n, **sampled))
        elif method == "majority-vote":
            runs.append(RunSpec(method, setting(f"k={ks[-1]}"), budget(thinking_ceiling), samples=ks[-1],
                                vote_k=tuple(ks), **sampled))
        elif method == "budget-forcing+majority-vote":
            for cap in caps:
                for w in waits:
                    runs.append(RunSpec(method, setting(f"max={_cap_text(cap)}", f"waits={w}", f"k={ks[-1]}"),
                                        budget(cap, w), samples=ks[-1], vote_k=tuple(ks),
                                        a_max=cap if isinstance(cap, int) else None, **sampled))
    if pass_at_1:
        # Each greedy single-sample run again, sampled N times per question: pass@1 as open-r1 / lighteval report it.
        runs += [replace(r, label=f"{r.label},{pass_at_1_name(pass_at_1)}", do_sample=True,
                         temperature=pass_at_1_temperature, top_p=pass_at_1_top_p, samples=pass_at_1)
                 for r in list(runs) if r.method in PASS_AT_1_METHODS]
    return runs
