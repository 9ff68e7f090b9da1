#include "tools/benchmark/stream_probe.h"

#include <utility>

#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/client_callback.h"

namespace sluice::bench {

v1::PredictRequest Synthetic(std::vector<std::pair<std::string, int64_t>> params,
                             std::string request_id) {
  v1::PredictRequest request;
  request.set_model("synthetic");
  request.set_request_id(std::move(request_id));
  for (const auto& [name, value] : params) {
    (*request.mutable_parameters())[name].set_int64_param(value);
  }
  return request;
}

std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(const std::string& target, int n,
                                                         absl::Time deadline) {
  static std::atomic<int> next_id{0};
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("sluice.bench_channel", next_id++);  // distinct args: a connection of its own
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }
  for (const auto& channel : channels) {
    if (!channel->WaitForConnected(absl::ToChronoTime(deadline))) return {};
  }
  return channels;
}

// Reader: one stream. gRPC serialises one reactor's reactions, so the
// per-stream fields written only from them need no lock until OnDone.
class StreamSet::Reader final : public grpc::ClientReadReactor<v1::PredictChunk> {
 public:
  Reader(StreamSet* set, int index, StreamPlan plan)
      : set_(set), index_(index), plan_(std::move(plan)) {}

  void Start(v1::Inference::Stub* stub) {
    if (plan_.deadline != absl::InfiniteDuration()) {
      context_.set_deadline(absl::ToChronoTime(absl::Now() + plan_.deadline));
    }
    stub->async()->PredictStream(&context_, &plan_.request, this);
    StartRead(&chunk_);
    record_.started = absl::Now();
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream is over; OnDone follows
    if (chunk_.finish_reason() == v1::FINISH_REASON_UNSPECIFIED &&
        record_.cancelled == absl::InfinitePast()) {
      if (record_.chunks++ == 0) {
        record_.first_chunk = absl::Now();
        MutexLock lock(&set_->mu_);
        ++set_->with_chunks_;
        set_->cv_.SignalAll();
      }
      set_->chunks_.fetch_add(1, std::memory_order_relaxed);
      if (record_.chunks == plan_.cancel_after_chunks) {
        if (set_->before_cancel_) set_->before_cancel_(index_);
        if (!plan_.mark_only) {
          record_.cancelled = absl::Now();
          context_.TryCancel();
        }
      }
    }
    StartRead(&chunk_);
  }

  void OnDone(const grpc::Status& status) override {
    const absl::Time now = absl::Now();
    MutexLock lock(&set_->mu_);
    record_.ended = now;
    record_.done = true;
    record_.code = status.error_code();
    ++set_->done_;
    set_->cv_.SignalAll();
  }

  void Cancel() { context_.TryCancel(); }

  // Read under the set's mutex once done_ (OnDone wrote it under the mutex).
  const StreamRecord& record() const { return record_; }

 private:
  StreamSet* const set_;
  const int index_;
  const StreamPlan plan_;
  grpc::ClientContext context_;
  v1::PredictChunk chunk_;
  StreamRecord record_;
};

StreamSet::StreamSet(std::vector<std::shared_ptr<grpc::Channel>> channels,
                     BeforeCancel before_cancel)
    : channels_(std::move(channels)), before_cancel_(std::move(before_cancel)) {
  for (const auto& channel : channels_) stubs_.push_back(v1::Inference::NewStub(channel));
}

StreamSet::~StreamSet() {
  CancelAll();
  if (!WaitDone(absl::Now() + absl::Seconds(30))) {
    // A call that never ended still refers to its reader: keep them all.
    for (auto& reader : readers_) reader.release();
  }
}

void StreamSet::Start(std::vector<StreamPlan> plans, absl::Duration spacing) {
  readers_.reserve(plans.size());
  for (size_t i = 0; i < plans.size(); ++i) {
    readers_.push_back(std::make_unique<Reader>(this, static_cast<int>(i), std::move(plans[i])));
  }
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < readers_.size(); ++i) {
    if (spacing > absl::ZeroDuration()) absl::SleepFor(start + i * spacing - absl::Now());
    readers_[i]->Start(stubs_[i % stubs_.size()].get());
  }
}

bool StreamSet::WaitDone(absl::Time deadline) {
  MutexLock lock(&mu_);
  while (done_ < static_cast<int>(readers_.size())) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return done_ >= static_cast<int>(readers_.size());
  }
  return true;
}

bool StreamSet::WaitFirstChunks(int n, absl::Time deadline) {
  MutexLock lock(&mu_);
  while (with_chunks_ < n) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return with_chunks_ >= n;
  }
  return true;
}

void StreamSet::CancelAll() {
  for (const auto& reader : readers_) reader->Cancel();
}

std::vector<StreamRecord> StreamSet::records() const {
  MutexLock lock(&mu_);
  std::vector<StreamRecord> out;
  out.reserve(readers_.size());
  for (const auto& reader : readers_) {
    // A stream still open is reported by what is known of it without its
    // callbacks' unsynchronised fields: started only.
    if (reader->record().done) {
      out.push_back(reader->record());
    } else {
      StreamRecord open;
      open.started = reader->record().started;
      out.push_back(open);
    }
  }
  return out;
}

}  // namespace sluice::bench
