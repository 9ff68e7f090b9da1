#include "tools/load/stream_load.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/client_callback.h"

namespace sluice {

// Reader: one stream. Its reactions run on gRPC's threads.
class StreamLoad::Reader final : public grpc::ClientReadReactor<v1::PredictChunk> {
 public:
  Reader(StreamLoad* load, int index) : load_(load), index_(index) {}

  void Start(v1::Inference::Stub* stub, const v1::PredictRequest& request) {
    if (load_->options_.deadline != absl::InfiniteDuration()) {
      context_.set_deadline(absl::ToChronoTime(absl::Now() + load_->options_.deadline));
    }
    start_ = absl::Now();
    stub->async()->PredictStream(&context_, &request, this);
    StartRead(&chunk_);
    SLUICE_HAPPENS_BEFORE(this);  // set-up precedes the reactions (see models/sync.h)
    StartCall();
  }

  void OnReadDone(bool ok) override {
    SLUICE_HAPPENS_AFTER(this);
    if (!ok) return;  // the stream is over; OnDone follows
    if (chunk_.finish_reason() == v1::FINISH_REASON_UNSPECIFIED) {
      MutexLock lock(&load_->mu_);
      bool news = false;  // something a waiter waits for
      if (chunks_++ == 0) {
        first_chunk_ = absl::Now() - start_;
        ++load_->counts_.with_chunks;
        news = true;
      }
      if (chunks_ == load_->marked_[index_] + 1) {
        ++load_->progressed_;
        news = true;
      }
      ++load_->counts_.chunks;
      if (news) load_->cv_.SignalAll();
    }
    SLUICE_HAPPENS_BEFORE(this);
    StartRead(&chunk_);
  }

  void OnDone(const grpc::Status& status) override {
    SLUICE_HAPPENS_AFTER(this);
    MutexLock lock(&load_->mu_);
    StreamLoad::Counts& c = load_->counts_;
    ++c.done;
    switch (status.error_code()) {
      case grpc::StatusCode::OK:
        ++c.ok;
        break;
      case grpc::StatusCode::CANCELLED:
        ++c.cancelled;
        break;
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        ++c.deadline_exceeded;
        break;
      default:
        if (c.other_errors++ == 0) {
          c.first_error = absl::StrCat(status.error_code(), ": ", status.error_message());
        }
    }
    load_->cv_.SignalAll();
  }

  void Cancel() {
    SLUICE_HAPPENS_BEFORE(this);
    context_.TryCancel();
  }

  // Guarded by the load's mutex.
  int64_t chunks_ = 0;
  absl::Duration first_chunk_ = absl::InfiniteDuration();

 private:
  StreamLoad* const load_;
  const int index_;
  grpc::ClientContext context_;
  v1::PredictChunk chunk_;
  absl::Time start_;
};

StreamLoad::StreamLoad(LoadOptions options) : options_(std::move(options)) {
  for (int i = 0; i < std::max(1, options_.channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("sluice.load_channel", i);  // distinct args: a connection of its own
    channels_.push_back(
        grpc::CreateCustomChannel(options_.target, grpc::InsecureChannelCredentials(), args));
    stubs_.push_back(v1::Inference::NewStub(channels_.back()));
  }
}

StreamLoad::~StreamLoad() {
  CancelAll();
  WaitDone(-1, absl::Now() + absl::Seconds(60));
}

void StreamLoad::Start() {
  {
    MutexLock lock(&mu_);
    marked_.assign(options_.streams, 0);
  }
  readers_.reserve(options_.streams);
  for (int i = 0; i < options_.streams; ++i) {
    readers_.push_back(std::make_unique<Reader>(this, i));
  }
  for (int i = 0; i < options_.streams; ++i) {
    v1::PredictRequest request = options_.request;
    request.set_request_id(absl::StrCat(options_.request.request_id(), i));
    {
      MutexLock lock(&mu_);
      ++counts_.started;
    }
    readers_[i]->Start(stubs_[i % stubs_.size()].get(), request);
  }
}

bool StreamLoad::WaitForFirstChunks(int n, absl::Time deadline) {
  MutexLock lock(&mu_);
  while (counts_.with_chunks < n) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return counts_.with_chunks >= n;
  }
  return true;
}

void StreamLoad::MarkChunks() {
  MutexLock lock(&mu_);
  for (size_t i = 0; i < readers_.size(); ++i) marked_[i] = readers_[i]->chunks_;
  progressed_ = 0;
}

int StreamLoad::WaitForChunksSinceMark(absl::Time deadline) {
  MutexLock lock(&mu_);
  // Every stream still open has progressed (a stream that ended after its
  // chunk counts as progressed, not as open).
  while (progressed_ < static_cast<int>(readers_.size()) - counts_.done) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return progressed_;
}

void StreamLoad::CancelAll() { CancelFirst(static_cast<int>(readers_.size())); }

void StreamLoad::CancelFirst(int n) {
  for (int i = 0; i < n && i < static_cast<int>(readers_.size()); ++i) readers_[i]->Cancel();
}

bool StreamLoad::WaitDone(int n, absl::Time deadline) {
  MutexLock lock(&mu_);
  const int target = n < 0 ? counts_.started : n;
  while (counts_.done < target) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return counts_.done >= target;
  }
  return true;
}

StreamLoad::Counts StreamLoad::counts() const {
  MutexLock lock(&mu_);
  return counts_;
}

std::vector<absl::Duration> StreamLoad::FirstChunkLatencies() const {
  MutexLock lock(&mu_);
  std::vector<absl::Duration> out;
  for (const auto& r : readers_) {
    if (r->first_chunk_ != absl::InfiniteDuration()) out.push_back(r->first_chunk_);
  }
  return out;
}

}  // namespace sluice
