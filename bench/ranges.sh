#!/usr/bin/env bash
# bench/ranges.sh DIR...: the ratios of several `make bench` runs (each DIR
# holds a results.tsv written by bench/run.sh --out DIR) side by side, with
# their range: the README's Performance section is written from this.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/ranges.sh DIR..." >&2; exit 2; }
echo "| scenario | baseline | target | $(for d in "$@"; do printf '%s | ' "$(basename "$d")"; done)range |"
echo "| --- | --- | --- | $(for d in "$@"; do printf -- '---: | '; done)--- |"
awk -F'\t' -v runs=$# '
    FNR == 1 { run++ }
    {
        kind = $1; base = $4; mem = $5
        if (kind == "tput") r = (mem > 0) ? base / mem : 0
        else if (kind == "mem") r = mem - base
        else r = (base > 0) ? mem / base : 0
        # (Scenario labels carry a key count that differs between runs.)
        label = $2; sub(/ \([0-9]+ keys\)/, "", label)
        key = label "\t" $3
        if (!(key in seen)) { seen[key] = 1; order[++n] = key; target[key] = $6; kinds[key] = kind }
        val[key, run] = r
    }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]; split(k, part, "\t")
            line = "| " part[1] " | " part[2] " | " target[k] " | "
            lo = ""; hi = ""
            for (j = 1; j <= runs; j++) {
                if ((k, j) in val) {
                    v = val[k, j]
                    line = line (kinds[k] == "mem" ? sprintf("+%d KiB", v) : sprintf("%.2f", v)) " | "
                    if (lo == "" || v < lo) lo = v
                    if (hi == "" || v > hi) hi = v
                } else line = line "- | "
            }
            line = line (kinds[k] == "mem" ? sprintf("+%d-%d KiB", lo, hi) : sprintf("%.2f-%.2f", lo, hi)) " |"
            print line
        }
    }' $(for d in "$@"; do echo "$d/results.tsv"; done)
