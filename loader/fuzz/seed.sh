#!/usr/bin/env bash
# Seeds the fuzz corpus with real gcc objects (the e1000 driver and the loader's
# test programs at several optimisation levels and code models).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/load
for opt in -O0 -O2 -Os; do
  for model in kernel large; do
    gcc -c $opt -g -fno-pic -mno-red-zone -ffreestanding -mcmodel=$model ../tests/c/sample.c -o "corpus/load/sample$opt-$model.o"
  done
done
make -s -C ../../drivers/e1000 OUT="$PWD/corpus/load"
