"""The error type of the evaluation package (defined with the others in `hf_s1.errors`)."""

from ..errors import EvalError

__all__ = ["EvalError"]
