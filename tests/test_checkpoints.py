"""A researcher's checkpoints: optimizers and schedules, the moving average, the best checkpoint,
averaging and fine-tuning (`--init_from`)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seq2seq_jax import averaging, workdir
from seq2seq_jax.config import TrainConfig
from seq2seq_jax.errors import UsageError
from seq2seq_jax.training import fine_tuning, state as state_lib
from test_train_entry_point import TINY, run

STEPS = 40


# --- schedules and optimizers (pure) ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["inverse_sqrt", "constant", "cosine"])
def test_schedules_warm_up_linearly_peak_and_end_where_they_should(name):
  warmup, total, scale, d_model = 100, 1000, 2.0, 256
  lr = state_lib.learning_rate_schedule(name, d_model, warmup, scale, total)
  values = np.array([float(lr(s)) for s in range(0, total + 1)])
  peak = scale * d_model**-0.5 * warmup**-0.5 if name == "inverse_sqrt" else scale
  # Warmup: linear in the step up to the peak at `warmup`, which is the maximum.
  np.testing.assert_allclose(values[1:warmup + 1], peak * np.arange(1, warmup + 1) / warmup, rtol=1e-5)
  assert values.argmax() == warmup and values.max() == pytest.approx(peak, rel=1e-6)
  end = {"inverse_sqrt": peak * (warmup / total) ** 0.5, "constant": scale, "cosine": 0.0}[name]
  assert values[-1] == pytest.approx(end, rel=1e-5, abs=1e-9)
  if name == "inverse_sqrt":  # eq. 3 after the warmup: proportional to step^-0.5
    np.testing.assert_allclose(values[400], peak * (warmup / 400) ** 0.5, rtol=1e-5)
  if name == "cosine":  # halfway through the decay: half the peak
    assert values[warmup + (total - warmup) // 2] == pytest.approx(scale / 2, rel=1e-4)


def _update(tx, params, grads):
  updates, _ = tx.update(grads, tx.init(params), params)
  return updates


def test_optimizers_adam_adamw_adafactor():
  params = {"w": jnp.full((4, 3), 2.0)}
  zero = jax.tree.map(jnp.zeros_like, params)
  # adamw decays weights by lr x weight_decay x param even without a gradient; adam has none.
  adamw = state_lib.optimizer("adamw", 0.1, weight_decay=0.01)
  np.testing.assert_allclose(_update(adamw, params, zero)["w"], -0.1 * 0.01 * 2.0, rtol=1e-6)
  np.testing.assert_allclose(_update(state_lib.optimizer("adam", 0.1), params, zero)["w"], 0.0)
  # Adam's first step is -lr x sign(g) (up to eps); the betas are passed through.
  grads = {"w": jnp.full((4, 3), 0.5)}
  np.testing.assert_allclose(_update(state_lib.optimizer("adam", 0.1, b1=0.5, b2=0.9), params, grads)["w"],
                             -0.1, rtol=1e-5)
  adafactor = _update(state_lib.optimizer("adafactor", 0.1), params, grads)["w"]
  assert adafactor.shape == (4, 3) and bool(jnp.all(adafactor < 0))
  with pytest.raises(ValueError, match="adamw"):
    state_lib.optimizer("adam", 0.1, weight_decay=0.01)


def test_moving_average_follows_its_definition():
  decay = 0.9
  state = state_lib.EmaTrainState.create(apply_fn=None, params={"w": jnp.zeros(3)}, tx=optax.sgd(1.0),
                                         ema_params={"w": jnp.zeros(3)}, ema_decay=decay)
  expected = np.zeros(3)
  for g in (1.0, -2.0, 0.5):
    state = state.apply_gradients(grads={"w": jnp.full(3, g)})
    expected = decay * expected + (1 - decay) * np.asarray(state.params["w"])
  np.testing.assert_allclose(state.ema_params["w"], expected, rtol=1e-6)
  assert state_lib.evaluation_params(state) is state.ema_params


def test_a_moving_average_too_slow_for_the_run_is_pointed_out():
  note = state_lib.moving_average_note(0.999, 215)  # a one-hour recipe's decay in a 5-minute run
  assert note.startswith("note: with --ema_decay=0.999") and "81% of the initial parameters after 215 steps" in note
  suggested = float(note.split("--ema_decay=")[-1].split()[0])
  assert suggested ** 215 <= 0.05 < 0.999 ** 215
  assert state_lib.moving_average_note(0.999, 3500) is None  # 3% left: fine
  assert state_lib.moving_average_note(0.0, 10) is None  # no average


def test_mean_params_is_the_elementwise_mean():
  a = {"x": jnp.array([1.0, 2.0]), "y": {"z": jnp.array([[0.0]], jnp.bfloat16)}}
  b = {"x": jnp.array([3.0, 6.0]), "y": {"z": jnp.array([[1.0]], jnp.bfloat16)}}
  mean = averaging.mean_params([a, b])
  np.testing.assert_allclose(mean["x"], [2.0, 4.0])
  assert mean["y"]["z"].dtype == jnp.bfloat16 and float(mean["y"]["z"][0, 0]) == 0.5


def test_init_from_and_ensemble_name_a_checkpoint():
  assert workdir.parse_workdir_reference("runs/a") == ("runs/a", "latest")
  assert workdir.parse_workdir_reference("runs/a", default=30) == ("runs/a", 30)
  assert workdir.parse_workdir_reference("runs/a:1200") == ("runs/a", 1200)
  assert workdir.parse_workdir_reference("runs/a:best") == ("runs/a", "best")
  assert workdir.parse_workdir_reference("C:/x:latest") == ("C:/x", "latest")


# --- one trained run with a moving average and a best checkpoint ----------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  """A tiny run: checkpoints every 10 steps (all kept), validation loss every 10, EMA 0.9."""
  w = str(tmp_path_factory.mktemp("checkpoints") / "run")
  run("train", f"--workdir={w}", f"--data_dir={data_dir}", f"--num_train_steps={STEPS}",
      "--checkpoint_every_steps=10", "--eval_every_steps=10", "--keep_checkpoints=4", "--ema_decay=0.9",
      "--best_metric=loss", *TINY)
  return w


def _params(w, checkpoint, use_ema=True):
  manager, step = workdir.select_checkpoint(w, checkpoint)
  return step, workdir.restore_params(manager, step, use_ema)


def _equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_best_checkpoint_is_the_best_validated_one(trained):
  with open(os.path.join(trained, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  losses = {r["step"]: r["validation/loss"] for r in records if "validation/loss" in r}
  assert sorted(losses) == [10, 20, 30, 40]  # every --eval_every_steps and the last step
  best_step = min(losses, key=lambda s: (losses[s], s))
  step, best = _params(trained, "best")
  assert step == best_step
  assert _equal(best, _params(trained, best_step)[1])  # the parameters validated: the moving average
  with open(os.path.join(trained, "results.json")) as f:
    assert json.load(f)["best_checkpoint"] == {"step": best_step, "metric": "loss", "value": losses[best_step]}


def test_moving_average_is_kept_beside_the_parameters(trained):
  _, ema = _params(trained, "latest")
  _, raw = _params(trained, "latest", use_ema=False)
  assert not _equal(ema, raw)
  evaluated = json.loads(run("evaluate", f"--workdir={trained}", "--checkpoint=best", "--max_examples=8").stdout)
  assert evaluated["step"] == _params(trained, "best")[0]


def test_an_ensemble_member_at_its_own_checkpoint(trained, tmp_path):
  """--ensemble=W:STEP scores with that member at STEP, whatever --checkpoint says."""
  pairs = tmp_path / "pairs.tsv"
  pairs.write_text("overseers\tOW V ER S IY ER Z\ndispute\tD IH S P Y UW T\n")
  def scores(*flags):  # the summed log-prob of each pair
    out = run("decode", f"--workdir={trained}", f"--score_file={pairs}", *flags).stdout
    return np.array([float(line.split("\t")[-1]) for line in out.splitlines()])
  at_20, at_40 = scores("--checkpoint=20"), scores("--checkpoint=40")
  assert np.abs(at_20 - at_40).min() > 1e-2  # the two checkpoints score differently, so the step shows
  np.testing.assert_allclose(scores("--checkpoint=20", f"--ensemble={trained}:20"), at_20, atol=1e-4)  # with itself
  np.testing.assert_allclose(scores("--checkpoint=40", f"--ensemble={trained}"), at_40, atol=1e-4)  # --checkpoint
  mixed = scores("--checkpoint=40", f"--ensemble={trained}:20")
  assert np.abs(mixed - at_20).min() > 1e-3 and np.abs(mixed - at_40).min() > 1e-3


def test_averaging_two_checkpoints_gives_their_mean(trained, tmp_path):
  out = str(tmp_path / "avg")
  run("average", f"--workdir={trained}", "--steps=20,40", f"--output_workdir={out}")
  step, averaged = _params(out, "latest")
  assert step == 40
  expected = jax.tree.map(lambda a, b: (a + b) / 2, _params(trained, 20, False)[1], _params(trained, 40, False)[1])
  for x, y in zip(jax.tree.leaves(averaged), jax.tree.leaves(expected)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
  _, source_vocab, target_vocab = workdir.load(out)  # a workdir like any other, but not to be trained on
  with pytest.raises(UsageError, match="averaged parameters"):
    workdir.prepare(TrainConfig(workdir=out), (source_vocab, target_vocab))


def test_fine_tuning_starts_from_the_parameters_it_names(trained, tmp_path, data_dir):
  tuned = str(tmp_path / "tuned")
  # A learning rate of 0: the parameters after training are the ones fine-tuning started from.
  run("train", f"--workdir={tuned}", f"--data_dir={data_dir}", f"--init_from={trained}:20", "--num_train_steps=2",
      "--schedule=constant", "--learning_rate=0", "--warmup_steps=1", "--batch_size=64", "--length_buckets=32",
      "--max_test_examples=8", "--eval_every_steps=100")
  assert _equal(_params(tuned, "latest", use_ema=False)[1], _params(trained, 20)[1])
  assert list(workdir.metric_history(tuned, "validation/loss")) == [2]  # the last step is validated too
  with open(os.path.join(tuned, "config.json")) as f:
    assert json.load(f)["model_hparams"]["d_model"] == 32  # the model flags of the run it starts from


@pytest.mark.parametrize("flags,message", [
    pytest.param(["--d_model=64"], "has shape", marks=pytest.mark.slow),
    (["--dataset=reverse"], "does not fit that run's vocabulary"),
])
def test_fine_tuning_refuses_another_shape_or_vocabulary(trained, tmp_path, data_dir, flags, message):
  w = str(tmp_path / "refused")
  proc = run("train", f"--workdir={w}", f"--data_dir={data_dir}", f"--init_from={trained}", *flags, check=False)
  assert proc.returncode == 2 and message in proc.stderr.strip().splitlines()[-1]
  assert not os.path.exists(os.path.join(w, "config.json"))


def test_metric_history_reads_one_metric_by_step(tmp_path):
  records = [{"step": 100, "train/loss": 2.0}, {"step": 500, "validation/nll": 0.7, "validation/wer": 0.5},
             {"step": 1000, "validation/nll": 0.4}, {"step": 1000, "test/nll": 0.45}]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  assert workdir.metric_history(str(tmp_path), "validation/nll") == {500: 0.7, 1000: 0.4}
  assert workdir.metric_history(str(tmp_path), "test/nll") == {1000: 0.45}
  assert workdir.metric_history(str(tmp_path), "validation/bleu") == {}
