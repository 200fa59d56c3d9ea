"""The paper's experiments, one module per chapter: configuration in, tidy pandas results out."""

from attnlib.experiments.ablation import AblationResult, ablation_checks, published_comparison, run_ablation
from attnlib.experiments.beyond import (BeyondResult, BreakingResult, CapacityResult, GrowthResult, SuppressionResult,
                                       SweepResult, breaking_cases, capacity_study, growth_study, identity_sweeps,
                                       run_beyond, suppression_study)
from attnlib.experiments.sst import SSTResult, SSTRun, load_or_train, run_sst, train_setting
from attnlib.experiments.synthetic import (DEFAULT_SEEDS, SyntheticResult, run_synthetic, step_size_study,
                                          synthetic_checks)

__all__ = ["DEFAULT_SEEDS", "SyntheticResult", "run_synthetic", "step_size_study", "synthetic_checks",
           "AblationResult", "ablation_checks", "published_comparison", "run_ablation",
           "BeyondResult", "BreakingResult", "CapacityResult", "GrowthResult", "SuppressionResult", "SweepResult",
           "breaking_cases", "capacity_study", "growth_study", "identity_sweeps", "run_beyond", "suppression_study",
           "SSTResult", "SSTRun", "load_or_train", "run_sst", "train_setting"]
