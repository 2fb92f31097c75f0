"""hf-s1: s1 test-time scaling (budget forcing) for the Hugging Face stack."""

from .budget import BudgetStats, BudgetTracker, ThinkingBudget, TokenKind
from .errors import BudgetError, DataError, EvalError, HfS1Error
from .formats import R1_FORMAT, S1_FORMAT, ThinkFormat, detect_format, get_format, resolve_format
from .models import default_model_path, load_default_model, load_model
from .results import BudgetedGeneration

__version__ = "0.1.0"

__all__ = [
    "HfS1Error",
    "BudgetError",
    "DataError",
    "EvalError",
    "BudgetStats",
    "BudgetTracker",
    "ThinkingBudget",
    "TokenKind",
    "ThinkFormat",
    "S1_FORMAT",
    "R1_FORMAT",
    "detect_format",
    "get_format",
    "resolve_format",
    "BudgetedGeneration",
    "default_model_path",
    "load_default_model",
    "load_model",
    "BudgetForcingLogitsProcessor",
    "generate_with_budget",
    "stream_with_budget",
    "BudgetStreamer",
    "ThoughtChunk",
]

_TRANSFORMERS_NAMES = {"BudgetForcingLogitsProcessor", "generate_with_budget", "stream_with_budget", "BudgetStreamer", "ThoughtChunk"}


def __getattr__(name: str):
    # The transformers engine imports torch; load it only when asked for, so `hf_s1.budget` stays light.
    if name in _TRANSFORMERS_NAMES:
        from .engines import transformers as engine

        return getattr(engine, name)
    raise AttributeError(f"module 'hf_s1' has no attribute {name!r}")
