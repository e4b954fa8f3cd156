#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on stable Rust, and
# exits non-zero as soon as one finds a crash (the input is saved under
# fuzz/artifacts/<target>/).
#
#   fuzz/run.sh 20                  # 20 s per target
#   FUZZ_SANITIZER=none fuzz/run.sh  # without AddressSanitizer
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module);
# RUSTC_BOOTSTRAP=1 lets the stable compiler accept them. The builds and
# the new inputs found during a run go to fuzz/target/ (corpus/<target>/ in
# it; ignored by git) — or to $CARGO_TARGET_DIR/fuzz/ when CARGO_TARGET_DIR
# is set; the seed corpus in fuzz/corpus/<target>/ is only read.
set -euo pipefail
# Keep fuzz builds (different RUSTFLAGS) out of the workspace's target dir.
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    target_dir="$(realpath -m "$CARGO_TARGET_DIR")/fuzz"
else
    target_dir="$(realpath -m "$(dirname "$0")/target")"
fi

secs="${1:-60}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: $0 [SECONDS-PER-TARGET]" >&2
    exit 2
fi
sanitizer="${FUZZ_SANITIZER:-address}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1

for target in $(cargo fuzz list); do
    work="$target_dir/corpus/$target"
    mkdir -p "$work" "corpus/$target"
    echo "== fuzzing $target for ${secs}s (sanitizer: $sanitizer)" >&2
    cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$target" \
        "$work" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
done
echo "== all fuzz targets ran ${secs}s without a crash" >&2
