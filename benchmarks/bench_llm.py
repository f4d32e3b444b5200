"""LLM load and decode benchmark (prints figures; not a test).

Figures:
  * cold load: GGUF de-quantisation (cache removed first) and warm load (safetensors cache);
  * decode tokens/s for a 128-token greedy reply on ``--threads`` threads;
  * the memory-bandwidth bound: each decoded token reads every weight once, so
    bound = copy bandwidth / model bytes; copy bandwidth is measured in this run with a
    large numpy array copy (bytes read + written per second, counted as bytes read for
    the bound, i.e. the read rate of a streaming copy).

Decode options (the same settings the app uses): ``--dtype float32|bfloat16``
(``llm_dtype``; bfloat16 halves the bytes per token, and the bound doubles with it) and
``--compile`` (``llm_compile``: static KV cache + torch.compile; the warm-up runs compile).

Usage: python benchmarks/bench_llm.py [--threads 2] [--tokens 128] [--dtype float32] [--compile]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def copy_bandwidth(n_bytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Best read bandwidth (bytes/s) of a large array copy: src read once per copy."""
    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, src.nbytes / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--compile", action="store_true", help="static KV cache + torch.compile")
    ap.add_argument("--repeats", type=int, default=3, help="decode runs; the best is reported")
    args = ap.parse_args()

    from assistant.llm import get_backend
    from assistant.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    settings = Settings(data_dir=data_dir, num_threads=args.threads, device="cpu",
                        repetition_penalty=1.0, llm_dtype=args.dtype, llm_compile=args.compile)
    t = time.perf_counter()
    get_backend(settings, reuse=False)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    backend = get_backend(settings, reuse=False)
    warm = time.perf_counter() - t

    import torch

    model = backend.model
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    msgs = [{"role": "user", "content": "Explain in detail how to care for a sprained ankle at home."}]
    enc = backend.encode(msgs)
    t = time.perf_counter()
    for _ in range(2 if args.compile else 1):  # warm-up (compiles the static-shape graph)
        backend._generate_ids(enc, args.tokens, min_new_tokens=args.tokens)
    warmup = time.perf_counter() - t
    # force exactly N new tokens so every run decodes the same length; best of --repeats
    decode_tps, prefill, ids = 0.0, 0.0, []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ids = backend._generate_ids(enc, args.tokens, min_new_tokens=args.tokens)
        total = time.perf_counter() - t
        t = time.perf_counter()
        backend._generate_ids(enc, 1)
        prefill = time.perf_counter() - t
        decode_tps = max(decode_tps, (len(ids) - 1) / max(total - prefill, 1e-9))
    bw = copy_bandwidth()
    bound = bw / n_bytes
    print(f"model               : {backend.model_id} ({n_bytes / 2**20:.0f} MiB {args.dtype} weights)")
    print(f"decode options      : dtype={args.dtype} compile={args.compile} "
          f"attn={model.config._attn_implementation} warm-up {warmup:.1f} s")
    print(f"torch threads       : {torch.get_num_threads()}")
    print(f"cold load (GGUF)    : {cold:6.2f} s")
    print(f"warm load (cache)   : {warm:6.2f} s   goal < 2 s")
    print(f"decode              : {decode_tps:6.1f} tokens/s ({len(ids)} tokens, prefill {prefill*1000:.0f} ms)")
    print(f"copy bandwidth      : {bw / 1e9:6.2f} GB/s (numpy copy, read rate)")
    print(f"bandwidth bound     : {bound:6.1f} tokens/s")
    print(f"fraction of bound   : {decode_tps / bound:6.1%}   goal >= 70 %")
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
