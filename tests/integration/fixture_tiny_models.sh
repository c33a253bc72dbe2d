#!/usr/bin/env bash
# Fixture: trains the tiny models every integration test uses, once per test run.
source "$(dirname "$0")/lib.sh"
rm -rf "$ART" && mkdir -p "$ART/models"
for arch in resnet20 mobilenetv2; do
  "$MPQ" -q train --arch "$arch" --width 0.25 --epochs 1 --train-limit 4000 --test-limit 1000 \
    --output "$ART/models/tiny_$arch.pt" || fail "training tiny $arch"
done
finish
