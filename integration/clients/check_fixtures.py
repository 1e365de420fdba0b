#!/usr/bin/env python3
"""Cross-checks each captured fixture against its .truth.json: for every call, which of the
truth's numbers the span's attributes carry (by the names each library emitted), and where they
differ. A reference for the Rust decoder, not a test of glassbox.

    python check_fixtures.py schemas/testdata/otlp
"""
import glob
import json
import os
import sys

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

NAMES = {
    "openllmetry": {"input_tokens": "gen_ai.usage.input_tokens", "output_tokens": "gen_ai.usage.output_tokens",
                    "cached_tokens": "gen_ai.usage.cache_read.input_tokens",
                    "reasoning_tokens": "gen_ai.usage.reasoning_tokens"},
    "openinference": {"input_tokens": "llm.token_count.prompt", "output_tokens": "llm.token_count.completion",
                      "cached_tokens": "llm.token_count.prompt_details.cache_read",
                      "reasoning_tokens": "llm.token_count.completion_details.reasoning"},
}


def spans_of(path):
    raw = open(path, "rb").read()
    if path.endswith(".json"):
        doc = json.loads(raw)
    else:
        m = ExportTraceServiceRequest()
        m.ParseFromString(raw)
        doc = MessageToDict(m)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                sid = sp["spanId"]
                if not path.endswith(".json"):  # MessageToDict gives base64 ids
                    import base64
                    sid = base64.b64decode(sid).hex()
                attrs = {}
                for kv in sp.get("attributes", []):
                    (t, v), = kv["value"].items() if kv["value"] else (("empty", None),)
                    attrs[kv["key"]] = int(v) if t == "intValue" else v
                yield sid.lower(), sp, attrs


def main(d):
    bad = 0
    for truth_path in sorted(glob.glob(os.path.join(d, "*-*-*.truth.json"))):
        if truth_path.endswith("client.truth.json"):
            continue
        t = json.load(open(truth_path))
        names = NAMES[t["instrumentation"]]
        by_i = {c["i"]: c for c in t["calls"]}
        # span -> call via the sidecar's span order (same order as the calls they came from)
        client = json.load(open(os.path.join(d, f"{t['instrumentation']}-client.truth.json")))
        span_call = {s["span_id"]: c["i"] for c in client["calls"] for s in c["spans"]}
        for sid, sp, attrs in spans_of(os.path.join(d, t["fixture"])):
            c = by_i[span_call[sid]]
            missing, diff = [], []
            if c["error"]:
                continue
            for k, a in names.items():
                if a not in attrs:
                    if c[k]:
                        missing.append(f"{k}={c[k]} ({a} absent)")
                elif attrs[a] != c[k]:
                    diff.append(f"{k}: truth {c[k]} span {attrs[a]}")
            if missing or diff:
                bad += 1
                print(f"{t['fixture']} call {c['i']} {c['model']} stream={c['stream']}: "
                      + "; ".join(missing + diff))
    print(f"{bad} spans whose token attributes do not carry the truth")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "schemas/testdata/otlp")
