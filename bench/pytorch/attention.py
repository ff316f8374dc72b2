"""PyTorch peer of our attention kernels: forward, backward and both, per SDPA backend.

Shapes follow the sweep rule shared with `pit bench`: for each L in --lens and D in
--head-dims, H = --heads and B = max(1, tokens // L). q, k, v are (B, H, L, D), contiguous,
cut from one packed (B, L, 3, H, D) tensor outside the timed region.

FLOPs (the FlashAttention convention): forward 4*B*H*L^2*D; backward 2.5x that (it
recomputes the scores); forward + backward 3.5x. The forward is timed with autograd on, as
in training (flash kernels then also write the row log-sum-exp). The backward is timed
alone: the forward's graph is built once per input set, outside the timer, and kept.

    /usr/bin/python3 bench/pytorch/attention.py --out torch.jsonl          # CPU f32
    python3 bench/pytorch/attention.py --device cuda --out torch.jsonl     # GPU bf16
"""
import contextlib
import inspect
import warnings

import torch
import torch.nn.functional as F

from common import (base_parser, DTYPES, dtype_list, element_size, emit, env, int_list, is_out_of_memory, note, result,
                    rotation_count, setup, str_list, time_calls)

OPS = {  # op: (multiple of the forward's 4*B*H*L^2*D FLOPs, formula)
    'attention_forward': (1.0, '4*B*H*L^2*D / t'),
    'attention_backward': (2.5, '2.5*4*B*H*L^2*D / t'),
    'attention_forward_backward': (3.5, '3.5*4*B*H*L^2*D / t'),
}
EAGER_SCORES_LIMIT = 2 * 2**30  # bytes of the f32 (B, H, L, L) score matrix the eager impl may build


def eager_attention(q, k, v):
    """softmax(q kᵀ · D^-0.5) v written out as timm does (q scaled first, cheaper than the
    (L, L) scores): (B, H, L, D) x3 -> (B, H, L, D)."""
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))   # (B, H, L, L)
    return torch.matmul(scores.softmax(dim=-1), v)


def sdpa_backend(name):
    """A context factory that restricts F.scaled_dot_product_attention to one backend
    ("flash", "cudnn", "efficient", "math"), or None when this torch cannot."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel   # torch >= 2.2
        member = getattr(SDPBackend, {'flash': 'FLASH_ATTENTION', 'cudnn': 'CUDNN_ATTENTION',
                                      'efficient': 'EFFICIENT_ATTENTION', 'math': 'MATH'}[name], None)
        return None if member is None else (lambda: sdpa_kernel(member))
    except ImportError:
        pass
    old = getattr(torch.backends.cuda, 'sdp_kernel', None)       # torch 2.0, 2.1
    if old is None:
        return None
    flags = {p: False for p in inspect.signature(old).parameters if p.startswith('enable_')}
    key = 'enable_' + {'flash': 'flash', 'cudnn': 'cudnn', 'efficient': 'mem_efficient', 'math': 'math'}[name]
    if key not in flags:
        return None
    flags[key] = True
    return lambda: old(**flags)


def implementations(device):
    """[(impl, attention function, context factory, longest L or None)] this torch offers."""
    sdpa = getattr(F, 'scaled_dot_product_attention', None)
    if sdpa is None:
        note('F.scaled_dot_product_attention is missing (torch < 2.0): timing the eager softmax(q kᵀ) v instead')
        return [('torch-eager', eager_attention, contextlib.nullcontext, None)]
    if device.type == 'cpu':
        return [('torch-sdpa', sdpa, contextlib.nullcontext, None)]
    found = []
    for name, longest in (('flash', None), ('cudnn', None), ('efficient', None), ('math', 4096)):
        context = sdpa_backend(name)
        if context is None:
            note(f'torch {torch.__version__} cannot select the SDPA "{name}" backend; skipping torch-sdpa-{name}')
        else:
            found.append((f'torch-sdpa-{name}', sdpa, context, longest))
    return found


def input_sets(B, H, L, D, dtype, device, count):
    """`count` independent (q, k, v, dout), each (B, H, L, D) contiguous; q, k, v are leaves."""
    sets = []
    for _ in range(count):
        packed = torch.randn(B, L, 3, H, D, device=device, dtype=dtype)
        q, k, v = (t.transpose(1, 2).contiguous().requires_grad_() for t in packed.unbind(2))
        sets.append((q, k, v, torch.randn(B, H, L, D, device=device, dtype=dtype)))
    return sets


def time_op(op, attention, sets, device, args):
    """(ms, repeats) of one op over the rotated input sets."""
    timing = dict(warmup=args.warmup, budget_s=args.budget)
    if op == 'attention_forward':
        return time_calls(lambda s: attention(s[0], s[1], s[2]), sets, device, **timing)
    if op == 'attention_forward_backward':
        return time_calls(lambda s: torch.autograd.grad(attention(s[0], s[1], s[2]), s[:3], s[3]), sets, device, **timing)
    graphs = [(attention(q, k, v), q, k, v, dout) for q, k, v, dout in sets]   # untimed forwards
    return time_calls(lambda g: torch.autograd.grad(g[0], g[1:4], g[4], retain_graph=True), graphs, device, **timing)


def run_shape(B, H, L, D, dtype_name, impls, device, args, environment):
    shape = {'B': B, 'H': H, 'L': L, 'D': D}
    dtype = DTYPES[dtype_name]
    sets = input_sets(B, H, L, D, dtype, device, rotation_count(4 * B * H * L * D * element_size(dtype), device, args.rotate))
    for impl, attention, context, longest in impls:
        if longest is not None and L > longest:
            continue
        if impl == 'torch-eager' and B * H * L * L * 4 > EAGER_SCORES_LIMIT:
            note(f'{impl} skipped at {shape}: its (B, H, L, L) scores would exceed 2 GiB')
            continue
        try:
            with context():
                with warnings.catch_warnings():      # a backend that refuses the shape warns, then raises
                    warnings.simplefilter('ignore')
                    q, k, v, dout = sets[0]
                    torch.autograd.grad(attention(q, k, v), (q, k, v), dout)
                for op in args.ops:
                    ms, repeats = time_op(op, attention, sets, device, args)
                    multiple, formula = OPS[op]
                    flops = multiple * 4 * B * H * L * L * D
                    emit(result('kernel', op, impl, device, dtype_name, shape, ms, repeats, flops / (ms * 1e6),
                                'GFLOP/s', formula, environment, work=int(flops)), args.out)
        except (RuntimeError, ValueError, NotImplementedError) as error:
            reason = 'out of memory' if is_out_of_memory(error) else str(error).strip().splitlines()[0][:160]
            note(f'{impl} skipped at {shape} ({dtype_name}): {reason}')
        if device.type == 'cuda':
            torch.cuda.empty_cache()


def main():
    p = base_parser('PyTorch peer benchmark: attention forward / backward per SDPA backend.')
    p.add_argument('--dtype', type=dtype_list, help='f32 and/or bf16 (default bf16 on cuda, f32 on cpu)')
    p.add_argument('--lens', type=int_list, help='sequence lengths L (default 256,1024,4096,16384,65536 on cuda; 256,1024 on cpu)')
    p.add_argument('--head-dims', type=int_list, default=[16, 32, 64, 128], help='head sizes D (default 16,32,64,128)')
    p.add_argument('--heads', type=int, default=12, help='heads H (default 12)')
    p.add_argument('--tokens', type=int, help='B*L per call; B = max(1, tokens // L) (default 16384 on cuda, 2048 on cpu)')
    p.add_argument('--ops', type=str_list, default=list(OPS), help='comma-separated subset of ' + ','.join(OPS))
    args = p.parse_args()
    for op in args.ops:
        if op not in OPS:
            p.error(f'--ops: unknown op "{op}"; expected some of {",".join(OPS)}')
    device = setup(args)
    cuda = device.type == 'cuda'
    lens = args.lens or ([256, 1024, 4096, 16384, 65536] if cuda else [256, 1024])
    tokens = args.tokens or (16384 if cuda else 2048)
    environment = env(device)
    impls = implementations(device)
    for dtype_name in args.dtype or (['bf16'] if cuda else ['f32']):   # the order of `pit bench kernels`
        for D in args.head_dims:
            for L in lens:
                run_shape(max(1, tokens // L), args.heads, L, D, dtype_name, impls, device, args, environment)


if __name__ == '__main__':
    main()
