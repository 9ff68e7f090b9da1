// End-to-end: TLS, mutual TLS and bearer tokens, against a real server over
// loopback with certificates made for this run.

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "models/model_testing.h"
#include "service/server.h"
#include "tests/metrics_page.h"
#include "tests/test_pki.h"
#include "tests/test_server.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(30);
constexpr char kToken[] = "0123456789abcdef-test-token";

// SecurityTest: one set of certificates for the suite; each test starts the
// server it needs and dials it with clients of chosen credentials.
class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<TestPki> pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new TestPki(*std::move(pki));
  }
  static void TearDownTestSuite() { delete pki_; }

  // Serve: starts the server; `tls` and `mutual` pick its credentials,
  // `token` whether it requires one.
  void Serve(bool tls, bool mutual = false, std::string token = "") {
    ServerOptions options = TestServer::DefaultOptions();
    options.metrics_port = 0;
    if (tls) {
      options.tls_cert_file = pki_->server_cert;
      options.tls_key_file = pki_->server_key;
    }
    if (mutual) options.tls_client_ca_file = pki_->ca_cert;
    options.auth_token = std::move(token);
    server_ = std::make_unique<TestServer>(options);
  }

  // Client: a client of the server with `options`, on a connection of its own.
  std::unique_ptr<SluiceClient> Client(const ConnectOptions& options) {
    absl::StatusOr<std::unique_ptr<SluiceClient>> client =
        SluiceClient::Connect(server_->target(), options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }
  ConnectOptions TrustingTheCa() {
    ConnectOptions options;
    options.tls_ca_file = pki_->ca_cert;
    return options;
  }
  ConnectOptions WithToken(std::string token) {
    ConnectOptions options;
    options.auth_token = std::move(token);
    return options;
  }

  // Echo: a unary call on `client`; its status.
  absl::Status Echo(SluiceClient& client) {
    absl::StatusOr<v1::PredictResponse> response =
        client.Predict(MakeRequest("echo", "hello"), absl::Seconds(10));
    if (response.ok()) {
      EXPECT_EQ(response->output(), "hello");
    }
    return response.status();
  }

  // ExpectNoModelReached: no call got as far as a model: the synthetic
  // model made no generator and no served model accounted a call.
  void ExpectNoModelReached() {
    EXPECT_EQ(server_->synthetic().stats().started(), 0);
    for (const char* model : {"synthetic", "echo", "charlm"}) {
      EXPECT_EQ(server_->stats(model).ended_total(), 0u) << model;
    }
  }

  static TestPki* pki_;
  std::unique_ptr<TestServer> server_;
};

TestPki* SecurityTest::pki_ = nullptr;

TEST_F(SecurityTest, TlsClientTrustingTheCaCanCall) {
  Serve(/*tls=*/true);
  std::unique_ptr<SluiceClient> client = Client(TrustingTheCa());
  EXPECT_TRUE(Echo(*client).ok());
  StreamResult stream = client->PredictStream(Synthetic({{"tokens", 5}}), {});
  EXPECT_TRUE(stream.status.ok()) << stream.status.error_message();
  EXPECT_EQ(stream.chunks, 5);
}

TEST_F(SecurityTest, PlaintextClientCannotCallATlsServer) {
  Serve(/*tls=*/true);
  std::unique_ptr<SluiceClient> plaintext = SluiceClient::Connect(server_->target());
  EXPECT_EQ(Echo(*plaintext).code(), absl::StatusCode::kUnavailable);
  ExpectNoModelReached();
}

TEST_F(SecurityTest, ClientVerifiesTheServersCertificate) {
  Serve(/*tls=*/true);
  ConnectOptions stranger_ca;
  stranger_ca.tls_ca_file = pki_->stranger_ca_cert;
  EXPECT_EQ(Echo(*Client(stranger_ca)).code(), absl::StatusCode::kUnavailable);

  // The certificate names 127.0.0.1 and localhost, nothing else.
  ConnectOptions as_other = TrustingTheCa();
  as_other.tls_server_name = "sluice.example";
  EXPECT_EQ(Echo(*Client(as_other)).code(), absl::StatusCode::kUnavailable);
  ExpectNoModelReached();
  ConnectOptions as_localhost = TrustingTheCa();
  as_localhost.tls_server_name = "localhost";
  EXPECT_TRUE(Echo(*Client(as_localhost)).ok());
}

TEST_F(SecurityTest, MutualTlsRefusesAClientWithoutACertificate) {
  Serve(/*tls=*/true, /*mutual=*/true);
  EXPECT_EQ(Echo(*Client(TrustingTheCa())).code(), absl::StatusCode::kUnavailable);
  ExpectNoModelReached();
}

TEST_F(SecurityTest, MutualTlsRefusesACertificateFromAnotherCa) {
  Serve(/*tls=*/true, /*mutual=*/true);
  ConnectOptions stranger = TrustingTheCa();
  stranger.tls_cert_file = pki_->stranger_cert;
  stranger.tls_key_file = pki_->stranger_key;
  EXPECT_EQ(Echo(*Client(stranger)).code(), absl::StatusCode::kUnavailable);
  ExpectNoModelReached();
}

TEST_F(SecurityTest, MutualTlsAcceptsAClientCertificateFromItsCa) {
  Serve(/*tls=*/true, /*mutual=*/true);
  ConnectOptions client = TrustingTheCa();
  client.tls_cert_file = pki_->client_cert;
  client.tls_key_file = pki_->client_key;
  EXPECT_TRUE(Echo(*Client(client)).ok());
}

TEST_F(SecurityTest, BadTlsFilesAreReportedAtStart) {
  auto start = [](ServerOptions options) {
    ModelRegistry registry;
    EXPECT_TRUE(registry.Register("echo", std::make_unique<SyntheticModel>()).ok());
    options.port = 0;
    return Server::Start(options, std::move(registry)).status();
  };
  ServerOptions mismatched;
  mismatched.tls_cert_file = pki_->server_cert;
  mismatched.tls_key_file = pki_->client_key;
  EXPECT_THAT(start(mismatched).message(), HasSubstr("is not the private key of the certificate"));
  ServerOptions missing;
  missing.tls_cert_file = "/nonexistent/server.pem";
  missing.tls_key_file = pki_->server_key;
  EXPECT_THAT(start(missing).message(), HasSubstr("cannot read tls_cert /nonexistent/server.pem"));
  ServerOptions swapped;
  swapped.tls_cert_file = pki_->server_key;
  swapped.tls_key_file = pki_->server_cert;
  EXPECT_THAT(start(swapped).message(), HasSubstr("holds no PEM CERTIFICATE"));
  ServerOptions half;
  half.tls_cert_file = pki_->server_cert;
  EXPECT_THAT(start(half).message(), HasSubstr("set both or neither"));
}

TEST_F(SecurityTest, MissingTokenIsUnauthenticatedAndNeverReachesAModel) {
  Serve(/*tls=*/false, /*mutual=*/false, kToken);
  std::unique_ptr<SluiceClient> anonymous = Client(ConnectOptions());
  StreamResult stream = anonymous->PredictStream(Synthetic({{"tokens", 5}}), {});
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(stream.status.error_message(),
              HasSubstr("requires a bearer token and the call carried none"));
  EXPECT_EQ(stream.chunks, 0);
  // Counted, but under no model's name.
  MetricsPage page = ScrapeUntil(
      server_->server().metrics_port(),
      "sluice_requests_total{model=\"\",method=\"PredictStream\",code=\"UNAUTHENTICATED\"}", 1);
  EXPECT_EQ(page["sluice_chunks_generated_total{model=\"synthetic\"}"], 0);
  ExpectNoModelReached();
}

TEST_F(SecurityTest, WrongTokenIsUnauthenticatedAndNeverReachesAModel) {
  Serve(/*tls=*/false, /*mutual=*/false, kToken);
  std::unique_ptr<SluiceClient> wrong = Client(WithToken(std::string(kToken) + "x"));
  absl::StatusOr<v1::PredictResponse> response = wrong->Predict(Synthetic({{"tokens", 5}}));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(response.status().message(), HasSubstr("not valid for this server"));
  EXPECT_EQ(wrong->ListModels().status().code(), absl::StatusCode::kUnauthenticated);
  ScrapeUntil(server_->server().metrics_port(),
              "sluice_requests_total{model=\"\",method=\"Predict\",code=\"UNAUTHENTICATED\"}", 1);
  ExpectNoModelReached();
}

TEST_F(SecurityTest, RightTokenCanStreamCallAndList) {
  Serve(/*tls=*/false, /*mutual=*/false, kToken);
  std::unique_ptr<SluiceClient> client = Client(WithToken(kToken));
  EXPECT_TRUE(Echo(*client).ok());
  StreamResult stream = client->PredictStream(Synthetic({{"tokens", 5}}), {});
  EXPECT_TRUE(stream.status.ok()) << stream.status.error_message();
  absl::StatusOr<v1::ListModelsResponse> models = client->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(models->models_size(), 4);
}

TEST_F(SecurityTest, TokenAndMutualTlsTogether) {
  Serve(/*tls=*/true, /*mutual=*/true, kToken);
  ConnectOptions both = TrustingTheCa();
  both.tls_cert_file = pki_->client_cert;
  both.tls_key_file = pki_->client_key;
  EXPECT_EQ(Echo(*Client(both)).code(), absl::StatusCode::kUnauthenticated);
  both.auth_token = kToken;
  EXPECT_TRUE(Echo(*Client(both)).ok());
}

TEST_F(SecurityTest, HealthChecksNeedNoToken) {
  Serve(/*tls=*/false, /*mutual=*/false, kToken);
  // grpc.health.v1.Health/Check with an empty HealthCheckRequest, as a load
  // balancer sends it (without credentials).
  grpc::GenericStub stub(server_->NewChannel());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  grpc::CompletionQueue queue;
  grpc::ByteBuffer request, response;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &queue);
  call->StartCall();
  grpc::Status status;
  call->Finish(&response, &status, nullptr);
  void* tag;
  bool ok;
  ASSERT_TRUE(queue.Next(&tag, &ok));
  ASSERT_TRUE(status.ok()) << status.error_message();
  grpc::Slice body;
  ASSERT_TRUE(response.DumpToSingleSlice(&body).ok());
  // HealthCheckResponse{status: SERVING}: field 1, varint 1.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(body.begin()), body.size()),
            std::string("\x08\x01"));
}

}  // namespace
}  // namespace sluice::testing
