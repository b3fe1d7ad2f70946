r"""A study's finished runs kept in one committed JSON file, so that its table can be rewritten, and
its sweep resumed, on a machine whose `runs/` directory is gone.

  python -m experiments.run_archive save --out_dir=runs/STUDY --archive=experiments/STUDY/runs.json \
      [--metric=validation/nll] [--also=averaged/{name}.test.json]
  python -m experiments.run_archive restore --archive=experiments/STUDY/runs.json --out_dir=runs/STUDY

The archive maps each run name of the sweep (`base,seed=0`, ...) to the files a report reads, by
their path under the sweep directory: `NAME/results.json`, `NAME/metrics.jsonl` (only the step and
the --metric values, as a list of records) and each --also file.  `save` adds or replaces the
finished runs of --out_dir (those with a results.json) and keeps the archived runs it does not have;
`restore` writes the files of every archived run that --out_dir has no directory for, so the sweep
skips it as finished; it never overwrites a file, and leaves a run directory that exists (an
interrupted training of that run, which the sweep resumes) as it is.  Checkpoints are never archived: a restored run
can be reported, not averaged or decoded again.
"""

import argparse
import json
import os
import tempfile

from experiments import study_report
from seq2seq_jax import workdir


def run_files(out_dir: str, name: str, metrics: list[str], also: list[str]) -> dict[str, object]:
  """Path under out_dir -> content of the files of run `name` that an archive keeps."""
  with open(os.path.join(out_dir, name, "results.json")) as f:
    files = {f"{name}/results.json": json.load(f)}
  records = []
  metrics_path = os.path.join(out_dir, name, "metrics.jsonl")
  if os.path.exists(metrics_path):
    with open(metrics_path) as f:
      for line in f:
        record = json.loads(line)
        kept = {key: record[key] for key in metrics if key in record}
        if kept:
          records.append({"step": record["step"], **kept})
  files[f"{name}/metrics.jsonl"] = records
  for pattern in also:
    path = pattern.format(name=name)
    if os.path.exists(os.path.join(out_dir, path)):
      with open(os.path.join(out_dir, path)) as f:
        files[path] = json.load(f)
  return files


def load(archive: str) -> dict[str, dict[str, object]]:
  """Run name -> its archived files; {} when the archive does not exist yet."""
  if not os.path.exists(archive):
    return {}
  with open(archive) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as error:
      raise SystemExit(f"{archive}: not a run archive ({error}); restore it with git checkout") from None


def save(out_dir: str, archive: str, metrics: list[str], also: list[str]) -> list[str]:
  """Adds (or replaces) every finished run of out_dir in the archive; returns their names."""
  runs = load(archive)
  names = study_report.finished_run_names(out_dir)
  for name in names:
    runs[name] = run_files(out_dir, name, metrics, also)
  workdir.write_json_atomic(archive, runs)
  return names


def write_file(path: str, content) -> None:
  """An archived file back on disk: a list of records as JSON lines (.jsonl), else one JSON value."""
  if not path.endswith(".jsonl"):
    workdir.write_json_atomic(path, content)
    return
  with open(path + ".tmp", "w") as f:
    f.writelines(json.dumps(record) + "\n" for record in content)
  os.replace(path + ".tmp", path)


def restore(archive: str, out_dir: str) -> list[str]:
  """Writes the files of each archived run out_dir has no directory for; returns their names."""
  restored = []
  for name, files in sorted(load(archive).items()):
    if os.path.exists(os.path.join(out_dir, name)):
      continue
    # The run directory is written aside and renamed into place: a restore that is interrupted
    # leaves no half-restored run for the sweep to take as finished or to train into.
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(dir=out_dir, prefix=".restoring-")
    for path, content in files.items():
      inside_run = path.startswith(name + "/")
      target = os.path.join(staging, path[len(name) + 1:]) if inside_run else os.path.join(out_dir, path)
      if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        write_file(target, content)
    os.replace(staging, os.path.join(out_dir, name))
    restored.append(name)
  return restored


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("action", choices=["save", "restore"])
  parser.add_argument("--out_dir", required=True, help="The sweep directory.")
  parser.add_argument("--archive", required=True, help="The archive's JSON file.")
  parser.add_argument("--metric", action="append", default=[], help="A metrics.jsonl value to keep (save; repeatable).")
  parser.add_argument("--also", action="append", default=[],
                      help="Another file of each run to keep, its path under --out_dir with {name} for the run (save; repeatable).")
  args = parser.parse_args()
  if args.action == "save":
    if not os.path.isdir(args.out_dir):
      raise SystemExit(f"{args.out_dir}: no such sweep directory; nothing to archive")
    names = save(args.out_dir, args.archive, args.metric, args.also)
    print(f"{args.archive}: {len(names)} finished runs of {args.out_dir} archived")
  else:
    names = restore(args.archive, args.out_dir)
    print(f"{args.out_dir}: {len(names)} archived runs restored from {args.archive}" + (f" ({', '.join(names)})" if names else ""))


if __name__ == "__main__":
  main()
