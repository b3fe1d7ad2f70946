"""experiments.decode as a filter: standard input in, one output line per input line, each written
as soon as it is decoded; a line the model cannot take is an error line and an empty output."""

import os
import queue
import signal
import subprocess
import threading

import pytest

from conftest import REPO
from test_train_entry_point import command

TINY = ["--d_model=32", "--num_heads=2", "--d_ff=64", "--num_layers=1", "--num_train_steps=20",
        "--batch_size=16", "--max_test_examples=8", "--max_eval_examples=8", "--eval_every_steps=100",
        "--checkpoint_every_steps=20", "--warmup_steps=5", "--length_buckets=32"]
# Two host devices: the filter decodes each line on one of them, the file mode splits batches over both.
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
TIMEOUT = 300


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, data_dir):
  """A tiny trained workdir (its outputs need not be good, only real)."""
  path = str(tmp_path_factory.mktemp("filter"))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run(command("train", f"--workdir={path}", f"--data_dir={data_dir}", *TINY), cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=TIMEOUT)
  assert proc.returncode == 0, f"training failed:\n{proc.stderr[-3000:]}"
  return path


def start(workdir, *flags, env=ENV):
  """experiments.decode on `workdir`, started, with pipes for its standard streams."""
  return subprocess.Popen(command("decode", f"--workdir={workdir}", *flags), cwd=REPO, env=env, text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, stdin=""):
  """(stdout, stderr) of a started process given `stdin` and then the end of its input."""
  try:
    return proc.communicate(stdin, timeout=TIMEOUT)
  finally:
    proc.kill()


def decode(workdir, *flags, stdin=""):
  """(returncode, stdout, stderr) of experiments.decode on `workdir` given `stdin`."""
  proc = start(workdir, *flags)
  stdout, stderr = finish(proc, stdin)
  return proc.returncode, stdout, stderr


def read_line(stream, timeout=TIMEOUT):
  """The next line of `stream` without its newline; fails after `timeout` seconds without one."""
  lines = queue.Queue()
  threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
  try:
    line = lines.get(timeout=timeout)
  except queue.Empty:
    raise AssertionError(f"no output line within {timeout} s") from None
  assert line.endswith("\n"), f"the output ended instead: {line!r}"
  return line[:-1]


def test_one_line_from_a_pipe_gives_one_output_line_as_with_inputs(workdir):
  given, piped = start(workdir, "--inputs=hello"), start(workdir)  # side by side
  (given_out, given_err), (piped_out, piped_err) = finish(given), finish(piped, "hello\n")
  assert given.returncode == 0, given_err[-3000:]
  assert piped.returncode == 0, piped_err[-3000:]
  assert piped_out.splitlines() == [given_out.splitlines()[0].split("\t")[1]]


def test_a_session_decodes_as_the_input_file_does_each_output_before_the_next_line(workdir, tmp_path):
  """A person's session: a word, its output, then more words, one of them empty and one out of
  vocabulary.  With compiles logged, the error for the empty second line marks in stderr where the
  first line's work ended: the lines after it compile nothing."""
  nbest = ["--beam_size=2", "--nbest=2"]
  words = tmp_path / "words.txt"
  words.write_text("hello\nworld\nknight\n")
  from_file = start(workdir, f"--input_file={words}", f"--output_file={tmp_path / 'out.txt'}", *nbest)
  session = start(workdir, *nbest, env=dict(ENV, JAX_LOG_COMPILES="1"))
  try:
    session.stdin.write("hello\n")
    session.stdin.flush()
    first = read_line(session.stdout)  # before the input ends
  finally:
    rest, stderr = finish(session, "\nworld\nb@d\nknight\n")  # then it ends
  _, file_err = finish(from_file)
  assert from_file.returncode == 0, file_err[-3000:]
  hello, world, knight = (tmp_path / "out.txt").read_text().splitlines()
  assert " | " in hello

  assert session.returncode == 1 and "Traceback" not in stderr
  assert [first, *rest.splitlines()] == [hello, "", world, "", knight]
  errors = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert errors == ["error: line 2: input is empty",
                    "error: line 4: 'b@d' contains symbols outside the vocabulary: '@'"]
  assert "Compiling" in stderr  # the logging is on
  after_first = stderr[stderr.index(errors[0]):]
  assert "Compiling" not in after_first, after_first[:3000]


@pytest.mark.slow
def test_ctrl_c_ends_the_filter_without_a_traceback(workdir):
  proc = start(workdir)
  try:
    proc.stdin.write("hello\n")
    proc.stdin.flush()
    assert read_line(proc.stdout)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=TIMEOUT)  # before its input ends
  finally:
    _, stderr = finish(proc, None)
  assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]


@pytest.mark.parametrize("flag", ["--plot_attention=plots", "--output_file=out.txt"])
def test_flags_for_a_list_of_inputs_are_refused_with_stdin(workdir, tmp_path, flag):
  name, value = flag.split("=")
  returncode, stdout, stderr = decode(workdir, f"{name}={tmp_path / value}", stdin="hello\n")
  assert returncode == 2 and stdout == ""
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "--inputs or --input_file" in last
  assert not (tmp_path / value).exists()
