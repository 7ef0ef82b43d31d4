// CPU instruction-set dispatch: detected once at start-up, optionally lowered by the
// CONVFORGE_ISA environment variable (scalar|avx2|avx512), and switchable for tests.
#pragma once
#include <string>
#include <vector>

namespace convforge {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // throws ValueError for an unknown name
Isa best_supported_isa();                    // what this CPU can run
std::vector<Isa> supported_isas();           // scalar first, best last
Isa active_isa();
// Forces a path no higher than the CPU supports (ValueError otherwise).
void set_active_isa(Isa isa);

}  // namespace convforge
