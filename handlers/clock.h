#ifndef SLUICE_HANDLERS_CLOCK_H_
#define SLUICE_HANDLERS_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sluice {

// Clock: the time, as a scheduler sees it. An interface so that unit tests
// can set it by hand.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // Real: the system's clock (absl::Now()).
  static const Clock* Real();
};

inline const Clock* Clock::Real() {
  class RealClock final : public Clock {
   public:
    absl::Time Now() const override { return absl::Now(); }
  };
  static const RealClock* const kReal = new RealClock;
  return kReal;
}

}  // namespace sluice

#endif  // SLUICE_HANDLERS_CLOCK_H_
