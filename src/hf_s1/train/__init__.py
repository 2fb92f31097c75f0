"""SFT helpers for the s1 recipes: training chat templates with generation markers and the recipe's building blocks."""

from .chat_template import chat_template_default_system, chatml_training_template, has_generation_markers, training_chat_template

__all__ = ["chatml_training_template", "training_chat_template", "chat_template_default_system", "has_generation_markers"]
