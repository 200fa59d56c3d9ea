"""The paper's experiments, one module per chapter (and the engine's speed): configuration in, tidy pandas results out.

:data:`EXPERIMENTS` maps each name to its registry entry (:class:`~attnlib.experiments.base.Experiment`),
read from the module's declarations; ``EXPERIMENTS[name].run(config=None, seeds=None, quiet=True, **options)``
is the one way to call an experiment. The command line (``attnlib list``, ``attnlib run NAME``,
``attnlib run all``), the scorecard, the tests and the book loop over it: adding an experiment is one
module and its name in :data:`MODULES`.
"""

from importlib import import_module
from types import ModuleType

from attnlib.experiments.ablation import AblationResult, ablation_checks, published_comparison
from attnlib.experiments.base import Check, Experiment, ExperimentResult, Option, long_table, train_grid
from attnlib.experiments.beyond import (
                                       BeyondResult,
                                       BreakingResult,
                                       CapacityResult,
                                       GrowthResult,
                                       SuppressionResult,
                                       SweepResult,
                                       breaking_cases,
                                       capacity_study,
                                       growth_study,
                                       identity_sweeps,
                                       suppression_study,
)
from attnlib.experiments.numerical_checks import (
                                       GradientFlowGap,
                                       gradient_flow_gap,
                                       keys_parallel_deviation,
                                       observed_order,
                                       richardson_limit,
                                       step_size_study,
)
from attnlib.experiments.sst import SSTResult, SSTRun, load_or_train, run_sst, train_setting
from attnlib.experiments.synthetic import DEFAULT_SEEDS, SyntheticResult, synthetic_checks

MODULES = ("synthetic", "ablation", "beyond", "sst.experiment", "performance", "trec")
"""The experiment modules of this package, in the order ``attnlib run all`` runs them."""

EXPERIMENTS: dict[str, Experiment] = {}
"""Name -> registry entry, in the order ``attnlib run all`` runs them."""


def register(module: ModuleType) -> Experiment:
    """Add the experiment a module declares (:meth:`Experiment.from_module`) to :data:`EXPERIMENTS`."""
    entry = Experiment.from_module(module)
    EXPERIMENTS[entry.name] = entry
    return entry


for _name in MODULES:
    register(import_module(f"attnlib.experiments.{_name}"))

__all__ = ["EXPERIMENTS", "MODULES", "Check", "Experiment", "ExperimentResult", "Option", "long_table", "register",
           "train_grid",
           "DEFAULT_SEEDS", "GradientFlowGap", "SyntheticResult", "gradient_flow_gap", "keys_parallel_deviation",
           "observed_order", "richardson_limit", "step_size_study", "synthetic_checks",
           "AblationResult", "ablation_checks", "published_comparison",
           "BeyondResult", "BreakingResult", "CapacityResult", "GrowthResult", "SuppressionResult", "SweepResult",
           "breaking_cases", "capacity_study", "growth_study", "identity_sweeps", "suppression_study",
           "SSTResult", "SSTRun", "load_or_train", "run_sst", "train_setting"]
