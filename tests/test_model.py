"""The count-matrix engine equals the padded per-token model (values and every gradient)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_dataset

import attnlib.model as model_module
from attnlib.config import ModelConfig
from attnlib.model import (
    Batch,
    backward,
    first_layer,
    forward,
    init_params,
    key_and_query_gradients,
    span_expanded,
    span_reduced,
)
from attnlib.padded_reference import padded_logits, padded_loss

DTYPE = torch.float64
CPU = torch.device("cpu")


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    scale = expected.abs().max().clamp_min(1e-12)
    error = (actual - expected).abs().max() / scale
    assert error < 1e-6, f"{what}: relative error {error:.2e}"


def engine_and_reference(head: str, seed_datasets, model: ModelConfig):
    """Engine gradients for all seeds, and autograd gradients of the padded model per seed."""
    seeds = list(range(len(seed_datasets)))
    batch = Batch.from_corpora([d.train for d in seed_datasets], DTYPE, CPU)
    params = init_params(model, batch.vocab_size, seed_datasets[0].n_classes, seeds, DTYPE, CPU, reduce_keys=False)
    fwd = forward(head, params, batch)
    grads = backward(head, params, batch, fwd)
    d_keys, d_query = key_and_query_gradients(params, grads.scores)
    for k, dataset in enumerate(seed_datasets):
        ids, mask = (torch.from_numpy(a) for a in dataset.train.padded(pad_id=0))
        leaves = {"embeddings": params.embeddings[k].clone().requires_grad_(),
                  "keys": params.keys[k].clone().requires_grad_(),
                  "query": params.query[k].clone().requires_grad_()}
        head_params = {n: t[k].clone().requires_grad_() for n, t in params.head.items()}
        labels = torch.from_numpy(dataset.train.labels)
        loss = padded_loss(ids, mask, labels, leaves["embeddings"], leaves["keys"], leaves["query"], head, head_params)
        loss.backward()
        logits = padded_logits(ids, mask, leaves["embeddings"], leaves["keys"], leaves["query"], head, head_params)
        yield k, {
            "loss": (fwd.loss[k], loss.detach()),
            "logits": (fwd.logits[k], logits.detach()),
            "d_embeddings": (grads.embeddings[k], leaves["embeddings"].grad),
            "d_keys": (d_keys[k], leaves["keys"].grad),
            "d_query": (d_query[k], leaves["query"].grad),
            **{f"d_{n}": (grads.head[n][k], head_params[n].grad) for n in head_params},
        }


@pytest.mark.parametrize("head", ["FC", "TC", "TL"])
def test_engine_matches_padded_reference(head: str) -> None:
    """Logits, loss and all gradients agree to 1e-6 relative, padding masked, two seeds at once."""
    model = ModelConfig(head=head, d_embed=5, d_key=4, embed_init_std=0.7, key_init_std=0.8, query_std=0.9,
                        train_query=True, hidden_units=6)
    datasets = [random_dataset(1), random_dataset(2)]
    checked = 0
    for seed_index, pairs in engine_and_reference(head, datasets, model):
        for name, (ours, theirs) in pairs.items():
            assert_close(ours, theirs, f"{head} seed {seed_index} {name}")
            checked += 1
    n_head_params = 4 if head == "TL" else 1
    assert checked == 2 * (5 + n_head_params)


def test_padding_is_masked() -> None:
    """The padded model's answer does not depend on what sits in the padding positions."""
    dataset = random_dataset(3)
    model = ModelConfig(head="TC", d_embed=4, d_key=3, embed_init_std=0.5, key_init_std=0.5)
    params = init_params(model, 30, 3, [0], DTYPE, CPU, reduce_keys=False)
    ids, mask = (torch.from_numpy(a) for a in dataset.train.padded(pad_id=0))
    other = ids.masked_fill(~mask, 7)
    args = (params.embeddings[0], params.keys[0], params.query[0], "TC", {"U": params.head["U"][0]})
    assert not torch.equal(ids, other)
    torch.testing.assert_close(padded_logits(ids, mask, *args), padded_logits(other, mask, *args))


def test_score_parameterisation_matches_keys() -> None:
    """With zero keys and a fixed query, carrying one score per word gives the same forward pass."""
    model = ModelConfig(head="TC", d_embed=5, d_key=4, embed_init_std=0.3)
    datasets = [random_dataset(5)]
    batch = Batch.from_corpora([d.train for d in datasets], DTYPE, CPU)
    full = init_params(model, 30, 3, [0], DTYPE, CPU, reduce_keys=False)
    reduced = init_params(model, 30, 3, [0], DTYPE, CPU)
    assert reduced.keys is None and full.scores is None
    full.keys += 0.2 * full.query[:, None, :] * torch.arange(30, dtype=DTYPE)[None, :, None]
    reduced.scores = full.word_scores().clone()
    torch.testing.assert_close(forward("TC", full, batch).logits, forward("TC", reduced, batch).logits)
    torch.testing.assert_close(reduced.key_vectors(), full.keys)


def test_seeds_do_not_interact() -> None:
    """A seed trained alone gets the same gradient as inside a batch of seeds."""
    model = ModelConfig(head="TL", d_embed=4, d_key=3, embed_init_std=0.5)
    datasets = [random_dataset(7), random_dataset(8)]
    together = init_params(model, 30, 3, [4, 9], DTYPE, CPU)
    alone = init_params(model, 30, 3, [9], DTYPE, CPU)
    both = backward("TL", together, Batch.from_corpora([d.train for d in datasets], DTYPE, CPU),
                    forward("TL", together, Batch.from_corpora([d.train for d in datasets], DTYPE, CPU)))
    single_batch = Batch.from_corpora([datasets[1].train], DTYPE, CPU)
    one = backward("TL", alone, single_batch, forward("TL", alone, single_batch))
    torch.testing.assert_close(both.embeddings[1], one.embeddings[0])
    torch.testing.assert_close(both.scores[1], one.scores[0])


@pytest.mark.parametrize(("head", "hidden"), [("FC", 3), ("TC", 3), ("TL", 3), ("TL", 6)])
@pytest.mark.parametrize("span", [False, True])
def test_backward_skips_only_the_gradients_nothing_reads(head: str, hidden: int, span: bool) -> None:
    """The scores' gradient is left out when keys and query are frozen, the words' gradient when the
    embeddings are frozen and U1's gradient does not need it; every gradient computed is bit for bit the
    one computed with nothing frozen. ``span``: under the span reduction (a frozen head); Attn-TL with 6
    hidden units pools E itself (not projecting) unless under the span reduction."""
    model = ModelConfig(head=head, d_embed=5, d_key=4, embed_init_std=0.3, hidden_units=hidden)
    datasets = [random_dataset(1), random_dataset(2)]
    batch = Batch.from_corpora([d.train for d in datasets], DTYPE, CPU)
    params = init_params(model, batch.vocab_size, datasets[0].n_classes, [0, 1], DTYPE, CPU)
    if span:
        params = span_reduced(params)
    assert params.projects == (span or head != "TL" or hidden < 5)
    fwd = forward(head, params, batch)
    full = backward(head, params, batch, fwd)
    head_frozen = {"head"} if span else set()
    for frozen in ({"keys", "query"}, {"embeddings"}, {"embeddings", "head"}, {"keys", "query", "embeddings"}):
        part = backward(head, params, batch, fwd, frozen=frozen | head_frozen)
        skips_scores = {"keys", "query"} <= frozen
        skips_words = "embeddings" in frozen and ("head" in frozen | head_frozen or not params.projects)
        assert (part.scores is None) == skips_scores, frozen
        assert (part.word_vectors is None) == skips_words, frozen
        assert skips_scores or torch.equal(part.scores, full.scores)
        assert skips_words or torch.equal(part.word_vectors, full.word_vectors)
        assert part.head.keys() <= full.head.keys()
        assert all(torch.equal(part.head[name], full.head[name]) for name in part.head)


def test_batch_rejects_mismatched_corpora() -> None:
    with pytest.raises(ValueError, match="same size"):
        Batch.from_corpora([random_dataset(1).train, random_dataset(2, n_train=9).train], DTYPE, CPU)


def test_fc_initialisations() -> None:
    """Attn-FC's fixed classifier: unit diagonal by default, orthonormal and one-hot on request."""
    base = dict(head="FC", d_embed=6, d_key=3)
    u = init_params(ModelConfig(**base), 10, 4, [0], DTYPE, CPU).head["U"][0]
    assert torch.all(torch.diagonal(u) == 1.0) and u.shape == (6, 4)
    q = init_params(ModelConfig(**base, fc_init="orthonormal"), 10, 4, [0], DTYPE, CPU).head["U"][0]
    torch.testing.assert_close(q.T @ q, torch.eye(4, dtype=DTYPE))
    o = init_params(ModelConfig(**base, fc_init="onehot"), 10, 4, [0], DTYPE, CPU).head["U"][0]
    assert torch.equal(o, torch.eye(6, 4, dtype=DTYPE))
    with pytest.raises(ValueError, match="d_embed"):
        init_params(ModelConfig(head="FC", d_embed=2, d_key=3, fc_init="onehot"), 10, 4, [0], DTYPE, CPU)


def test_same_seed_same_attention_block_across_heads() -> None:
    """Within a seed, the three heads start from the same query and embeddings, so that what differs
    between their runs comes from the head alone."""
    starts = [init_params(ModelConfig(head=h), 50, 4, [3], DTYPE, CPU) for h in ("FC", "TC", "TL")]
    for other in starts[1:]:
        assert torch.equal(other.query, starts[0].query)
        assert torch.equal(other.embeddings, starts[0].embeddings)
    assert not np.allclose(starts[0].query.numpy(), init_params(ModelConfig(), 50, 4, [4], DTYPE, CPU).query.numpy())


@pytest.mark.parametrize("head,d_embed", [("FC", 2), ("TC", 8), ("TL", 8), ("TL", 3)])
def test_projected_and_direct_pooling_match_padded_reference(head: str, d_embed: int) -> None:
    """The engine pools R = E U1 when U1 is narrower than E and E itself otherwise; both are exact."""
    model = ModelConfig(head=head, d_embed=d_embed, d_key=4, embed_init_std=0.7, key_init_std=0.8, query_std=0.9,
                        train_query=True, hidden_units=6)
    datasets = [random_dataset(4), random_dataset(6)]
    params = init_params(model, 30, 3, [0, 1], DTYPE, CPU)
    assert params.projects == (params.head["U" if head != "TL" else "U1"].shape[2] < d_embed)
    for seed_index, pairs in engine_and_reference(head, datasets, model):
        for name, (ours, theirs) in pairs.items():
            assert_close(ours, theirs, f"{head} d={d_embed} seed {seed_index} {name}")


@pytest.mark.parametrize("head", ["FC", "TC", "TL"])
def test_span_reduced_parameters_give_the_same_model_and_gradients(head: str) -> None:
    """E = E(0) + Z U1^T carried as (E(0), Z, R = E U1) gives the same logits and gradients as E in full."""
    model = ModelConfig(head=head, d_embed=7, d_key=4, embed_init_std=0.5, hidden_units=5)
    batch = Batch.from_corpora([random_dataset(9).train, random_dataset(10).train], DTYPE, CPU)
    reduced = span_reduced(init_params(model, 30, 3, [0, 1], DTYPE, CPU))
    generator = torch.Generator().manual_seed(0)
    reduced.coords.copy_(torch.randn(reduced.coords.shape, generator=generator, dtype=DTYPE))
    reduced.scores.copy_(torch.randn(reduced.scores.shape, generator=generator, dtype=DTYPE))
    full = span_expanded(reduced)
    reduced.projected.copy_(full.embeddings @ first_layer(full.head))
    assert full.coords is None and torch.equal(full.embedding_vectors(), reduced.embedding_vectors())
    fwd_full, fwd_reduced = forward(head, full, batch), forward(head, reduced, batch)
    torch.testing.assert_close(fwd_reduced.logits, fwd_full.logits, rtol=1e-10, atol=1e-12)
    g_full, g_reduced = backward(head, full, batch, fwd_full), backward(head, reduced, batch, fwd_reduced)
    torch.testing.assert_close(g_reduced.embeddings, g_full.embeddings, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(g_reduced.scores, g_full.scores, rtol=1e-10, atol=1e-14)
    for name, grad in g_full.head.items():
        torch.testing.assert_close(g_reduced.head[name], grad, rtol=1e-10, atol=1e-14)
    words = torch.arange(30)
    torch.testing.assert_close(reduced.embedding_norms(words), full.embedding_vectors().norm(dim=2), rtol=1e-10, atol=0)


def test_transposed_product_in_blocks_equals_the_dense_product(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backward product runs block by block over the sentences; the sum is the whole product."""
    monkeypatch.setattr(model_module, "BLOCK_SENTENCES", 5)
    corpora = [random_dataset(21).train, random_dataset(22).train]
    batch = Batch.from_corpora(corpora, DTYPE, CPU)
    assert len(batch.transposed_blocks) == 5  # 24 sentences
    dense = torch.randn(batch.counts.shape[0], 3, dtype=DTYPE)
    expected = batch.counts.to_dense().T @ dense
    torch.testing.assert_close(batch.product(True, dense), expected)
    torch.testing.assert_close(batch.product(False, expected), batch.counts.to_dense() @ expected)


def test_engine_matches_padded_reference_on_real_sst_sentences() -> None:
    """Masked padding on real data: 80 SST2 training sentences of mixed lengths, padded with $PAD$ (id 0)."""
    from attnlib.data import Corpus, Dataset, SSTDataError, load_sst

    try:
        sst2 = load_sst("SST2", download=False)
    except SSTDataError as error:
        pytest.skip(f"SST data not available: {error}")
    train = sst2.train
    subset = Corpus(train.sentences[:80], train.labels[:80], train.vocab_size)
    assert len(set(subset.lengths)) > 10  # many different lengths, so padding really varies
    dataset = Dataset("SST2-subset", sst2.vocab, sst2.n_classes, {"train": subset, "test": subset})
    model = ModelConfig(head="TC", d_embed=8, d_key=4, embed_init_std=0.5, key_init_std=0.5, train_query=True)
    checked = 0
    for _, pairs in engine_and_reference("TC", [dataset], model):
        for name, (ours, theirs) in pairs.items():
            assert_close(ours, theirs, f"SST2 {name}")
            checked += 1
    assert checked == 6


# ----------------------------------------------------------------------------------------------
# Shared corpus: every seed on the same corpus, one product N @ [X_1 | ... | X_S]
# ----------------------------------------------------------------------------------------------


def test_shared_corpus_is_detected_by_identity_or_equal_data() -> None:
    """Same object or an equal copy: shared; another corpus, or ``share=False``: block-diagonal."""
    from attnlib.data import Corpus

    corpus, other = random_dataset(31).train, random_dataset(32).train
    copy = Corpus([s.copy() for s in corpus.sentences], corpus.labels.copy(), corpus.vocab_size)
    relabelled = Corpus(corpus.sentences, np.roll(corpus.labels, 1), corpus.vocab_size)
    assert Batch.from_corpora([corpus] * 3, DTYPE, CPU).shared
    assert Batch.from_corpora([corpus, copy], DTYPE, CPU).shared
    assert not Batch.from_corpora([corpus, other], DTYPE, CPU).shared
    assert not Batch.from_corpora([corpus, relabelled], DTYPE, CPU).shared
    shared, stacked = (Batch.from_corpora([corpus] * 3, DTYPE, CPU, share=share) for share in (True, False))
    assert not stacked.shared
    assert shared.counts.shape == (12, 30) and stacked.counts.shape == (36, 90)
    assert shared.product_size(4) == stacked.product_size(4)


@pytest.mark.parametrize("transposed", [False, True])
def test_seeds_product_is_each_seeds_own_product(transposed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both forms give every seed ``N_k @ X_k`` (transposed in blocks too), whichever way the operand is stored."""
    monkeypatch.setattr(model_module, "BLOCK_SENTENCES", 5)
    corpus = random_dataset(33).train
    dense = torch.tensor(corpus.counts.toarray(), dtype=DTYPE)
    matrix = dense.T if transposed else dense
    for batch in (Batch.from_corpora([corpus] * 3, DTYPE, CPU, share=share) for share in (True, False)):
        for form in (batch, Batch.from_corpora([corpus] * 3, DTYPE, CPU, share=not batch.shared)):
            operand = form.operand(matrix.shape[1], 4, dense)  # stored as `form` reads it
            operand.copy_(torch.randn(operand.shape, dtype=DTYPE))
            expected = torch.stack([matrix @ x for x in operand])
            torch.testing.assert_close(batch.seeds_product(transposed, operand), expected, rtol=1e-12, atol=1e-12)


SHARED_CASES = [("FC", 7, False), ("TC", 7, False), ("TL", 7, False), ("TL", 3, False), ("TC", 7, True)]
"""(head, d_embed, span reduction): projecting and direct pooling, full keys and carried scores."""


@pytest.mark.parametrize("head,d_embed,reduced", SHARED_CASES)
def test_shared_corpus_gives_the_block_diagonal_model_and_gradients(head: str, d_embed: int, reduced: bool) -> None:
    """Three seeds on one corpus: logits, loss and every gradient of the shared form equal the
    block-diagonal form's to rounding (float64, 1e-10)."""
    model = ModelConfig(head=head, d_embed=d_embed, d_key=4, embed_init_std=0.7, key_init_std=0.8, query_std=0.9,
                        train_query=True, hidden_units=5)
    corpus = random_dataset(34, n_train=40).train
    params = init_params(model, 30, 3, [0, 1, 2], DTYPE, CPU, reduce_keys=False)
    if reduced:
        params = span_reduced(params)
        params.coords.copy_(0.3 * torch.randn(params.coords.shape, generator=torch.Generator().manual_seed(1),
                                              dtype=DTYPE))
        params.projected.copy_(span_expanded(params).embeddings @ first_layer(params.head))
    results = []
    for share in (True, False):
        batch = Batch.from_corpora([corpus] * 3, DTYPE, CPU, share=share)
        assert batch.shared == share
        fwd = forward(head, params, batch)
        grads = backward(head, params, batch, fwd)
        d_keys, d_query = key_and_query_gradients(params, grads.scores)
        results.append({"logits": fwd.logits, "loss": fwd.loss, "accuracy": fwd.accuracy,
                        "d_embeddings": grads.embeddings, "d_scores": grads.scores, "d_keys": d_keys,
                        "d_query": d_query, **{f"d_{n}": g for n, g in grads.head.items()}})
    shared, stacked = results
    assert shared.keys() == stacked.keys() and len(shared) == 7 + len(params.head)
    for name, expected in stacked.items():
        torch.testing.assert_close(shared[name], expected, rtol=1e-10, atol=1e-14, msg=lambda m, name=name: f"{name}: {m}")


# ----------------------------------------------------------------------------------------------
# Dense products with embeddings carried in full: seed by seed, in blocks of rows, R kept
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batched", [False, True], ids=["blocks", "batched"])
@pytest.mark.parametrize("head", ["TC", "TL"])
def test_blockwise_update_forms_the_new_projection_and_gradients(head: str, batched: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """In blocks of 7 rows (30 words: a short last block), or batched over the seeds as small embeddings
    are, the gradient of U1 is E^T dL/dR and one step gives E - lr dL/dE, U1 - lr dL/dU1 and a kept R
    equal to (new E)(new U1), to float64 rounding."""
    from attnlib.train import apply_gradients

    monkeypatch.setattr(model_module, "ROW_BLOCK", 7)
    monkeypatch.setattr(model_module, "SMALL_EMBEDDINGS", 1 << 40 if batched else 0)
    model = ModelConfig(head=head, d_embed=8, d_key=4, embed_init_std=0.7, hidden_units=3)
    batch = Batch.from_corpora([random_dataset(41).train, random_dataset(42).train], DTYPE, CPU)
    params = init_params(model, 30, 3, [0, 1], DTYPE, CPU)
    assert params.projects and params.coords is None
    grads = backward(head, params, batch, forward(head, params, batch))
    name = "U" if head == "TC" else "U1"
    d_embeddings = grads.embeddings
    torch.testing.assert_close(grads.head[name], params.embeddings.transpose(1, 2) @ grads.word_vectors,
                               rtol=1e-12, atol=1e-15)
    lr = torch.tensor([0.1, 0.3], dtype=DTYPE)
    expected_e = params.embeddings - lr[:, None, None] * d_embeddings
    expected_u = first_layer(params.head) - lr[:, None, None] * grads.head[name]
    apply_gradients(params, grads, lr, set())
    torch.testing.assert_close(params.embeddings, expected_e, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(first_layer(params.head), expected_u, rtol=1e-12, atol=1e-15)
    assert params.kept_projection is not None
    torch.testing.assert_close(params.word_vectors(), expected_e @ expected_u, rtol=1e-12, atol=1e-15)


def test_kept_projection_is_exact_and_dropped_once_e_or_u1_change() -> None:
    """The R kept by the update equals a recomputed one bit for bit; any in-place change of E or U1,
    or a new tensor in their place, makes word_vectors() recompute it."""
    from attnlib.train import apply_gradients

    model = ModelConfig(head="TC", d_embed=8, d_key=4, embed_init_std=0.7)
    batch = Batch.from_corpora([random_dataset(43).train] * 2, DTYPE, CPU)
    params = init_params(model, 30, 3, [0, 1], DTYPE, CPU)
    apply_gradients(params, backward("TC", params, batch, forward("TC", params, batch)),
                    torch.full((2,), 0.5, dtype=DTYPE), {"query"})
    kept = params.word_vectors()
    assert params.kept_projection is not None and params.word_vectors() is kept
    assert torch.equal(kept, model_module._project(params.embeddings, params.head["U"]))
    params.embeddings[1, 3, 0] += 1.0
    fresh = params.word_vectors()
    assert fresh is not kept and params.kept_projection is None
    torch.testing.assert_close(fresh, params.embeddings @ params.head["U"], rtol=1e-12, atol=1e-15)
    for change in (lambda p: p.head["U"].mul_(2.0), lambda p: p.head.update(U=p.head["U"].clone()),
                   lambda p: setattr(p, "embeddings", p.embeddings.clone())):
        params.keep_projection(kept)
        change(params)
        assert params.word_vectors() is not kept
        torch.testing.assert_close(params.word_vectors(), params.embeddings @ params.head["U"], rtol=1e-12, atol=1e-15)
    assert params.clone().kept_projection is None
