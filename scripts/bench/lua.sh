#!/usr/bin/env bash
# Issue 17, side by side in one run: a project shaped like Lua's build (40
# compile steps over ~1 MB of generated C, one link step), `topsail run
# --jobs 2` against `make -j2`, each in three states: cold, nothing
# changed, one source touched. Each tool builds its own copy of the project.
# Usage: scripts/bench/lua.sh [path/to/topsail]   (default: target/release/topsail)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$(realpath "${1:-target/release/topsail}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM
N=40

gen() {
    local d="$1"
    mkdir -p "$d/src"
    for i in $(seq 1 $N); do
        {
            for f in $(seq 1 200); do
                printf 'int f%d_%d(int x) {\n    int s = 0;\n    for (int i = 0; i < x; i++) {\n        s += i * %d;\n    }\n    return s;\n}\n' "$i" "$f" "$f"
            done
        } >"$d/src/m$i.c"
    done
    printf 'int main(void) { return 0; }\n' >"$d/src/main.c"
    {
        echo "pipeline lua-shaped"
        objs=""
        for i in $(seq 1 $N); do
            printf 'm%d:\n    run cc -O2 -c src/m%d.c -o m%d.o\n' "$i" "$i" "$i"
            objs="$objs m$i"
        done
        printf 'link:%s\n    run cc -o app src/main.c' "$objs"
        for i in $(seq 1 $N); do printf ' m%d.o' "$i"; done
        printf '\n'
    } >"$d/pipeline.topsail"
    {
        objs=""
        for i in $(seq 1 $N); do objs="$objs m$i.o"; done
        printf 'app: src/main.c%s\n\tcc -o app src/main.c%s\n' "$objs" "$objs"
        for i in $(seq 1 $N); do
            printf 'm%d.o: src/m%d.c\n\tcc -O2 -c src/m%d.c -o m%d.o\n' "$i" "$i" "$i" "$i"
        done
    } >"$d/Makefile"
}
gen "$work/t"
gen "$work/m"
echo "sources: $(du -sb "$work/t/src" | cut -f1) bytes in $(ls "$work/t/src" | wc -l) files"
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
run_t() { local t; t=$(date +%s%N); (cd "$work/t" && CI=1 "$BIN" run --jobs 2 >/dev/null); ms "$t"; }
run_m() { local t; t=$(date +%s%N); (cd "$work/m" && make -s -j2 >/dev/null); ms "$t"; }
(cd "$work/t" && "$BIN" check pipeline.topsail >/dev/null 2>&1)
printf 'cold:            topsail %5d ms   make %5d ms\n' "$(run_t)" "$(run_m)"
printf 'nothing changed: topsail %5d ms   make %5d ms\n' "$(run_t)" "$(run_m)"
sleep 1
touch "$work/t/src/m7.c" "$work/m/src/m7.c"
printf 'one touched:     topsail %5d ms   make %5d ms\n' "$(run_t)" "$(run_m)"
