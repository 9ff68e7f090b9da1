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
    wake = tasks_.empty();  // the thread waits only for an empty queue
    tasks_.push_back(std::move(task));
  }
  if (wake) cv_.Signal();
}

void WriteStarter::Loop() {
  std::deque<std::function<void()>> batch;
  MutexLock lock(&mu_);
  while (true) {
    while (tasks_.empty() && !stopping_) cv_.Wait(&mu_);
    if (tasks_.empty()) return;  // stopping, and everything posted has run
    batch.swap(tasks_);
    mu_.Unlock();
    for (auto& task : batch) task();
    batch.clear();
    mu_.Lock();
  }
}

}  // namespace sluice
