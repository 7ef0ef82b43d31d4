// Pooling with AVX-512 (F, BW, DQ, VL): the kernels of pool2d_impl.h on 16 floats / 8 doubles.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "cpu/isa_table.h"  // the prototypes of this file's entry points
#include "cpu/pool2d_impl.h"

namespace convforge::cpu {
namespace {

// int64 -> int16 with saturation (a saturated value is never a position of a plane that has
// fewer than 32767 of them).
void narrow16_avx512(const int64_t* src, int16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm512_cvtsepi64_epi16(_mm512_loadu_si512(src + i)));
  for (; i < n; ++i) dst[i] = int16_t(std::clamp<int64_t>(src[i], INT16_MIN, INT16_MAX));
}

// See the traits contract in pool2d_impl.h.
struct F32 {
  using T = float;
  using V = __m512;
  using I = __m512i;  // 16 x int32
  using M = __mmask16;
  struct C {
    __m512i lo, hi;  // 2 x 8 int64
  };
  static constexpr int N = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(T v) { return _mm512_set1_ps(v); }
  static V loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, V v) { _mm512_storeu_ps(p, v); }
  template <int SW> static V load_s(const T* p) {
    if constexpr (SW == 1) {
      return loadu(p);
    } else {  // even elements of p[0..31]; the second load starts at 15 to stop at p[30]
      const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29, 31);
      return _mm512_permutex2var_ps(loadu(p), even, loadu(p + 15));
    }
  }
  template <int SW> static void store_s(T* p, const V* a) {
    if constexpr (SW == 1) {
      storeu(p, a[0]);
    } else {
      const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
      const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
      storeu(p, _mm512_permutex2var_ps(a[0], lo, a[1]));
      storeu(p + 16, _mm512_permutex2var_ps(a[0], hi, a[1]));
    }
  }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static M gt_or_nan(V v, V best) {
    return _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  static V select(M m, V a, V b) { return _mm512_mask_blend_ps(m, b, a); }
  static I select_i(M m, I a, I b) { return _mm512_mask_blend_epi32(m, b, a); }
  static I iota(int64_t start, int64_t step) {
    const __m512i l = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_add_epi32(_mm512_set1_epi32(int32_t(start)),
                            _mm512_mullo_epi32(l, _mm512_set1_epi32(int32_t(step))));
  }
  static I add_i(I a, int64_t k) { return _mm512_add_epi32(a, _mm512_set1_epi32(int32_t(k))); }
  static void store_idx(int64_t* p, I v) {
    _mm512_storeu_si512(p, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)));
    _mm512_storeu_si512(p + 8, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)));
  }
  static C cand(int64_t start, int64_t step) {
    const __m512i l = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i lo = _mm512_add_epi64(_mm512_set1_epi64(start), _mm512_mullo_epi64(l, _mm512_set1_epi64(step)));
    return {lo, _mm512_add_epi64(lo, _mm512_set1_epi64(8 * step))};
  }
  static constexpr bool narrow_indices = true, narrow_indices16 = true;
  static void narrow(const int64_t* src, int32_t* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtsepi64_epi32(_mm512_loadu_si512(src + i)));
    for (; i < n; ++i)
      dst[i] = int32_t(std::clamp<int64_t>(src[i], INT32_MIN, INT32_MAX));
  }
  static M eq(const int32_t* p, I c) { return _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(p), c); }
  static void narrow16(const int64_t* src, int16_t* dst, int64_t n) { narrow16_avx512(src, dst, n); }
  static M eq16(const int16_t* p, int64_t k) {
    return _mm256_cmpeq_epi16_mask(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                                   _mm256_set1_epi16(int16_t(k)));
  }
  static M eq(const int64_t* p, const C& c) {
    const __mmask8 lo = _mm512_cmpeq_epi64_mask(_mm512_loadu_si512(p), c.lo);
    const __mmask8 hi = _mm512_cmpeq_epi64_mask(_mm512_loadu_si512(p + 8), c.hi);
    return M(lo | (M(hi) << 8));
  }
  static V add_masked(V acc, M m, V v) { return _mm512_mask_add_ps(acc, m, acc, v); }
  static I count(I cnt, M m) { return _mm512_mask_sub_epi32(cnt, m, cnt, _mm512_set1_epi32(-1)); }
  static int64_t hsum(I cnt) { return _mm512_reduce_add_epi32(cnt); }
  static M lanes_from(int64_t k) { return k >= N ? M(0) : M(0xFFFFu << k); }
  static M and_(M a, M b) { return a & b; }
};

struct F64 {
  using T = double;
  using V = __m512d;
  using I = __m512i;  // 8 x int64
  using M = __mmask8;
  using C = __m512i;
  static constexpr int N = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V set1(T v) { return _mm512_set1_pd(v); }
  static V loadu(const T* p) { return _mm512_loadu_pd(p); }
  static void storeu(T* p, V v) { _mm512_storeu_pd(p, v); }
  template <int SW> static V load_s(const T* p) {
    if constexpr (SW == 1) {
      return loadu(p);
    } else {  // even elements of p[0..15]; the second load starts at 7 to stop at p[14]
      const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 9, 11, 13, 15);
      return _mm512_permutex2var_pd(loadu(p), even, loadu(p + 7));
    }
  }
  template <int SW> static void store_s(T* p, const V* a) {
    if constexpr (SW == 1) {
      storeu(p, a[0]);
    } else {
      storeu(p, _mm512_permutex2var_pd(a[0], _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), a[1]));
      storeu(p + 8, _mm512_permutex2var_pd(a[0], _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), a[1]));
    }
  }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V div(V a, V b) { return _mm512_div_pd(a, b); }
  static M gt_or_nan(V v, V best) {
    return _mm512_cmp_pd_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
  }
  static V select(M m, V a, V b) { return _mm512_mask_blend_pd(m, b, a); }
  static I select_i(M m, I a, I b) { return _mm512_mask_blend_epi64(m, b, a); }
  static I iota(int64_t start, int64_t step) {
    const __m512i l = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm512_add_epi64(_mm512_set1_epi64(start), _mm512_mullo_epi64(l, _mm512_set1_epi64(step)));
  }
  static I add_i(I a, int64_t k) { return _mm512_add_epi64(a, _mm512_set1_epi64(k)); }
  static void store_idx(int64_t* p, I v) { _mm512_storeu_si512(p, v); }
  static C cand(int64_t start, int64_t step) { return iota(start, step); }
  static constexpr bool narrow_indices = false, narrow_indices16 = true;
  static void narrow(const int64_t*, int32_t*, int64_t) {}
  static M eq(const int32_t*, I) { return 0; }
  static void narrow16(const int64_t* src, int16_t* dst, int64_t n) { narrow16_avx512(src, dst, n); }
  static M eq16(const int16_t* p, int64_t k) {
    return _mm_cmpeq_epi16_mask(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
                                _mm_set1_epi16(int16_t(k)));
  }
  static M eq(const int64_t* p, C c) { return _mm512_cmpeq_epi64_mask(_mm512_loadu_si512(p), c); }
  static V add_masked(V acc, M m, V v) { return _mm512_mask_add_pd(acc, m, acc, v); }
  static I count(I cnt, M m) { return _mm512_mask_sub_epi64(cnt, m, cnt, _mm512_set1_epi64(-1)); }
  static int64_t hsum(I cnt) { return _mm512_reduce_add_epi64(cnt); }
  static M lanes_from(int64_t k) { return k >= N ? M(0) : M(0xFFu << k); }
  static M and_(M a, M b) { return a & b; }
};

using Avx512 = pool::Ops<F32, F64>;

}  // namespace

void max_pool2d_forward__avx512(const Pool2dParams& p, const void* x, void* y, int64_t* idx) {
  Avx512::max_pool2d_forward(p, x, y, idx);
}
bool max_pool2d_backward__avx512(const Pool2dParams& p, const void* dy, const int64_t* idx, void* dx) {
  return Avx512::max_pool2d_backward(p, dy, idx, dx);
}
void avg_pool2d_forward__avx512(const Pool2dParams& p, const void* x, void* y) {
  Avx512::avg_pool2d_forward(p, x, y);
}
void avg_pool2d_backward__avx512(const Pool2dParams& p, const void* dy, void* dx) {
  Avx512::avg_pool2d_backward(p, dy, dx);
}

}  // namespace convforge::cpu
