// Pooling with AVX2: the kernels of pool2d_impl.h on 8 floats / 4 doubles. Masks are vectors
// with all bits set in the selected lanes.
#include <immintrin.h>

#include "cpu/isa_table.h"  // the prototypes of this file's entry points
#include "cpu/pool2d_impl.h"

namespace convforge::cpu {
namespace {

// See the traits contract in pool2d_impl.h.
struct F32 {
  using T = float;
  using V = __m256;
  using I = __m256i;  // 8 x int32
  using M = __m256;
  struct C {
    __m256i lo, hi;  // 2 x 4 int64
  };
  static constexpr int N = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(T v) { return _mm256_set1_ps(v); }
  static V loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, V v) { _mm256_storeu_ps(p, v); }
  template <int SW> static V load_s(const T* p) {
    if constexpr (SW == 1) {
      return loadu(p);
    } else {  // p0 p2 p8 p10 | p4 p6 p12 p14 from p[0..7] and p[7..14], then reorder 64-bit pairs
      const __m256 s = _mm256_shuffle_ps(loadu(p), loadu(p + 7), _MM_SHUFFLE(3, 1, 2, 0));
      return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
    }
  }
  template <int SW> static void store_s(T* p, const V* a) {
    if constexpr (SW == 1) {
      storeu(p, a[0]);
    } else {
      const __m256 lo = _mm256_unpacklo_ps(a[0], a[1]), hi = _mm256_unpackhi_ps(a[0], a[1]);
      storeu(p, _mm256_permute2f128_ps(lo, hi, 0x20));
      storeu(p + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
  }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static M gt_or_nan(V v, V best) {
    return _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  static V select(M m, V a, V b) { return _mm256_blendv_ps(b, a, m); }
  static I select_i(M m, I a, I b) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(b), _mm256_castsi256_ps(a), m));
  }
  static I iota(int64_t start, int64_t step) {
    const __m256i l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_add_epi32(_mm256_set1_epi32(int32_t(start)), _mm256_mullo_epi32(l, _mm256_set1_epi32(int32_t(step))));
  }
  static I add_i(I a, int64_t k) { return _mm256_add_epi32(a, _mm256_set1_epi32(int32_t(k))); }
  static void store_idx(int64_t* p, I v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
  }
  static C cand(int64_t start, int64_t step) {
    const __m256i lo = _mm256_setr_epi64x(start, start + step, start + 2 * step, start + 3 * step);
    return {lo, _mm256_add_epi64(lo, _mm256_set1_epi64x(4 * step))};
  }
  static constexpr bool narrow_indices = false, narrow_indices16 = false;
  static void narrow(const int64_t*, int32_t*, int64_t) {}
  static M eq(const int32_t*, I) { return M(); }
  static M eq(const int64_t* p, const C& c) {
    const __m256i lo = _mm256_cmpeq_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), c.lo);
    const __m256i hi = _mm256_cmpeq_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 4)), c.hi);
    // 32-bit halves of each 64-bit result: lo0 lo1 hi0 hi1 | lo2 lo3 hi2 hi3, then reorder.
    const __m256 s = _mm256_shuffle_ps(_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi), _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  static V add_masked(V acc, M m, V v) { return _mm256_add_ps(acc, _mm256_and_ps(m, v)); }
  static I count(I cnt, M m) { return _mm256_sub_epi32(cnt, _mm256_castps_si256(m)); }
  static int64_t hsum(I cnt) {
    alignas(32) int32_t v[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(v), cnt);
    int64_t s = 0;
    for (int32_t x : v) s += x;
    return s;
  }
  static M lanes_from(int64_t k) {
    const __m256i l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(l, _mm256_set1_epi32(int32_t(k - 1))));
  }
  static M and_(M a, M b) { return _mm256_and_ps(a, b); }
};

struct F64 {
  using T = double;
  using V = __m256d;
  using I = __m256i;  // 4 x int64
  using M = __m256d;
  using C = __m256i;
  static constexpr int N = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V set1(T v) { return _mm256_set1_pd(v); }
  static V loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, V v) { _mm256_storeu_pd(p, v); }
  template <int SW> static V load_s(const T* p) {
    if constexpr (SW == 1) {
      return loadu(p);
    } else {  // p0 p4 p2 p6 from p[0..3] and p[3..6], then reorder
      const __m256d s = _mm256_shuffle_pd(loadu(p), loadu(p + 3), 0b1010);
      return _mm256_permute4x64_pd(s, _MM_SHUFFLE(3, 1, 2, 0));
    }
  }
  template <int SW> static void store_s(T* p, const V* a) {
    if constexpr (SW == 1) {
      storeu(p, a[0]);
    } else {
      const __m256d lo = _mm256_unpacklo_pd(a[0], a[1]), hi = _mm256_unpackhi_pd(a[0], a[1]);
      storeu(p, _mm256_permute2f128_pd(lo, hi, 0x20));
      storeu(p + 4, _mm256_permute2f128_pd(lo, hi, 0x31));
    }
  }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V div(V a, V b) { return _mm256_div_pd(a, b); }
  static M gt_or_nan(V v, V best) {
    return _mm256_or_pd(_mm256_cmp_pd(v, best, _CMP_GT_OQ), _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
  }
  static V select(M m, V a, V b) { return _mm256_blendv_pd(b, a, m); }
  static I select_i(M m, I a, I b) {
    return _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(b), _mm256_castsi256_pd(a), m));
  }
  static I iota(int64_t start, int64_t step) {
    return _mm256_setr_epi64x(start, start + step, start + 2 * step, start + 3 * step);
  }
  static I add_i(I a, int64_t k) { return _mm256_add_epi64(a, _mm256_set1_epi64x(k)); }
  static void store_idx(int64_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static C cand(int64_t start, int64_t step) { return iota(start, step); }
  static constexpr bool narrow_indices = false, narrow_indices16 = false;
  static void narrow(const int64_t*, int32_t*, int64_t) {}
  static M eq(const int32_t*, I) { return M(); }
  static M eq(const int64_t* p, C c) {
    return _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), c));
  }
  static V add_masked(V acc, M m, V v) { return _mm256_add_pd(acc, _mm256_and_pd(m, v)); }
  static I count(I cnt, M m) { return _mm256_sub_epi64(cnt, _mm256_castpd_si256(m)); }
  static int64_t hsum(I cnt) {
    alignas(32) int64_t v[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(v), cnt);
    return v[0] + v[1] + v[2] + v[3];
  }
  static M lanes_from(int64_t k) {
    const __m256i l = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_castsi256_pd(_mm256_cmpgt_epi64(l, _mm256_set1_epi64x(k - 1)));
  }
  static M and_(M a, M b) { return _mm256_and_pd(a, b); }
};

using Avx2 = pool::Ops<F32, F64>;

}  // namespace

void max_pool2d_forward__avx2(const Pool2dParams& p, const void* x, void* y, int64_t* idx) {
  Avx2::max_pool2d_forward(p, x, y, idx);
}
bool max_pool2d_backward__avx2(const Pool2dParams& p, const void* dy, const int64_t* idx, void* dx) {
  return Avx2::max_pool2d_backward(p, dy, idx, dx);
}
void avg_pool2d_forward__avx2(const Pool2dParams& p, const void* x, void* y) {
  Avx2::avg_pool2d_forward(p, x, y);
}
void avg_pool2d_backward__avx2(const Pool2dParams& p, const void* dy, void* dx) {
  Avx2::avg_pool2d_backward(p, dy, dx);
}

}  // namespace convforge::cpu
