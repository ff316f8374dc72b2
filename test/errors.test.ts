// Bad input: every case is a JS TypeError or RangeError that names the parameter, says what
// was expected and what was received, and the process goes on.
import test from 'ava';
import {
  attention, concatTokens, empty, gatherTokens, layerNorm, linear, matmul, memory, randn, softmaxCrossEntropy, tensor, zeros,
  adamwStep, selectBackend,
} from '../lib/index.js';
import { native } from '../lib/native.js';

test('wrong shapes name the parameter, the expected and the received shape', (t) => {
  t.throws(() => matmul(zeros([4, 3]), zeros([5, 2])), { instanceOf: RangeError, message: /matmulForward: inner sizes differ: op\(a\) is 4x3 .* but op\(b\) is 5x2/ });
  t.throws(() => linear(zeros([2, 8]), zeros([4, 8]), zeros([5])), { instanceOf: RangeError, message: /'bias' must have shape \[4\], got \[5\]/ });
  t.throws(() => attention(zeros([2, 5, 2, 1, 16])), { instanceOf: RangeError, message: /attention: 'qkv' must be \(B, L, 3, H, D\), got shape \[2, 5, 2, 1, 16\]/ });
  t.throws(() => attention(zeros([1, 4, 3, 1, 4])), { instanceOf: RangeError, message: /head dim D must be in \[8, 128\], got 4/ });
  t.throws(() => attention(zeros([1, 0, 3, 1, 16])), { instanceOf: RangeError, message: /sequence length L must be at least 1, got 0/ });
  t.throws(() => layerNorm(zeros([3, 8]), zeros([7]), zeros([7])), { instanceOf: RangeError, message: /layernormForward: 'weight' must have shape \[8\], got \[7\]/ });
  t.throws(() => concatTokens(zeros([3, 1, 8]), zeros([2, 4, 8])), { instanceOf: RangeError, message: /'a' must have batch 2 or 1/ });
});

test('wrong dtypes are TypeErrors', (t) => {
  const bf = randn([2, 3]);
  const b16 = empty([2, 3], { dtype: 'bf16' });
  native().copy(b16.handle, bf.handle);
  // bf16 operands go together (a GPU GEMM); an f32 'b' beside a bf16 'a' is named.
  t.throws(() => matmul(b16, zeros([3, 2])), { instanceOf: TypeError, message: /matmulForward: 'b' must be bf16, got f32/ });
  t.throws(() => matmul(tensor(new Int32Array(6), [2, 3]), zeros([3, 2])), { instanceOf: TypeError, message: /matmulForward: 'a' must be f32 or bf16, got i32/ });
  t.throws(() => softmaxCrossEntropy(zeros([2, 3]), zeros([2])), { instanceOf: TypeError, message: /'targets' must be i32, got f32/ });
  t.throws(() => gatherTokens(zeros([1, 4, 8]), zeros([1, 2])), { instanceOf: TypeError, message: /gatherTokens: 'ids' must be i32, got f32/ });
});

test('out-of-range labels and token ids are RangeErrors naming the entry', (t) => {
  t.throws(() => softmaxCrossEntropy(zeros([2, 3]), tensor(new Int32Array([1, 3]))), { instanceOf: RangeError, message: /'targets\[1\]' must be a class in \[0, 3\), got 3/ });
  t.throws(() => gatherTokens(zeros([2, 4, 8]), tensor(new Int32Array([0, 1, 2, -1]), [2, 2])), { instanceOf: RangeError, message: /'ids\[1, 1\]' must be a token index in \[0, 4\), got -1/ });
});

test('a disposed tensor passed to an op names the op and the parameter', (t) => {
  const a = zeros([2, 2]);
  a.dispose();
  t.throws(() => matmul(zeros([2, 2]), a), { instanceOf: TypeError, message: /matmulForward: 'b' is a disposed tensor/ });
  t.throws(() => layerNorm(a), { instanceOf: TypeError, message: /layernormForward: 'x' is a disposed tensor/ });
});

test('non-tensors, non-integer sizes and bad options are TypeErrors', (t) => {
  t.throws(() => matmul([1, 2] as never, zeros([2, 2])), { instanceOf: TypeError, message: /matmul: 'a' must be a Tensor, got an array/ });
  t.throws(() => zeros([2, 1.5]), { instanceOf: TypeError, message: /'shape\[1\]' must be a non-negative integer, got number \(1.5\)/ });
  t.throws(() => zeros([-1]), { instanceOf: TypeError, message: /'shape\[0\]' must be a non-negative integer/ });
  t.throws(() => zeros('3' as never), { instanceOf: TypeError, message: /'shape' must be an array/ });
  t.throws(() => native().empty([2], 'f64' as never, 'cpu'), { instanceOf: TypeError, message: /'dtype' must be "f32", "bf16" or "i32", got "f64"/ });
  t.throws(() => native().matmulForward(zeros([2, 2]).handle, zeros([2, 2]).handle, zeros([2, 2]).handle, null, 1 as never, false, false),
    { instanceOf: TypeError, message: /'transA' must be a boolean, got a number \(1\)/ });
  t.throws(() => adamwStep(zeros([2]), zeros([2]), zeros([2]), zeros([2]), { lr: 1e-3, beta1: 1.5, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 }),
    { instanceOf: RangeError, message: /'beta1' must be in \[0, 1\), got 1.5/ });
  t.throws(() => adamwStep(zeros([2]), zeros([2]), zeros([2]), zeros([2]), { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 0.5 }),
    { instanceOf: TypeError, message: /'step' must be an integer, got 0.5/ });
  t.throws(() => tensor(new Float32Array(5), [2, 3]), { instanceOf: RangeError, message: /'data' has 5 elements but shape \[2, 3\] needs 6/ });
});

test('oversized allocations are RangeErrors and nothing leaks', (t) => {
  const before = memory().cpu;
  t.throws(() => empty([2 ** 30, 2 ** 30]), { instanceOf: RangeError, message: /too large/ });
  t.throws(() => empty([2 ** 52, 2 ** 52, 2 ** 52]), { instanceOf: RangeError, message: /too large/ });
  t.deepEqual(memory().cpu, before);
});

test('empty tensors flow through ops without touching memory they do not own', (t) => {
  const out = matmul(zeros([0, 4]), zeros([4, 3]));
  t.deepEqual(out.shape, [0, 3]);
  const y = linear(zeros([2, 0]), zeros([3, 0]), zeros([3]));
  t.deepEqual(Array.from(y.toArray()), [0, 0, 0, 0, 0, 0], 'K = 0: out is the bias');
});

test('the cuda device is a clear error where no GPU backend is loaded', (t) => {
  if (selectBackend().backend === 'cuda') {
    t.pass('a GPU backend is loaded here; the GPU tests cover this');
    return;
  }
  t.throws(() => zeros([2], { device: 'cuda' }), { instanceOf: TypeError, message: /device "cuda" is not available/ });
  t.throws(() => selectBackend({ device: 'cuda' }), { message: /backend already selected \(cpu\)/ });
});
