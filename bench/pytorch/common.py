"""Shared pieces of the PyTorch peer benchmarks: arguments, environment, timing, output.

Every script writes bench/schema.ts's BenchResult, one JSON object per line, so that
`pit bench compare ours.jsonl torch.jsonl` pairs our results with these. Works on PyTorch
1.13 (CPU) through 2.x (CUDA); features are detected, never assumed.
"""
import argparse
import datetime
import json
import math
import os
import re
import statistics
import sys
import time

import torch

DTYPES = {'f32': torch.float32, 'bf16': torch.bfloat16}


def note(message):
    """One line on stderr: a skipped impl or shape, a parameter count, a hint."""
    print(f'note: {message}', file=sys.stderr, flush=True)


def int_list(text):
    return [int(x) for x in text.split(',') if x.strip()]


def str_list(text):
    return [x.strip() for x in text.split(',') if x.strip()]


def dtype_list(text):
    dtypes = str_list(text)
    for d in dtypes:
        if d not in DTYPES:
            raise argparse.ArgumentTypeError(f'expected f32, bf16 or both (comma-separated), got "{d}"')
    return dtypes


def base_parser(description, budget=1.5, budget_flags=('--budget',)):
    """Options every script shares; each script adds its sizes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--out', help='also append the JSON lines to this file')
    p.add_argument('--warmup', type=int, default=3, help='untimed calls before timing (default 3)')
    p.add_argument(*budget_flags, dest='budget', type=float, default=budget, help=f'seconds of timed repeats per case (default {budget})')
    p.add_argument('--rotate', type=int, default=3, help='least number of input sets cycled through (default 3)')
    p.add_argument('--threads', type=int, help='CPU threads (default: the cores this process may use)')
    return p


def setup(args):
    """Checks the device and sets the CPU threads; returns the torch.device."""
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('error: --device cuda, but torch.cuda.is_available() is False')
    if args.threads or args.device == 'cpu':
        cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
        torch.set_num_threads(args.threads or cores)
    return torch.device(args.device)


def _cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _cpu_isa():
    """The vector ISA torch's own CPU kernels were dispatched to ("avx2", "avx512")."""
    get = getattr(getattr(torch.backends, 'cpu', None), 'get_cpu_capability', None)
    if get:
        return get().lower()
    m = re.search(r'CPU capability usage: (\w+)', torch.__config__.show())
    return m.group(1).lower() if m else None


def _loaded_libraries(pattern):
    """Paths of the shared libraries this process mapped whose file name matches `pattern`."""
    try:
        with open('/proc/self/maps') as f:
            return sorted({line.split()[-1] for line in f if re.search(pattern, os.path.basename(line.split()[-1]), re.I)})
    except OSError:
        return []


def _blas_library():
    """The BLAS this process loaded (Debian's torch uses the libblas.so.3 alternative: the
    reference BLAS unless OpenBLAS is installed), or MKL when built in."""
    paths = _loaded_libraries(r'blas|mkl')
    if paths:
        return os.path.join(os.path.basename(os.path.dirname(paths[0])), os.path.basename(paths[0]))
    mkl = getattr(torch.backends, 'mkl', None)
    return 'MKL' if mkl and mkl.is_available() else None


def _allocator():
    """The host allocator: tcmalloc / jemalloc when preloaded, else glibc malloc, which hands
    every large tensor back to the kernel on free (page faults on every step) unless
    MALLOC_MMAP_MAX_=0 and a large MALLOC_TRIM_THRESHOLD_ keep it."""
    for name in ('tcmalloc', 'jemalloc'):
        if _loaded_libraries(name):
            return name
    if os.environ.get('MALLOC_MMAP_MAX_') == '0' and os.environ.get('MALLOC_TRIM_THRESHOLD_'):
        return 'glibc malloc (MALLOC_MMAP_MAX_=0)'
    return 'glibc malloc'


def _cudnn_version():
    v = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if not v:
        return None
    major, rest = (v // 10000, v % 10000) if v >= 10000 else (v // 1000, v % 1000)
    return f'{major}.{rest // 100}.{rest % 100}'


def env(device):
    """BenchEnv: device, ISO date, torch version, Python/CUDA/cuDNN (or BLAS) runtime."""
    python = f'python {sys.version_info.major}.{sys.version_info.minor}'
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        name = f'{props.name}, sm_{props.major}{props.minor}, {props.multi_processor_count} SMs'
        runtime = f'{python}, CUDA {torch.version.cuda}'
        cudnn = _cudnn_version()
        runtime += f', cuDNN {cudnn}' if cudnn else ''
    else:
        isa = _cpu_isa()
        name = f'{_cpu_model()}, {torch.get_num_threads()} threads' + (f', {isa}' if isa else '')
        blas, allocator = _blas_library(), _allocator()
        runtime = python + (f', BLAS {blas}' if blas else '') + f', {allocator}'
        if blas and blas.startswith('blas/'):
            note(f'torch uses the reference BLAS ({blas}): matmuls will be slow; see README, "BLAS"')
        if allocator == 'glibc malloc':
            note('glibc malloc returns large tensors to the kernel on free: page faults may dominate; see README, "Allocator"')
    return {'device': name, 'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'version': f'torch {torch.__version__}', 'runtime': runtime}


def _last_level_cache_bytes():
    sizes = []
    for index in range(8):
        try:
            with open(f'/sys/devices/system/cpu/cpu0/cache/index{index}/size') as f:
                text = f.read().strip()
        except OSError:
            break
        sizes.append(int(text[:-1]) * 1024 if text.endswith('K') else int(text[:-1]) * 2**20 if text.endswith('M') else int(text))
    if sizes:
        return max(sizes)
    return 32 * 2**20   # no sysfs (VMs, containers); /proc/cpuinfo's "cache size" is only L2 on AMD


def _memory_for_inputs(device):
    """Bytes the rotated input sets may take: a quarter of free GPU memory, or an eighth of
    available host memory."""
    if device.type == 'cuda':
        free = torch.cuda.mem_get_info(device)[0] if hasattr(torch.cuda, 'mem_get_info') else 8 * 2**30
        return free // 4
    try:
        with open('/proc/meminfo') as f:
            m = re.search(r'MemAvailable:\s*(\d+) kB', f.read())
        return int(m.group(1)) * 1024 // 8
    except (OSError, AttributeError):
        return 2**30


def rotation_count(set_bytes, device, minimum=3, maximum=64):
    """How many independent input sets to cycle through: at least `minimum`, and enough that
    together they exceed 2x the last-level cache (CPU) or 100 MB (GPU), where memory allows."""
    target = 100e6 if device.type == 'cuda' else 2 * _last_level_cache_bytes()
    k = min(maximum, max(minimum, math.ceil(target / max(set_bytes, 1))))
    return max(1, min(k, _memory_for_inputs(device) // max(set_bytes, 1)))


def time_calls(call, inputs, device, warmup=3, budget_s=1.5, min_repeats=5, max_repeats=200):
    """Median ms of call(x), x cycling through `inputs`: `warmup` untimed calls, then repeats
    until budget_s seconds or max_repeats, at least min_repeats. Returns (ms, repeats)."""
    cuda = device.type == 'cuda'
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    if cuda:
        torch.cuda.synchronize()
    samples = []
    start_wall = time.perf_counter()
    while len(samples) < min_repeats or (len(samples) < max_repeats and time.perf_counter() - start_wall < budget_s):
        x = inputs[len(samples) % len(inputs)]
        if cuda:   # events on the stream bracket the GPU's time; synchronize so each call starts idle
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call(x)
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            call(x)
            samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples), len(samples)


def element_size(dtype):
    return torch.empty((), dtype=dtype).element_size()


def is_out_of_memory(error):
    """A CUDA out-of-memory error (torch.cuda.OutOfMemoryError from 2.0, a RuntimeError before)
    or a failed host allocation."""
    oom = getattr(torch.cuda, 'OutOfMemoryError', None)
    text = str(error).lower()
    return (oom is not None and isinstance(error, oom)) or 'out of memory' in text or "can't allocate memory" in text


def result(kind, op, impl, device, dtype, shape, ms, repeats, value, unit, formula, environment, **optional):
    """A BenchResult dict in schema order; optional fields (model, task, decoder, work,
    peakBytes, fractionOfCopy) are left out when None."""
    r = {'kind': kind, 'op': op}
    for key in ('model', 'task', 'decoder'):
        if optional.get(key) is not None:
            r[key] = optional[key]
    r.update({'impl': impl, 'device': device.type, 'dtype': dtype, 'shape': shape, 'ms': float(f'{ms:.6g}'),
              'repeats': repeats, 'value': round(value, 2), 'unit': unit, 'formula': formula})
    for key in ('work', 'peakBytes', 'fractionOfCopy'):
        if optional.get(key) is not None:
            r[key] = optional[key]
    r['env'] = environment
    return r


def emit(r, out_file=None):
    """Prints one JSON line to stdout and appends it to out_file when given."""
    line = json.dumps(r, separators=(',', ':'))
    print(line, flush=True)
    if out_file:
        with open(out_file, 'a') as f:
            f.write(line + '\n')
