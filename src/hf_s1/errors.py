"""The errors hf-s1 raises for input it cannot use: one root, one subclass per capability.

```
HfS1Error (ValueError)        anything hf-s1 refuses; the message names the fix (the `hf-s1` command catches it)
├── BudgetError               a thinking budget, think format or generation request that cannot be honoured
├── DataError                 a data set, column or curation setting (hf_s1.data)
├── EvalError                 a benchmark, data file, sweep setting or run folder (hf_s1.eval)
└── HubInputError             a folder, policy or evaluation result given to hf_s1.hub (also a hf_s1.hub.HubError)
```

The Hub's own failures (no token, no network, a missing repository) are `hf_s1.hub.HubError`s, not input errors.
"""

from __future__ import annotations

__all__ = ["HfS1Error", "BudgetError", "DataError", "EvalError"]


class HfS1Error(ValueError):
    """Input hf-s1 cannot use. The message names the fix. Every input error of the package derives from it."""


class BudgetError(HfS1Error):
    """A thinking budget, a think format or a request that cannot be honoured. The message names the fix."""


class DataError(HfS1Error):
    """A data set, column or curation setting that cannot be used as given. The message names the fix."""


class EvalError(HfS1Error):
    """Bad evaluation input (benchmark, data file, sweep settings, run folder). The message names the fix."""
