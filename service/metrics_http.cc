#include "service/metrics_http.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "models/sync.h"

namespace sluice {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";
// Scrapes are rare and small: two threads answer them, and a client that
// does not finish its request within this long is dropped.
constexpr char kThreads[] = "2";
constexpr char kRequestTimeoutMs[] = "10000";

// LogMessage: civetweb's complaints go to the server's log, not its stderr.
int LogMessage(const struct mg_connection* /*connection*/, const char* message) {
  LOG(WARNING) << "metrics endpoint: " << message;
  return 1;
}

// ListenAddress: `host`:`port` as civetweb's listening_ports option takes it.
absl::StatusOr<std::string> ListenAddress(absl::string_view host, int port) {
  if (host.find(':') == absl::string_view::npos) return absl::StrCat(host, ":", port);
  absl::string_view bare = host;
  if (absl::ConsumePrefix(&bare, "[")) absl::ConsumeSuffix(&bare, "]");
  if (mg_check_feature(MG_FEATURES_IPV6) != 0) return absl::StrCat("[", bare, "]:", port);
  if (bare == "::") return absl::StrCat("0.0.0.0:", port);
  if (bare == "::1") return absl::StrCat("127.0.0.1:", port);
  return absl::InvalidArgumentError(
      absl::StrCat("the metrics endpoint cannot listen on IPv6 address ", host,
                   " (this civetweb has no IPv6); use an IPv4 host or \"::\", or disable metrics"));
}

// WakeAddress: an IPv4 address on which a connection reaches the listener
// bound to `listen_address` ("ip:port").
std::string WakeAddress(absl::string_view listen_address) {
  const std::string ip(listen_address.substr(0, listen_address.rfind(':')));
  in_addr parsed;
  if (ip == "0.0.0.0" || inet_pton(AF_INET, ip.c_str(), &parsed) != 1) return "127.0.0.1";
  return ip;
}

// Knock: opens and closes a connection to `ip`:`port`, to wake the thread
// that waits for connections there. Failure is harmless.
void Knock(const std::string& ip, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &address.sin_addr) == 1) {
    connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  }
  close(fd);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(absl::string_view host,
                                                                            int port,
                                                                            Render render) {
  static std::once_flag init;
  std::call_once(init, [] { mg_init_library(0); });

  absl::StatusOr<std::string> address = ListenAddress(host, port);
  if (!address.ok()) return address.status();
  auto server = std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(render)));

  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  callbacks.log_message = LogMessage;
  const char* options[] = {"listening_ports",    address->c_str(),  "num_threads", kThreads,
                           "request_timeout_ms", kRequestTimeoutMs, nullptr};
  mg_init_data init_data;
  init_data.callbacks = &callbacks;
  init_data.user_data = server.get();
  init_data.configuration_options = options;
  char error_text[256] = "";
  mg_error_data error;
  std::memset(&error, 0, sizeof(error));
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  server->context_ = mg_start2(&init_data, &error);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", *address, ": ",
                     error_text[0] != '\0' ? error_text : "civetweb did not start"));
  }
  mg_set_request_handler(server->context_, "/metrics$", &MetricsHttpServer::HandleMetrics,
                         server.get());
  mg_server_port ports[1];
  if (mg_get_server_ports(server->context_, 1, ports) < 1) {
    return absl::InternalError(absl::StrCat("metrics endpoint on ", *address, " has no port"));
  }
  server->port_ = ports[0].port;
  server->wake_address_ = WakeAddress(*address);
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (context_ == nullptr) return;
  // mg_stop waits for civetweb's listening thread, which looks for the stop
  // only between 2-second waits for a connection; a connection ends the
  // wait, so keep knocking until mg_stop has returned.
  Notification stopped;
  std::thread stopper([this, &stopped] {
    mg_stop(context_);
    stopped.Notify();
  });
  while (!stopped.WaitForNotificationWithTimeout(absl::Milliseconds(20))) {
    Knock(wake_address_, port_);
  }
  stopper.join();
}

int MetricsHttpServer::HandleMetrics(struct mg_connection* connection, void* self) {
  const mg_request_info* request = mg_get_request_info(connection);
  const bool head = std::strcmp(request->request_method, "HEAD") == 0;
  if (!head && std::strcmp(request->request_method, "GET") != 0) {
    mg_response_header_start(connection, 405);
    mg_response_header_add(connection, "Allow", "GET, HEAD", -1);
    mg_response_header_add(connection, "Content-Length", "0", -1);
    mg_response_header_send(connection);
    return 405;
  }
  absl::StatusOr<std::string> page = static_cast<MetricsHttpServer*>(self)->render_();
  if (!page.ok()) {
    LOG(ERROR) << "metrics page failed: " << page.status();
    mg_send_http_error(connection, 500, "%s", std::string(page.status().message()).c_str());
    return 500;
  }
  mg_send_http_ok(connection, kContentType, static_cast<long long>(page->size()));
  if (!head) mg_write(connection, page->data(), page->size());
  return 200;
}

}  // namespace sluice
