"""Bitext retrieval: the ratio margin against a hand computation, known answers, the random floor."""

import numpy as np
import pytest

from seq2seq_jax import retrieval


def test_ratio_margin_equals_a_hand_computed_example():
  # Unit vectors at angles (degrees) in the plane: cosines are cos(difference).
  deg = lambda *a: np.stack([np.cos(np.radians(a)), np.sin(np.radians(a))], axis=1)
  x, y = deg(0, 90), deg(30, 60, 150)
  c = np.cos(np.radians([[30, 60, 150], [60, 30, 60]]))  # cos(x_i, y_j)
  np.testing.assert_allclose(retrieval.cosine_matrix(x, y), c, atol=1e-12)
  # k = 2: mean of each x's 2 nearest y's, and of each y's 2 nearest x's (only 2 x's: both).
  nn_x = np.array([(c[0, 0] + c[0, 1]) / 2, (c[1, 1] + c[1, 2]) / 2])
  nn_y = np.array([(c[0, j] + c[1, j]) / 2 for j in range(3)])
  expected = c / ((nn_x[:, None] + nn_y[None, :]) / 2)
  np.testing.assert_allclose(retrieval.ratio_margin(x, y, k=2), expected, atol=1e-12)
  # Written out for one cell: margin(x_0, y_1) = cos 60 / ((cos 30 + cos 60)/4 + (cos 60 + cos 30)/4).
  c30, c60 = np.cos(np.radians(30)), np.cos(np.radians(60))
  assert retrieval.ratio_margin(x, y, k=2)[0, 1] == pytest.approx(c60 / ((c30 + c60) / 4 + (c60 + c30) / 4))
  # k = 1 and a scale of the vectors change nothing but k.
  np.testing.assert_allclose(retrieval.ratio_margin(3 * x, 0.5 * y, k=1),
                             c / ((c.max(1)[:, None] + c.max(0)[None, :]) / 2), atol=1e-12)


def test_margin_discounts_a_hub_that_cosine_prefers():
  # y_0 is close to x_0 and to x_3 (a hub): by cosine x_3 picks it, by margin its own translation y_3.
  x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
  y = np.array([[1.0, 0.0, 0.8], [0.0, 1.0, 0.3], [-1.0, 0.0, 0.3], [0.6, 0.6, 0.6]])
  cos, margin = retrieval.cosine_matrix(x, y), retrieval.ratio_margin(x, y, k=2)
  assert list(np.argmax(cos, axis=1)) == [0, 1, 2, 0] and retrieval.retrieval_error_rate(cos) == 0.25
  assert list(np.argmax(margin, axis=1)) == [0, 1, 2, 3] and retrieval.retrieval_error_rate(margin) == 0.0


def test_retrieval_on_a_toy_set_with_known_answers_has_no_errors():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((50, 16))
  y = 2.0 * x + 0.05 * rng.standard_normal((50, 16))  # each y_i a scaled, noisy copy of x_i
  errors = retrieval.bitext_retrieval_errors(x, y, k=4)
  assert errors["examples"] == 50 and errors["margin_k"] == 4
  assert errors["cosine"] == {"x_to_y": 0.0, "y_to_x": 0.0}
  assert errors["margin"] == {"x_to_y": 0.0, "y_to_x": 0.0}
  # Shuffled targets: almost every row is wrong.
  shuffled = retrieval.bitext_retrieval_errors(x, y[::-1], k=4)
  assert shuffled["cosine"]["x_to_y"] >= 0.9 and shuffled["margin"]["y_to_x"] >= 0.9
  with pytest.raises(ValueError, match="same non-zero number of rows"):
    retrieval.bitext_retrieval_errors(x, y[:10])


def test_bag_of_pieces_sees_shared_tokens_only():
  ids = [np.array([5, 6, 7, 7]), np.array([7, 6, 7, 5]), np.array([8, 9])]
  bag = retrieval.bag_of_pieces(ids, vocab_size=10)
  assert bag.shape == (3, 10) and bag.dtype == np.float32
  np.testing.assert_allclose(bag[0], [0, 0, 0, 0, 0, 0.25, 0.25, 0.5, 0, 0])
  np.testing.assert_array_equal(bag[0], bag[1])  # order does not matter
  # cos = that of the count vectors: (1*1 + 1*0 ...) here [1,1,2] against [0,0,1]: 2 / (sqrt(6) * 1).
  other = retrieval.bag_of_pieces([np.array([7])], 10)
  assert retrieval.cosine_matrix(bag[:1], other)[0, 0] == pytest.approx(2 / np.sqrt(6))
  assert retrieval.cosine_matrix(bag[:1], bag[2:])[0, 0] == 0.0  # no shared piece
  same = retrieval.bitext_retrieval_errors(bag[1:], bag[1:])
  assert same["cosine"]["x_to_y"] == 0.0


def test_cross_condition_errors_cover_every_ordered_pair():
  rng = np.random.default_rng(1)
  items = rng.standard_normal((30, 8))
  vectors = {"a": items, "b": 3 * items + 0.01 * rng.standard_normal((30, 8)), "c": items[::-1]}
  errors = retrieval.cross_condition_errors(vectors, k=4)
  assert errors["examples"] == 30 and set(errors["pairs"]) == {"a -> b", "b -> a", "a -> c", "c -> a",
                                                                "b -> c", "c -> b"}
  assert errors["pairs"]["a -> b"] == {"cosine": 0.0, "margin": 0.0} == errors["pairs"]["b -> a"]
  # c holds the items in reverse order, so row i of c is not item i: nearly every match is wrong.
  assert min(errors["pairs"]["a -> c"].values()) >= 0.9 and min(errors["pairs"]["c -> b"].values()) >= 0.9
  mean_cosine = np.mean([p["cosine"] for p in errors["pairs"].values()])
  assert errors["mean"]["cosine"] == pytest.approx(mean_cosine)
  with pytest.raises(ValueError, match="at least 2 conditions"):
    retrieval.cross_condition_errors({"a": items})
