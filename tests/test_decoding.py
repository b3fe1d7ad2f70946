"""Decoding: search against exhaustive enumeration, filters, options, batch invariance, fallback."""

import itertools

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax.decoding import logit_filters, search
from seq2seq_jax.decoding.task import (DecodingOptions, DecodingTask, reorder_rows, score_sequences,
                                      step_function)
from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import build_model, kv_cache

PAD, BOS, EOS = 0, 1, 2


# A toy model: next-token logits depend on (position, previous token) through a fixed table.
def markov_model(vocab=6, max_len=4, seed=0):
  table = jax.random.normal(jax.random.key(seed), (max_len + 1, vocab, vocab)) * 2.0

  def tokens_to_logits(tokens, cache):
    pos = cache["pos"]
    return table[pos, tokens[:, 0]], {"pos": pos + 1}
  return table, tokens_to_logits


def second_order_markov_model(vocab=6, max_len=4, seed=0):
  """Logits of (position, previous token) plus a second table of (position, the token before it),
  which the step function keeps in its cache: a `PerRow` leaf [rows] that beam search must reorder
  with the beams, beside an unmarked [1] leaf of another leading size that it must leave alone."""
  table, _ = markov_model(vocab, max_len, seed)
  second = jax.random.normal(jax.random.key(seed + 100), table.shape) * 2.0

  def tokens_to_logits(tokens, cache):
    pos, before = cache["pos"], cache["before"].value
    logits = table[pos, tokens[:, 0]] + second[pos, before] + cache["unmarked"][0]
    return logits, {"pos": pos + 1, "before": kv_cache.PerRow(tokens[:, 0]), "unmarked": cache["unmarked"]}
  return table, second, tokens_to_logits


def exhaustive_best(table, max_len, length_penalty, suppress=(PAD, BOS), second=None):
  """Best (tokens, score) over every sequence of real tokens followed by EOS within max_len
  (the search allows only EOS at the last position, without renormalising its probability).
  second: the table of `second_order_markov_model`, or None."""
  vocab = table.shape[-1]
  real = [t for t in range(vocab) if t not in suppress and t != EOS]
  penalty = search.length_penalty_fn(length_penalty)
  best = (None, -np.inf)
  for n in range(max_len):
    for seq in itertools.product(real, repeat=n):
      seq = seq + (EOS,)
      prev, total = BOS, 0.0
      for pos, tok in enumerate(seq):
        logits = np.asarray(table[pos, prev]).copy()
        if second is not None:
          logits += np.asarray(second[pos, ((BOS, BOS) + seq)[pos]])
        logits[list(suppress)] = logit_filters.NEG_INF
        total += float(jax.nn.log_softmax(jnp.asarray(logits))[tok])
        prev = tok
      score = total / float(penalty(jnp.asarray(len(seq))))
      if score > best[1]:
        best = (seq, score)
  return best


@pytest.mark.parametrize("length_penalty", [None, 0.0, 0.6, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_equals_exhaustive_search(length_penalty, seed):
  max_len, beam = 4, 27  # 3 real tokens: at most 3**3 alive prefixes
  table, step = markov_model(max_len=max_len, seed=seed)
  expected_tokens, expected_score = exhaustive_best(table, max_len, length_penalty)
  rows = beam
  tokens, scores, _, lengths = jax.jit(lambda: search.beam_search(
      step, {"pos": jnp.zeros((rows,), jnp.int32)}, jnp.full((rows,), BOS), jnp.full((rows,), max_len),
      max_len, EOS, beam_size=beam, length_penalty=length_penalty,
      logit_filter=logit_filters.suppress_tokens([PAD, BOS])))()
  got = tuple(int(t) for t in tokens[0, 0, : int(lengths[0, 0])])
  assert got == expected_tokens
  assert float(scores[0, 0]) == pytest.approx(expected_score, abs=1e-4)
  assert np.all(np.diff(np.asarray(scores[0])) <= 1e-6), "sorted best first"


@pytest.mark.parametrize("length_penalty", [None, 0.6])
def test_wide_beam_reorders_the_per_row_leaves_of_the_cache(length_penalty):
  """A model whose cache holds a `PerRow` token per row: beam search, reordering by the cache
  contract (`reorder_rows`), finds the exhaustive best, so that leaf followed the beams (and the
  unmarked leaf, of another leading size, was left as it is)."""
  max_len, beam = 4, 27
  table, second, step = second_order_markov_model(max_len=max_len, seed=1)
  expected_tokens, expected_score = exhaustive_best(table, max_len, length_penalty, second=second)
  cache = {"pos": jnp.array(0), "before": kv_cache.PerRow(jnp.full((beam,), BOS)), "unmarked": jnp.zeros((1,))}
  tokens, scores, _, lengths = jax.jit(lambda: search.beam_search(
      step, cache, jnp.full((beam,), BOS), jnp.full((beam,), max_len), max_len, EOS, beam_size=beam,
      length_penalty=length_penalty, logit_filter=logit_filters.suppress_tokens([PAD, BOS]),
      reorder_cache=reorder_rows))()
  got = tuple(int(t) for t in tokens[0, 0, : int(lengths[0, 0])])
  assert got == expected_tokens
  assert float(scores[0, 0]) == pytest.approx(expected_score, abs=1e-4)
  assert np.all(np.diff(np.asarray(scores[0])) <= 1e-6), "sorted best first"


# A tiny random Transformer for everything that goes through DecodingTask.
SRC_V, TGT_V = 15, 9


@pytest.fixture(scope="module")
def transformer():
  config, model = build_model("transformer", source_vocab_size=SRC_V, target_vocab_size=TGT_V,
                              d_model=32, num_heads=2, d_ff=64, num_encoder_layers=1,
                              num_decoder_layers=1, dropout=0.0, max_len=32)
  inputs = jnp.ones((2, 5), jnp.int32)
  params = model.init(jax.random.key(3), inputs, inputs)["params"]
  # Sharpen the output so that greedy/beam outputs are neither all-EOS nor all max length.
  params = jax.tree.map(lambda x: x * 1.5, params)
  return model, config, params


def make_task(transformer, **options):
  model, config, params = transformer
  defaults = dict(max_len_a=1.0, max_len_b=4, compression_ratio_threshold=None, logprob_threshold=None)
  defaults.update(options)
  return DecodingTask(model, params, DecodingOptions(**defaults), bos_id=BOS, eos_id=EOS,
                      detokenize=lambda ids: " ".join(map(str, ids)), model_max_length=config.max_len)


def sources(n=6, seed=0, width=7):
  rng = np.random.default_rng(seed)
  out = np.zeros((n, width), np.int32)
  for i in range(n):
    length = 2 + (i * 3) % (width - 1)
    out[i, :length] = rng.integers(3, SRC_V, length)
  return out


def test_beam_of_one_equals_greedy(transformer):
  inputs = sources()
  greedy = make_task(transformer, length_penalty=0.0).run(inputs)
  beam = make_task(transformer, beam_size=1, length_penalty=0.0).run(inputs)
  assert [r.tokens for r in greedy] == [r.tokens for r in beam]
  np.testing.assert_allclose([r.sum_logprob for r in greedy], [r.sum_logprob for r in beam], atol=1e-5)


@pytest.mark.parametrize("options", [dict(), dict(beam_size=4), dict(beam_size=3, length_penalty=0.6, patience=2.0),
                                     dict(temperature=0.7, best_of=3), dict(temperature=1.0, top_k=3),
                                     dict(no_repeat_ngram_size=2, beam_size=2)])
def test_result_does_not_depend_on_the_batch(transformer, options):
  inputs = sources(6)
  together = make_task(transformer, **options).run(inputs)
  # Alone, in another order, and padded wider: sampling keys follow the row id, so pass it along.
  task = make_task(transformer, **options)
  for i in range(len(inputs)):
    wider = np.pad(inputs[i:i + 1], ((0, 0), (0, 4)))
    alone = task._attempt(wider, np.asarray([i]), jax.random.fold_in(jax.random.key(0), 0),
                          task.options.temperatures[0])[0]
    assert alone.tokens == together[i].tokens
    assert alone.sum_logprob == pytest.approx(together[i].sum_logprob, abs=1e-4)


def test_bfloat16_beam_search_does_not_depend_on_the_batch(transformer):
  """In bfloat16 too (bfloat16 caches stored as uint16 bits, float32 sums): each input decoded
  alone and padded wider gets the tokens and score it gets in a batch of six."""
  model, config, params = transformer
  config = dataclasses.replace(config, dtype="bfloat16")
  in_bfloat16 = (type(model)(config), config, params)
  inputs = sources(6)
  task = make_task(in_bfloat16, beam_size=4)
  together = task.run(inputs)
  for i in range(len(inputs)):
    alone = task.run(np.pad(inputs[i:i + 1], ((0, 0), (0, 4))))[0]
    assert alone.tokens == together[i].tokens
    assert alone.sum_logprob == pytest.approx(together[i].sum_logprob, abs=1e-4)


def assert_nbest_scores_are_teacher_forced_scores(model, params, inputs, task):
  """Every n-best hypothesis of `task` scores, teacher-forced, what beam search said it scored."""
  results = task.run(inputs)
  for n in range(task.options.nbest):
    targets = np.zeros((len(inputs), 12), np.int32)
    for i, r in enumerate(results):
      seq = list(r.nbest[n].tokens) + [EOS]
      targets[i, : len(seq)] = seq
    scores, logprobs = score_sequences(model, params, jnp.asarray(inputs), jnp.asarray(targets),
                                       options=task.options, bos_id=BOS, eos_id=EOS)
    np.testing.assert_allclose(scores, [r.nbest[n].score for r in results], atol=1e-4)
    np.testing.assert_allclose(logprobs, [r.nbest[n].sum_logprob for r in results], atol=1e-4)


def test_beam_scores_equal_teacher_forced_scores(transformer):
  model, _, params = transformer
  for length_penalty in (None, 0.6):
    task = make_task(transformer, beam_size=3, nbest=3, length_penalty=length_penalty, min_len=1,
                     no_repeat_ngram_size=3)
    assert_nbest_scores_are_teacher_forced_scores(model, params, sources(5), task)


def test_beam_scores_equal_teacher_forced_scores_with_relative_positions():
  """The relative-position biases (self and encoder-decoder, random values) follow each row's
  decoding position through beam search, where G rows share one source's keys and values."""
  config, model = build_model("transformer", source_vocab_size=SRC_V, target_vocab_size=TGT_V,
                              d_model=32, num_heads=2, d_ff=64, num_encoder_layers=1, num_decoder_layers=1,
                              dropout=0.0, max_len=32, relative_positions=3, cross_relative_positions=3)
  inputs = sources(5)
  params = model.init(jax.random.key(3), jnp.ones((2, 5), jnp.int32), jnp.ones((2, 5), jnp.int32))["params"]
  keys = iter(jax.random.split(jax.random.key(4), 16))
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: 2.0 * jax.random.normal(next(keys), x.shape) if "relative_bias" in str(path[-1]) else 1.5 * x,
      params)
  task = make_task((model, config, params), beam_size=3, nbest=3, length_penalty=0.6)
  assert_nbest_scores_are_teacher_forced_scores(model, params, inputs, task)


def leaves_by_role(cache):
  """{"per_row" | "per_source" | "unmarked": {path: leaf}} by the cache contract's boxes."""
  roles = {"per_row": {}, "per_source": {}, "unmarked": {}}
  is_box = lambda x: kv_cache.is_per_row(x) or kv_cache.is_per_source(x)
  for path, x in jax.tree_util.tree_leaves_with_path(cache, is_leaf=is_box):
    role = "per_row" if kv_cache.is_per_row(x) else "per_source" if kv_cache.is_per_source(x) else "unmarked"
    roles[role][jax.tree_util.keystr(path)] = x.value if is_box(x) else x
  return roles


def test_the_transformer_cache_marks_only_the_slot_tables_per_row(transformer):
  """Beam search reorders only each decoder layer's [rows, L] self-attention slot table; the
  cross-attention K and V (the same for every beam of an input) are held once per input, and the
  self-attention K and V stay in their slots, one per beam."""
  model, _, params = transformer
  _, cache = step_function(model, params, jnp.asarray(sources(2)), max_decode_length=5, repeat=3)
  roles = leaves_by_role(cache)
  tables, sources_kv = roles["per_row"], roles["per_source"]
  slots = {k: x for k, x in roles["unmarked"].items() if x.ndim}
  assert tables and all(k.endswith("['self_attention']['slot_table']") for k in tables)
  assert all(x.shape == (2 * 3, 5) and x.dtype == jnp.int32 for x in tables.values())
  assert len(sources_kv) == len(slots) == 2 * len(tables)
  assert all("cross_attention" in k and x.shape[0] == 2 for k, x in sources_kv.items())   # once per input
  assert all("self_attention" in k and x.shape[0] == 2 * 3 for k, x in slots.items())    # one slot per beam


def test_reorder_rows_moves_exactly_the_per_row_leaves(transformer):
  """`reorder_rows` takes the given rows of every `PerRow` leaf and leaves every other leaf as it is."""
  model, _, params = transformer
  step, cache = step_function(model, params, jnp.asarray(sources(2)), max_decode_length=4, repeat=3)
  _, cache = step(jnp.full((6, 1), BOS, jnp.int32), cache)
  rows = jnp.asarray([2, 2, 0, 4, 3, 3])
  before, after = leaves_by_role(cache), leaves_by_role(reorder_rows(cache, rows))
  for role in before:
    assert before[role].keys() == after[role].keys()
    for k, x in before[role].items():
      np.testing.assert_array_equal(after[role][k], x[rows] if role == "per_row" else x)


def test_reading_through_slots_equals_reordering_the_cache(transformer):
  """A step after reordering only the slot table gives the logits of the same step after
  physically reordering every per-row key and value (each row's history in its own slot)."""
  model, _, params = transformer
  step, cache = step_function(model, params, jnp.asarray(sources(2)), max_decode_length=4, repeat=3)
  tokens = jnp.asarray(np.random.default_rng(0).integers(3, 9, (6, 4)), jnp.int32)
  for t in range(2):
    _, cache = step(tokens[:, t:t + 1], cache)
  origins = jnp.asarray([2, 2, 0, 4, 3, 3])  # rows 2, 2, 0 of input 0, rows 4, 3, 3 of input 1
  via_slots = reorder_rows(cache, search.beam_rows(origins.reshape(2, 3) % 3, 3))

  def copy_rows(layer):
    attention = dict(layer["self_attention"])
    table = attention["slot_table"].value
    for name in ("key_slots", "value_slots"):  # each row's own history, copied out of the slots it lives in
      attention[name] = kv_cache.read_slots(attention[name], table)[origins]
    # and then each row's history is in its own slot
    attention["slot_table"] = kv_cache.PerRow(jnp.broadcast_to(jnp.arange(6)[:, None], table.shape))
    return {**layer, "self_attention": attention}
  copied = {name: copy_rows(layer) if "self_attention" in layer else layer for name, layer in cache.items()}
  assert "self_attention" in cache["decoder_0"]
  np.testing.assert_array_equal(np.asarray(step(tokens[:, 2:3], via_slots)[0]),
                                np.asarray(step(tokens[:, 2:3], copied)[0]))


def test_rows_sharing_a_source_attend_to_it_as_if_it_were_repeated(transformer):
  """Decoding steps of 3 rows per input against cross-attention K, V kept once per input give the
  logits of the same steps against K, V repeated for every row (the cache of `repeat=1`)."""
  model, _, params = transformer
  inputs = jnp.asarray(sources(2))
  grouped_step, grouped = step_function(model, params, inputs, max_decode_length=4, repeat=3)
  plain_step, plain = step_function(model, params, jnp.repeat(inputs, 3, axis=0), max_decode_length=4)
  tokens = jnp.asarray(np.random.default_rng(0).integers(3, 9, (6, 4)), jnp.int32)
  for t in range(4):
    grouped_logits, grouped = grouped_step(tokens[:, t:t + 1], grouped)
    plain_logits, plain = plain_step(tokens[:, t:t + 1], plain)
    np.testing.assert_allclose(grouped_logits, plain_logits, atol=1e-5, rtol=1e-5)


def test_no_repeat_ngram(transformer):
  for options in (dict(), dict(beam_size=3), dict(temperature=1.0)):
    results = make_task(transformer, no_repeat_ngram_size=2, max_len_a=0.0, max_len_b=20, **options).run(sources(8))
    for r in results:
      bigrams = list(zip(r.tokens, r.tokens[1:]))
      assert len(bigrams) == len(set(bigrams)), r.tokens
  assert any(len(r.tokens) > 4 for r in results)


def test_no_repeat_ngram_filter_directly():
  tokens = jnp.array([[3, 4, 3, 0, 0]])
  logits = jnp.zeros((1, 6))
  out = logit_filters.no_repeat_ngram(2)(logits, tokens, jnp.array(3))  # last token 3; 3->4 seen
  assert float(out[0, 4]) == logit_filters.NEG_INF
  assert float(out[0, 5]) == 0.0 and float(out[0, 3]) == 0.0


def test_forced_prefix_and_prompt(transformer):
  for options in (dict(), dict(beam_size=3), dict(temperature=1.0, best_of=2)):
    results = make_task(transformer, prefix=(5, 6), **options).run(sources())
    assert all(r.tokens[:2] == (5, 6) for r in results)
  # A prompt is read by the decoder like a forced prefix, but is not part of the output.
  prompt = (7, 8, 7)
  prompted = make_task(transformer, prompt=prompt, max_len_a=0.0, max_len_b=8).run(sources())
  prefixed = make_task(transformer, prefix=prompt, max_len_a=0.0, max_len_b=8 + len(prompt)).run(sources())
  assert [r.tokens for r in prompted] == [r.tokens[len(prompt):] for r in prefixed]


def test_min_len_and_suppress(transformer):
  results = make_task(transformer, min_len=3, beam_size=2).run(sources())
  assert all(len(r.tokens) >= 3 for r in results)
  results = make_task(transformer, suppress_tokens=(3, 4)).run(sources())
  assert all(3 not in r.tokens and 4 not in r.tokens for r in results)


def test_sampling_reproducible_and_zero_temperature_limit_is_greedy(transformer):
  inputs = sources()
  a = make_task(transformer, temperature=1.0).run(inputs, jax.random.key(5))
  b = make_task(transformer, temperature=1.0).run(inputs, jax.random.key(5))
  c = make_task(transformer, temperature=1.0).run(inputs, jax.random.key(6))
  assert [r.tokens for r in a] == [r.tokens for r in b]
  assert [r.tokens for r in a] != [r.tokens for r in c]
  greedy = make_task(transformer).run(inputs)
  cold = make_task(transformer, temperature=1e-4).run(inputs, jax.random.key(5))
  assert [r.tokens for r in greedy] == [r.tokens for r in cold]


def test_temperature_fallback_retries_exactly_when_a_threshold_is_crossed(transformer, monkeypatch):
  inputs = sources(6)
  base = make_task(transformer).run(inputs)
  logprobs = sorted(r.avg_logprob for r in base)
  threshold = (logprobs[2] + logprobs[3]) / 2  # half of the rows are below
  task = make_task(transformer, temperature=(0.0, 0.5, 1.0), logprob_threshold=threshold)
  attempts = []
  original = task._attempt
  monkeypatch.setattr(task, "_attempt", lambda inp, rows, key, t: attempts.append((t, list(rows))) or original(inp, rows, key, t))
  results = task.run(inputs)
  below = [i for i, r in enumerate(base) if r.avg_logprob < threshold]
  assert attempts[0] == (0.0, list(range(6)))
  assert attempts[1] == (0.5, below)
  retried_at_1 = [i for i in below if results[i].temperature == 1.0]
  assert attempts[2:] == ([(1.0, retried_at_1)] if retried_at_1 else [])
  for i, r in enumerate(results):
    if i not in below:
      assert r.temperature == 0.0 and r.tokens == base[i].tokens
    elif r.temperature == 0.5:
      assert r.avg_logprob >= threshold  # accepted at 0.5 because it crossed no threshold
  # Compression ratio: a threshold below every ratio retries every row.
  task = make_task(transformer, temperature=(0.0, 1.0), compression_ratio_threshold=0.0)
  assert all(r.temperature == 1.0 for r in task.run(inputs))


@pytest.mark.parametrize("options, message", [
    (dict(beam_size=2, best_of=2, temperature=0.5), "beam_size"),
    (dict(beam_size=2, best_of=2), "beam_size and best_of"),
    (dict(patience=2.0), "patience requires beam_size"),
    (dict(beam_size=2, patience=0.5), "patience must be"),
    (dict(length_penalty=1.5), "length_penalty"),
    (dict(length_penalty=-0.1), "length_penalty"),
    (dict(temperature=1.0, top_k=5, top_p=0.9), "top_k and top_p"),
    (dict(best_of=3), "best_of requires temperature"),
    (dict(top_p=0.9), "top_k/top_p require temperature"),
    (dict(temperature=1.0, top_p=1.5), "top_p"),
    (dict(beam_size=2, nbest=3), "nbest"),
    (dict(nbest=2), "nbest"),
    (dict(beam_size=0), "beam_size"),
    (dict(temperature=-1.0), "temperature"),
    (dict(max_len_a=0.0, max_len_b=0), "max_len"),
])
def test_invalid_options_name_the_option(options, message):
  with pytest.raises(UsageError, match=message):
    DecodingOptions(**options)


@pytest.mark.parametrize("width,k", [(8000, 8), (32000, 8), (1001, 3), (50, 4)])
def test_blockwise_top_k_equals_lax_top_k(width, k):
  """Random rows, rows with many ties, and rows whose best entries crowd into one block."""
  rng = np.random.default_rng(width)
  rows = [rng.standard_normal(width), rng.integers(0, 3, width).astype(float), np.full(width, -1e9)]
  crowded = rng.standard_normal(width) - 10.0
  crowded[width // 2: width // 2 + k] = 5.0 + np.arange(k)
  x = jnp.asarray(np.stack(rows + [crowded]), jnp.float32)
  values, index = jax.jit(search.top_k, static_argnums=1)(x, k)
  expected_values, expected_index = jax.lax.top_k(x, k)
  np.testing.assert_array_equal(values, expected_values)
  np.testing.assert_array_equal(index, expected_index)


@pytest.mark.parametrize("options", [dict(), dict(beam_size=3, nbest=2), dict(temperature=1.0, best_of=2)])
def test_two_devices_decode_what_one_device_decodes(transformer, options):
  """A task given a mesh of the two forced host devices splits the rows between them (an odd
  batch is padded): every result equals the one-device result, samples included."""
  from seq2seq_jax.training import parallel  # pylint: disable=g-import-not-at-top
  assert jax.device_count() >= 2, "conftest forces two host devices"
  model, config, params = transformer
  one = make_task(transformer, **options)
  two = DecodingTask(model, params, one.options, bos_id=BOS, eos_id=EOS, detokenize=one.detokenize,
                     model_max_length=config.max_len, mesh=parallel.make_mesh(jax.devices()[:2]))
  assert two.mesh is not None
  batch = sources(7)
  for a, b in zip(one.run(batch, jax.random.key(3)), two.run(batch, jax.random.key(3))):
    assert a.tokens == b.tokens and [h.tokens for h in a.nbest] == [h.tokens for h in b.nbest]
    np.testing.assert_allclose(a.sum_logprob, b.sum_logprob, atol=1e-5)


def test_argmax_equals_jnp_argmax_including_ties():
  rng = np.random.default_rng(0)
  x = np.stack([rng.standard_normal(8000), rng.integers(0, 4, 8000).astype(float), np.full(8000, -1e9)])
  x = jnp.asarray(x, jnp.float32)
  np.testing.assert_array_equal(jax.jit(search.argmax)(x), jnp.argmax(x, axis=-1))
