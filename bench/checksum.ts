// Speed of the checkpoint checksum (XXH32 in TypeScript, lib/train/checksum.ts) on a 100 MiB
// buffer: GB/s = bytes hashed / seconds, best of 5. Run: node dist/bench/checksum.js
import { xxh32 } from '../lib/train/checksum.js';

const bytes = new Uint8Array(100 * 2 ** 20);
for (let i = 0; i < bytes.length; i++) bytes[i] = Math.imul(i, 2654435761) >>> 24;
let best = Infinity;
for (let r = 0; r < 5; r++) {
  const started = performance.now();
  xxh32(bytes);
  best = Math.min(best, (performance.now() - started) / 1000);
}
console.log(`xxh32 over ${bytes.length} bytes: ${(bytes.length / best / 1e9).toFixed(2)} GB/s (best of 5, ${(1000 * best).toFixed(1)} ms)`);
