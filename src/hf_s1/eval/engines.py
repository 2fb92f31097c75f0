"""The engines a sweep runs on. They are owned by `hf_s1.engines.base` (one engine interface for every caller);
these names stay importable from here."""

from ..engines.base import ENGINES, GenerationEngine, TransformersEngine, VLLMEngine, load_engine

__all__ = ["GenerationEngine", "TransformersEngine", "VLLMEngine", "load_engine", "ENGINES"]
