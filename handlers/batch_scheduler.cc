#include "handlers/batch_scheduler.h"

#include <pthread.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace sluice {
namespace {

const std::vector<double>& BatchSizeBounds() {
  static const std::vector<double>* const kBounds =
      new std::vector<double>{1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  return *kBounds;
}

const std::vector<double>& StepsAfterEndBounds() {
  static const std::vector<double>* const kBounds = new std::vector<double>{0, 1, 2, 4};
  return *kBounds;
}

std::string DescribeException(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

}  // namespace

BatchStats::BatchStats()
    : batch_size_(BatchSizeBounds()), steps_after_end_(StepsAfterEndBounds()) {}

// Entry: one call's sequence as the scheduler holds it.
class BatchScheduler::Entry final : public CallDriver::Task,
                                    public std::enable_shared_from_this<Entry> {
 public:
  Entry(std::shared_ptr<Call> c, std::unique_ptr<BatchedModelBase::Sequence> s)
      : call(std::move(c)), sequence(std::move(s)), deadline(call->options().deadline) {}

  // Guarded by the scheduler's mu_.
  Where where = Where::kEnded;
  EntryList::iterator pos;
  bool stop_requested = false;    // kInStep: the call ended while the loop held it
  bool resume_requested = false;  // kInStep: ResumeTask came while the loop held it
  // call: the entry's strong reference to its call (which holds the entry),
  // dropped at release. Written under mu_; read by the thread that holds
  // the entry, and under mu_ by CancelAll.
  std::shared_ptr<Call> call;

  // The thread that holds the entry (the loop, from the boundary that takes
  // it from the queue): the model's sequence and what the loop knows of it.
  std::unique_ptr<BatchedModelBase::Sequence> sequence;
  const absl::Time deadline;
  bool started = false;          // StartSequence succeeded: model state exists
  uint64_t bytes = 0;            // StateBytes, as last read (counted in state_bytes_)
  uint64_t steps_after_end = 0;  // sequence-steps computed after its call ended
};

BatchScheduler::BatchScheduler(std::string name, BatchedModelBase* model, BatchOptions options,
                               const Clock* clock)
    : name_(std::move(name)),
      model_(model),
      options_(options),
      max_sequences_(options.limits.max_sequences > 0 ? options.limits.max_sequences
                                                      : 2 * options.limits.max_batch),
      clock_(clock),
      write_starter_(absl::StrCat("write:", name_)) {
  CHECK_GE(options_.limits.max_batch, 1);
  CHECK_GE(max_sequences_, options_.limits.max_batch);
  CHECK_GE(options_.queue_capacity, 0);
}

BatchScheduler::~BatchScheduler() { Stop(); }

void BatchScheduler::Start() {
  MutexLock lock(&mu_);
  CHECK(!loop_.joinable()) << "BatchScheduler::Start called twice";
  loop_ = std::thread([this] { Loop(); });
}

absl::Status BatchScheduler::Admit(const std::shared_ptr<Call>& call,
                                   std::unique_ptr<BatchedModelBase::Sequence> sequence) {
  auto entry = std::make_shared<Entry>(call, std::move(sequence));
  MutexLock lock(&mu_);
  if (static_cast<int>(queue_.size()) >= options_.queue_capacity) {
    entry->call.reset();  // never admitted: no cycle to leave behind
    return absl::ResourceExhaustedError(absl::StrCat("model ", name_, " is at capacity: ", held_,
                                                     " sequences in its batch and ", queue_.size(),
                                                     " queued (its queue_capacity); retry later"));
  }
  // Attached before the loop (which needs mu_) can see the entry.
  call->Attach(this, entry);
  MoveLocked(*entry, Where::kQueued);
  ++admitted_;
  cv_.SignalAll();
  return absl::OkStatus();
}

// --- The step boundary and the step ------------------------------------------

bool BatchScheduler::RunStep() {
  const int max_batch = options_.limits.max_batch;
  const uint64_t budget = options_.limits.max_state_bytes;
  std::vector<std::shared_ptr<Entry>> leaving;
  std::shared_ptr<CancellationSource> step_cancel;
  batch_.clear();
  {
    MutexLock lock(&mu_);
    // 1. Every sequence whose call ended since the last boundary.
    while (!leaving_.empty()) {
      leaving.push_back(leaving_.front());
      MoveLocked(*leaving.back(), Where::kReleasing);
    }
    // 3, first part: the ready ones, in the order they became ready.
    while (!ready_.empty() && static_cast<int>(batch_.size()) < max_batch) {
      batch_.push_back(ready_.front());
      MoveLocked(*batch_.back(), Where::kInStep);
    }
    step_cancel_ = std::make_shared<CancellationSource>();
    step_cancel = step_cancel_;
    wanted_in_step_ = static_cast<int>(batch_.size());
  }
  bool did_something = !leaving.empty() || !batch_.empty();
  for (const auto& e : leaving) Release(*e);
  leaving.clear();

  // 2. Queued sequences join, oldest first, while the batch, the held
  // sequences and the state budget allow: one at a time, so that the budget
  // counts each new sequence's state before the next is started.
  while (static_cast<int>(batch_.size()) < max_batch) {
    std::shared_ptr<Entry> e;
    {
      MutexLock lock(&mu_);
      if (queue_.empty() || held_ >= max_sequences_ || (budget != 0 && state_bytes_ >= budget)) {
        break;
      }
      e = queue_.front();
      MoveLocked(*e, Where::kInStep);
      ++wanted_in_step_;
    }
    did_something = true;
    e->call->Started();
    absl::Status started;
    try {
      started = model_->StartSequence(*e->sequence);
    } catch (...) {
      started = absl::InternalError(absl::StrCat(
          "model ", name_, " threw from Start: ", DescribeException(std::current_exception())));
    }
    if (started.ok()) {
      e->started = true;
      e->bytes = model_->SequenceBytes(*e->sequence);
      {
        MutexLock lock(&mu_);
        ++held_;
        state_bytes_ += e->bytes;
      }
      batch_.push_back(e);  // 3, second part: after the ready ones
    } else {
      e->call->Fail(started);
      {
        MutexLock lock(&mu_);
        MoveLocked(*e, Where::kReleasing);
      }
      Release(*e);
    }
  }

  // A deadline is a time, not an event: read the clock once for the batch.
  const absl::Time now = clock_->Now();
  for (const auto& e : batch_) {
    if (e->deadline <= now) e->call->Cancel(EndCause::kDeadline);
  }
  // Whatever ended since the boundary (a deadline just now, a cancel on
  // another thread, a failed start) is not in the step.
  {
    MutexLock lock(&mu_);
    auto ended = std::stable_partition(batch_.begin(), batch_.end(),
                                       [](const auto& e) { return !e->stop_requested; });
    for (auto it = ended; it != batch_.end(); ++it) {
      leaving.push_back(*it);
      MoveLocked(**it, Where::kReleasing);
    }
    batch_.erase(ended, batch_.end());
    wanted_in_step_ = static_cast<int>(batch_.size());
  }
  for (const auto& e : leaving) Release(*e);
  leaving.clear();
  if (batch_.empty()) {
    MutexLock lock(&mu_);
    step_cancel_.reset();
    return did_something;
  }

  // 4. The step.
  const size_t n = batch_.size();
  sequences_.clear();
  for (const auto& e : batch_) sequences_.push_back(e->sequence.get());
  out_.clear();
  out_.resize(n);
  const absl::Time step_start = clock_->Now();
  absl::Status step_status;
  try {
    step_status = model_->StepBatch(sequences_, absl::MakeSpan(out_), step_cancel->token());
  } catch (...) {
    step_status =
        absl::InternalError(absl::StrCat("threw: ", DescribeException(std::current_exception())));
  }
  stats_.step_time_.Observe(clock_->Now() - step_start);
  stats_.steps_.fetch_add(1, std::memory_order_relaxed);
  stats_.sequence_steps_.fetch_add(n, std::memory_order_relaxed);
  stats_.batch_size_.ObserveValue(static_cast<double>(n));
  if (!step_status.ok()) {
    step_status = absl::InternalError(absl::StrCat("model ", name_, " failed a step of ", n,
                                                   " sequences: ", step_status.message()));
    LOG(ERROR) << step_status;
  }

  // 5. Deliver. A sequence whose call ended during the step had this step
  // computed in vain (the step in flight); it is released, not delivered.
  std::vector<char> ended_during(n, 0);
  {
    MutexLock lock(&mu_);
    for (size_t i = 0; i < n; ++i) ended_during[i] = batch_[i]->stop_requested;
  }
  std::vector<char> over(n, 0), sit_out(n, 0);
  for (size_t i = 0; i < n; ++i) {
    Entry& e = *batch_[i];
    BatchedModelBase::EncodedStep& step = out_[i];
    over[i] = 1;
    if (ended_during[i]) {
      ++e.steps_after_end;
    } else if (!step_status.ok()) {
      e.call->Fail(step_status);
    } else if (!step.error.ok()) {
      e.call->Fail(absl::InternalError(
          absl::StrCat("model ", name_, " failed on this sequence: ", step.error.message())));
    } else {
      over[i] = 0;
      if (step.chunk.has_value()) {
        switch (e.call->Emit(*std::move(step.chunk))) {
          case Call::EmitResult::kMore:
            break;
          case Call::EmitResult::kFull:
            sit_out[i] = 1;
            break;
          case Call::EmitResult::kStopped:
            ++e.steps_after_end;  // its call ended during the step
            over[i] = 1;
            break;
        }
      }
      if (!over[i] && step.finish.has_value()) {
        e.call->Complete(*step.finish, step.usage.value_or(TokenUsage()));
        over[i] = 1;
      }
    }
    if (!over[i]) e.bytes = model_->SequenceBytes(*e.sequence);
  }
  const auto after_end =
      static_cast<uint64_t>(std::count(ended_during.begin(), ended_during.end(), 1));
  if (after_end > 0) stats_.sequence_steps_after_end_.fetch_add(after_end);
  {
    MutexLock lock(&mu_);
    for (size_t i = 0; i < n; ++i) {
      Entry& e = *batch_[i];
      if (over[i] || e.stop_requested) {
        // Over, or its call ended while being delivered to.
        MoveLocked(e, Where::kReleasing);
        leaving.push_back(batch_[i]);
      } else if (sit_out[i] && !e.resume_requested) {
        MoveLocked(e, Where::kSittingOut);
        stats_.sat_out_.fetch_add(1, std::memory_order_relaxed);
      } else {
        MoveLocked(e, Where::kReady);
      }
      e.resume_requested = false;
    }
    uint64_t bytes = 0;
    for (const EntryList* list : {&ready_, &sitting_out_}) {
      for (const auto& e : *list) bytes += e->bytes;
    }
    for (const auto& e : leaving) bytes += e->bytes;  // until released, just below
    state_bytes_ = bytes;
    step_cancel_.reset();
    wanted_in_step_ = 0;
  }
  for (const auto& e : leaving) Release(*e);
  return true;
}

void BatchScheduler::Release(Entry& entry) {
  if (entry.started) {
    try {
      model_->ReleaseSequence(*entry.sequence);
    } catch (...) {
      LOG(ERROR) << "model " << name_
                 << " threw from Release: " << DescribeException(std::current_exception());
    }
  }
  entry.sequence.reset();
  std::shared_ptr<Call> call;
  {
    MutexLock lock(&mu_);
    if (entry.started) {
      --held_;
      state_bytes_ -= std::min(state_bytes_, entry.bytes);
    }
    entry.bytes = 0;
    entry.where = Where::kEnded;
    call = std::move(entry.call);
    --admitted_;
    cv_.SignalAll();
  }
  if (entry.started) {
    const EndCause cause = call->StopReason().value_or(EndCause::kError);
    stats_.left_[static_cast<int>(cause)].fetch_add(1, std::memory_order_relaxed);
    stats_.steps_after_end_.ObserveValue(static_cast<double>(entry.steps_after_end));
  }
  call->Released();
}

// --- Notices from calls ----------------------------------------------------------

void BatchScheduler::StopTask(Task& task) {
  auto& entry = static_cast<Entry&>(task);
  std::shared_ptr<CancellationSource> fire;
  bool release_now = false;
  {
    MutexLock lock(&mu_);
    switch (entry.where) {
      case Where::kQueued:
        // Never started: nothing of the model's to release. Ends here.
        MoveLocked(entry, Where::kReleasing);
        release_now = true;
        break;
      case Where::kReady:
      case Where::kSittingOut:
        MoveLocked(entry, Where::kLeaving);
        cv_.SignalAll();  // the loop releases it at once
        return;
      case Where::kInStep:
        if (!entry.stop_requested) {
          entry.stop_requested = true;
          if (--wanted_in_step_ == 0 && step_cancel_ != nullptr) fire = step_cancel_;
        }
        break;
      case Where::kLeaving:
      case Where::kReleasing:
      case Where::kEnded:
        return;
    }
  }
  if (fire != nullptr) fire->Cancel();  // nobody in the step in flight is wanted any more
  if (release_now) Release(entry);
}

void BatchScheduler::ResumeTask(Task& task) {
  auto& entry = static_cast<Entry&>(task);
  MutexLock lock(&mu_);
  if (entry.where == Where::kSittingOut) {
    MoveLocked(entry, Where::kReady);
    cv_.SignalAll();
  } else if (entry.where == Where::kInStep) {
    entry.resume_requested = true;
  }
}

// --- Bookkeeping -------------------------------------------------------------------

BatchScheduler::EntryList* BatchScheduler::ListLocked(Where where) {
  switch (where) {
    case Where::kQueued:
      return &queue_;
    case Where::kReady:
      return &ready_;
    case Where::kInStep:
      return &in_step_;
    case Where::kSittingOut:
      return &sitting_out_;
    case Where::kLeaving:
      return &leaving_;
    case Where::kReleasing:
    case Where::kEnded:
      break;
  }
  return nullptr;
}

void BatchScheduler::MoveLocked(Entry& entry, Where to) {
  if (EntryList* from = ListLocked(entry.where)) from->erase(entry.pos);
  entry.where = to;
  if (EntryList* list = ListLocked(to)) {
    entry.pos = list->insert(list->end(), entry.shared_from_this());
  }
}

int BatchScheduler::JoinableLocked() const {
  const int max_batch = options_.limits.max_batch;
  const int ready = static_cast<int>(ready_.size());
  if (queue_.empty() || ready >= max_batch || held_ >= max_sequences_) return 0;
  const uint64_t budget = options_.limits.max_state_bytes;
  if (budget != 0 && state_bytes_ >= budget) return 0;
  return std::min({static_cast<int>(queue_.size()), max_batch - ready, max_sequences_ - held_});
}

bool BatchScheduler::HasWorkLocked() const {
  return !leaving_.empty() || !ready_.empty() || JoinableLocked() > 0;
}

void BatchScheduler::Loop() {
  // "batch:<model>", cut to the 15 characters Linux keeps.
  pthread_setname_np(pthread_self(), absl::StrCat("batch:", name_).substr(0, 15).c_str());
  const absl::Duration batch_wait = options_.limits.batch_wait;
  const int max_batch = options_.limits.max_batch;
  MutexLock lock(&mu_);
  while (true) {
    while (!HasWorkLocked() && !stopping_) cv_.Wait(&mu_);
    if (!HasWorkLocked()) break;  // stopping, and nothing left to do
    if (batch_wait > absl::ZeroDuration()) {
      // Wait (a little) for a fuller batch, but not to release an ended one.
      const absl::Time until = absl::Now() + batch_wait;
      while (!stopping_ && leaving_.empty() &&
             static_cast<int>(ready_.size()) + JoinableLocked() < max_batch) {
        if (cv_.WaitWithDeadline(&mu_, until)) break;
      }
    }
    mu_.Unlock();
    RunStep();
    mu_.Lock();
  }
  loop_exited_ = true;
  cv_.SignalAll();
}

void BatchScheduler::CancelAll(EndCause cause) {
  // Queued calls first, so that none joins in the place of a cancelled one.
  std::vector<std::shared_ptr<Call>> calls;
  {
    MutexLock lock(&mu_);
    for (const EntryList* list : {&queue_, &ready_, &in_step_, &sitting_out_}) {
      for (const auto& e : *list) {
        if (e->call != nullptr) calls.push_back(e->call);
      }
    }
  }
  for (const auto& call : calls) call->Cancel(cause);
}

bool BatchScheduler::WaitIdle(absl::Time deadline) const {
  MutexLock lock(&mu_);
  while (admitted_ > 0) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return admitted_ == 0;
  }
  return true;
}

bool BatchScheduler::WaitForQueued(int n, absl::Time deadline) const {
  MutexLock lock(&mu_);
  while (static_cast<int>(queue_.size()) < n) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return static_cast<int>(queue_.size()) >= n;
  }
  return true;
}

bool BatchScheduler::Stop(absl::Time deadline) {
  {
    MutexLock lock(&mu_);
    if (!loop_.joinable()) return true;
    stopping_ = true;
    cv_.SignalAll();
    while (!loop_exited_) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
    if (!loop_exited_) {
      LOG(ERROR) << "model " << name_
                 << ": its batch loop is still inside a model step at shutdown; leaving it behind";
      loop_.detach();
      return false;
    }
  }
  loop_.join();
  return true;
}

int BatchScheduler::queued() const {
  MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int BatchScheduler::held() const {
  MutexLock lock(&mu_);
  return held_;
}

int BatchScheduler::sitting_out() const {
  MutexLock lock(&mu_);
  return static_cast<int>(sitting_out_.size());
}

uint64_t BatchScheduler::state_bytes() const {
  MutexLock lock(&mu_);
  return state_bytes_;
}

}  // namespace sluice
