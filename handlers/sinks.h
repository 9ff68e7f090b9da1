#ifndef SLUICE_HANDLERS_SINKS_H_
#define SLUICE_HANDLERS_SINKS_H_

// The gRPC side of a call, as the handlers see it. The service layer's
// reactors implement these; unit tests implement them with fakes. Statuses
// are absl::Status here; the reactor converts them at the edge.

#include "absl/status/status.h"
#include "sluice/v1/inference.pb.h"

namespace sluice {

// CallSink: what every call can ask of its RPC.
class CallSink {
 public:
  virtual ~CallSink() = default;
  // IsCancelled: ServerContext::IsCancelled(); thread-safe.
  virtual bool IsCancelled() const = 0;
  // TryCancel: cancels the RPC on the wire (RST_STREAM). Outstanding writes
  // then fail and OnCancel follows. Never called with the call's lock held.
  virtual void TryCancel() = 0;
};

// StreamSink: a server-streaming RPC. The Call guarantees: at most one write
// outstanding; a written message stays alive and unchanged until its
// OnWriteDone; Finish exactly once, never with a write outstanding, after
// which the sink is not used again.
class StreamSink : public CallSink {
 public:
  // StartWrite: sends `chunk`. `buffer_hint`: another message is already
  // waiting behind this one and will be written from its OnWriteDone, so
  // the transport may hold this one back and send both in one write
  // (grpc::WriteOptions::set_buffer_hint). A write without the hint sends
  // everything held back.
  virtual void StartWrite(const v1::PredictChunk* chunk, bool buffer_hint) = 0;
  virtual void Finish(const absl::Status& status) = 0;
};

// UnarySink: a unary RPC. Finish is called exactly once; `response` is
// non-null only with an OK status and stays alive until the RPC is done.
class UnarySink : public CallSink {
 public:
  virtual void Finish(const absl::Status& status, const v1::PredictResponse* response) = 0;
};

}  // namespace sluice

#endif  // SLUICE_HANDLERS_SINKS_H_
