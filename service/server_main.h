#ifndef SLUICE_SERVICE_SERVER_MAIN_H_
#define SLUICE_SERVICE_SERVER_MAIN_H_

// A main() for sluice server binaries. A user's own binary is:
//
//   int main(int argc, char** argv) {
//     return sluice::ServerMain(argc, argv, [](sluice::ModelRegistry* registry) {
//       return registry->Register("shout", std::make_unique<Shout>());
//     });
//   }
//
// and gets every server flag (see --help), logging, and graceful shutdown on
// SIGTERM/SIGINT (a second signal exits at once).

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "handlers/executor.h"
#include "models/registry.h"
#include "service/server.h"

namespace sluice {

// ServerMain: parses flags, registers models with `register_models`, starts
// the server and serves until a signal. Returns the process exit code.
int ServerMain(int argc, char** argv,
               const std::function<absl::Status(ModelRegistry*)>& register_models);

// ServerOptionsFromFlags: the ServerOptions the command-line flags describe.
absl::StatusOr<ServerOptions> ServerOptionsFromFlags();

// ParseModelOptions: per-model scheduling from a flag value such as
// "synthetic:workers=4,max_active=64,queue_capacity=512;charlm:workers=1" or
// "batched_synthetic:max_batch=16,batch_wait_us=500". Executor keys not
// given keep the values in `defaults`; batch keys not given stay unset (the
// model's own limits apply). Whether the keys suit each model's kind is
// checked when the server starts.
absl::StatusOr<std::map<std::string, ModelOptions>> ParseModelOptions(
    absl::string_view spec, const ExecutorOptions& defaults);

}  // namespace sluice

#endif  // SLUICE_SERVICE_SERVER_MAIN_H_
