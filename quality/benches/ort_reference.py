#!/usr/bin/env python3
"""onnxruntime reference speed for the texts of quality-bench (quality/src/bin/quality-bench.rs),
one thread, same models and tokenizers (padding reset, mean pooling, L2 normalisation).

    python3 -m venv /tmp/qvenv && /tmp/qvenv/bin/pip install onnxruntime tokenizers numpy
    bash integration/scripts/fetch-models.sh
    /tmp/qvenv/bin/python quality/benches/ort_reference.py
"""
import os
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MODELS = os.environ.get("GLASSBOX_MODELS_DIR", os.path.expanduser("~/.cache/glassbox/models"))
SHORT = "The checkout service is slow today."
LONG = ("Our checkout service started returning errors shortly after the deploy on "
        "Tuesday morning. The p99 latency rose from 180 ms to 1.4 seconds, and the error rate of the "
        "payment endpoint went from 0.1% to 3%. The on-call engineer rolled back the release, cleared "
        "the cache of the pricing service and opened an incident. Customers who paid during the "
        "outage may see a duplicate charge that is refunded automatically within five business days.")


def bench(model_dir, prefix, max_length):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    s = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), opts,
                             providers=["CPUExecutionProvider"])
    names = [i.name for i in s.get_inputs()]
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    for label, text in [("short", SHORT), ("long", LONG)]:
        enc = tok.encode(prefix + text)
        ids = np.array([enc.ids], dtype=np.int64)
        mask = np.array([enc.attention_mask], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)

        def run():
            h = s.run(None, feed)[0][0]
            v = (h * mask[0][:, None]).sum(0) / mask.sum()
            return v / np.linalg.norm(v)

        run()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < 3 or n < 5:
            run()
            n += 1
        per = (time.perf_counter() - start) / n
        print(f"| {os.path.basename(model_dir)} | {label} | {len(enc.ids)} | {per * 1e3:.1f} | {1 / per:.0f} |")


print(f"onnxruntime {ort.__version__}, one thread")
print("| model | text | tokens | ms/embedding | embeddings/s |")
print("|---|---|---|---|---|")
bench(os.path.join(MODELS, "all-MiniLM-L6-v2-int8"), "", 256)
bench(os.path.join(MODELS, "multilingual-e5-small"), "query: ", 512)
