// N-D transpose copy (up to 8 axes): out's axis i is x's axis perm[i].
//
// The permutation is first simplified: size-1 axes are dropped and runs of x's axes that
// stay adjacent and in order in out are merged, so (B, C, H, W) -> (B, H, W, C) becomes
// (B, C, HW) -> (B, HW, C) and (B, L, H, D) -> (B, H, L, D) keeps D as one unit.
// Then every permute is a batch of tiled 2-D transposes between out's last axis and the
// axis x stores innermost, so reads and writes both walk along cache lines:
//   - out's last axis is x's last axis (the attention head shuffles): the unit moved is a
//     whole run of it (D floats), and the transpose is over the next axes in;
//   - otherwise (channels-first <-> channels-last): the unit is one float.
#include <algorithm>
#include <cstring>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int kMaxDims = 8;
constexpr int64_t kGrainElements = 1 << 14;

// The permute as out's sizes and, per out axis, the stride of the same axis in x.
struct Plan {
  int dims = 0;
  int64_t size[kMaxDims];
  int64_t in_stride[kMaxDims];
};

Plan simplify(const std::vector<int64_t>& shape, const std::vector<int>& perm) {
  const int nd = static_cast<int>(shape.size());
  int64_t stride[kMaxDims];  // x's row-major strides
  int64_t acc = 1;
  for (int i = nd - 1; i >= 0; --i) {
    stride[i] = acc;
    acc *= shape[i];
  }
  Plan p;
  for (int i = 0; i < nd; ++i) {
    int a = perm[i];
    if (shape[a] == 1) continue;
    // Merge with the previous out axis when it is x's axis right before this one (after
    // skipping size-1 axes, which have no effect on the layout).
    if (p.dims > 0 && p.in_stride[p.dims - 1] == stride[a] * shape[a]) {
      p.size[p.dims - 1] *= shape[a];
      p.in_stride[p.dims - 1] = stride[a];
      continue;
    }
    p.size[p.dims] = shape[a];
    p.in_stride[p.dims] = stride[a];
    ++p.dims;
  }
  return p;
}

// out (rows, cols) tile = x tile with x's element (r, c) at src[r·1 + c·src_col_stride]
// (r runs along x's contiguous axis) and out's at dst[r·dst_row_stride + c].
PIT_MULTIVERSION void transpose_tile(float* dst, const float* src, int64_t rows, int64_t cols,
                                     int64_t dst_row_stride, int64_t src_col_stride) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[r * dst_row_stride + c] = src[r + c * src_col_stride];
}

// The same tile for elements of w contiguous floats (runs of out's and x's shared last
// axis): element (r, c) at src[r·w + c·src_col_stride] and dst[r·dst_row_stride + c·w].
PIT_MULTIVERSION void copy_run_tile(float* dst, const float* src, int64_t rows, int64_t cols, int64_t w,
                                    int64_t dst_row_stride, int64_t src_col_stride) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float* d = dst + r * dst_row_stride + c * w;
      const float* s = src + r * w + c * src_col_stride;
      for (int64_t k = 0; k < w; ++k) d[k] = s[k];
    }
}

}  // namespace

void permute(float* out, const float* x, const std::vector<int64_t>& shape, const std::vector<int>& perm) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (numel == 0) return;
  const Plan p = simplify(shape, perm);
  if (p.dims == 0 || (p.dims == 1 && p.in_stride[0] == 1)) {  // a plain copy
    parallel_for(numel, kGrainElements, [&](int64_t b, int64_t e) { std::memcpy(out + b, x + b, (e - b) * sizeof(float)); });
    return;
  }
  // When out's last axis is x's last axis, whole runs of it are the unit of copying
  // ("elements" of w floats) and that axis leaves the plan; otherwise elements are floats.
  const int64_t w = p.in_stride[p.dims - 1] == 1 ? p.size[p.dims - 1] : 1;
  const int dims = w > 1 ? p.dims - 1 : p.dims, last = dims - 1;
  // Out axis q is the one x stores next-innermost (in-stride w); it cannot be `last`
  // (simplify would have merged them). Each (q, last) tile is a small transpose: reads
  // run along q, writes along last, and both stay in L1.
  int q = 0;
  while (p.in_stride[q] != w) ++q;
  int64_t out_stride[kMaxDims];  // out's row-major strides, in floats
  int64_t acc = w;
  for (int d = last; d >= 0; --d) {
    out_stride[d] = acc;
    acc *= p.size[d];
  }
  // Tiles: at least 32 floats along each edge where the axis allows (whole cache lines on
  // both sides), grown along the short side's partner up to a budget: 1K floats for single
  // floats (32 x 32: with power-of-two strides a taller tile's lines collide in one L1
  // set; 128 x 32 measured 2x slower than 32 x 32 on a 1024 x 1024 transpose), 4K for runs.
  const int64_t n_q = p.size[q], n_last = p.size[last], s_last = p.in_stride[last];
  const int64_t budget = w == 1 ? 1024 : 4096;
  const int64_t base = std::max<int64_t>(1, (32 + w - 1) / w);
  int64_t tile_r = std::min(n_q, base), tile_c = std::min(n_last, base);
  tile_r = std::min(n_q, std::max(tile_r, budget / (tile_c * w)));
  tile_c = std::min(n_last, std::max(tile_c, budget / (tile_r * w)));
  const int64_t tiles_r = (n_q + tile_r - 1) / tile_r, tiles_c = (n_last + tile_c - 1) / tile_c;
  const int64_t others = numel / (n_q * n_last * w);  // index combinations of the other axes
  const int64_t items = others * tiles_r;             // one item: one row of tiles
  const int64_t grain = std::max<int64_t>(1, kGrainElements / (tile_r * n_last * w));
  parallel_for(items, grain, [&](int64_t begin, int64_t end) {
    for (int64_t it = begin; it < end; ++it) {
      int64_t other = it / tiles_r, r0 = (it % tiles_r) * tile_r, rows = std::min(n_q, r0 + tile_r) - r0;
      // Offsets of this combination of the other axes (decoded over all axes but q, last).
      int64_t in_off = 0, out_off = 0, rest = other;
      for (int d = last - 1; d >= 0; --d) {
        if (d == q) continue;
        int64_t i = rest % p.size[d];
        rest /= p.size[d];
        in_off += i * p.in_stride[d];
        out_off += i * out_stride[d];
      }
      for (int64_t tc = 0; tc < tiles_c; ++tc) {
        int64_t c0 = tc * tile_c, cols = std::min(n_last, c0 + tile_c) - c0;
        float* dst = out + out_off + r0 * out_stride[q] + c0 * w;
        const float* src = x + in_off + r0 * w + c0 * s_last;
        if (w == 1) transpose_tile(dst, src, rows, cols, out_stride[q], s_last);
        else copy_run_tile(dst, src, rows, cols, w, out_stride[q], s_last);
      }
    }
  });
}

}  // namespace pit::cpu
