#!/usr/bin/env bash
# Mutation testing of the security- and failover-critical files named in
# .cargo/mutants.toml, with the end-to-end Cucumber suite as the test.
# Outside CI on purpose: on 2 cores a full run takes many hours.
#
#   ci/mutants.sh [MODE] [--file PATH]... [--re REGEX]... [--shard K/N]
#                 [--features GLOB] [--no-baseline] [-- CARGO-MUTANTS-ARGS...]
#
# MODE (default: two passes)
#   (none)    pass 1 (fast): the crates' unit tests (gantry-gateway,
#             gantry-auth, gantry-common) against every selected mutant;
#             pass 2 (e2e): exactly the mutants pass 1 missed or timed out,
#             against the end-to-end suite (`cargo test --test bdd`).
#   --fast    pass 1 only.
#   --e2e     one pass with the configured test (e2e suite + unit tests) for
#             every selected mutant: the slowest, most literal run.
#   --list    list the selected mutants and count them; builds nothing.
#
# Selection (mutant names look like
#   reference-services/gateway/src/headers.rs:34:5: replace strip_hop_by_hop with ()
# as shown by --list):
#   --file PATH   only mutants in PATH (repeatable). The configured file list
#                 cannot be narrowed by cargo-mutants' own --file (it adds to
#                 it), so this becomes a --re anchored on the path.
#   --re REGEX    only mutants whose name matches (repeatable; with --file,
#                 the name must match one file and one regex).
#   --shard K/N   the K-th of N slices (0-based), to split a run over days or
#                 machines; each slice's results land in its own directory.
#   --features G  narrow the e2e suite to the feature files matching the glob
#                 G, e.g. 'features/{revocation,sessions}.feature' (cucumber's
#                 --input); the e2e run then runs only `--test bdd`.
#   --no-baseline skip the unmutated baseline runs (then every mutant's test
#                 gets MUTANTS_MIN_TIMEOUT seconds).
#   -- ARGS       passed to cargo-mutants as they are, e.g. `-- --in-place`
#                 (mutate this tree instead of a copy: only in a spare clone).
#
# Output: target/mutants/<pass>[-shard-K-of-N]/mutants.out/ with caught.txt,
# missed.txt, timeout.txt, unviable.txt, outcomes.json, diff/ and log/ (the
# build and test output of each mutant). Counts are printed at the end.
#
# The end-to-end pass's unmutated baseline must pass; its time x4 (at least
# MUTANTS_MIN_TIMEOUT) is each mutant's test timeout. A bare
# `cargo mutants --workspace` uses .cargo/mutants.toml as it stands (every
# configured mutant, e2e suite plus unit tests each: many hours).
#
# Environment: CARGO_TARGET_DIR (default target/mutants/build, kept between
# runs so only the workspace's crates rebuild), NICE (default 19: the runs
# yield to everything else on the machine), MUTANTS_MIN_TIMEOUT (default 600).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=two-pass
files=()
res=()
shard=
features=
extra=()
baseline=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --fast) mode=fast ;;
        --e2e) mode=e2e ;;
        --list) mode=list ;;
        --file) files+=("$2"); shift ;;
        --re) res+=("$2"); shift ;;
        --shard) shard=$2; shift ;;
        --features) features=$2; shift ;;
        --no-baseline) baseline=(--baseline=skip --timeout=900) ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "mutants.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if ! cargo mutants --version >/dev/null 2>&1; then
    echo "mutants.sh: needs cargo-mutants: cargo install --locked cargo-mutants" >&2
    exit 2
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/mutants/build}
nice=(nice -n "${NICE:-19}")

# Regex-escapes a literal (mutant names and paths hold . ( ) [ ] { } etc).
escape() { sed 's/[][\\.+*?(){}|^$]/\\&/g' <<<"$1"; }
join() { local IFS='|'; echo "$*"; }

selection=()
if [[ ${#files[@]} -gt 0 ]]; then
    escaped=()
    for f in "${files[@]}"; do escaped+=("$(escape "${f#./}")"); done
    if [[ ${#res[@]} -gt 0 ]]; then
        selection+=(--re "^(?:$(join "${escaped[@]}")):.*(?:$(join "${res[@]}"))")
    else
        selection+=(--re "^(?:$(join "${escaped[@]}")):")
    fi
else
    for r in "${res[@]}"; do selection+=(--re "$r"); done
fi
[[ -n $shard ]] && selection+=(--shard "$shard")
suffix=${shard:+-shard-${shard/\//-of-}}

# The unit tests of the crates that hold the configured files. They take
# seconds; a mutant that makes one wait forever (some wait for a message a
# mutant never sends) is a timeout after a minute, and goes on to pass 2.
fast_tests=(--test-package gantry-gateway --test-package gantry-auth --test-package gantry-common
    --minimum-test-timeout 60)
# The end-to-end test: the suite alone when narrowed to some feature files
# (cucumber's own arguments would confuse the unit-test binaries) or after
# the fast pass (the unit tests already passed), else the configured test.
# Cucumber's arguments go one by one through --cargo-test-arg: cargo-mutants
# drops the `--` of its own trailing arguments, and cargo would then take
# `--input` for itself and fail every mutant (counted as caught).
e2e_only=(--test-package gantry --cargo-test-arg=--test=bdd)
[[ -n $features ]] && e2e_only+=(--cargo-test-arg=-- --cargo-test-arg=--input --cargo-test-arg="$features")
min_timeout=${MUTANTS_MIN_TIMEOUT:-600}

count() { if [[ -f $1 ]]; then grep -c . "$1" || true; else echo 0; fi; }
report() { # <pass> <dir>
    local out=$2/mutants.out
    printf '%-5s caught %s, missed %s, unviable %s, timeout %s  (%s/)\n' "$1" \
        "$(count "$out/caught.txt")" "$(count "$out/missed.txt")" \
        "$(count "$out/unviable.txt")" "$(count "$out/timeout.txt")" "${out#"$root"/}"
}
run() { # <output dir> <cargo-mutants args...>; a missed mutant is no error here
    local dir=$1; shift
    mkdir -p "$dir"
    "${nice[@]}" cargo mutants --workspace --no-shuffle --output "$dir" "${selection[@]}" "$@" || true
}
# cargo-mutants' own baseline runs only the mutated crates' tests, never the
# end-to-end suite: run that unmutated once here (it must pass) and derive
# the per-mutant timeout from it (4x, at least MUTANTS_MIN_TIMEOUT s).
e2e_timeout=()
e2e_baseline() { # <output dir> <cargo test args...>
    local dir=$1; shift
    mkdir -p "$dir"
    if [[ ${#baseline[@]} -gt 0 ]]; then e2e_timeout=(--baseline=skip --timeout="$min_timeout"); return; fi
    echo "e2e baseline: cargo test $* (log in ${dir#"$root"/}/e2e-baseline.log)"
    local build=() a
    for a in "$@"; do [[ $a == -- ]] && break; build+=("$a"); done
    "${nice[@]}" cargo test --no-run "${build[@]}" >"$dir/e2e-baseline.log" 2>&1 || true
    local t0=$SECONDS
    if ! "${nice[@]}" cargo test "$@" >>"$dir/e2e-baseline.log" 2>&1; then
        echo "mutants.sh: the unmutated tests fail; fix that first (${dir#"$root"/}/e2e-baseline.log)" >&2
        exit 1
    fi
    local took=$((SECONDS - t0)) t
    t=$((took * 4 > min_timeout ? took * 4 : min_timeout))
    echo "e2e baseline passed in ${took}s; per-mutant test timeout ${t}s"
    e2e_timeout=(--baseline=skip --timeout="$t")
}
out=$root/target/mutants
case $mode in
    list)
        mkdir -p "$out"
        "${nice[@]}" cargo mutants --workspace --list "${selection[@]}" "${extra[@]}" >"$out/list.txt"
        cat "$out/list.txt"
        echo "$(count "$out/list.txt") mutants (list in ${out#"$root"/}/list.txt)"
        ;;
    fast)
        run "$out/fast$suffix" "${fast_tests[@]}" "${baseline[@]}" "${extra[@]}"
        report fast "$out/fast$suffix"
        ;;
    e2e)
        if [[ -n $features ]]; then
            e2e_baseline "$out/e2e$suffix" -p gantry --test bdd -- --input "$features"
            run "$out/e2e$suffix" "${e2e_timeout[@]}" "${extra[@]}" "${e2e_only[@]}"
        else
            e2e_baseline "$out/e2e$suffix" -p gantry -p gantry-gateway -p gantry-auth -p gantry-common
            run "$out/e2e$suffix" "${e2e_timeout[@]}" "${extra[@]}"
        fi
        report e2e "$out/e2e$suffix"
        ;;
    two-pass)
        run "$out/fast$suffix" "${fast_tests[@]}" "${baseline[@]}" "${extra[@]}"
        survivors=()
        for f in missed timeout; do
            [[ -f $out/fast$suffix/mutants.out/$f.txt ]] || continue
            while IFS= read -r name; do
                [[ -n $name ]] && survivors+=(--re "^$(escape "$name")\$")
            done <"$out/fast$suffix/mutants.out/$f.txt"
        done
        if [[ ${#survivors[@]} -gt 0 ]]; then
            selection=("${survivors[@]}") # exactly pass 1's survivors (no shard: already sliced)
            if [[ -n $features ]]; then
                e2e_baseline "$out/e2e$suffix" -p gantry --test bdd -- --input "$features"
            else
                e2e_baseline "$out/e2e$suffix" -p gantry --test bdd
            fi
            run "$out/e2e$suffix" "${e2e_timeout[@]}" "${extra[@]}" "${e2e_only[@]}"
        fi
        report fast "$out/fast$suffix"
        [[ ${#survivors[@]} -gt 0 ]] && report e2e "$out/e2e$suffix"
        echo "A mutant the e2e pass missed is one no test notices: judge it (README, Mutation testing)."
        ;;
esac
