// Sanitizer defaults compiled into every sluice binary that links
// //models:sync, so that `bazel test --config=tsan` needs no environment.

#if defined(__SANITIZE_THREAD__)

extern "C" {

// __tsan_default_options: read by ThreadSanitizer before TSAN_OPTIONS (which
// still wins). ignore_noninstrumented_modules: Debian's gRPC, Protobuf and
// Abseil are prebuilt without TSan; what they do through intercepted calls
// (memcpy, epoll, ...) is not checked.
const char* __tsan_default_options() {
  return "halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1";
}

// __tsan_default_suppressions: what remains after the two measures that keep
// TSan's reports to races in sluice's own code (ignore_noninstrumented_modules
// above, and SLUICE_HAPPENS_BEFORE/AFTER in models/sync.h, which mark the
// ordering gRPC's callback API guarantees): gRPC's and Protobuf's header-only
// code, compiled into our binaries, racing with their uninstrumented halves.
//   - race_top: matches only the frame where the access happened, so a race
//     whose access is in sluice's code is still reported even with gRPC
//     further down the stack.
//   - race: matches any frame of either access; these name only gRPC paths
//     that never lie under sluice's code: replaying writes queued before a
//     reactor was bound, destroying a finished call, parsing a received
//     message before the reaction that reads it runs, and the closure with
//     which the server asks for its next call.
//   - thread: a thread leak by the creation stack. gRPC's own threads (its
//     executor) are joined by grpc_shutdown, which gRPC 1.51 may finish on a
//     detached thread after main has returned; sluice's threads are
//     std::threads that it always joins, and are still reported.
const char* __tsan_default_suppressions() {
  return "race_top:grpc::\n"
         "race_top:google::protobuf::\n"
         "race:grpc::ServerWriteReactor*::InternalBindWriter\n"
         "race:grpc::ServerUnaryReactor::InternalBindCall\n"
         "race:*ServerCallbackWriterImpl::~ServerCallbackWriterImpl\n"
         "race:*ServerCallbackUnaryImpl::~ServerCallbackUnaryImpl\n"
         "race:grpc::internal::CallOpSet*::FinalizeResult\n"
         "race:*CallbackCallTag::ContinueRunAfterInterception()::{lambda()\n"
         "thread:grpc_core::Thread::Thread\n";
}

}  // extern "C"

#endif  // defined(__SANITIZE_THREAD__)
