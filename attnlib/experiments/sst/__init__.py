"""T1, F5, F6, F7 on the Stanford Sentiment Treebank, in layers (each imports only the ones above it):

1. :mod:`~attnlib.experiments.sst.settings`: the settings (kind, head, variant), the seeds and the criteria;
2. :mod:`~attnlib.experiments.sst.runs`: a setting's run reduced to what the tables and figures need
   (:class:`SSTRun`), and the reductions;
3. :mod:`~attnlib.experiments.sst.training`: training a setting (all seeds batched) and reducing it;
4. :mod:`~attnlib.experiments.sst.storage`: stored runs written and read, with the checks every load makes
   (persistence only);
5. :mod:`~attnlib.experiments.sst.verification`: the content checks of a stored run, and a retrained store
   compared with it;
6. :mod:`~attnlib.experiments.sst.analysis`: T1 and F6 over settings (:class:`SSTResult`) and the chapter's
   analyses;
7. :mod:`~attnlib.experiments.sst.serving`: the one serve-or-retrain policy (the book, ``attnlib run sst`` and
   the TREC experiment use it);
8. :mod:`~attnlib.experiments.sst.experiment`: the registry entry (``attnlib run sst``, the scorecard's rows).

The names most callers need are importable from this package too.
"""

from attnlib.experiments.sst.analysis import SSTResult
from attnlib.experiments.sst.runs import (
    SSTRun,
    attention_shift,
    crossing_epochs,
    crossings_summary,
    padding_attention,
    score_turns,
    sentence_weights,
    top_tokens,
)
from attnlib.experiments.sst.serving import available_settings, load_or_train, missing_seeds, run_sst, serve_checked
from attnlib.experiments.sst.settings import (
    EVERY_SENTENCE,
    F6_RISE,
    F6_WORDS,
    F7_SENTENCE,
    F7_WORDS,
    N_TOP,
    SETTINGS,
    SLOW_SETTINGS,
    SST_SEEDS,
    T1_TOLERANCE,
    TURN_DROP,
)
from attnlib.experiments.sst.storage import (
    StoredRunError,
    checkout_store_dir,
    load_run,
    save_run,
    select_seeds,
    store_dir,
    stored_hash,
    stored_seeds,
)
from attnlib.experiments.sst.training import reduce_run, sst_dataset, train_setting
from attnlib.experiments.sst.verification import VERIFY_EPOCHS, VerificationError, require_verified, verify_stored


def __getattr__(name: str):
    """``STORE_DIR``: the folder stored runs are read from, resolved when asked for (see
    :func:`~attnlib.experiments.sst.storage.store_dir`; the checkout's ``results/sst`` if nothing is set)."""
    if name == "STORE_DIR":
        return store_dir()[0] or checkout_store_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EVERY_SENTENCE", "F6_RISE", "F6_WORDS", "F7_SENTENCE", "F7_WORDS", "N_TOP", "SETTINGS", "SLOW_SETTINGS",
           "SST_SEEDS", "T1_TOLERANCE", "TURN_DROP",
           "SSTRun", "attention_shift", "crossing_epochs", "crossings_summary", "padding_attention", "score_turns",
           "sentence_weights", "top_tokens",
           "reduce_run", "sst_dataset", "train_setting",
           "StoredRunError", "checkout_store_dir", "load_run", "save_run", "select_seeds", "store_dir", "stored_hash",
           "stored_seeds",
           "VERIFY_EPOCHS", "VerificationError", "require_verified", "verify_stored",
           "SSTResult",
           "available_settings", "load_or_train", "missing_seeds", "run_sst", "serve_checked"]
