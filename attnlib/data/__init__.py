"""Data: the synthetic topic-word generator, the SST loader, and the corpus type the engine trains on."""

from attnlib.data.corpus import Corpus, Dataset
from attnlib.data.sst import SSTDataError, load_sst, verify_data
from attnlib.data.synthetic import generate_synthetic

__all__ = ["Corpus", "Dataset", "SSTDataError", "generate_synthetic", "load_sst", "verify_data"]
