#!/usr/bin/env bash
# Fixture: trains the tiny models every integration test uses, once per test run (2 epochs on
# 20000 images: ~85% top-1, enough margin for the int8 and fidelity tests to mean something;
# their checks hold for any model this can produce on any CPU).
source "$(dirname "$0")/lib.sh"
rm -rf "$ART" && mkdir -p "$ART/models"
for arch in resnet20 mobilenetv2; do
  "$MPQ" -q train --arch "$arch" --width 0.25 --epochs 2 --train-limit 20000 --test-limit 1000 \
    --output "$ART/models/tiny_$arch.pt" || fail "training tiny $arch"
done
finish
