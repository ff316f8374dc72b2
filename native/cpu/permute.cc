// N-D transpose copy (up to 8 axes): out's axis i is x's axis perm[i].
//
// The permutation is first simplified: size-1 axes are dropped and runs of x's axes that
// stay adjacent and in order in out are merged, so (B, L, 3, H, D) -> (3, B, H, L, D) is a
// 4-axis permute with D-long runs and (B, C, H, W) -> (B, H, W, C) is (B, C, HW) -> (B, HW, C).
// Then one of two loops runs:
//   - out's last axis is x's last axis: copy contiguous runs (the attention head shuffles);
//   - otherwise: a tiled 2-D transpose between x's last axis and out's last axis for every
//     index of the other axes, so reads and writes both walk along cache lines.
#include <algorithm>
#include <cstring>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/ops.h"

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

// Decodes a flat index over the sizes of axes [0, dims) into x's offset.
int64_t in_offset_of(const Plan& p, int dims, int64_t flat, int64_t* index) {
  int64_t off = 0;
  for (int d = dims - 1; d >= 0; --d) {
    index[d] = flat % p.size[d];
    flat /= p.size[d];
    off += index[d] * p.in_stride[d];
  }
  return off;
}

// Steps index (over axes [0, dims)) to the next position, odometer-style; returns the
// change in x's offset.
int64_t advance(const Plan& p, int dims, int64_t* index) {
  int64_t delta = 0;
  for (int d = dims - 1; d >= 0; --d) {
    if (++index[d] < p.size[d]) return delta + p.in_stride[d];
    delta -= (p.size[d] - 1) * p.in_stride[d];
    index[d] = 0;
  }
  return delta;
}

// out (rows, cols) tile = x tile with x's element (r, c) at src[r·1 + c·src_col_stride]
// (r runs along x's contiguous axis) and out's at dst[r·dst_row_stride + c].
PIT_MULTIVERSION void transpose_tile(float* dst, const float* src, int64_t rows, int64_t cols,
                                     int64_t dst_row_stride, int64_t src_col_stride) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[r * dst_row_stride + c] = src[r + c * src_col_stride];
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
  const int last = p.dims - 1;

  if (p.in_stride[last] == 1) {
    // Contiguous runs of `run` floats; one run per index of the outer axes.
    const int64_t run = p.size[last], runs = numel / run;
    parallel_for(runs, std::max<int64_t>(1, kGrainElements / run), [&](int64_t begin, int64_t end) {
      int64_t index[kMaxDims];
      int64_t off = in_offset_of(p, last, begin, index);
      for (int64_t r = begin; r < end; ++r) {
        std::memcpy(out + r * run, x + off, run * sizeof(float));
        if (r + 1 < end) off += advance(p, last, index);
      }
    });
    return;
  }

  // Out axis q is x's contiguous axis; transpose (q, last) tiles for every index of the
  // remaining axes. Tiles of 32 x 32 floats (4 KiB each side) stay in L1; when out's last
  // axis is short (C = 3) the tile grows along q to keep ~1K elements per tile.
  int q = 0;
  while (p.in_stride[q] != 1) ++q;
  int64_t out_stride[kMaxDims];  // out's row-major strides
  int64_t acc = 1;
  for (int d = last; d >= 0; --d) {
    out_stride[d] = acc;
    acc *= p.size[d];
  }
  const int64_t n_last = p.size[last], n_q = p.size[q];
  const int64_t tile_c = std::min<int64_t>(n_last, 32);
  const int64_t tile_r = std::min<int64_t>(n_q, std::max<int64_t>(32, 1024 / tile_c));
  const int64_t tiles_r = (n_q + tile_r - 1) / tile_r, tiles_c = (n_last + tile_c - 1) / tile_c;
  const int64_t others = numel / (n_q * n_last);  // index combinations of the other axes
  const int64_t items = others * tiles_r;         // one item: one row of tiles
  const int64_t grain = std::max<int64_t>(1, kGrainElements / (tile_r * n_last));
  parallel_for(items, grain, [&](int64_t begin, int64_t end) {
    for (int64_t it = begin; it < end; ++it) {
      int64_t other = it / tiles_r, r0 = (it % tiles_r) * tile_r, rows = std::min(n_q, r0 + tile_r) - r0;
      // Offsets of this combination of the other axes (decode over all axes but q, last).
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
        transpose_tile(out + out_off + r0 * out_stride[q] + c0, x + in_off + r0 + c0 * p.in_stride[last], rows,
                       cols, out_stride[q], p.in_stride[last]);
      }
    }
  });
}

}  // namespace pit::cpu
