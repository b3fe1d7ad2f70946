"""speech_cmudict: deterministic plans, voices never shared between splits, resampling and noise,
a tiny build read through the pipeline (audio batches), WAV input for decoding; an end-to-end
train / evaluate / decode smoke run (slow)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from tensorflow_datasets.core import shuffle as tfds_shuffle

from seq2seq_jax.data import audio_files, datasets, pipeline
from seq2seq_jax.data.datasets import cmudict_g2p
from seq2seq_jax.data.datasets import speech_cmudict as sc
from seq2seq_jax.data.tokenizers import AudioInput, vocabulary_from_json
from seq2seq_jax.errors import UsageError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_voices_are_never_shared_between_splits():
  train, valid, test = (set(sc.VOICES[s]) for s in ("train", "validation", "test"))
  assert not (train & valid or train & test or valid & test)
  accents = lambda voices: {v.split("+")[0] for v in voices}
  assert not accents(train) & accents(test)   # the test accents are never heard in training


def test_plans_are_deterministic_and_use_their_split_voices():
  words = [f"w{i}" for i in range(50)]
  plan = sc.plan_split(words, "test", 20, seed=3)
  assert plan == sc.plan_split(words, "test", 20, seed=3) != sc.plan_split(words, "test", 20, seed=4)
  assert len({u.word for u in plan}) == 20 and {u.voice for u in plan} <= set(sc.TEST_VOICES)
  assert all(sc.SPEEDS[0] <= u.speed <= sc.SPEEDS[1] and sc.PITCHES[0] <= u.pitch <= sc.PITCHES[1] for u in plan)
  assert sum(sc.split_sizes(24000).values()) == 24000 and min(sc.split_sizes(3).values()) == 1


def test_resampling_keeps_a_tone_and_noise_has_the_asked_snr():
  t = np.arange(22050) / 22050
  y = sc.resample(np.sin(2 * np.pi * 440 * t), 22050, 16000)
  assert len(y) == 16000
  np.testing.assert_allclose(y, np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), atol=1e-6)
  noisy = sc.add_noise(y, 10.0, np.random.default_rng(0))
  snr = 10 * np.log10(np.mean(y ** 2) / np.mean((noisy - y) ** 2))
  assert snr == pytest.approx(10.0, abs=0.3)


def test_speech_options_and_names():
  with pytest.raises(UsageError, match="max_examples"):
    sc.SpeechConfig(max_examples=2)
  with pytest.raises(UsageError, match="does not apply"):
    datasets.spec("speech_cmudict", datasets.DatasetOptions(num_train=5))
  spec = datasets.spec("speech_cmudict/phonemes", datasets.DatasetOptions(snr_db=10.0, data_seed=2))
  assert "snr10_seed2" in spec.description
  assert spec.metrics == ("wer", "per") and spec.source_tokenizer == "audio"
  assert datasets.spec("speech_cmudict").metrics == ("wer", "cer")
  assert vocabulary_from_json(AudioInput().to_json()) == AudioInput()


@needs_espeak
def test_synthesis_is_deterministic_16khz_speech():
  a = sc.synthesize("hello", "en-us+m1", 160, 50)
  assert np.array_equal(a, sc.synthesize("hello", "en-us+m1", 160, 50))
  assert 0.2 < len(a) / sc.SAMPLE_RATE < 1.5 and 0.05 < np.max(np.abs(a)) <= 1.0


@needs_espeak
def test_spoken_word_sets_say_the_same_unseen_words_in_every_test_voice():
  words, spoken = sc.spoken_word_sets(3, seed=4)
  again_words, again = sc.spoken_word_sets(3, seed=4)
  assert words == again_words and len(set(words)) == 3 and list(spoken) == list(sc.TEST_VOICES)
  assert all(np.array_equal(a, b) for v in spoken for a, b in zip(spoken[v], again[v]))
  train_words = set(cmudict_g2p.split_words(list(cmudict_g2p.load_entries()))["train"])
  assert not train_words & set(words)
  assert all(len(u) == 3 and all(x.dtype == np.int16 for x in u) for u in spoken.values())
  assert not np.array_equal(spoken[sc.TEST_VOICES[0]][0][:1000], spoken[sc.TEST_VOICES[1]][0][:1000])
  with pytest.raises(UsageError, match="at least 2 words"):
    sc.spoken_word_sets(1)


@needs_espeak
def test_a_tiny_build_reads_as_audio_batches(tmp_path, monkeypatch):
  # TFDS spills a split past its in-memory limit to disk through TensorFlow (not installed): with
  # that limit at 1 byte, the build must still keep its splits in memory, and restore the limit.
  monkeypatch.setattr(tfds_shuffle, "MAX_MEM_BUFFER_SIZE", 1)
  options = datasets.DatasetOptions(max_examples=14, snr_db=20.0)
  spec = datasets.spec("speech_cmudict", options)
  splits = datasets.load("speech_cmudict", str(tmp_path), options)
  assert tfds_shuffle.MAX_MEM_BUFFER_SIZE == 1
  assert {name: len(s) for name, s in splits.items()} == sc.split_sizes(14)
  record = splits["test"][0]
  assert record["audio"].dtype == np.int16 and record["voice"].decode() in sc.TEST_VOICES
  examples = pipeline.read_examples(splits["train"], spec)
  assert isinstance(examples[0].source, np.ndarray) and examples[0].references[0].isalpha()
  source_vocab, target_vocab = pipeline.build_vocabularies(examples, spec)
  assert isinstance(source_vocab, AudioInput) and target_vocab.separator == ""
  pairs = pipeline.encode_pairs(examples, source_vocab, target_vocab, 200, 32)
  assert pairs.source_unit == 160
  batches = pipeline.TrainBatches(pairs, 2, (60, 100, 200))
  batch = batches[0]
  assert batch["inputs"].shape[1] in (60 * 160, 100 * 160, 200 * 160)
  assert batch["targets"].shape == (2, max(len(t) for t in pairs.targets))
  seen = []
  for idx, b in pipeline.eval_batches(pairs.sources, pairs.targets, 4, (60, 100, 200), 160):
    seen.extend(idx)
    for row, i in enumerate(idx):
      np.testing.assert_array_equal(b["inputs"][row, :len(pairs.sources[i])], pairs.sources[i])
  assert sorted(seen) == list(range(len(pairs.sources)))


def test_wav_files_are_read_at_16khz(tmp_path):
  tone = (8000 * np.sin(2 * np.pi * 300 * np.arange(8000) / 8000)).astype(np.int16)
  audio_files.write_wav(str(tmp_path / "b.wav"), tone, sample_rate=8000)
  audio_files.write_wav(str(tmp_path / "a.wav"), tone[:160], sample_rate=16000)
  (tmp_path / "notes.txt").write_text("not audio")
  assert audio_files.expand_paths([str(tmp_path)]) == [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]
  assert len(audio_files.read_wav(str(tmp_path / "b.wav"))) == 16000
  with pytest.raises(UsageError, match="not a readable PCM WAV"):
    audio_files.read_wav(str(tmp_path / "notes.txt"))
  with pytest.raises(UsageError, match="does not exist"):
    audio_files.expand_paths([str(tmp_path / "missing.wav")])


@pytest.mark.slow
@needs_espeak
def test_train_evaluate_and_decode_audio_end_to_end(tmp_path):
  """A few steps of the res2net_1h recipe, shrunk, on a tiny build; then evaluate (WER, CER) and
  decode WAV files with beam search and an attention plot over frames."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  run = lambda module, *args: subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                                             capture_output=True, text=True, check=True)
  workdir = str(tmp_path / "run")
  run("experiments.train", "--flagfile=experiments/speech_cmudict/res2net_1h.flags", "--max_examples=60",
      "--data_seed=1", f"--data_dir={tmp_path / 'tfds'}", f"--workdir={workdir}", "--num_train_steps=2",
      "--batch_size=4", "--eval_every_steps=2", "--checkpoint_every_steps=2", "--d_model=32", "--num_heads=2",
      "--d_ff=64", "--num_layers=1", "--res2net_blocks=1", "--se_bottleneck=8", "--eval_batch_size=8",
      "--max_eval_examples=4", "--max_test_examples=4", "--beam_size=2", "--max_len_b=12")
  results = json.load(open(os.path.join(workdir, "results.json")))
  assert results["split"] == "test" and {"wer", "cer"} <= set(results["eval"])
  evaluated = json.loads(run("experiments.evaluate", f"--workdir={workdir}", "--beam_size=2", "--max_len_a=0",
                             "--max_len_b=12").stdout.strip().splitlines()[-1])
  assert evaluated["samples"][0]["source"].startswith("<audio")
  wavs = tmp_path / "wavs"
  wavs.mkdir()
  audio_files.write_wav(str(wavs / "hello.wav"), sc.to_int16(sc.synthesize("hello", "en-gb-scotland+m4", 160, 50)))
  out = run("experiments.decode", f"--workdir={workdir}", f"--inputs={wavs}", "--beam_size=2", "--max_len_a=0",
            "--max_len_b=12", f"--plot_attention={tmp_path / 'plots'}").stdout
  assert out.startswith(str(wavs / "hello.wav") + "\t")
  assert os.listdir(tmp_path / "plots")
  identified = json.loads(run("experiments.identify_spoken_words", f"--workdir={workdir}", "--words=3",
                              f"--output={tmp_path / 'ids.json'}").stdout.strip().splitlines()[-1])
  assert identified == json.load(open(tmp_path / "ids.json"))
  assert identified["words"] + identified["words_too_long"] == 3 and len(identified["voices"]) == 4
  assert len(identified["error_percent"]["pairs"]) == 12 and identified["dim"] == 64  # stats: [mean; std]
  for errors in (identified["error_percent"], identified["baseline_error_percent"]):
    assert all(0 <= e <= 100 for pair in errors["pairs"].values() for e in pair.values())
