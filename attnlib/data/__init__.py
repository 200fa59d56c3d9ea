"""Data: the synthetic topic-word generator, the SST and TREC loaders, and the corpus type the engine trains on."""

from attnlib.data.corpus import Corpus, Dataset
from attnlib.data.download import DataError
from attnlib.data.sst import SSTDataError, load_sst, verify_data
from attnlib.data.synthetic import generate_synthetic
from attnlib.data.trec import TRECDataError, load_trec

__all__ = ["Corpus", "DataError", "Dataset", "SSTDataError", "TRECDataError", "generate_synthetic", "load_sst",
           "load_trec", "verify_data"]
