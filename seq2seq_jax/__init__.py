"""seq2seq_jax: sequence-to-sequence learning in JAX/Flax, from feed-forward layers to the Transformer."""
