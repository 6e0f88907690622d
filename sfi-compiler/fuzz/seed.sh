#!/usr/bin/env bash
# Seeds the fuzzer with real objects: e1000's four files and the misbehaving
# test drivers (the driver flags), and the differential corpus at -O0 and -O2.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
out=corpus/rewrite
mkdir -p "$out"
tmp=$(mktemp -d)
make -s -C "$root/drivers/e1000" OUT="$tmp"
cp "$tmp"/e1000.parts/*.o "$out"/
flags=$(make -s -C "$root/drivers/e1000" flags)
for c in "$root"/tests/drivers/*.c; do
  (cd "$root/drivers/e1000" && gcc $flags -Wno-error -c "$c" -o "$root/sfi-compiler/fuzz/$out/$(basename "$c" .c).o") || true
done
for c in "$root"/sfi-compiler/tests/corpus/*.c; do
  for o in -O0 -O2; do
    gcc $o -g -ffreestanding -mgeneral-regs-only -mno-red-zone -fno-pic -fno-stack-protector \
      -fcf-protection=none -fno-common -c "$c" -o "$out/$(basename "$c" .c)$o.o" 2>/dev/null || true
  done
done
rm -rf "$tmp"
ls "$out" | wc -l
