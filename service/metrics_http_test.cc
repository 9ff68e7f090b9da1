#include "service/metrics_http.h"

#include <atomic>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/http_client.h"

namespace sluice {
namespace {

using ::sluice::testing::HttpGet;
using ::sluice::testing::HttpRequest;
using ::sluice::testing::HttpResponse;
using ::testing::HasSubstr;

constexpr char kPage[] = "# HELP up Up.\n# TYPE up gauge\nup 1\n";

class MetricsHttpTest : public ::testing::Test {
 protected:
  // Serve: starts an endpoint on a free loopback port whose page is `page`.
  void Serve(MetricsHttpServer::Render render = [] { return std::string(kPage); }) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start("127.0.0.1", 0, std::move(render));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  HttpResponse Get(const std::string& path, const std::string& method = "GET") {
    absl::StatusOr<HttpResponse> response = HttpRequest(server_->port(), method, path);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : HttpResponse();
  }

  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttpTest, GetMetricsReturnsThePageAsPrometheusText) {
  Serve();
  EXPECT_GT(server_->port(), 0);
  HttpResponse response = Get("/metrics");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response.body, kPage);
}

TEST_F(MetricsHttpTest, EachScrapeRendersAFreshPage) {
  std::atomic<int> scrapes{0};
  Serve([&scrapes] { return absl::StrCat("scrapes ", ++scrapes, "\n"); });
  EXPECT_EQ(Get("/metrics").body, "scrapes 1\n");
  EXPECT_EQ(Get("/metrics").body, "scrapes 2\n");
}

TEST_F(MetricsHttpTest, HeadHasNoBody) {
  Serve();
  HttpResponse response = Get("/metrics", "HEAD");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "");
}

TEST_F(MetricsHttpTest, OtherPathsAreNotFoundAndOtherMethodsNotAllowed) {
  Serve();
  EXPECT_EQ(Get("/").status, 404);
  EXPECT_EQ(Get("/metrics/extra").status, 404);
  EXPECT_EQ(Get("/metricsx").status, 404);
  HttpResponse post = Get("/metrics", "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.Header("Allow"), "GET, HEAD");
}

TEST_F(MetricsHttpTest, RenderFailureIsAServerError) {
  Serve([]() -> absl::StatusOr<std::string> { return absl::InternalError("broken family"); });
  HttpResponse response = Get("/metrics");
  EXPECT_EQ(response.status, 500);
  EXPECT_THAT(response.body, HasSubstr("broken family"));
}

TEST_F(MetricsHttpTest, PortInUseIsReported) {
  Serve();
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> second =
      MetricsHttpServer::Start("127.0.0.1", server_->port(), [] { return std::string(); });
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot serve metrics on 127.0.0.1:"));
}

TEST_F(MetricsHttpTest, StoppedEndpointRefusesConnections) {
  Serve();
  const int port = server_->port();
  server_.reset();
  EXPECT_FALSE(HttpGet(port, "/metrics").ok());
}

}  // namespace
}  // namespace sluice
