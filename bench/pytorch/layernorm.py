"""PyTorch peer of our LayerNorm kernels: forward and backward bandwidth, against a plain
device-to-device copy measured in the same run (as `pit bench kernels --ops copy,layernorm`).

x is (n, c): n rows (tokens), c channels. F.layer_norm runs directly on inputs of the compute
dtype with weight and bias of the same dtype (on CUDA bf16: the fused bf16 kernel; under
autocast PyTorch would run layer_norm in f32 instead). Bytes moved, s = element size:
  copy      2*n*s                   dst.copy_(src) of n = rows*c elements (our key: shape {n})
  forward   2*n*c*s + 8*n + 2*c*s   read x, write out, write mean + rstd (f32), read weight + bias
  backward  3*n*c*s + 8*n + 3*c*s   read dout and x, write dx, read mean + rstd, read weight,
                                    write dweight + dbias
value = bytes / t in GB/s (1e9 bytes/s); fractionOfCopy = value / the best copy GB/s of the
run in that dtype (copies are measured first). The backward is timed alone, on graphs built
once per input set.

    /usr/bin/python3 bench/pytorch/layernorm.py --out torch.jsonl          # CPU f32
    python3 bench/pytorch/layernorm.py --device cuda --out torch.jsonl     # GPU bf16
"""
import torch
import torch.nn.functional as F

from common import (base_parser, DTYPES, dtype_list, element_size, emit, env, int_list, is_out_of_memory, note,
                    result, rotation_count, setup, time_calls)

EPS = 1e-6
BYTES = {  # op: (bytes moved as a function of n, c, s; formula, as `pit bench kernels` writes it)
    'copy': (lambda n, c, s: 2 * n * c * s, '2*n*s'),
    'layernorm_forward': (lambda n, c, s: 2 * n * c * s + 8 * n + 2 * c * s, '2*n*c*s + 8*n + 2*c*s'),
    'layernorm_backward': (lambda n, c, s: 3 * n * c * s + 8 * n + 3 * c * s, '3*n*c*s + 8*n + 3*c*s'),
}


def input_sets(n, c, dtype, device, count):
    """`count` independent (x, weight, bias, dout, dst): x, dout, dst (n, c); weight, bias (c)."""
    sets = []
    for _ in range(count):
        x = torch.randn(n, c, device=device, dtype=dtype, requires_grad=True)
        weight = (1 + 0.1 * torch.randn(c, device=device)).to(dtype).requires_grad_()
        bias = (0.1 * torch.randn(c, device=device)).to(dtype).requires_grad_()
        sets.append((x, weight, bias, torch.randn(n, c, device=device, dtype=dtype), torch.empty(n, c, device=device, dtype=dtype)))
    return sets


def time_op(op, sets, device, args):
    """(ms, repeats) of one op over the rotated input sets."""
    timing = dict(warmup=args.warmup, budget_s=args.budget)
    if op == 'copy':
        return time_calls(lambda s: s[4].copy_(s[0].detach()), sets, device, **timing)
    if op == 'layernorm_forward':   # autograd on, as in training: mean and rstd are saved
        return time_calls(lambda s: F.layer_norm(s[0], s[0].shape[-1:], s[1], s[2], EPS), sets, device, **timing)
    graphs = [(F.layer_norm(x, x.shape[-1:], w, b, EPS), x, w, b, dout) for x, w, b, dout, _ in sets]   # untimed
    return time_calls(lambda g: torch.autograd.grad(g[0], g[1:4], g[4], retain_graph=True), graphs, device, **timing)


def run_op(op, n, c, dtype_name, device, args, environment, copy_gbs=None):
    """Measures and emits one op at (n, c); returns its GB/s, or None when it could not run."""
    dtype = DTYPES[dtype_name]
    s = element_size(dtype)
    shape = {'n': n * c} if op == 'copy' else {'n': n, 'c': c}
    try:
        sets = input_sets(n, c, dtype, device, rotation_count(3 * n * c * s, device, args.rotate))
        ms, repeats = time_op(op, sets, device, args)
    except RuntimeError as error:
        reason = 'out of memory' if is_out_of_memory(error) else str(error).strip().splitlines()[0][:160]
        note(f'{op} skipped at {shape} ({dtype_name}): {reason}')
        return None
    finally:
        sets = None
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    bytes_of, formula = BYTES[op]
    moved = bytes_of(n, c, s)
    gbs = moved / (ms * 1e6)
    fraction = round(gbs / copy_gbs, 3) if copy_gbs and op != 'copy' else None
    emit(result('kernel', op, 'torch', device, dtype_name, shape, ms, repeats, gbs, 'GB/s',
                f'({formula}) / t, s={s}', environment, work=moved, fractionOfCopy=fraction), args.out)
    return gbs


def main():
    p = base_parser('PyTorch peer benchmark: LayerNorm forward / backward bandwidth, and copy.')
    p.add_argument('--dtype', type=dtype_list, help='f32 and/or bf16 (default bf16 on cuda, f32 on cpu)')
    p.add_argument('--rows', type=int_list, help='rows n (default 262144 on cuda, 16384 on cpu)')
    p.add_argument('--channels', type=int_list, default=[192, 384, 768], help='channels c (default 192,384,768)')
    args = p.parse_args()
    device = setup(args)
    environment = env(device)
    shapes = [(n, c) for n in args.rows or [262144 if device.type == 'cuda' else 16384] for c in args.channels]
    for dtype in args.dtype or (['bf16'] if device.type == 'cuda' else ['f32']):
        copies = [run_op('copy', n, c, dtype, device, args, environment) for n, c in shapes]
        copy_gbs = max((g for g in copies if g), default=None)
        for op in ('layernorm_forward', 'layernorm_backward'):
            for n, c in shapes:
                run_op(op, n, c, dtype, device, args, environment, copy_gbs)


if __name__ == '__main__':
    main()
