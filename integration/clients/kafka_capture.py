#!/usr/bin/env python3
"""Reads back the raw records the Collector's Kafka exporter wrote, and turns a few into fixtures.

    python kafka_capture.py dump --brokers H:P --topic T [--topic T2 …] --expect-spans N \
        --out DIR [--timeout 60] [--since-ms EPOCH_MS]
    python kafka_capture.py fixtures --dump DIR --truth client.truth.json --prefix openllmetry \
        --encoding proto|json --topic T --dest schemas/testdata/otlp [--max-records 3] [--tag batch]

`dump` saves every record of the topics byte for byte (DIR/T/p<partition>-o<offset>.bin) with
a sidecar (.meta.json: topic, partition, offset, key, headers, timestamp), reading from the
beginning until each topic holds N spans or the timeout passes.

`fixtures` decodes each record (protobuf ExportTraceServiceRequest via opentelemetry-proto, or
OTLP/JSON), matches its spans to the client's calls by span id and writes
<prefix>-<encoding>-<tag><n>.bin|.json (the raw record bytes, unchanged) plus
<prefix>-<encoding>-<tag><n>.truth.json: the ground truth of exactly the calls in that record.
"""
import argparse
import base64
import json
import os
import sys
import time


def decode_spans(raw, encoding):
    """-> list of (trace_id_hex, span_id_hex, name)."""
    out = []
    if encoding == "proto":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
        req = ExportTraceServiceRequest()
        req.ParseFromString(raw)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    out.append((sp.trace_id.hex(), sp.span_id.hex(), sp.name))
    else:
        doc = json.loads(raw)
        for rs in doc.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for sp in ss.get("spans", []):
                    out.append((sp["traceId"].lower(), sp["spanId"].lower(), sp["name"]))
    return out


def cmd_dump(a):
    from confluent_kafka import Consumer, TopicPartition
    os.makedirs(a.out, exist_ok=True)
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": f"glassbox-capture-{os.getpid()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(timeout=10)
    tps = []
    for t in a.topic:
        if t not in md.topics or md.topics[t].error:
            sys.exit(f"kafka_capture: topic {t} not found")
        tps += [TopicPartition(t, p, 0) for p in md.topics[t].partitions]
        os.makedirs(os.path.join(a.out, t), exist_ok=True)
    c.assign(tps)
    spans = {t: 0 for t in a.topic}
    records = {t: 0 for t in a.topic}
    deadline = time.time() + a.timeout
    while time.time() < deadline and any(spans[t] < a.expect_spans for t in a.topic):
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        t, raw = m.topic(), m.value() or b""
        if m.timestamp()[1] < a.since_ms:  # left over from an earlier run on a kept stack
            continue
        enc = "json" if raw[:1] == b"{" else "proto"
        try:
            spans[t] += len(decode_spans(raw, enc))
        except Exception as e:  # keep it anyway: a fixture of what broke is useful too
            print(f"kafka_capture: {t}/{m.partition()}@{m.offset()} does not decode: {e}", file=sys.stderr)
        records[t] += 1
        base = os.path.join(a.out, t, f"p{m.partition()}-o{m.offset()}")
        with open(base + ".bin", "wb") as f:
            f.write(raw)
        ts_type, ts = m.timestamp()
        meta = {"topic": t, "partition": m.partition(), "offset": m.offset(),
                "key": None if m.key() is None else m.key().decode("utf-8", "backslashreplace"),
                "headers": [[k, base64.b64encode(v or b"").decode()] for k, v in (m.headers() or [])],
                "timestamp_ms": ts, "timestamp_type": ts_type, "bytes": len(raw), "encoding": enc}
        with open(base + ".meta.json", "w") as f:
            json.dump(meta, f, indent=1)
    c.close()
    for t in a.topic:
        print(f"kafka_capture: {t}: {records[t]} records, {spans[t]} spans", file=sys.stderr)
    if any(spans[t] < a.expect_spans for t in a.topic):
        sys.exit(f"kafka_capture: timed out waiting for {a.expect_spans} spans per topic: {spans}")


def summarize(calls):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from llm_client import summarize as s
    return s(calls)


def cmd_fixtures(a):
    truth = json.load(open(a.truth))
    by_span = {}
    for c in truth["calls"]:
        for s in c["spans"]:
            by_span[s["span_id"]] = c
    d = os.path.join(a.dump, a.topic)
    metas = sorted((json.load(open(os.path.join(d, f))) for f in os.listdir(d) if f.endswith(".meta.json")),
                   key=lambda m: (m["timestamp_ms"], m["partition"], m["offset"]))
    os.makedirs(a.dest, exist_ok=True)
    n = 0
    for m in metas:
        if n >= a.max_records:
            break
        raw = open(os.path.join(d, f"p{m['partition']}-o{m['offset']}.bin"), "rb").read()
        spans = decode_spans(raw, a.encoding)
        calls = []
        for _, sid, _ in spans:
            c = by_span.get(sid)
            if c is None:
                sys.exit(f"kafka_capture: span {sid} of {a.topic}@{m['offset']} matches no call")
            if c not in calls:
                calls.append(c)
        if a.only_call is not None and not any(c["i"] in a.only_call for c in calls):
            continue
        n += 1
        name = f"{a.prefix}-{a.encoding}-{a.tag}{n}"
        ext = ".json" if a.encoding == "json" else ".bin"
        with open(os.path.join(a.dest, name + ext), "wb") as f:
            f.write(raw)
        side = {
            "fixture": name + ext,
            "instrumentation": truth["instrumentation"], "library": truth["library"],
            "library_version": truth["version"], "service.name": truth["service.name"],
            "encoding": "otlp_" + a.encoding,
            "kafka": {k: m[k] for k in ("topic", "partition", "offset", "key", "headers",
                                        "timestamp_ms", "bytes")},
            "spans": [{"trace_id": t, "span_id": s, "name": nm} for t, s, nm in spans],
            "per_model": summarize(calls),
            "calls": [{k: v for k, v in c.items() if k != "spans"} for c in calls],
        }
        with open(os.path.join(a.dest, name + ".truth.json"), "w") as f:
            json.dump(side, f, indent=1)
            f.write("\n")
        print(f"kafka_capture: {name}{ext}: {len(raw)} B, {len(spans)} spans, calls "
              f"{[c['i'] for c in calls]}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--brokers", required=True)
    d.add_argument("--topic", action="append", required=True)
    d.add_argument("--expect-spans", type=int, required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--timeout", type=float, default=60)
    d.add_argument("--since-ms", type=int, default=0,
                   help="skip records with an older timestamp (earlier runs on the same topics)")
    f = sub.add_parser("fixtures")
    f.add_argument("--dump", required=True)
    f.add_argument("--truth", required=True)
    f.add_argument("--prefix", required=True)
    f.add_argument("--encoding", choices=("proto", "json"), required=True)
    f.add_argument("--topic", required=True)
    f.add_argument("--dest", required=True)
    f.add_argument("--max-records", type=int, default=3)
    f.add_argument("--tag", default="batch")
    f.add_argument("--only-call", type=int, action="append",
                   help="keep only records holding one of these call indexes")
    a = ap.parse_args()
    cmd_dump(a) if a.cmd == "dump" else cmd_fixtures(a)


if __name__ == "__main__":
    main()
