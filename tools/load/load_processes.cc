#include "tools/load/load_processes.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace sluice {
namespace {

constexpr char kChildFlag[] = "--load_child_dir=";

// WriteWhole: writes `content` to `path` through a temporary file renamed
// into place, so that a reader (WaitForFile) never sees half of it.
bool WriteWhole(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << content;
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Spec: what one child runs.
struct Spec {
  LoadOptions options;
  absl::Duration give_up_after;
};

std::string EncodeSpec(const LoadOptions& o, absl::Duration give_up_after) {
  return absl::StrCat(
      "target=", o.target, "\nstreams=", o.streams, "\nchannels=", o.channels, "\ndeadline_ms=",
      o.deadline == absl::InfiniteDuration() ? int64_t{-1} : absl::ToInt64Milliseconds(o.deadline),
      "\ngive_up_ms=", absl::ToInt64Milliseconds(give_up_after),
      "\nrequest=", absl::Base64Escape(o.request.SerializeAsString()), "\n");
}

std::optional<Spec> DecodeSpec(const std::string& text) {
  Spec spec;
  int64_t deadline_ms = -1, give_up_ms = 0;
  bool have_request = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    const std::string& v = kv.second;
    if (kv.first == "target") spec.options.target = v;
    if (kv.first == "streams" && !absl::SimpleAtoi(v, &spec.options.streams)) return std::nullopt;
    if (kv.first == "channels" && !absl::SimpleAtoi(v, &spec.options.channels)) return std::nullopt;
    if (kv.first == "deadline_ms" && !absl::SimpleAtoi(v, &deadline_ms)) return std::nullopt;
    if (kv.first == "give_up_ms" && !absl::SimpleAtoi(v, &give_up_ms)) return std::nullopt;
    if (kv.first == "request") {
      std::string bytes;
      if (!absl::Base64Unescape(v, &bytes) || !spec.options.request.ParseFromString(bytes)) {
        return std::nullopt;
      }
      have_request = true;
    }
  }
  if (spec.options.target.empty() || !have_request || give_up_ms <= 0) return std::nullopt;
  spec.options.deadline =
      deadline_ms < 0 ? absl::InfiniteDuration() : absl::Milliseconds(deadline_ms);
  spec.give_up_after = absl::Milliseconds(give_up_ms);
  return spec;
}

// WaitSignal: waits for SIGUSR1 or SIGUSR2 (blocked in this process) until
// `deadline`; the signal, or 0 if none came.
int WaitSignal(absl::Time deadline) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGUSR2);
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return 0;
    timespec timeout = absl::ToTimespec(left);
    const int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig > 0) return sig;
    if (errno != EINTR) return 0;
  }
}

int RunChild(const std::string& dir) {
  const std::optional<Spec> spec = DecodeSpec(ReadWhole(dir + "/spec"));
  if (!spec.has_value()) {
    std::fprintf(stderr, "load child: unreadable spec in %s\n", dir.c_str());
    return 2;
  }
  const absl::Time give_up = absl::Now() + spec->give_up_after;
  StreamLoad load(spec->options);
  load.Start();
  load.WaitForFirstChunks(spec->options.streams, give_up);
  {
    std::string opened = absl::StrCat(load.counts().with_chunks, "\n");
    for (absl::Duration d : load.FirstChunkLatencies()) {
      absl::StrAppend(&opened, absl::ToInt64Microseconds(d), "\n");
    }
    WriteWhole(dir + "/opened", opened);
  }
  int sig = WaitSignal(give_up);
  int64_t chunks_at_mark = load.counts().chunks;
  if (sig == SIGUSR1) {
    const std::string hold_text = ReadWhole(dir + "/hold_ms");
    int64_t hold_ms = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(hold_text), &hold_ms)) hold_ms = 0;
    load.MarkChunks();
    chunks_at_mark = load.counts().chunks;
    const int served =
        load.WaitForChunksSinceMark(std::min(give_up, absl::Now() + absl::Milliseconds(hold_ms)));
    WriteWhole(dir + "/served", absl::StrCat(served, "\n"));
    sig = WaitSignal(give_up);
  }
  // SIGUSR2, or the parent gave up on us: cancel everything and report.
  const int64_t chunks_since_mark = load.counts().chunks - chunks_at_mark;
  load.CancelAll();
  const bool ended = load.WaitDone(-1, absl::Now() + absl::Seconds(60));
  const StreamLoad::Counts counts = load.counts();
  WriteWhole(dir + "/cancelled", absl::StrCat(counts.cancelled, " ", chunks_since_mark, " ",
                                              counts.other_errors, "\n", counts.first_error, "\n"));
  return ended && sig == SIGUSR2 ? 0 : 1;
}

}  // namespace

std::optional<int> RunLoadChildIfAsked(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::ConsumePrefix(&arg, kChildFlag)) continue;
    // The parent's signals are taken by sigtimedwait: blocked before gRPC
    // starts any thread, so that every thread inherits the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return RunChild(std::string(arg));
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<LoadProcesses>> LoadProcesses::Start(const LoadOptions& options,
                                                                    int processes,
                                                                    const std::string& work_dir,
                                                                    absl::Duration give_up_after) {
  processes = std::max(1, std::min({processes, options.streams, options.channels}));
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return absl::InternalError("cannot read /proc/self/exe");
  self[n] = '\0';
  mkdir(work_dir.c_str(), 0755);
  auto load = std::unique_ptr<LoadProcesses>(new LoadProcesses());
  load->streams_ = options.streams;
  for (int i = 0; i < processes; ++i) {
    LoadOptions share = options;
    share.streams = options.streams / processes + (i < options.streams % processes ? 1 : 0);
    share.channels =
        std::max(1, options.channels / processes + (i < options.channels % processes ? 1 : 0));
    share.request.set_request_id(absl::StrCat(options.request.request_id(), i, "-"));
    Child child;
    child.dir = absl::StrCat(work_dir, "/child", i);
    mkdir(child.dir.c_str(), 0755);
    for (const char* stale : {"/opened", "/served", "/cancelled", "/hold_ms"}) {
      std::remove((child.dir + stale).c_str());
    }
    if (!WriteWhole(child.dir + "/spec", EncodeSpec(share, give_up_after))) {
      return absl::InternalError("cannot write " + child.dir + "/spec");
    }
    absl::StatusOr<std::unique_ptr<Subprocess>> process =
        Subprocess::Start({std::string(self), std::string(kChildFlag) + child.dir});
    if (!process.ok()) return process.status();
    child.process = *std::move(process);
    load->children_.push_back(std::move(child));
  }
  return load;
}

LoadProcesses::~LoadProcesses() = default;  // each Subprocess kills a child still running

std::vector<std::string> LoadProcesses::Collect(const std::string& phase, absl::Time deadline) {
  std::vector<std::string> out;
  for (Child& child : children_) {
    absl::StatusOr<std::string> content =
        WaitForFile(child.dir + "/" + phase, *child.process,
                    std::max(absl::ZeroDuration(), deadline - absl::Now()));
    out.push_back(content.ok() ? *content : "");
  }
  return out;
}

bool LoadProcesses::WaitForFirstChunks(absl::Time deadline) {
  with_chunks_ = 0;
  latencies_.clear();
  bool all = true;
  for (const std::string& opened : Collect("opened", deadline)) {
    if (opened.empty()) {
      all = false;
      continue;
    }
    std::vector<absl::string_view> lines = absl::StrSplit(opened, '\n', absl::SkipEmpty());
    int n = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(lines[i], &v)) continue;
      if (i == 0) {
        n = static_cast<int>(v);
      } else {
        latencies_.push_back(absl::Microseconds(v));
      }
    }
    with_chunks_ += n;
  }
  return all && with_chunks_ == streams_;
}

void LoadProcesses::Signal(int signal) {
  for (Child& child : children_) {
    if (child.process->Running()) child.process->Kill(signal);
  }
}

void LoadProcesses::MarkChunks(absl::Duration hold) {
  for (const Child& child : children_) {
    WriteWhole(child.dir + "/hold_ms", absl::StrCat(absl::ToInt64Milliseconds(hold), "\n"));
  }
  Signal(SIGUSR1);
}

int LoadProcesses::WaitForChunksSinceMark(absl::Time deadline) {
  int served = 0;
  for (const std::string& text : Collect("served", deadline)) {
    int n = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &n)) served += n;
  }
  return served;
}

void LoadProcesses::CancelAll() { Signal(SIGUSR2); }

bool LoadProcesses::WaitDone(absl::Time deadline) {
  cancelled_ = other_errors_ = 0;
  chunks_since_mark_ = 0;
  first_error_.clear();
  bool all = true;
  for (const std::string& text : Collect("cancelled", deadline)) {
    std::vector<std::string> lines = absl::StrSplit(text, absl::MaxSplits('\n', 1));
    std::vector<absl::string_view> fields = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
    int cancelled = 0, errors = 0;
    int64_t chunks = 0;
    if (fields.size() != 3 || !absl::SimpleAtoi(fields[0], &cancelled) ||
        !absl::SimpleAtoi(fields[1], &chunks) || !absl::SimpleAtoi(fields[2], &errors)) {
      all = false;
      continue;
    }
    cancelled_ += cancelled;
    chunks_since_mark_ += chunks;
    other_errors_ += errors;
    if (first_error_.empty() && lines.size() > 1) {
      first_error_ = std::string(absl::StripAsciiWhitespace(lines[1]));
    }
  }
  return all;
}

ProcStats LoadProcesses::stats() const {
  ProcStats sum;
  for (const Child& child : children_) {
    if (std::optional<ProcStats> s = ReadProcStats(child.process->pid())) {
      sum.rss_bytes += s->rss_bytes;
      sum.cpu += s->cpu;
    }
  }
  return sum;
}

int ProcessesFor(int streams) { return std::max(1, (streams + 4999) / 5000); }

int64_t TransportQuotaFor(int streams) {
  return std::max<int64_t>(int64_t{512} << 20, int64_t{streams} * 20480);
}

}  // namespace sluice
