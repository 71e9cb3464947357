#!/usr/bin/env bash
# Fuzzes every target (or those named) with AFL++ through afl.rs, on the stable toolchain.
#   bash fuzz/run.sh                 bounded run, as CI does: 10 s per target, at most 64 seeds each
#   bash fuzz/run.sh 3600 session    long run: one hour on `session`, with all its seeds
#   FUZZ_SECONDS=600 FUZZ_SEEDS_MAX=0 bash fuzz/run.sh   the same for every target (0: all seeds)
# Installs cargo-afl (from crates.io; it builds AFL++'s runtime for this rustc) when missing,
# replays every seed and saved regression first (plain `cargo test`), then fuzzes. Fails when any
# target found a crash: the inputs are left in fuzz/target/afl/TARGET/out/default/crashes/,
# replay one with `cargo run --manifest-path fuzz/Cargo.toml -- TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-${FUZZ_SECONDS:-10}}"
[ $# -gt 0 ] && shift
targets=("$@")
max_seeds="${FUZZ_SEEDS_MAX:-64}"
# A long run takes every seed unless told otherwise.
if [ "$secs" -gt 60 ] && [ -z "${FUZZ_SEEDS_MAX:-}" ]; then max_seeds=0; fi

if ! command -v cargo-afl >/dev/null 2>&1; then
    cargo install cargo-afl --locked
fi
# Builds AFL++ once per rustc; says so (and changes nothing) when it is there already.
cargo afl config --build >/dev/null 2>&1 || true

cargo test --quiet
cargo afl build --release --features afl --quiet
bin="$PWD/target/release/rsmtpd-fuzz"
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <("$bin" list | awk '{print $1}')

out="${FUZZ_OUT:-$PWD/target/afl}"
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 \
    AFL_SUPPRESS_AFL_DEBUG=1 AFL_QUIET=1
failed=()
for t in "${targets[@]}"; do
    dir="$out/$t"
    rm -rf "$dir/seeds" "$dir/out"
    mkdir -p "$dir/seeds"
    "$bin" seeds "$t" "$dir/all-seeds" >/dev/null
    # An even sample of the seeds (AFL++ calibrates each before fuzzing), and every regression.
    mapfile -t all < <(ls "$dir/all-seeds" | sort)
    step=1
    if [ "$max_seeds" -gt 0 ] && [ "${#all[@]}" -gt "$max_seeds" ]; then
        step=$(( (${#all[@]} + max_seeds - 1) / max_seeds ))
    fi
    for ((i = 0; i < ${#all[@]}; i += step)); do cp "$dir/all-seeds/${all[$i]}" "$dir/seeds/"; done
    rm -rf "$dir/all-seeds"
    if [ -d "regressions/$t" ]; then cp regressions/"$t"/* "$dir/seeds/" 2>/dev/null || true; fi
    echo "fuzz: $t for ${secs}s on $(ls "$dir/seeds" | wc -l) seeds"
    cargo afl fuzz -V "$secs" -i "$dir/seeds" -o "$dir/out" -- "$bin" "$t" >"$dir/afl.log" 2>&1 || {
        echo "fuzz: afl-fuzz failed on $t:"; tail -20 "$dir/afl.log"; failed+=("$t"); continue; }
    stats="$dir/out/default/fuzzer_stats"
    execs=$(awk -F: '/^execs_done/ {gsub(/ /,"",$2); print $2}' "$stats" 2>/dev/null || echo '?')
    paths=$(awk -F: '/^corpus_count/ {gsub(/ /,"",$2); print $2}' "$stats" 2>/dev/null || echo '?')
    crashes=$(find "$dir/out/default/crashes" -name 'id:*' 2>/dev/null | wc -l)
    hangs=$(find "$dir/out/default/hangs" -name 'id:*' 2>/dev/null | wc -l)
    echo "fuzz: $t: $execs runs, corpus $paths, $crashes crashes, $hangs hangs"
    if [ "$crashes" -gt 0 ]; then
        failed+=("$t")
        for c in "$dir"/out/default/crashes/id:*; do
            echo "fuzz: $t crash $c:"
            "$bin" "$t" "$c" 2>&1 | grep -m3 -E 'panicked|overflow|index|assert' || true
        done
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (add each input under fuzz/regressions/TARGET/ and a test in the crate it hits)"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
