// Server reflection, as generic tools (grpcurl, evans, Postman) use it: list
// the services, then fetch the file that defines sluice.v1.Inference.

#include <set>
#include <string>

#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/test_server.h"

namespace sluice::testing {
namespace {

namespace reflection = ::grpc::reflection::v1alpha;

class ReflectionTest : public ::testing::Test {
 protected:
  // Ask: one request on a reflection stream, its answer.
  reflection::ServerReflectionResponse Ask(const reflection::ServerReflectionRequest& request) {
    auto stub = reflection::ServerReflection::NewStub(server_.NewChannel());
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    auto stream = stub->ServerReflectionInfo(&context);
    EXPECT_TRUE(stream->Write(request));
    stream->WritesDone();
    reflection::ServerReflectionResponse response;
    EXPECT_TRUE(stream->Read(&response));
    EXPECT_TRUE(stream->Finish().ok());
    return response;
  }

  TestServer server_;
};

TEST_F(ReflectionTest, ListsTheInferenceAndHealthServices) {
  reflection::ServerReflectionRequest request;
  request.set_list_services("");
  reflection::ServerReflectionResponse response = Ask(request);
  std::set<std::string> services;
  for (const auto& s : response.list_services_response().service()) services.insert(s.name());
  EXPECT_TRUE(services.count("sluice.v1.Inference")) << response.DebugString();
  EXPECT_TRUE(services.count("grpc.health.v1.Health")) << response.DebugString();
}

TEST_F(ReflectionTest, DescribesTheInferenceServiceAndItsMessages) {
  reflection::ServerReflectionRequest request;
  request.set_file_containing_symbol("sluice.v1.Inference");
  reflection::ServerReflectionResponse response = Ask(request);
  ASSERT_GT(response.file_descriptor_response().file_descriptor_proto_size(), 0)
      << response.DebugString();
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(response.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.package(), "sluice.v1");
  ASSERT_EQ(file.service_size(), 1);
  std::set<std::string> methods;
  for (const auto& m : file.service(0).method()) methods.insert(m.name());
  EXPECT_EQ(methods, (std::set<std::string>{"ListModels", "Predict", "PredictStream"}));
  std::set<std::string> messages;
  for (const auto& m : file.message_type()) messages.insert(m.name());
  EXPECT_TRUE(messages.count("PredictRequest") && messages.count("PredictChunk"));
}

}  // namespace
}  // namespace sluice::testing
