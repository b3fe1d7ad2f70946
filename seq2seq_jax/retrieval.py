"""Bitext retrieval with sentence vectors: cosine and margin nearest neighbours, and the error rate.

Given the vectors of N aligned sentence pairs, x_i in one language and y_i in the other, each x_i
is matched to its nearest y_j; the error rate is the fraction matched to a j != i (the "xsim"
similarity-search error of LASER, Artetxe & Schwenk 2019, TACL), in both directions.

Nearest by cosine, or by the ratio margin of Artetxe & Schwenk (2019), "Margin-based parallel
corpus mining with multilingual sentence embeddings", ACL, the ratio margin, which discounts
"hub" sentences that are close to everything:

  margin(x, y) = cos(x, y) / ( sum_{z in NN_k(x)} cos(x, z) / 2k + sum_{z in NN_k(y)} cos(y, z) / 2k )

where NN_k(x) are the k nearest neighbours of x among the other language's sentences (the y's) and
NN_k(y) those of y among the x's (by cosine).  Pure numpy in float64; a 1,000 x 1,000 matrix.
"""

import numpy as np


def unit_rows(x) -> np.ndarray:
  """[N, D] -> [N, D] float64, each row divided by its L2 norm (all-zero rows stay zero)."""
  x = np.asarray(x, np.float64)
  norms = np.linalg.norm(x, axis=1, keepdims=True)
  return x / np.where(norms > 0, norms, 1.0)


def cosine_matrix(x, y) -> np.ndarray:
  """x [N, D], y [M, D] -> cos(x_i, y_j) [N, M]."""
  return unit_rows(x) @ unit_rows(y).T


def mean_of_k_nearest(similarity, k: int) -> np.ndarray:
  """similarity [N, M] -> [N]: the mean of each row's k largest entries (k capped at M)."""
  k = min(k, similarity.shape[1])
  return np.mean(-np.partition(-similarity, k - 1, axis=1)[:, :k], axis=1)


def ratio_margin(x, y, k: int = 4) -> np.ndarray:
  """x [N, D], y [M, D] -> margin(x_i, y_j) [N, M] (the ratio margin above, k nearest neighbours).
  The matrix serves both directions: margin(y_j, x_i) is its transpose."""
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  cos = cosine_matrix(x, y)
  neighbourhood_x = mean_of_k_nearest(cos, k)  # [N]: sum_{z in NN_k(x)} cos(x, z) / k
  neighbourhood_y = mean_of_k_nearest(cos.T, k)  # [M]
  return cos / ((neighbourhood_x[:, None] + neighbourhood_y[None, :]) / 2)


def retrieval_error_rate(scores) -> float:
  """scores [N, N] with row i's right answer in column i -> fraction of rows whose best column is
  not i (ties go to the lowest column)."""
  scores = np.asarray(scores)
  return float(np.mean(np.argmax(scores, axis=1) != np.arange(scores.shape[0])))


def bitext_retrieval_errors(x, y, k: int = 4) -> dict:
  """x [N, D], y [N, D], row i of each a translation of the other -> error rates (fractions) of
  {"cosine": {"x_to_y", "y_to_x"}, "margin": {"x_to_y", "y_to_x"}, "examples", "margin_k"}."""
  x, y = np.asarray(x), np.asarray(y)
  if x.shape[0] != y.shape[0] or x.shape[0] == 0:
    raise ValueError(f"need the same non-zero number of rows on both sides, got {x.shape} and {y.shape}")
  cos, margin = cosine_matrix(x, y), ratio_margin(x, y, k)
  return {"examples": int(x.shape[0]), "margin_k": k,
          "cosine": {"x_to_y": retrieval_error_rate(cos), "y_to_x": retrieval_error_rate(cos.T)},
          "margin": {"x_to_y": retrieval_error_rate(margin), "y_to_x": retrieval_error_rate(margin.T)}}


def cross_condition_errors(vectors: dict[str, np.ndarray], k: int = 4) -> dict:
  """The same N items seen under several conditions (a spoken word in several voices, a sentence
  in several languages): vectors {condition: [N, D]}, row i of each the same item.  Every ordered
  pair of conditions (a, b) is a retrieval from a's rows into b's -> {"pairs": {"a -> b": {"cosine",
  "margin"}}, "mean": {"cosine", "margin"}, "examples", "margin_k"} (error fractions)."""
  names = list(vectors)
  if len(names) < 2:
    raise ValueError(f"need at least 2 conditions, got {names}")
  pairs = {}
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      errors = bitext_retrieval_errors(vectors[a], vectors[b], k)
      for metric in ("cosine", "margin"):
        pairs.setdefault(f"{a} -> {b}", {})[metric] = errors[metric]["x_to_y"]
        pairs.setdefault(f"{b} -> {a}", {})[metric] = errors[metric]["y_to_x"]
  mean = {metric: float(np.mean([p[metric] for p in pairs.values()])) for metric in ("cosine", "margin")}
  return {"examples": int(np.asarray(vectors[names[0]]).shape[0]), "margin_k": k, "pairs": pairs, "mean": mean}


def bag_of_pieces(token_ids: list[np.ndarray], vocab_size: int) -> np.ndarray:
  """The untrained floor: a sentence as the mean of one-hot vectors of its token ids -> [N, vocab_size]
  float32 (its cosines are those of the token-count vectors).  This is the mean of untrained,
  randomly initialised embeddings in the limit of a large width, where random vectors are
  orthogonal, without the noise of one draw.  In a vocabulary shared by both languages only
  identical pieces (names, numbers, punctuation, cognates) match, so it measures what token overlap
  alone retrieves."""
  out = np.zeros((len(token_ids), vocab_size), np.float32)
  for row, ids in enumerate(token_ids):
    np.add.at(out[row], np.asarray(ids, np.int64), 1.0 / max(len(ids), 1))
  return out
