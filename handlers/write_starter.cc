#include "handlers/write_starter.h"

#include <pthread.h>

#include <utility>

namespace sluice {

WriteStarter::WriteStarter(std::string name) {
  thread_ = std::thread([this, name = std::move(name)] {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    Loop();
  });
}

WriteStarter::~WriteStarter() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    cv_.Signal();
  }
  thread_.join();
}

void WriteStarter::Post(std::function<void()> task) {
  bool wake = false;
  {
    MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
    wake = std::exchange(idle_, false);
  }
  if (wake) cv_.Signal();
}

void WriteStarter::Loop() {
  std::deque<std::function<void()>> batch;
  MutexLock lock(&mu_);
  while (true) {
    while (tasks_.empty() && !stopping_) {
      idle_ = true;
      cv_.Wait(&mu_);
    }
    idle_ = false;
    if (tasks_.empty()) return;  // stopping, and everything posted has run
    batch.swap(tasks_);
    mu_.Unlock();
    for (auto& task : batch) task();
    batch.clear();
    mu_.Lock();
  }
}

}  // namespace sluice
