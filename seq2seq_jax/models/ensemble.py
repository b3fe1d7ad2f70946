"""An ensemble of trained models decoded as one model.

`Ensemble(members)` has the contract of every model here (`encode`, `decode` with the `cache`
collection, `__call__`), so greedy, sampling and beam search run over it unchanged, inside the same
`lax.while_loop`: at each step its scores are the members' averaged log-probabilities,

    log p_ens(y_t | y_<t, x) = 1/M sum_m log p_m(y_t | y_<t, x)        ([B, T, V])

(the search normalises them again: a renormalised geometric mean of the members' distributions).
Members may be of different families and sizes; they must share the source and target
vocabularies.  Parameters are {"members_0": params of member 0, ...}; each member keeps its own
cache under its name, so beam search reorders each member's per-row leaves as it would alone.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from seq2seq_jax.models.layers import shift_right


class Ensemble(nn.Module):
  members: Sequence[nn.Module]
  bos_id: int

  def encode(self, inputs, train: bool = False):
    """inputs [B, S] -> one encoding per member."""
    return tuple(member.encode(inputs, train) for member in self.members)

  def decode(self, encoded, inputs, decoder_tokens, train: bool = False, decode: bool = False):
    """The members' mean log-probabilities [B, T, V] of the next token."""
    logprobs = [jax.nn.log_softmax(member.decode(e, inputs, decoder_tokens, train, decode).astype(jnp.float32))
                for member, e in zip(self.members, encoded)]
    return sum(logprobs) / len(logprobs)

  def __call__(self, inputs, targets, train: bool = False):
    """Teacher forcing: inputs [B, S], targets [B, T] -> mean log-probabilities [B, T, V]."""
    return self.decode(self.encode(inputs, train), inputs, shift_right(targets, self.bos_id), train)


def ensemble_params(member_params: Sequence) -> dict:
  """The Ensemble's parameters from each member's own."""
  return {f"members_{i}": params for i, params in enumerate(member_params)}
