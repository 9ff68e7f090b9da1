#ifndef SLUICE_SERVICE_METRICS_HTTP_H_
#define SLUICE_SERVICE_METRICS_HTTP_H_

// MetricsHttpServer: serves a Prometheus page at GET /metrics over plain
// HTTP (civetweb), next to the gRPC port.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct mg_connection;
struct mg_context;

namespace sluice {

class MetricsHttpServer {
 public:
  // Render: makes the page for one scrape. Called on civetweb's threads,
  // possibly several at once; must be thread-safe.
  using Render = std::function<absl::StatusOr<std::string>()>;

  // Start: listens on `host`:`port` (0 picks a free port) and answers
  //   GET or HEAD /metrics  200 with render()'s page, text/plain; version=0.0.4
  //                         (500 and an ERROR log line if render() fails)
  //   other methods         405
  //   other paths           404
  // `host` as for ServerOptions::host. Debian's civetweb is built without
  // IPv6, so "::" listens on every IPv4 address, "::1" on 127.0.0.1, and
  // another IPv6 address is refused.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(absl::string_view host, int port,
                                                                  Render render);

  // Stops listening and waits for scrapes in progress to finish.
  ~MetricsHttpServer();

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // port: the port it listens on (the chosen one if 0 was asked).
  int port() const { return port_; }

 private:
  explicit MetricsHttpServer(Render render) : render_(std::move(render)) {}
  static int HandleMetrics(struct mg_connection* connection, void* self);

  const Render render_;
  mg_context* context_ = nullptr;
  int port_ = 0;
  std::string wake_address_;  // where a connection reaches the listener
};

}  // namespace sluice

#endif  // SLUICE_SERVICE_METRICS_HTTP_H_
