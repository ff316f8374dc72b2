"""PyTorch peer of our GEMM cases (`pit bench kernels --ops matmul,linear`): the same ops at the
same shapes, in the schema of bench/schema.ts, so `pit bench compare` pairs them.

m rows (tokens), model widths d, and (n, k) in (3d, d), (4d, d), (d, 4d), as bench/kernels.ts:
  matmul_forward   a (m, k) @ b (k, n), f32                         2*m*n*k / t
  matmul_backward  g @ b.T and a.T @ g (dA and dB), f32             4*m*n*k / t
  linear_forward   F.linear(x, W, bias), W (n, k), bias (n)         2*m*n*k / t   (bias add not counted)
  linear_backward  autograd of F.linear: dx, dW, dbias              4*m*n*k / t   (dbias not counted)
linear_* run in each --dtype (default bf16 and f32 on cuda, f32 on cpu), every tensor in that
dtype (bf16 as under autocast: bf16 out, bf16 gradients), fp32 accumulation inside cuBLAS.
f32 runs with PyTorch's defaults: torch.backends.cuda.matmul.allow_tf32 is False, so f32 GEMMs
are full fp32 (as ours: CUBLAS_COMPUTE_32F, never TF32); its value is printed to stderr. The
backward is timed alone, on graphs built once per input set (as layernorm.py).

    python3 bench/pytorch/matmul.py --device cuda --out torch.jsonl
    /usr/bin/python3 bench/pytorch/matmul.py --out torch.jsonl          # CPU f32, smaller m
"""
import torch
import torch.nn.functional as F

from common import (base_parser, DTYPES, dtype_list, element_size, emit, env, int_list, is_out_of_memory, note,
                    result, rotation_count, setup, time_calls)

WORK = {'matmul_forward': (2, '2*m*n*k'), 'matmul_backward': (4, '4*m*n*k'),
        'linear_forward': (2, '2*m*n*k'), 'linear_backward': (4, '4*m*n*k')}


def input_sets(op, m, n, k, dtype, device, count):
    """`count` independent input tuples for `op` (random normal, made in f32 then cast)."""
    def randn(*shape, grad=False):
        return torch.randn(*shape, device=device).to(dtype).requires_grad_(grad)
    sets = []
    for _ in range(count):
        if op.startswith('matmul'):
            sets.append((randn(m, k), randn(k, n), randn(m, n)))
        else:
            sets.append((randn(m, k, grad=True), randn(n, k, grad=True), randn(n, grad=True), randn(m, n)))
    return sets


def time_op(op, sets, device, args):
    timing = dict(warmup=args.warmup, budget_s=args.budget)
    with torch.no_grad():
        if op == 'matmul_forward':
            return time_calls(lambda s: s[0] @ s[1], sets, device, **timing)
        if op == 'matmul_backward':
            return time_calls(lambda s: (s[2] @ s[1].t(), s[0].t() @ s[2]), sets, device, **timing)
    if op == 'linear_forward':   # autograd on, as in training
        return time_calls(lambda s: F.linear(s[0], s[1], s[2]), sets, device, **timing)
    graphs = [(F.linear(x, w, b), x, w, b, g) for x, w, b, g in sets]   # untimed
    return time_calls(lambda q: torch.autograd.grad(q[0], q[1:4], q[4], retain_graph=True), graphs, device, **timing)


def run_case(op, m, n, k, dtype_name, device, args, environment):
    dtype = DTYPES[dtype_name]
    s = element_size(dtype)
    set_bytes = (m * k + n * k + m * n + n) * s
    try:
        sets = input_sets(op, m, n, k, dtype, device, rotation_count(set_bytes, device, args.rotate))
        ms, repeats = time_op(op, sets, device, args)
    except RuntimeError as error:
        reason = 'out of memory' if is_out_of_memory(error) else str(error).strip().splitlines()[0][:160]
        note(f'{op} skipped at m={m} n={n} k={k} ({dtype_name}): {reason}')
        return
    finally:
        sets = None
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    factor, formula = WORK[op]
    work = factor * m * n * k
    emit(result('kernel', op, 'torch', device, dtype_name, {'m': m, 'n': n, 'k': k}, ms, repeats, work / (ms * 1e6),
                'GFLOP/s', f'{formula} / t', environment, work=work), args.out)


def main():
    p = base_parser('PyTorch peer benchmark: GEMMs (matmul and linear layers) at PiT shapes.')
    p.add_argument('--dtype', type=dtype_list, help='dtypes of the linear_* cases (default bf16,f32 on cuda, f32 on cpu); matmul_* are f32')
    p.add_argument('--rows', type=int, help='m (default 65536 on cuda, 4096 on cpu, as pit bench kernels)')
    p.add_argument('--widths', type=int_list, help='model widths d (default 192,384,768 on cuda, 192,384 on cpu)')
    p.add_argument('--ops', type=lambda t: [x for x in t.split(',') if x], default=list(WORK), help='ops, comma-separated (default all four)')
    args = p.parse_args()
    device = setup(args)
    environment = env(device)
    cuda = device.type == 'cuda'
    if cuda:
        note(f'torch.backends.cuda.matmul.allow_tf32 = {torch.backends.cuda.matmul.allow_tf32}')
    m = args.rows or (65536 if cuda else 4096)
    widths = args.widths or ([192, 384, 768] if cuda else [192, 384])
    shapes = [(n, k) for d in widths for n, k in ((3 * d, d), (4 * d, d), (d, 4 * d))]
    for op in [o for o in WORK if o in args.ops]:
        for dtype in (['f32'] if op.startswith('matmul') else args.dtype or (['bf16', 'f32'] if cuda else ['f32'])):
            for n, k in shapes:
                run_case(op, m, n, k, dtype, device, args, environment)


if __name__ == '__main__':
    main()
