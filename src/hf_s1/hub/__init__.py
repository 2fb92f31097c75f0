"""Hub helpers: publish and fetch models, data sets and evaluation results together with their s1 thinking-budget
policy; model and dataset cards; a `custom_generate` layout for one-line budget forcing in `transformers`."""

from .cards import EvalRecord, load_eval_results, render_dataset_card, render_model_card
from .custom_generate import budget_forcing_generate, custom_generate_files, export_custom_generate
from .errors import (
    HUB_ERRORS,
    HubAuthError,
    HubConflictError,
    HubError,
    HubInputError,
    HubNotFoundError,
    HubOfflineError,
    HubPermissionError,
)
from .policy import BudgetPolicy
from .pull import PulledModel, pull_dataset, pull_model, pull_policy, pull_snapshot
from .push import PlannedFile, PushPlan, push_dataset, push_model

__all__ = [
    "push_model",
    "push_dataset",
    "pull_model",
    "pull_dataset",
    "pull_policy",
    "pull_snapshot",
    "PushPlan",
    "PlannedFile",
    "PulledModel",
    "BudgetPolicy",
    "EvalRecord",
    "load_eval_results",
    "render_model_card",
    "render_dataset_card",
    "budget_forcing_generate",
    "export_custom_generate",
    "custom_generate_files",
    *HUB_ERRORS,
]
