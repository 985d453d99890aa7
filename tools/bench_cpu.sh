#!/usr/bin/env bash
# Instructions per second of audio for one source's decode -> jitter buffer -> resampler -> ring
# path (issue #18), with the resampler bypass on and off, counted by callgrind (stable on these
# machines, unlike time). Each figure is (I(long) - I(short)) / (long - short seconds), so the
# set-up and the start-up trim cancel and what remains is steady playing. The drift loop's
# quality in each mode is printed from the long run (bench_source_cpu's line).
# Usage: tools/bench_cpu.sh [BUILD_DIR]   (default build; needs valgrind)
set -euo pipefail
build=${1:-build}
bench=$build/tests/bench_source_cpu
short=10
long=40
count() {  # codec bypass seconds -> instructions
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bench" --codec "$1" --bypass "$2" \
    --seconds "$3" 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-6s %-7s %16s\n' codec bypass "M instr / s audio"
for codec in opus l16 pcmu; do
  for bypass in off on; do
    a=$(count "$codec" "$bypass" $short)
    b=$(count "$codec" "$bypass" $long)
    awk -v a="$a" -v b="$b" -v c="$codec" -v m="$bypass" -v d=$((long - short)) \
      'BEGIN { printf "%-6s %-7s %16.1f\n", c, m, (b - a) / d / 1e6 }'
  done
done
echo
for bypass in off on; do "$bench" --codec opus --bypass "$bypass" --seconds 300; done
