#ifndef SLUICE_HANDLERS_WRITE_STARTER_H_
#define SLUICE_HANDLERS_WRITE_STARTER_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "models/sync.h"

namespace sluice {

// WriteStarter: one thread that starts the stream writes a model's own
// thread decided, so that thread goes on with the model instead. Starting a
// write is gRPC's transport work (serialising the message, and often the
// send system call itself) done inline by the caller: on a batch loop that
// is one per sequence per step, on the step's critical path. Here it runs
// on another core while the next step computes.
//
// Tasks run one at a time, in the order posted. The destructor runs every
// task posted before it, then joins the thread: a decided write must start,
// or its call could never finish.
class WriteStarter {
 public:
  // `name` names the thread (cut to the 15 characters Linux keeps).
  explicit WriteStarter(std::string name);
  ~WriteStarter();
  WriteStarter(const WriteStarter&) = delete;
  WriteStarter& operator=(const WriteStarter&) = delete;

  // Post: runs `task` on the starter's thread, soon. Never blocks on a task.
  void Post(std::function<void()> task);

 private:
  void Loop();

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace sluice

#endif  // SLUICE_HANDLERS_WRITE_STARTER_H_
