"""The paper's experiments, one module per chapter (and the engine's speed): configuration in, tidy pandas results out.

:data:`EXPERIMENTS` maps each name to its module; every module has ``NAME``, ``SUMMARY`` and
``run(config=None, seeds=None, **options)`` returning an :class:`~attnlib.experiments.base.ExperimentResult`
(tables, figures, checks, metrics, provenance). The command line (``attnlib list``, ``attnlib run NAME``,
``attnlib run all``) and the scorecard loop over it: adding an experiment is one module and one line here.
"""

from types import ModuleType

from attnlib.experiments import ablation, beyond, performance, sst_experiment, synthetic, trec
from attnlib.experiments.ablation import AblationResult, ablation_checks, published_comparison, run_ablation
from attnlib.experiments.base import Check, ExperimentResult, long_table, train_grid
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
                                       run_beyond,
                                       suppression_study,
)
from attnlib.experiments.numerical import (
                                       GradientFlowGap,
                                       gradient_flow_gap,
                                       keys_parallel_deviation,
                                       observed_order,
                                       richardson_limit,
                                       step_size_study,
)
from attnlib.experiments.sst import SSTResult, SSTRun, load_or_train, run_sst, train_setting
from attnlib.experiments.synthetic import DEFAULT_SEEDS, SyntheticResult, run_synthetic, synthetic_checks

EXPERIMENTS: dict[str, ModuleType] = {module.NAME: module for module in (synthetic, ablation, beyond, sst_experiment,
                                                                           performance, trec)}
"""Name -> experiment module, in the order ``attnlib run all`` runs them."""

__all__ = ["EXPERIMENTS", "Check", "ExperimentResult", "long_table", "train_grid",
           "DEFAULT_SEEDS", "GradientFlowGap", "SyntheticResult", "gradient_flow_gap", "keys_parallel_deviation",
           "observed_order", "richardson_limit", "run_synthetic", "step_size_study", "synthetic_checks",
           "AblationResult", "ablation_checks", "published_comparison", "run_ablation",
           "BeyondResult", "BreakingResult", "CapacityResult", "GrowthResult", "SuppressionResult", "SweepResult",
           "breaking_cases", "capacity_study", "growth_study", "identity_sweeps", "run_beyond", "suppression_study",
           "SSTResult", "SSTRun", "load_or_train", "run_sst", "train_setting"]
