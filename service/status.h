#ifndef SLUICE_SERVICE_STATUS_H_
#define SLUICE_SERVICE_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace sluice {

// ToGrpcStatus: the one place an absl::Status becomes a grpc::Status. The
// codes are the same numbers; the message is carried over unchanged.
grpc::Status ToGrpcStatus(const absl::Status& status);

// FromGrpcStatus: the reverse, for clients.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace sluice

#endif  // SLUICE_SERVICE_STATUS_H_
