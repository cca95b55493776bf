#!/usr/bin/env bash
# Fuzzes the wire-protocol codec (src/fc_proto.c) for N seconds (default 60).
#
#   tests/fuzz/run.sh [SECONDS]
#
# Builds build/fuzz/fc_proto_fuzz with libFuzzer + ASan + UBSan, regenerates
# the seed corpus of real frames (tests/fuzz/corpus/), copies it to a scratch
# corpus under build/fuzz/ (so the checked-in seeds stay small) and runs.
# Exits non-zero if the fuzzer finds a crash, leak or UB; the reproducer is
# left in build/fuzz/artifacts/.
set -euo pipefail

secs=${1:-60}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$root/build/fuzz
cc=${CC_FUZZ:-clang}

mkdir -p "$out/artifacts"

# The seeds are made by the codec itself, so they follow the code.
$cc -std=c11 -O1 -g -Wall -Wextra -Werror -I"$root/src" \
    "$root/tests/fuzz/gen_corpus.c" "$root/src/fc_proto.c" -lmsgpackc \
    -o "$out/gen_corpus"
"$out/gen_corpus" "$root/tests/fuzz/corpus"

$cc -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Wall -Wextra -Werror -I"$root/src" \
    "$root/tests/fuzz/fc_proto_fuzz.c" "$root/src/fc_proto.c" -lmsgpackc \
    -o "$out/fc_proto_fuzz"

rm -rf "$out/corpus"
mkdir -p "$out/corpus"
cp "$root/tests/fuzz/corpus/"* "$out/corpus/"

exec "$out/fc_proto_fuzz" "$out/corpus" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=70000 \
    -artifact_prefix="$out/artifacts/" -print_final_stats=1
