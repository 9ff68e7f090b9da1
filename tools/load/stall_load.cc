#include "tools/load/stall_load.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_callback.h"

namespace sluice {

// Call: one stream that is never read. No read is ever started: what the
// server sends piles up in the client's transport until its windows close.
class StallLoad::Call final : public grpc::ClientReadReactor<v1::PredictChunk> {
 public:
  explicit Call(StallLoad* load) : load_(load) {}

  void Start(v1::Inference::Stub* stub, const v1::PredictRequest& request) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + load_->options_.deadline));
    stub->async()->PredictStream(&context_, &request, this);
    SLUICE_HAPPENS_BEFORE(this);  // set-up precedes the reactions (see models/sync.h)
    StartCall();
  }

  void OnDone(const grpc::Status& status) override {
    SLUICE_HAPPENS_AFTER(this);
    MutexLock lock(&load_->mu_);
    Result& r = load_->result_;
    ++r.done;
    if (status.error_code() == grpc::StatusCode::CANCELLED) {
      ++r.cancelled;
    } else if (r.other++ == 0) {
      r.first_other = absl::StrCat(status.error_code(), ": ", status.error_message());
    }
    load_->cv_.SignalAll();
  }

  void Cancel() {
    SLUICE_HAPPENS_BEFORE(this);
    context_.TryCancel();
  }

 private:
  StallLoad* const load_;
  grpc::ClientContext context_;
};

StallLoad::StallLoad(StallLoadOptions options) : options_(std::move(options)) {
  for (int i = 0; i < options_.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("sluice.stall_load_channel", i);  // one connection per channel
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16384);
    args.SetMaxReceiveMessageSize(64 << 20);
    channels_.push_back(
        grpc::CreateCustomChannel(options_.target, grpc::InsecureChannelCredentials(), args));
    stubs_.push_back(v1::Inference::NewStub(channels_.back()));
  }
}

StallLoad::~StallLoad() {
  CancelAll();
  WaitDone(absl::Now() + absl::Seconds(60));
}

void StallLoad::CancelAll() {
  for (auto& call : calls_) call->Cancel();
}

void StallLoad::Start() {
  for (int i = 0; i < options_.streams; ++i) {
    calls_.push_back(std::make_unique<Call>(this));
    v1::PredictRequest request = options_.request;
    request.set_request_id(absl::StrCat(request.request_id(), i));
    calls_.back()->Start(stubs_[i % stubs_.size()].get(), request);
  }
}

bool StallLoad::WaitDone(absl::Time deadline) {
  MutexLock lock(&mu_);
  while (result_.done < static_cast<int>(calls_.size())) {
    if (cv_.WaitWithDeadline(&mu_, deadline))
      return result_.done >= static_cast<int>(calls_.size());
  }
  return true;
}

StallLoad::Result StallLoad::result() const {
  MutexLock lock(&mu_);
  return result_;
}

}  // namespace sluice
