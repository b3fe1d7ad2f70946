# Sourced by vs_peers.sh and gpu.sh: one JSON line per measurement, tagged for table.py.
# ONLY (a bash regular expression on "GROUP: ROW", e.g. '^beam 4: ') runs only the rows it matches.
row() {  # row GROUP ROW COMMAND...: the command's JSON line (its last stdout line) with group, row and $round added
  local group=$1 name=$2
  shift 2
  if [ -n "${ONLY:-}" ] && ! [[ "$group: $name" =~ $ONLY ]]; then
    return 0
  fi
  "$@" | python -c 'import json, sys
d = json.loads(sys.stdin.read().strip().splitlines()[-1])
d.update(group=sys.argv[1], row=sys.argv[2], round=int(sys.argv[3]))
print(json.dumps(d), flush=True)' "$group" "$name" "$round"
}
