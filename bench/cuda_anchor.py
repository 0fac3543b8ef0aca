#!/usr/bin/env python3
"""PyTorch anchors for the CUDA microbenchmarks (clipkit_cuda_test --bench, test/cuda/bench.cpp).

The same shapes on the same GPU, timed the same way: after two warm-up calls, each of 25 timed
iterations queues L calls and waits in torch.cuda.synchronize(), a host clock around that gives the
iteration's time / L (L chosen so one iteration takes about 5 ms), and the median is reported. Small
ops can be bound by Python's launch cost rather than the GPU, so each case is also replayed from a CUDA
graph of L calls where capture works (graph_median_ms). One JSON line per case, with the field names
of the C++ side, so the two join on (bench, dtype, shape):

  {"bench", "impl", "dtype", "shape", "median_ms", "min_ms", "tflops" or "gbs", "launches_per_iter",
   "iters", "graph_median_ms"?, ...}

A backend that is not available on this GPU or build prints its line with "error" instead of times.
Needs torch alone.  Usage: python3 bench/cuda_anchor.py [--filter SUBSTR]
"""
import json
import math
import sys
import time

ITERS = 25
TARGET_ITER_MS = 5.0


def emit(line):
    print(json.dumps(line), flush=True)


def main(argv):
    filt = ""
    if len(argv) >= 2 and argv[0] == "--filter":
        filt = argv[1]
    elif argv:
        print("usage: cuda_anchor.py [--filter SUBSTR]", file=sys.stderr)
        return 2
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # the anchors need torch and nothing else
        emit({"anchor": "error", "error": f"import torch: {e}"})
        return 1
    if not torch.cuda.is_available():
        emit({"anchor": "error", "error": "torch sees no CUDA device"})
        return 77
    dev = torch.device("cuda")
    # fp32 matrix products as FFMA, the mode the fp32 kernels are compared with (no TF32).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    props = torch.cuda.get_device_properties(dev)
    emit({"anchor": "device", "name": props.name, "cc": f"{props.major}.{props.minor}",
          "sm_count": props.multi_processor_count, "total_memory": props.total_memory,
          "torch": torch.__version__, "cuda": torch.version.cuda,
          "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None})

    def sync():
        torch.cuda.synchronize(dev)

    def time_eager(fn):
        fn()
        fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(3):
            fn()
        sync()
        est = (time.perf_counter() - t0) * 1e3 / 3
        launches = int(min(2000, max(1, math.ceil(TARGET_ITER_MS / max(est, 1e-4)))))
        ms = []
        for _ in range(ITERS):
            t0 = time.perf_counter()
            for _ in range(launches):
                fn()
            sync()
            ms.append((time.perf_counter() - t0) * 1e3 / launches)
        ms.sort()
        return ms[len(ms) // 2], ms[0], launches

    def time_graph(fn, launches):
        # Capture `launches` calls once (on a side stream, as CUDA graphs require), replay per iteration.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()
        torch.cuda.current_stream().wait_stream(stream)
        sync()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(launches):
                fn()
        graph.replay()
        sync()
        ms = []
        for _ in range(ITERS):
            t0 = time.perf_counter()
            graph.replay()
            sync()
            ms.append((time.perf_counter() - t0) * 1e3 / launches)
        ms.sort()
        del graph
        return ms[len(ms) // 2]

    def run(bench, impl, dtype, shape, fn, rate_key, work, extra=None, copy_ms=None):
        key = f"{bench} {impl} {dtype} {shape}"
        if filt and filt not in key:
            return
        line = {"bench": bench, "impl": impl, "dtype": dtype, "shape": shape}
        line.update(extra or {})
        try:
            med, low, launches = time_eager(fn)
        except Exception as e:
            line["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            emit(line)
            return
        scale = 1e-12 if rate_key == "tflops" else 1e-9
        line.update({"median_ms": round(med, 6), "min_ms": round(low, 6),
                     rate_key: round(work / (med * 1e-3) * scale, 4), "launches_per_iter": launches, "iters": ITERS})
        if copy_ms:
            line["ratio_to_copy"] = round(med / copy_ms, 4)
        try:
            g = time_graph(fn, launches)
            line["graph_median_ms"] = round(g, 6)
            line["graph_" + rate_key] = round(work / (g * 1e-3) * scale, 4)
        except Exception as e:
            line["graph_error"] = f"{type(e).__name__}"
        emit(line)

    def randn(*shape, dtype, std=1.0):
        return torch.randn(*shape, device=dev, dtype=torch.float32).mul_(std).to(dtype)

    def free():
        sync()
        torch.cuda.empty_cache()

    # ---- GEMM: y[M, N] = x[M, K] · w[N, K]ᵀ (nn.Linear's layout), cuBLAS through torch.matmul ----
    gemm_shapes = [("bf16", 8192, 8192, 8192)] + [("bf16", 50432, n, k) for n, k in
                                                   [(2304, 768), (768, 768), (3072, 768), (768, 3072)]] + \
                  [("f32", 4096, 4096, 4096)]
    for dt, m, n, k in gemm_shapes:
        dtype = torch.bfloat16 if dt == "bf16" else torch.float32
        x, w = randn(m, k, dtype=dtype), randn(n, k, dtype=dtype, std=1.0 / math.sqrt(k))
        y = torch.empty(m, n, device=dev, dtype=dtype)
        wt = w.t()
        run("gemm", "torch.matmul", dt, f"M={m},N={n},K={k}", lambda: torch.matmul(x, wt, out=y), "tflops",
            2.0 * m * n * k, {"epilogue": "none"})
        del x, w, wt, y
        free()

    # ---- attention: packed QKV [B, S, 3, H, D] viewed as [B, H, S, D] (row stride 3·H·D), as ours ----
    from contextlib import nullcontext
    backends = [("sdpa.default", None)]
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        for name, attr in [("sdpa.flash", "FLASH_ATTENTION"), ("sdpa.cudnn", "CUDNN_ATTENTION"),
                           ("sdpa.efficient", "EFFICIENT_ATTENTION")]:
            if hasattr(SDPBackend, attr):
                backends.append((name, getattr(SDPBackend, attr)))
    except Exception:
        sdpa_kernel = None
    B, H, D = 256, 12, 64
    for S in (50, 77, 197, 257, 577):
        causal = S == 77
        qkv = randn(B, S, 3, H, D, dtype=torch.bfloat16)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        flops = 4.0 * B * H * S * S * D * (0.5 if causal else 1.0)
        for impl, backend in backends:
            # sdpa_kernel's context manager is single-use: a fresh one per call.
            def attn(q=q, k=k, v=v, causal=causal, backend=backend):
                with nullcontext() if backend is None else sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

            run("attention", impl, "bf16", f"B={B},H={H},S={S},D={D}", attn, "tflops", flops,
                {"causal": causal, "layout": "packed_qkv"})
        del qkv, q, k, v
        free()

    # ---- layer norm [50432, 768] against a device-to-device copy of as many bytes ----
    rows, dim = 50432, 768
    for dt, residual in (("bf16", False), ("f32", False), ("bf16", True)):
        dtype = torch.bfloat16 if dt == "bf16" else torch.float32
        es = 2 if dt == "bf16" else 4
        moved = (4 if residual else 2) * rows * dim * es
        x = randn(rows, dim, dtype=dtype)
        r = randn(rows, dim, dtype=dtype) if residual else None
        g32, b32 = randn(dim, dtype=torch.float32), randn(dim, dtype=torch.float32)
        src = torch.empty(moved // 2, device=dev, dtype=torch.uint8).random_(0, 255)
        dst = torch.empty_like(src)
        # fp32 gamma / beta as the kernels take them, where torch accepts the mix; else in x's type.
        try:
            F.layer_norm(x, (dim,), g32, b32, 1e-5)
            g, b, wdt = g32, b32, "f32"
        except Exception:
            g, b, wdt = g32.to(dtype), b32.to(dtype), dt
        shape = f"rows={rows},dim={dim}"
        bench = "layer_norm_residual" if residual else "layer_norm"
        impl = "torch.add+F.layer_norm" if residual else "F.layer_norm"
        if filt and filt not in f"{bench} {impl} {dt} {shape}":
            continue
        try:
            copy_ms, _, _ = time_eager(lambda: dst.copy_(src))
            extra = {"copy_ms": round(copy_ms, 6), "copy_gbs": round(moved / (copy_ms * 1e-3) * 1e-9, 3),
                     "bytes_moved": moved, "weights": wdt}
        except Exception as e:
            copy_ms, extra = None, {"copy_error": type(e).__name__, "bytes_moved": moved, "weights": wdt}
        fn = (lambda: F.layer_norm(x + r, (dim,), g, b, 1e-5)) if residual else (lambda: F.layer_norm(x, (dim,), g, b, 1e-5))
        run(bench, impl, dt, shape, fn, "gbs", moved, extra, copy_ms)
        del x, r, src, dst
        free()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
