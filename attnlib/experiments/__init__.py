"""The paper's experiments, one module per chapter: configuration in, tidy pandas results out."""

from attnlib.experiments.synthetic import (DEFAULT_SEEDS, SyntheticResult, run_synthetic, step_size_study,
                                          synthetic_checks)

__all__ = ["DEFAULT_SEEDS", "SyntheticResult", "run_synthetic", "step_size_study", "synthetic_checks"]
