#include "models/torch/output_text.h"

#include <algorithm>
#include <utility>

namespace sluice {

size_t Utf8IncompleteTail(absl::string_view s) {
  // Walk back over at most three continuation bytes to the lead byte.
  const size_t n = s.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte
    size_t need;
    if ((c & 0xE0) == 0xC0) {
      need = 2;
    } else if ((c & 0xF0) == 0xE0) {
      need = 3;
    } else if ((c & 0xF8) == 0xF0) {
      need = 4;
    } else {
      return 0;  // ASCII or a byte no character starts with
    }
    return back < need ? back : 0;
  }
  return 0;  // only continuation bytes: nothing a later byte could complete
}

OutputText::OutputText(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

size_t OutputText::HeldBack() const {
  // The longest end of pending_ that is the start of a stop string (a stop
  // string itself would have ended the output already).
  size_t held = 0;
  for (const std::string& stop : stops_) {
    for (size_t len = std::min(stop.size() - 1, pending_.size()); len > held; --len) {
      if (absl::string_view(pending_).substr(pending_.size() - len) ==
          absl::string_view(stop).substr(0, len)) {
        held = len;
        break;
      }
    }
  }
  held = std::max(held, Utf8IncompleteTail(pending_));
  // What goes out must not end inside a character either (a stop string may
  // begin with a continuation byte).
  absl::string_view sent(pending_.data(), pending_.size() - held);
  while (size_t tail = Utf8IncompleteTail(sent)) {
    held += tail;
    sent.remove_suffix(tail);
  }
  return held;
}

std::string OutputText::Append(absl::string_view bytes) {
  if (stopped_) return "";
  pending_.append(bytes.data(), bytes.size());
  // Every stop string that may now be complete starts in pending_ (the
  // bytes before it were sent only when no stop string could start there).
  size_t first = std::string::npos;
  for (const std::string& stop : stops_) first = std::min(first, pending_.find(stop));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  const size_t send = pending_.size() - HeldBack();
  std::string out = pending_.substr(0, send);
  pending_.erase(0, send);
  return out;
}

std::string OutputText::Flush() {
  if (stopped_) return "";
  return std::exchange(pending_, std::string());
}

}  // namespace sluice
