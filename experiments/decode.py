r"""Decode with a trained model: greedy, sampling or beam search, Whisper-style options.

  python -m experiments.decode --workdir=runs/default --inputs=hello,world
  python -m experiments.decode --workdir=runs/default --input_file=words.txt --output_file=out.txt
  python -m experiments.decode --workdir=runs/default --beam_size=8 --nbest=3 --inputs=read
  python -m experiments.decode --workdir=runs/default --score_file=pairs.tsv
  python -m experiments.decode --workdir=runs/default --inputs=knight --plot_attention=plots
  echo hello | python -m experiments.decode --workdir=runs/default
  python -m experiments.decode --workdir=runs/bible_both --target_language=es --inputs="In the beginning"
  python -m experiments.decode --workdir=runs/speech --inputs=hello.wav,recordings/   # an audio model

One output line per input line (with --nbest > 1: the hypotheses separated by " | "); with
--inputs, stdout lines are "input<TAB>output<TAB>score<TAB>sum_logprob".
Without --inputs, --input_file or --score_file it is a filter: it reads standard input a line at
a time and writes each line's output text alone to stdout as soon as it is decoded.  A line the
model cannot take gets an empty output line and "error: line N: ..." on stderr; the exit status
is 1 if any line failed.  (Lines are decoded one by one: for many inputs, --input_file is faster.)
--score_file: lines "source<TAB>target"; prints each pair with the score beam search ranks by
(log-prob / length penalty) and the summed log-prob.
--plot_attention=DIR: also saves one cross-attention heatmap per input, of its best output
(DIR/001_word.png: source tokens across, output tokens with EOS down; one panel per Transformer
decoder layer, averaged over heads unless --plot_attention_per_head; one for the attention RNN).
Inputs are checked against the model's vocabulary and length limit before anything is decoded or
written.  For a speech model (`speech_transformer`) every input is a WAV file (any rate, resampled
to 16 kHz) or a directory of them, decoded in name order; standard input gives one path a line.
"""

import os
import sys

import numpy as np
from absl import flags, logging

from experiments import checkpoint_flags, decoding_flags, decoding_xla_flags, entry_point, plots
from seq2seq_jax import attention_maps, workdir
from seq2seq_jax.data import audio_files, pipeline
from seq2seq_jax.special_tokens import BOS_ID, EOS_ID
from seq2seq_jax.decoding.task import DecodingTask, score_sequences
from seq2seq_jax.errors import UsageError
from seq2seq_jax.translator import decode_all

FLAGS = flags.FLAGS
decoding_flags.define_dtype_flag()
flags.adopt_module_key_flags(decoding_flags)

flags.DEFINE_string("workdir", "runs/default", "Training workdir (config, vocabularies, checkpoints).")
flags.DEFINE_list("inputs", [], "Comma-separated inputs; outputs go to stdout.")
flags.DEFINE_string("input_file", None, "File with one input per line.")
flags.DEFINE_string("output_file", None, "Where to write one output per input line (default stdout).")
flags.DEFINE_string("score_file", None, "Tab-separated source and target per line: print scores.")
flags.DEFINE_integer("batch_size", 256, "Decoding batch size.")
flags.DEFINE_integer("seed", 0, "PRNG seed for sampling.")
flags.DEFINE_string("plot_attention", None, "Directory for one cross-attention heatmap PNG per input "
                    "(transformer and rnn_attention models).")
flags.DEFINE_bool("plot_attention_per_head", False, "With --plot_attention: one panel per head of "
                  "each Transformer layer instead of the mean over heads.")


def reads_stdin() -> bool:
  """True when no input flag is given: inputs come from standard input, a line at a time."""
  return not (FLAGS.inputs or FLAGS.input_file or FLAGS.score_file)


def read_inputs() -> list[str]:
  if bool(FLAGS.inputs) + bool(FLAGS.input_file) + bool(FLAGS.score_file) != 1:
    raise UsageError("give one of --inputs=a,b,c, --input_file=F or --score_file=F, or none to read "
                     "standard input")
  if FLAGS.inputs:
    return list(FLAGS.inputs)
  path = FLAGS.input_file or FLAGS.score_file
  if not os.path.exists(path):
    raise UsageError(f"{path} does not exist")
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\n") for line in f]


def score_pairs(translator, lines, options):
  """[(source, target, score, sum_logprob)] for tab-separated lines."""
  pairs = [line.split("\t") for line in lines]
  for n, pair in enumerate(pairs, 1):
    if len(pair) != 2:
      raise UsageError(f"{FLAGS.score_file}:{n}: expected 'source<TAB>target', got {lines[n - 1]!r}")
  sources = translator.encode_sources([p[0] for p in pairs])
  targets = translator.encode_targets([p[1] for p in pairs])
  scored = [None] * len(pairs)
  for idx, batch in pipeline.eval_batches(sources, targets, FLAGS.batch_size, translator.buckets,
                                          translator.source_unit):
    scores, logprobs = score_sequences(translator.model, translator.params, batch["inputs"],
                                       batch["targets"], options=options, bos_id=BOS_ID, eos_id=EOS_ID)
    for row, i in enumerate(idx):
      scored[i] = (*pairs[i], float(np.asarray(scores)[row]), float(np.asarray(logprobs)[row]))
  return scored


def plot_attention(translator, texts, sources, results, options):
  """Saves one heatmap per input under --plot_attention, of the best hypothesis; returns the paths."""
  maps = attention_maps.attention_maps(translator, sources, [r.tokens for r in results], options.prompt)
  titles = [f"{text} -> {r.text}" for text, r in zip(texts, results)]
  return plots.save_all(maps, texts, FLAGS.plot_attention, FLAGS.plot_attention_per_head, titles)


def check_plot_flags(translator):
  """UsageError for --plot_attention with --score_file, standard input or a model without attention."""
  if FLAGS.plot_attention_per_head and not FLAGS.plot_attention:
    raise UsageError("--plot_attention_per_head needs --plot_attention=DIR")
  if not FLAGS.plot_attention:
    return
  if FLAGS.score_file or reads_stdin():
    raise UsageError("--plot_attention plots decoded outputs: use it with --inputs or --input_file")
  attention_maps.require_attention(translator.model)


def output_text(result, nbest: int) -> str:
  """The best output, or with nbest > 1 the hypotheses separated by " | "."""
  return " | ".join(h.text for h in result.nbest) if nbest > 1 else result.text


def stream_lines(stream):
  """The lines of `stream` without their newline, each as soon as it has been read."""
  for line in iter(stream.readline, ""):
    yield line.rstrip("\n")


def one_device_task(translator, options) -> DecodingTask:
  """A DecodingTask on the default device alone: one row gains nothing from the data-parallel
  split over the other devices and would wait for all of them at every call."""
  return DecodingTask(translator.model, translator.params, options, bos_id=BOS_ID, eos_id=EOS_ID,
                      detokenize=translator.target_vocab.decode,
                      model_max_length=translator.model_config.max_len, mesh=None)


def decode_stream(translator, options, lines, out, err) -> int:
  """Decodes each of `lines` when it arrives and writes its output text to `out`, flushed; a line
  the model cannot take gets "error: line N: ..." on `err` and an empty line on `out`.  Returns
  the number of lines that failed.  Every line is a batch of one row on one device, so each length
  bucket compiles once, on its first line."""
  task = one_device_task(translator, options)
  failed = 0
  for n, text in enumerate(lines, 1):
    try:
      source = translator.encode_source(text)
    except UsageError as e:
      failed += 1
      print(f"error: line {n}: {e}", file=err, flush=True)
      print(file=out, flush=True)
      continue
    [result] = decode_all(task, [source], 1, translator.buckets, translator.source_unit)
    print(output_text(result, options.nbest), file=out, flush=True)
  return failed


def load():
  """(Translator of --workdir, DecodingOptions from the flags), with the plot flags checked."""
  translator = checkpoint_flags.load_translator(FLAGS.workdir, FLAGS.dtype)
  options = decoding_flags.options_from_flags(translator.target_vocab)
  if not FLAGS.target_language and workdir.load(FLAGS.workdir)[0]["dataset_options"].get("both_directions"):
    raise UsageError(f"{FLAGS.workdir} was trained in both directions; say which language to translate "
                     "into with --target_language")
  check_plot_flags(translator)
  return translator, options


def filter_stdin():
  """Decodes standard input to stdout (`decode_stream`); exits 1 if a line failed, 130 on Ctrl-C,
  quietly when the reader of stdout has gone."""
  if FLAGS.output_file:
    raise UsageError("--output_file takes the outputs of --inputs or --input_file; the outputs of "
                     "standard input go to stdout")
  for stream in (sys.stdin, sys.stdout):
    stream.reconfigure(encoding="utf-8", errors="replace")
  try:
    translator, options = load()
    failed = decode_stream(translator, options, stream_lines(sys.stdin), sys.stdout, sys.stderr)
  except KeyboardInterrupt:
    sys.exit(130)
  except BrokenPipeError:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error when exiting
    sys.exit(1)
  if failed:
    sys.exit(1)


def main():
  logging.set_verbosity(logging.WARNING)
  if reads_stdin():
    filter_stdin()
    return
  texts = read_inputs()
  translator, options = load()
  if translator.source_unit > 1:  # an audio model: the inputs are WAV files or directories of them
    texts = audio_files.expand_paths(texts)
  if FLAGS.score_file:
    for source, target, score, logprob in score_pairs(translator, texts, options):
      print(f"{source}\t{target}\t{score:.6f}\t{logprob:.6f}")
    return
  sources = translator.encode_sources(texts)  # validates every input before any work
  results = translator.translate(sources, options, FLAGS.batch_size)
  outputs = [output_text(r, options.nbest) for r in results]
  if FLAGS.plot_attention:
    plot_attention(translator, texts, sources, results, options)
  if FLAGS.output_file:
    tmp = FLAGS.output_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      f.writelines(o + "\n" for o in outputs)
    os.replace(tmp, FLAGS.output_file)
  else:  # input, output, the score beam search ranked it by, its summed log-prob
    for text, out, r in zip(texts, outputs, results):
      print(f"{text}\t{out}\t{r.score:.6f}\t{r.sum_logprob:.6f}")


if __name__ == "__main__":
  decoding_xla_flags.use_decoding_xla_flags()  # before JAX starts its backend: XLA reads XLA_FLAGS once
  entry_point.run(main)
