#include "core/isa.h"

#include <atomic>
#include <cstdlib>

#include "core/check.h"

namespace convforge {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}

Isa isa_from_name(const std::string& name) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (name == isa_name(isa)) return isa;
  CHECK(false, "isa: expected one of scalar, avx2, avx512, got '", name, "'");
  return Isa::scalar;
}

Isa best_supported_isa() {
#if defined(CONVFORGE_X86)
  static const Isa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
      return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
    return Isa::scalar;
  }();
  return best;
#else
  return Isa::scalar;
#endif
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (isa <= best_supported_isa()) out.push_back(isa);
  return out;
}

static Isa initial_isa() {
  const char* forced = std::getenv("CONVFORGE_ISA");
  if (!forced || !*forced) return best_supported_isa();
  Isa want = isa_from_name(forced);
  CHECK(want <= best_supported_isa(), "CONVFORGE_ISA: this CPU supports at most '",
        isa_name(best_supported_isa()), "', got '", forced, "'");
  return want;
}

static std::atomic<Isa>& active() {
  static std::atomic<Isa> isa{initial_isa()};
  return isa;
}

Isa active_isa() { return active().load(std::memory_order_relaxed); }

void set_active_isa(Isa isa) {
  CHECK(isa <= best_supported_isa(), "isa: this CPU supports at most '",
        isa_name(best_supported_isa()), "', got '", isa_name(isa), "'");
  active().store(isa, std::memory_order_relaxed);
}

}  // namespace convforge
