#!/bin/sh
# compare_experts.sh — one line comparing two `moeflash bench` reports of
# the same synthetic model with its experts in two types (make bench: Q4_K
# and IQ2_XXS under the same memory cap and --cache auto): decode tok/s and
# expert bytes read per token of each, at each one's best row (io backend x
# prefetch), and their ratios.
#
# Usage: compare_experts.sh NAME_A REPORT_A NAME_B REPORT_B
set -u
[ $# = 4 ] || { echo "usage: $0 NAME_A REPORT_A NAME_B REPORT_B" >&2; exit 2; }

# "tok/s MB/t hit cacheMB io mode" of the best decode row of a report; the
# rows are "  io prefetch tok/s median prefill readMB/t readMB/s hit% cacheMB ..."
best() {
    awk '$1 ~ /^(pread|direct|uring)$/ && $2 ~ /^(on|off)$/ && NF >= 9 && $3 + 0 > best {
             best = $3 + 0; row = $3 " " $6 " " $8 " " $9 " " $1 " " $2 }
         END { if (row == "") exit 1; print row }' "$1"
}
a=$(best "$2") || { echo "compare: no decode rows in $2" >&2; exit 1; }
b=$(best "$4") || { echo "compare: no decode rows in $4" >&2; exit 1; }
echo "$1 $a $3 $b" | awk '{
    printf "experts %s vs %s (best io x prefetch each): %s %.2f tok/s, %.1f MB read/token (%s %s, hit %s, cache %s MB); ",
           $1, $8, $1, $2, $3, $6, $7, $4, $5
    printf "%s %.2f tok/s, %.1f MB read/token (%s %s, hit %s, cache %s MB); %s/%s: %.2fx tok/s, %.2fx MB/token\n",
           $8, $9, $10, $13, $14, $11, $12, $8, $1, ($2 > 0 ? $9 / $2 : 0), ($3 > 0 ? $10 / $3 : 0) }'
