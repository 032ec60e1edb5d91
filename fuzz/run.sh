#!/usr/bin/env bash
# Runs the cargo-fuzz targets one at a time, each for FUZZ_TIME seconds (default 600), at the
# lowest CPU priority, with a 256 MiB memory limit (more is a finding) and an input size suited
# to each parser. New inputs go to fuzz/corpus-run/<target>/ (not committed); findings go to
# fuzz/artifacts/<target>/, logs with the final statistics to fuzz/logs/<target>.log.
#
# Usage: fuzz/run.sh [TARGET...]      (all targets when none is named)
set -euo pipefail
cd "$(dirname "$0")"

time="${FUZZ_TIME:-600}"
all="matrix lock lock_fields image_references release_metadata dtk graph layer verify_scan modinfo image_fs"
targets="${*:-$all}"

max_len() {
    case "$1" in
        release_metadata | dtk | lock_fields) echo 1024 ;;
        matrix | lock | image_references | graph) echo 8192 ;;
        modinfo) echo 16384 ;;
        layer | verify_scan | image_fs) echo 65536 ;;
        *) echo 4096 ;;
    esac
}

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
nice -n 19 cargo +nightly fuzz build
mkdir -p logs
for t in $targets; do
    mkdir -p "corpus-run/$t"
    echo "== $t: ${time}s, max_len $(max_len "$t")"
    # AddressSanitizer keeps 256 MiB of freed memory in quarantine by default, which would count
    # against the memory limit as if the parser held it.
    ASAN_OPTIONS="quarantine_size_mb=16${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
        nice -n 19 cargo +nightly fuzz run "$t" "corpus-run/$t" "corpus/$t" -- \
        -max_total_time="$time" -rss_limit_mb=256 -max_len="$(max_len "$t")" -timeout=10 \
        -print_final_stats=1 2>&1 | tee "logs/$t.log" | grep -E '^(#[0-9]+.*(pulse|DONE)|Done |==|stat::number_of_executed_units|SUMMARY|.*panicked)' || true
done
