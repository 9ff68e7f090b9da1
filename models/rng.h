#ifndef SLUICE_MODELS_RNG_H_
#define SLUICE_MODELS_RNG_H_

// Random draws for models that sample: a generator whose sequence is fixed by
// its seed on every platform (the standard distributions' are not), and the
// seed a request asks for.

#include <cstdint>

#include "models/parameters.h"

namespace sluice {

// SplitMix64: a tiny, well-mixed generator; the same seed gives the same
// draws everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform: a double in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// SeedFrom: the request's int parameter "seed" if the client set it (the same
// output for the same seed), else 64 fresh random bits.
uint64_t SeedFrom(const ParameterValues& params);

}  // namespace sluice

#endif  // SLUICE_MODELS_RNG_H_
