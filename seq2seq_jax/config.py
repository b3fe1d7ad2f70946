"""TrainConfig: everything a training run is made of, with the one set of defaults.

The command line (`experiments/train.py`) takes its defaults from here, and a test checks that
`python -m experiments.train` with no flags builds exactly `TrainConfig()`.  The defaults are the
main job: a small Transformer (the model's own defaults, `models/transformer.py`) on CMUdict G2P,
about 5 minutes on 2 CPU cores.
"""

import dataclasses

from seq2seq_jax.data.pipeline import DEFAULT_BUCKETS
from seq2seq_jax.decoding.task import DecodingOptions


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  workdir: str = "runs/default"
  model: str = "transformer"       # a name in models.MODELS
  dataset: str = "cmudict_g2p"     # a name in data.datasets.DATASETS, or tfds:<name>/<config>
  data_dir: str = "~/tensorflow_datasets"
  dataset_options: dict = dataclasses.field(default_factory=dict)  # fields of datasets.DatasetOptions
  vocab_size: int = 0              # SentencePiece pieces per vocabulary (0 = the dataset's default)
  shared_vocab: bool = False       # one SentencePiece model for source and target
  model_hparams: dict = dataclasses.field(default_factory=dict)  # fields of the model's config; unset = its default
  batch_size: int = 256            # global batch, split over all devices
  max_tokens: int = 0              # token budget per global batch instead of batch_size (0 = off)
  num_train_steps: int = 1200
  eval_every_steps: int = 600      # validation every N steps and at the last step
  checkpoint_every_steps: int = 500
  keep_checkpoints: int = 2
  log_every_steps: int = 50
  seed: int = 0
  schedule: str = "inverse_sqrt"   # inverse_sqrt (Vaswani et al. eq. 3), constant, cosine
  learning_rate: float = 2.0       # scale of inverse_sqrt (multiplies d^-0.5 ...), else the peak rate
  warmup_steps: int = 500
  grad_clip_norm: float = 0.0      # 0 = off
  optimizer: str = "adam"          # adam, adamw, adafactor (training/state.py)
  adam_b1: float = 0.9             # Adam's betas and epsilon: Vaswani et al. §5.3
  adam_b2: float = 0.98
  adam_eps: float = 1e-9
  weight_decay: float = 0.0        # adamw, adafactor: decoupled weight decay
  ema_decay: float = 0.0           # > 0: keep a moving average of the parameters, validate and test with it
  best_metric: str = ""            # wer, per, bleu, chrf or loss: keep the best validated checkpoint too
  init_from: str = ""              # WORKDIR[:STEP]: start from that run's parameters and vocabularies
  label_smoothing: float = 0.1     # Vaswani et al. §5.4
  grad_accum_steps: int = 1        # microbatches per device per optimizer step (same update as one batch)
  dtype: str = "float32"           # activations/matmuls; bfloat16 keeps params, optimizer and loss float32
  max_source_length: int = 32      # longest source (tokens) used in training and accepted at decoding
  max_target_length: int = 32      # longest target (tokens incl. EOS) used in training
  buckets: tuple = DEFAULT_BUCKETS  # padded batch lengths; each compiles once
  eval_batch_size: int = 512
  max_eval_examples: int = 1000    # validation examples for periodic WER (0 = all)
  max_test_examples: int = 0       # test examples for the final evaluation (0 = all; fewer for smoke tests)
  decoding: DecodingOptions = DecodingOptions(beam_size=4)  # validation and test decoding
