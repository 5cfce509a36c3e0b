#!/usr/bin/env bash
# Fuzz/run.sh TARGET|all SECONDS [extra libFuzzer flags...]
#   Builds the libFuzzer driver once (release, -sanitize=fuzzer,address, scratch .build-fuzz)
#   and runs TARGET (or every target in turn) for SECONDS each, starting from the committed
#   seed corpus and regression inputs. Prints total executions and exec/s per target; a crash
#   or failed check stops with status 1 and names the reproducer.
#   FUZZ_KEEP_GOING=1: keep fuzzing after a crash (libFuzzer -fork=1 -ignore_crashes=1),
#   collecting every reproducer in .build-fuzz/artifacts/TARGET/.
# Fuzz/run.sh repro TARGET FILE       run one input (e.g. a reproducer), with the stack on a crash
# Fuzz/run.sh minimize TARGET FILE    shrink a crashing input to Fuzz/regressions/TARGET/
# Fuzz/run.sh ci SECONDS              every target briefly (CI): a crash fails, except in a target
#                                     with reproducers still listed in Fuzz/regressions/KNOWN-OPEN,
#                                     where it is reported (its fix has not landed)
# Fuzz/run.sh list                    the targets
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(virtqueue virtio-pci pci-config msix fwcfg serial memory loader cmdline virtio-net virtio-serial qmp)
bin=.build-fuzz/release/vmm-fuzz
# The Swift runtime's own crash reporter would race libFuzzer's; libFuzzer prints the stack.
export SWIFT_BACKTRACE=enable=no
# Leak detection is off: Swift's weak-reference side tables (referenced only through tagged
# refcount bits) read as leaks to LeakSanitizer. A real per-run leak still trips -rss_limit_mb.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"

# Known failures awaiting a fix elsewhere: the targets step around them (see KnownOpen.swift)
# so a run explores past them. swift test never skips.
if [[ -z ${VMM_FUZZ_SKIP+x} && -f Fuzz/regressions/KNOWN-OPEN ]]; then
    VMM_FUZZ_SKIP=$(grep -oE 'skip: [a-z0-9-]+' Fuzz/regressions/KNOWN-OPEN | awk '{print $2}' | sort -u | paste -sd, - || true)
    export VMM_FUZZ_SKIP
fi

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

build() {
    if [[ -z "${FUZZ_NO_BUILD:-}" ]]; then
        echo "fuzz: building vmm-fuzz (release, fuzzer+address sanitizers)" >&2
        # --sanitize links libFuzzer's main (and stops SwiftPM renaming main); -Xswiftc puts the
        # coverage instrumentation into every module, not only the driver's.
        mkdir -p .build-fuzz/logs
        if ! VMM_FUZZ=1 swift build -c release --product vmm-fuzz --scratch-path .build-fuzz \
            --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address >.build-fuzz/logs/build.log 2>&1; then
            grep -E "error" .build-fuzz/logs/build.log | head -20 >&2
            echo "fuzz: build failed (.build-fuzz/logs/build.log)" >&2
            exit 1
        fi
    fi
    [[ -x $bin ]] || { echo "fuzz: $bin was not built" >&2; exit 1; }
}

known_target() { local t; for t in "${targets[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

# Seeds for a run: the committed corpus plus every regression whose fix has landed (inputs
# listed in Fuzz/regressions/KNOWN-OPEN would crash the run before it starts).
seed_dir() {
    local t=$1 dir=.build-fuzz/seeds/$1
    rm -rf "$dir"; mkdir -p "$dir"
    cp Fuzz/corpus/"$t"/* "$dir"/ 2>/dev/null || true
    if [[ -d Fuzz/regressions/$t ]]; then
        local f
        for f in Fuzz/regressions/"$t"/*; do
            [[ -f $f ]] || continue
            grep -qs "^$t/$(basename "$f")\b" Fuzz/regressions/KNOWN-OPEN && continue
            cp "$f" "$dir"/
        done
    fi
    echo "$dir"
}

run_target() {
    local t=$1 seconds=$2; shift 2
    local work=.build-fuzz/corpus/$t artifacts=.build-fuzz/artifacts/$t log=.build-fuzz/logs/$t.log
    # Reproducers of an earlier run move aside, so this run reports only its own.
    if compgen -G "$artifacts/*" >/dev/null; then
        mkdir -p "$artifacts.old" && mv "$artifacts"/* "$artifacts.old"/
    fi
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    local seeds; seeds=$(seed_dir "$t")
    local mode=()
    [[ -n ${FUZZ_KEEP_GOING:-} ]] && mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    local status=0
    VMM_FUZZ_TARGET=$t "$bin" "${mode[@]}" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=4096 -artifact_prefix="$artifacts/" "$@" "$work" "$seeds" >"$log" 2>&1 || status=$?
    local execs rate
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}')
    rate=$(grep -E '^stat::average_exec_per_sec' "$log" | tail -1 | awk '{print $2}')
    if [[ -n ${FUZZ_KEEP_GOING:-} ]]; then
        # Fork mode reports per-job stats; sum the executions of the jobs.
        execs=$(grep -oE 'exec/s: [0-9]+|#[0-9]+' "$log" | grep -oE '#[0-9]+' | tr -d '#' | sort -n | tail -1)
        rate=$(grep -oE 'exec/s: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    fi
    local crashes; crashes=$(ls "$artifacts" 2>/dev/null | grep -E '^(crash|timeout|oom|leak)-' || true)
    if [[ $status -ne 0 || -n $crashes ]]; then
        echo "fuzz $t: FAILED after ${execs:-?} executions (${rate:-?} exec/s); log $log" >&2
        grep -E 'Fatal error|ERROR: libFuzzer|SUMMARY|fuzz target' "$log" | head -5 >&2 || true
        local a; for a in $crashes; do echo "fuzz $t: reproducer $artifacts/$a" >&2; done
        return 1
    fi
    echo "fuzz $t: ${execs:-0} executions in ${seconds} s (${rate:-0} exec/s), clean"
}

[[ $# -ge 1 ]] || usage
case $1 in
    list) printf '%s\n' "${targets[@]}"; exit 0 ;;
    ci)
        [[ $# -eq 2 && $2 =~ ^[0-9]+$ ]] || usage
        build
        failed=0
        for t in "${targets[@]}"; do
            if grep -qs "^$t/" Fuzz/regressions/KNOWN-OPEN; then
                run_target "$t" "$2" || echo "fuzz $t: crash reported above; not fatal while KNOWN-OPEN lists reproducers for $t" >&2
            else
                run_target "$t" "$2" || failed=1
            fi
        done
        [[ $failed -eq 0 ]] || echo "fuzz: a target crashed or failed a check (see above); reproducers in .build-fuzz/artifacts/" >&2
        exit $failed
        ;;
    repro)
        [[ $# -eq 3 ]] && known_target "$2" || usage
        build
        VMM_FUZZ_TARGET=$2 "$bin" -runs=1 "$3"
        ;;
    minimize)
        [[ $# -eq 3 ]] && known_target "$2" || usage
        build
        mkdir -p Fuzz/regressions/"$2"
        out=Fuzz/regressions/$2/$(basename "$3")
        # libFuzzer keeps any crash while shrinking; keep the result only if it still fails the
        # same way (same check message or same first project frame), else the original.
        signature() {
            VMM_FUZZ_TARGET=$1 "$bin" -runs=1 "$2" 2>&1 | grep -m1 -oE \
                "fuzz target [^:]+: [^0-9]{0,40}|/Sources/[A-Za-z/+]+\.swift:[0-9]+|ERROR: [A-Za-z]+: [a-z-]+" || true
        }
        want=$(signature "$2" "$3")
        tmp=$(mktemp)
        VMM_FUZZ_TARGET=$2 "$bin" -minimize_crash=1 -max_total_time="${FUZZ_MINIMIZE_SECONDS:-30}" \
            -exact_artifact_path="$tmp" "$3" >/dev/null 2>&1 || true
        if [[ -s $tmp && -n $want && $(signature "$2" "$tmp") == "$want" ]]; then mv "$tmp" "$out"
        else rm -f "$tmp"; cp "$3" "$out"; fi
        echo "fuzz: reproducer $out ($(wc -c <"$out") bytes): ${want:-no failure}"
        ;;
    *)
        [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage
        target=$1 seconds=$2; shift 2
        if [[ $target == all ]]; then selected=("${targets[@]}")
        else known_target "$target" || usage; selected=("$target"); fi
        build
        failed=0
        for t in "${selected[@]}"; do run_target "$t" "$seconds" "$@" || failed=1; done
        exit $failed
        ;;
esac
