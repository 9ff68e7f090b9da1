#include "models/rng.h"

#include <random>

namespace sluice {

uint64_t SeedFrom(const ParameterValues& params) {
  if (params.IsSet("seed")) return static_cast<uint64_t>(params.GetInt64("seed"));
  std::random_device random;
  return (static_cast<uint64_t>(random()) << 32) ^ random();
}

}  // namespace sluice
