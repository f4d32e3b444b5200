"""LLM load and decode benchmark (prints figures; not a test).

Figures:
  * cold load: GGUF de-quantisation (cache removed first) and warm load (safetensors cache);
  * decode tokens/s for a ``--tokens``-token greedy reply on ``--threads`` torch threads;
  * the memory-bandwidth bound of decode, in tokens/s:

        bound = achievable read bandwidth / bytes read per decoded token

    - *read bandwidth* is measured in this run, on the same number of threads as decode
      (``torch.set_num_threads``), as the best of several ``torch.sum`` and ``torch.mv``
      passes over a float32 tensor of ``max(1 GiB, 4 x last-level cache)``: both read
      every byte once and write (almost) nothing, the access pattern of decode's
      matrix-vector products over the weights. (The previous version timed a single-threaded numpy copy and counted only
      the bytes read, half the traffic of a copy: the bound came out too low and decode
      showed 127 % of it.)
      On a shared host that bandwidth moves by +-15 % from minute to minute, so every
      decode run is paired with probes just before and just after it, and the fraction
      reported is the median over runs of (run's rate / bound at the run's bandwidth);
      the best rate over the best probe of the session is printed beside it.
    - *bytes per token* = the parameter bytes in the dtype decode actually runs in
      (``model.parameters()`` counts a tied embedding / LM head once: the head reads the
      whole matrix, the embedding only one row) + the KV cache read by attention: 2
      (K and V) x layers x KV heads x head dim x element size x the positions attended
      (the mean context length for the dynamic cache; the whole pre-allocated length for
      the static cache, whose attention reads the masked tail too).

    When the weights fit in the last-level cache (printed), decode can beat the DRAM
    bound: that is reported, not hidden.

Decode options (the same settings the app uses): ``--dtype float32|bfloat16``
(``llm_dtype``; bfloat16 halves the bytes per token, so the bound doubles),
``--static`` (static KV cache, eager), ``--compile`` (``llm_compile``: static KV cache +
torch.compile; the warm-up runs compile), ``--threads`` (``num_threads``).

Usage: python benchmarks/bench_llm.py [--threads 2] [--tokens 128] [--dtype float32] [--static] [--compile]
                                     [--data-dir DIR]  (reuse the de-quantised model: no cold load)
       python benchmarks/bench_llm.py --bandwidth-only [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def llc_bytes() -> int:
    """Size of the largest CPU cache (bytes) from sysfs; 32 MiB when unknown."""
    best = 0
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in root.glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        try:
            best = max(best, int(text.rstrip("KMG")) * mult)
        except ValueError:
            continue
    return best or 32 * 2**20


def read_bandwidth(threads: int, n_bytes: int | None = None, repeats: int = 7) -> float:
    """Achievable read bandwidth (bytes/s) on ``threads`` torch threads over a float32
    tensor of ``n_bytes`` (default max(1 GiB, 4 x LLC), so caches cannot hold it): the
    best of ``repeats`` passes of each of two pure-read kernels, ``torch.sum`` and a
    matrix-vector product (``torch.mv``, 4096 columns: the kernel decode spends its time
    in), after one untimed pass that faults the pages in."""
    import torch

    n_bytes = n_bytes or max(2**30, 4 * llc_bytes())
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.ones(n_bytes // 4, dtype=torch.float32)
        w, v = x.view(-1, 4096), torch.ones(4096)
        best = 0.0
        for kernel in (lambda: float(x.sum()), lambda: torch.mv(w, v)):
            kernel()
            for _ in range(repeats):
                t = time.perf_counter()
                kernel()
                best = max(best, x.numel() * 4 / (time.perf_counter() - t))
        return best
    finally:
        torch.set_num_threads(old)


def copy_bandwidth(n_bytes: int = 2**30, repeats: int = 5) -> float:
    """Traffic (bytes read + written per second) of a single-threaded numpy copy, for
    comparison with :func:`read_bandwidth` (write-allocate traffic not counted)."""
    import numpy as np

    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, 2 * src.nbytes / (time.perf_counter() - t))
    return best


def kv_bytes_per_position(model: Any) -> int:
    """Bytes of K and V cached per position (all layers) in the model's dtype."""
    cfg = model.config
    layers = int(cfg.num_hidden_layers)
    heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    return 2 * layers * heads * head_dim * next(model.parameters()).element_size()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--static", action="store_true", help="static KV cache, no compile")
    ap.add_argument("--compile", action="store_true", help="static KV cache + torch.compile (llm_compile)")
    ap.add_argument("--repeats", type=int, default=3, help="decode runs; the best is reported")
    ap.add_argument("--bandwidth-only", action="store_true", help="print the bandwidth figures and exit")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="keep the de-quantised model here between runs (default: a fresh temporary "
                         "folder, so the cold load is measured)")
    args = ap.parse_args()

    if args.bandwidth_only:
        bw = read_bandwidth(args.threads)
        print(f"read bandwidth      : {bw / 1e9:6.2f} GB/s (torch.sum / torch.mv, {args.threads} threads, "
              f"{max(2**30, 4 * llc_bytes()) / 2**30:.1f} GiB; LLC {llc_bytes() / 2**20:.0f} MiB)")
        print(f"numpy copy traffic  : {copy_bandwidth() / 1e9:6.2f} GB/s (1 thread, read + write)")
        print(f"load average        : {os.getloadavg()[0]:.1f}")
        return

    from assistant.llm import get_backend
    from assistant.settings import Settings

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-llm-"))
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
    extra = {"cache_implementation": "static"} if args.static and not args.compile else {}
    n_weights = sum(p.numel() * p.element_size() for p in model.parameters())
    msgs = [{"role": "user", "content": "Explain in detail how to care for a sprained ankle at home."}]
    enc = backend.encode(msgs)
    prompt_len = int(enc["input_ids"].shape[1])
    t = time.perf_counter()
    for _ in range(2 if args.compile else 1):  # warm-up (compiles the static-shape graph)
        natural = len(backend._generate_ids(enc, args.tokens, **extra))
    warmup = time.perf_counter() - t
    # every run must decode exactly N tokens. The prompt's greedy reply is longer than the
    # default N, so decode runs the app's own loop (EOS check only). ``min_new_tokens`` is
    # the fallback for a longer N: its logits processor masks EOS over the whole vocabulary
    # (torch.isin + torch.where on 49k logits, ~0.6 ms a token), work the app never does.
    # It runs outside the compiled forward, so the warm-up above compiled what it needs
    forced = {"min_new_tokens": args.tokens} if natural < args.tokens else {}
    static = args.static or args.compile
    positions = prompt_len + args.tokens if static else prompt_len + args.tokens / 2
    n_kv = kv_bytes_per_position(model) * positions
    per_token = n_weights + n_kv
    # each run is paired with a bandwidth probe just before and just after it: on a shared
    # host the bandwidth available moves by +-15 % from minute to minute (neighbours' load),
    # so a decode rate and a bound taken minutes apart compare different machines
    decode_tps, cpu_tps, prefill, ids, paired, probes = 0.0, 0.0, 0.0, [], [], []
    for _ in range(args.repeats):
        bw_before = read_bandwidth(args.threads, repeats=3)
        t, c = time.perf_counter(), time.process_time()
        ids = backend._generate_ids(enc, args.tokens, **extra, **forced)
        total, total_cpu = time.perf_counter() - t, time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        backend._generate_ids(enc, 1, **extra)
        prefill, prefill_cpu = time.perf_counter() - t, time.process_time() - c
        bw_after = read_bandwidth(args.threads, repeats=3)
        run_tps = (len(ids) - 1) / max(total - prefill, 1e-9)
        decode_tps = max(decode_tps, run_tps)
        probes += [bw_before, bw_after]
        paired.append(run_tps / ((bw_before + bw_after) / 2 / per_token))
        # CPU seconds per thread: on a machine shared with other work the wall-clock rate
        # falls with this process's share of the cores, the CPU-time rate much less so
        cpu_tps = max(cpu_tps, (len(ids) - 1) / max((total_cpu - prefill_cpu) / args.threads, 1e-9))
    bw = max([read_bandwidth(args.threads), *probes])
    bound = bw / per_token
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    print(f"model               : {backend.model_id} ({n_weights / 2**20:.0f} MiB {dtype} weights, "
          f"LLC {llc_bytes() / 2**20:.0f} MiB)")
    print(f"decode options      : dtype={dtype} static_cache={static} compile={args.compile} "
          f"attn={model.config._attn_implementation} warm-up {warmup:.1f} s "
          f"({'min_new_tokens forces' if forced else 'the greedy reply runs past'} {args.tokens} tokens)")
    print(f"torch threads       : {torch.get_num_threads()}   load average {os.getloadavg()[0]:.1f}")
    print(f"cold load (GGUF)    : {cold:6.2f} s" if args.data_dir is None else
          f"first load (cache)  : {cold:6.2f} s   (--data-dir given: no de-quantisation)")
    print(f"warm load (cache)   : {warm:6.2f} s   goal < 2 s")
    print(f"decode              : {decode_tps:6.1f} tokens/s ({len(ids)} tokens, prompt {prompt_len}, "
          f"prefill {prefill * 1000:.0f} ms)")
    print(f"bytes per token     : {per_token / 2**20:6.1f} MiB (weights {n_weights / 2**20:.1f} + KV read "
          f"{n_kv / 2**20:.1f} over {positions:.0f} positions)")
    print(f"read bandwidth      : {bw / 1e9:6.2f} GB/s (torch.sum / torch.mv, {args.threads} threads)")
    print(f"bandwidth bound     : {bound:6.1f} tokens/s")
    print(f"fraction of bound   : {statistics.median(paired):6.1%}   goal >= 70 %   (median of {len(paired)} runs, "
          f"each against the bandwidth probed just before and after it: "
          f"{' '.join(f'{f:.1%}' for f in paired)}; best rate / best probe of the session: "
          f"{decode_tps / bound:.1%})")
    print(f"CPU-time rate       : {cpu_tps:6.1f} tokens per CPU-second per thread = {cpu_tps / bound:.1%} of "
          f"the bound (what an otherwise idle machine would reach; spin-waiting threads count as busy)")
    if args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
