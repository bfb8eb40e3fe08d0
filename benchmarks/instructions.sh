#!/usr/bin/env bash
# Instructions per call of one bench_rpc.py workload, counted by valgrind's callgrind: the run of
# 6,000 calls minus the run of 2,000, divided by 4,000, so start-up and teardown cancel out.
# Instruction counts do not depend on the machine's load, so two trees can be compared on a busy
# machine where wall-clock figures cannot (docs/performance.md quotes them as "callgrind").
#
#   PYTHONHASHSEED=0 bash benchmarks/instructions.sh WORKLOAD [PYTHON]
#
# Run it from the repository root. WORKLOAD is one of bench_rpc.py's (seq-noop, seq-increment,
# conc-increment, seq-fetch, conc-fetch); PYTHON defaults to .venv/bin/python. PYTHONHASHSEED=0
# makes two runs of the same tree give the same count. Needs valgrind.
set -euo pipefail
workload=$1
python=${2:-.venv/bin/python}
count() {
    local out
    out=$(mktemp -d)
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
        "$python" benchmarks/bench_rpc.py --only "$workload" --calls "$1" --repeats 1 >/dev/null 2>"$out/err"
    grep -E "Collected" "$out/err" | awk '{print $4}'
    rm -rf "$out"
}
few=$(count 2000)
many=$(count 6000)
echo "$workload $(((many - few) / 4000))"
