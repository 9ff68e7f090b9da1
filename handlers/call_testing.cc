#include "handlers/call_testing.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace sluice::testing {

FakeStreamSink::FakeStreamSink(Completion completion) : completion_(completion) {
  if (completion == Completion::kAuto) auto_thread_ = std::thread([this] { AutoLoop(); });
}

void FakeStreamSink::set_completion(Completion completion) {
  MutexLock lock(&mu_);
  ASSERT_NE(completion_, Completion::kAuto);
  ASSERT_NE(completion, Completion::kAuto);
  completion_ = completion;
}

FakeStreamSink::~FakeStreamSink() {
  if (auto_thread_.joinable()) {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      cv_.SignalAll();
    }
    auto_thread_.join();
  }
}

void FakeStreamSink::set_call(std::shared_ptr<StreamCall> call) {
  MutexLock lock(&mu_);
  call_ = std::move(call);
}

void FakeStreamSink::TryCancel() {
  cancelled_ = true;
  MutexLock lock(&mu_);
  ++try_cancels_;
  cv_.SignalAll();
}

void FakeStreamSink::StartWrite(const v1::PredictChunk* chunk, bool buffer_hint) {
  std::shared_ptr<StreamCall> call;
  {
    MutexLock lock(&mu_);
    EXPECT_FALSE(outstanding_) << "two writes outstanding";
    EXPECT_FALSE(finish_.has_value()) << "write after Finish";
    written_.push_back(*chunk);
    buffer_hints_.push_back(buffer_hint);
    outstanding_ = true;
    max_start_write_depth_ = std::max(max_start_write_depth_, ++start_write_depth_);
    start_write_threads_.insert(std::this_thread::get_id());
    cv_.SignalAll();
    if (completion_ == Completion::kInline) call = call_;
  }
  if (call != nullptr) {
    CompleteWrite(!cancelled_);
    // gRPC may still read the message here (it serialises it inside
    // StartWrite): it must not have been freed by the completion.
    const v1::PredictChunk copy = *chunk;
    MutexLock lock(&mu_);
    EXPECT_EQ(copy.index(), written_.back().index()) << "message changed under StartWrite";
  }
  MutexLock lock(&mu_);
  --start_write_depth_;
}

void FakeStreamSink::Finish(const absl::Status& status) {
  MutexLock lock(&mu_);
  EXPECT_FALSE(outstanding_) << "Finish with a write outstanding";
  ++finishes_;
  finish_ = status;
  cv_.SignalAll();
}

void FakeStreamSink::CompleteWrite(bool ok) {
  std::shared_ptr<StreamCall> call;
  {
    MutexLock lock(&mu_);
    ASSERT_TRUE(outstanding_) << "no write to complete";
    outstanding_ = false;
    call = call_;
  }
  call->OnWriteDone(ok);
}

void FakeStreamSink::AutoLoop() {
  MutexLock lock(&mu_);
  while (true) {
    while (!outstanding_ && !stopping_) cv_.Wait(&mu_);
    if (stopping_) return;
    outstanding_ = false;
    std::shared_ptr<StreamCall> call = call_;
    mu_.Unlock();
    call->OnWriteDone(!cancelled_);
    call.reset();
    mu_.Lock();
  }
}

bool FakeStreamSink::WaitForWrites(size_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (written_.size() < n) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return written_.size() >= n;
  }
  return true;
}

bool FakeStreamSink::WaitForFinish(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (!finish_.has_value()) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return finish_.has_value();
  }
  return true;
}

std::vector<v1::PredictChunk> FakeStreamSink::written() const {
  MutexLock lock(&mu_);
  return written_;
}
std::vector<bool> FakeStreamSink::buffer_hints() const {
  MutexLock lock(&mu_);
  return buffer_hints_;
}
bool FakeStreamSink::write_outstanding() const {
  MutexLock lock(&mu_);
  return outstanding_;
}
std::optional<absl::Status> FakeStreamSink::finish_status() const {
  MutexLock lock(&mu_);
  return finish_;
}
int FakeStreamSink::try_cancels() const {
  MutexLock lock(&mu_);
  return try_cancels_;
}
bool FakeStreamSink::started_writes_on(std::thread::id id) const {
  MutexLock lock(&mu_);
  return start_write_threads_.count(id) > 0;
}

int FakeStreamSink::max_start_write_depth() const {
  MutexLock lock(&mu_);
  return max_start_write_depth_;
}

int FakeStreamSink::finishes() const {
  MutexLock lock(&mu_);
  return finishes_;
}

void FakeUnarySink::Finish(const absl::Status& status, const v1::PredictResponse* response) {
  MutexLock lock(&mu_);
  ++finishes_;
  finish_ = status;
  if (response != nullptr) response_ = *response;
  EXPECT_EQ(response != nullptr, status.ok());
  cv_.SignalAll();
}

bool FakeUnarySink::WaitForFinish(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (!finish_.has_value()) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return finish_.has_value();
  }
  return true;
}
std::optional<absl::Status> FakeUnarySink::finish_status() const {
  MutexLock lock(&mu_);
  return finish_;
}
std::optional<v1::PredictResponse> FakeUnarySink::response() const {
  MutexLock lock(&mu_);
  return response_;
}
int FakeUnarySink::finishes() const {
  MutexLock lock(&mu_);
  return finishes_;
}

void ManualTimers::RunAt(absl::Time /*when*/, std::function<void()> fn) {
  MutexLock lock(&mu_);
  pending_.push_back(std::move(fn));
}

int ManualTimers::FireOnce() {
  std::vector<std::function<void()>> batch;
  {
    MutexLock lock(&mu_);
    batch.swap(pending_);
  }
  for (auto& fn : batch) fn();
  return static_cast<int>(batch.size());
}

size_t ManualTimers::pending() const {
  MutexLock lock(&mu_);
  return pending_.size();
}

Call::EndedCallback SummaryCollector::callback() {
  return [this](const CallSummary& summary) {
    MutexLock lock(&mu_);
    summaries_.push_back(summary);
    cv_.SignalAll();
  };
}

bool SummaryCollector::WaitFor(size_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (summaries_.size() < n) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return summaries_.size() >= n;
  }
  return true;
}

std::vector<CallSummary> SummaryCollector::summaries() const {
  MutexLock lock(&mu_);
  return summaries_;
}

}  // namespace sluice::testing
