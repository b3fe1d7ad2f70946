"""One run of a sweep inside a SLURM array task:

  python -m experiments.sweep.task WORKDIR -- python -m experiments.train ... --workdir=WORKDIR

Runs the command as the local launcher does (output appended to WORKDIR/log.txt, exit recorded in
WORKDIR/status.json) and passes SIGTERM and SIGINT on to it, so that a preempted or cancelled task
(`scancel`, `--signal=B:TERM@...`) lets training save a checkpoint and still records how it ended.
Exits with the command's status.
"""

import signal
import sys
import threading

from experiments.sweep import launch


def main(argv: list) -> int:
  if len(argv) < 4 or argv[2] != "--":
    print(__doc__, file=sys.stderr)
    return 2
  workdir, command = argv[1], argv[3:]
  processes, lock = set(), threading.Lock()

  def forward(signum, frame):
    del frame
    with lock:
      for proc in processes:
        proc.send_signal(signum)

  for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, forward)
  returncode, _, _ = launch.launch(command, workdir, processes, lock)
  return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
  sys.exit(main(sys.argv))
