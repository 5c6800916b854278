#!/usr/bin/env bash
# Answer re-registered claims from a clean clone, each result committed with the command that made it.
#
#   bash scripts/rerun_claims.sh CLONE STORE NAME...     # e.g. /tmp/run /tmp/store prenorm-vs-postnorm
#
# For each NAME (a spec in experiments/, moved there from docs/preregistered in its own commit): CLONE is reset to
# this repository's main, the earlier version's results (docs/results/NAME: they no longer match the spec) are
# removed, each setting's pilot writes its budget into the spec (`labbench pilot NAME --setting S --write-profile`, the
# standard arm alone), that is committed; then `labbench reproduce NAME --profile quick` answers every setting and the
# report is committed; the branch `done-NAME` marks the result, for a merge into main. A committed report's runs thus
# come from a committed spec and code (the commit message names both commands and the clone's hash), never from a
# working tree with uncommitted changes. STORE keeps the runs (run ids are content hashes), so an interrupted queue
# resumes where it stopped; a failure stops the queue and names the step. CLONE needs an environment that runs its
# own code: LABBENCH (default CLONE/.venv/bin/labbench), e.g. a venv with `pip install --no-deps -e CLONE`.
set -uo pipefail
[ $# -ge 3 ] || { echo "usage: rerun_claims.sh CLONE STORE NAME..."; exit 2; }
clone=$(realpath -m "$1")
store=$(realpath -m "$2")
shift 2
repo=$(cd "$(dirname "$0")/.." && pwd)
labbench=$(realpath -m "${LABBENCH:-$clone/.venv/bin/labbench}")
[ -d "$clone/.git" ] || git clone -q "$repo" "$clone" || { echo "cannot clone $repo into $clone"; exit 1; }
mkdir -p "$store"

commit() {  # commit what is staged, or say why not (nothing changed: the runs gave back what main has)
  if git diff --cached --quiet; then echo "$name: $1 changed nothing against main: not committed"; return 1; fi
  git commit -q -m "$2" || { echo "$name: committing the $1 failed"; return 1; }
}

for name in "$@"; do
  cd "$clone" || exit 1
  git fetch -q -f "$repo" main:refs/remotes/source/main && git checkout -q -f -B "run-$name" refs/remotes/source/main \
    && git clean -fdq || { echo "$name: cannot reset $clone to main"; exit 1; }
  git branch -D "done-$name" >/dev/null 2>&1  # an earlier run's result must not outlive a failed re-run
  base=$(git rev-parse --short HEAD)
  listed=$("$labbench" list --json) || { echo "$name: labbench list failed"; exit 1; }
  settings=$(printf '%s' "$listed" | python3 -c "
import json, sys
spec = [s for s in json.load(sys.stdin) if s['name'] == sys.argv[1]]
print(' '.join(spec[0].get('settings') or []) if spec else sys.exit(1))" "$name") || { echo "$name: not a spec in experiments/"; exit 1; }
  echo "$(date +%T) $name: settings ${settings:-(none)} (from $base)"
  git rm -rq --ignore-unmatch "docs/results/$name"
  if [ -n "$settings" ]; then
    for s in $settings; do
      echo "$(date +%T) pilot $name $s"
      "$labbench" pilot "$name" --setting "$s" --out "$store" --no-wandb --report-dir "docs/results/$name/pilot/$s" --write-profile --jobs 2 \
        || { echo "pilot $name $s failed"; exit 1; }
    done
    what="each setting's budget from the spec's pilot arm alone: labbench pilot $name --setting S --out <store> --no-wandb --report-dir docs/results/$name/pilot/S"
  else
    echo "$(date +%T) pilot $name"
    "$labbench" pilot "$name" --out "$store" --no-wandb --report-dir "docs/results/$name/pilot" --write-profile --jobs 2 \
      || { echo "pilot $name failed"; exit 1; }
    what="its budget from the spec's pilot arm alone: labbench pilot $name --out <store> --no-wandb --report-dir docs/results/$name/pilot"
  fi
  git add -A experiments "docs/results/$name"
  commit pilots "$name pilots, $what --write-profile --jobs 2, from a clean clone at $base" || exit 1
  piloted=$(git rev-parse --short HEAD)
  echo "$(date +%T) reproduce $name"
  "$labbench" reproduce "$name" --profile quick --jobs 2 --out "$store" --no-wandb --report-dir "docs/results/$name/quick" \
    || { echo "reproduce $name failed"; exit 1; }
  git add -A "docs/results/$name"
  commit report "$name quick report: labbench reproduce $name --profile quick --jobs 2 --out <store> --no-wandb --report-dir docs/results/$name/quick, from a clean clone at $piloted" || exit 1
  git branch -f "done-$name" HEAD
  echo "$(date +%T) done $name: merge with  git fetch $clone done-$name && git merge FETCH_HEAD"
done
