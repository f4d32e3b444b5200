"""Embedder benchmark: ONNX Runtime vs sentence-transformers (prints figures; not a test).

For each backend, in a fresh Python process (so imports are cold):

* import + load: seconds from the first ``import`` of the backend's libraries to an
  embedder ready to encode (ONNX: onnxruntime + tokenizers + InferenceSession;
  sentence-transformers: torch + transformers + SentenceTransformer);
* first query: the first ``encode`` of one short text (warm-up costs included);
* per-query latency: median and p95 of ``--queries`` single-text encodes (short patient
  complaints, English and Chinese);
* ingest throughput: texts/s encoding MedQuAD answers (``--texts`` of them, at most
  ~180 words like the ingest chunks) in batches of 32.

Both run on ``--threads`` CPU threads (ONNX Runtime ``intra_op_num_threads`` =
``Settings.num_threads``; ``torch.set_num_threads`` for sentence-transformers). The ONNX
export is made first (outside the timings) in ``--data-dir`` (default: a temporary folder).
The max |ONNX - sentence-transformers| difference over the throughput texts is printed too.

Usage: python benchmarks/bench_embedder.py [--threads 2] [--queries 50] [--texts 256]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

QUERIES = [
    "sore throat for two days",
    "crushing chest pain and sweating",
    "my child has a fever and a rash",
    "headache and vomiting since this morning",
    "I cut my hand and it keeps bleeding",
    "咽喉痛两天",
    "胸口痛，出冷汗",
    "孩子发烧咳嗽",
]

CHILD = r"""
import json, statistics, sys, time
backend, data_dir, threads, n_queries, texts_file = sys.argv[1:6]
threads, n_queries = int(threads), int(n_queries)
queries = json.loads(sys.argv[6])
texts = json.loads(open(texts_file, encoding="utf-8").read())
t0 = time.perf_counter()
if backend == "onnx":
    import onnxruntime, tokenizers  # noqa: F401  (counted in import + load)
    from assistant.settings import Settings
    from assistant.knowledge.embeddings import OnnxEmbedder, get_embedder
    embedder = get_embedder(Settings(data_dir=data_dir, device="cpu", num_threads=threads),
                            export="never")
    assert isinstance(embedder, OnnxEmbedder), type(embedder)
else:
    import torch
    torch.set_num_threads(threads)
    from assistant.settings import Settings
    from assistant.knowledge.embeddings import Embedder, resolve_model_dir
    path, model_id = resolve_model_dir(Settings(data_dir=data_dir))
    embedder = Embedder(path, model_id, "cpu")
load = time.perf_counter() - t0
t = time.perf_counter()
embedder.encode([queries[0]])
first = time.perf_counter() - t
lat = []
for i in range(n_queries):
    q = queries[i % len(queries)] + f" ({i})"
    t = time.perf_counter()
    embedder.encode([q])
    lat.append(time.perf_counter() - t)
lat.sort()
embedder.encode(texts[:32], batch_size=32)  # warm the batch shapes
t = time.perf_counter()
vectors = embedder.encode(texts, batch_size=32)
ingest = len(texts) / (time.perf_counter() - t)
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
print(json.dumps({
    "load_s": load, "first_s": first, "p50_ms": 1000 * statistics.median(lat),
    "p95_ms": 1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], "texts_per_s": ingest,
    "heavy_modules": heavy, "vectors": vectors.tolist(),
}))
"""


def load_texts(n: int) -> list[str]:
    """Up to ``n`` MedQuAD answers cut at ~180 words (the ingest's chunk size)."""
    texts: list[str] = []
    for file in sorted((SHARED / "medquad").glob("*.jsonl")):
        with file.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    answer = json.loads(line).get("answer") or ""
                except json.JSONDecodeError:
                    continue
                words = answer.split()
                if len(words) >= 20:
                    texts.append(" ".join(words[:180]))
                if len(texts) >= n:
                    return texts
    while len(texts) < n:  # no MedQuAD: synthetic texts of mixed length
        i = len(texts)
        texts.append(" ".join(["patient reports pain and fever"] * (1 + i % 30)) + f" #{i}")
    return texts


def run_child(backend: str, data_dir: Path, threads: int, queries: int, texts_file: Path) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            backend,
            str(data_dir),
            str(threads),
            str(queries),
            str(texts_file),
            json.dumps(QUERIES),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise SystemExit(f"{backend} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--data-dir", type=Path, default=None, help="keeps the ONNX export")
    args = ap.parse_args()

    import time

    import numpy as np

    from assistant.knowledge.embeddings import export_onnx
    from assistant.settings import Settings

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-embedder-"))
    settings = Settings(data_dir=data_dir, device="cpu", num_threads=args.threads)
    t = time.perf_counter()
    path = export_onnx(settings)
    print(f"ONNX export          : {path} ({time.perf_counter() - t:.1f} s incl. loading torch)")

    texts = load_texts(args.texts)
    texts_file = data_dir / "bench_texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    results = {
        b: run_child(b, data_dir, args.threads, args.queries, texts_file)
        for b in ("onnx", "sentence-transformers")
    }
    diff = float(
        np.abs(
            np.asarray(results["onnx"]["vectors"])
            - np.asarray(results["sentence-transformers"]["vectors"])
        ).max()
    )

    print(
        f"threads              : {args.threads}; {args.queries} queries; {len(texts)} texts, batch 32"
    )
    print(f"{'':22s}{'ONNX Runtime':>16s}{'sentence-transformers':>24s}")
    rows = [
        ("import + load (s)", "load_s", "{:.2f}"),
        ("first query (ms)", "first_s", "{:.0f}"),
        ("query p50 (ms)", "p50_ms", "{:.1f}"),
        ("query p95 (ms)", "p95_ms", "{:.1f}"),
        ("ingest (texts/s)", "texts_per_s", "{:.1f}"),
    ]
    for label, key, fmt in rows:
        o, s = results["onnx"][key], results["sentence-transformers"][key]
        if key == "first_s":
            o, s = 1000 * o, 1000 * s
        print(f"{label:22s}{fmt.format(o):>16s}{fmt.format(s):>24s}")
    print(f"torch etc. imported  : onnx={results['onnx']['heavy_modules'] or 'none'}")
    print(f"max |onnx - st|      : {diff:.2e}")


if __name__ == "__main__":
    main()
