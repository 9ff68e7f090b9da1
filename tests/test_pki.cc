#include "tests/test_pki.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tools/subprocess.h"

namespace sluice::testing {
namespace {

// The extensions each kind of certificate gets; the same file serves as the
// (otherwise empty) request configuration.
constexpr char kConfig[] = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = sluice test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
)";

absl::StatusOr<std::string> FindOpenssl() {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    const std::string candidate = absl::StrCat(dir, "/openssl");
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError("openssl is not installed (tools/setup installs it)");
}

// Openssl: runs `openssl args...` to completion.
absl::Status Openssl(const std::string& openssl, std::vector<std::string> args) {
  args.insert(args.begin(), openssl);
  absl::StatusOr<std::unique_ptr<Subprocess>> run = Subprocess::Start(args);
  if (!run.ok()) return run.status();
  absl::StatusOr<int> status = (*run)->Wait(absl::Seconds(60));
  if (!status.ok()) return status.status();
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(
        absl::StrCat(absl::StrJoin(args, " "), " failed: ", (*run)->Stderr()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TestPki> TestPki::Create() {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/pki_", getpid(), "_", counter++);
  if (mkdir(dir.c_str(), 0700) != 0) return absl::InternalError("cannot create " + dir);
  const std::string config = dir + "/openssl.cnf";
  std::ofstream(config) << kConfig;
  absl::StatusOr<std::string> openssl = FindOpenssl();
  if (!openssl.ok()) return openssl.status();

  auto path = [&dir](const std::string& name) { return absl::StrCat(dir, "/", name); };
  const std::vector<std::string> new_key = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                            "-nodes"};
  // MakeCa: a self-signed CA certificate `name`.pem with key `name`.key.
  auto make_ca = [&](const std::string& name) {
    std::vector<std::string> args = {"req", "-x509", "-new"};
    args.insert(args.end(), new_key.begin(), new_key.end());
    args.insert(args.end(), {"-keyout", path(name + ".key"), "-out", path(name + ".pem"), "-days",
                             "2", "-subj", "/CN=" + name, "-config", config, "-extensions", "ca"});
    return Openssl(*openssl, args);
  };
  // MakeLeaf: certificate `name`.pem of kind `extensions`, signed by `ca`.
  int serial = 1;
  auto make_leaf = [&](const std::string& name, const std::string& common_name,
                       const std::string& extensions, const std::string& ca) {
    std::vector<std::string> request = {"req", "-new"};
    request.insert(request.end(), new_key.begin(), new_key.end());
    request.insert(request.end(), {"-keyout", path(name + ".key"), "-out", path(name + ".csr"),
                                   "-subj", "/CN=" + common_name, "-config", config});
    if (absl::Status s = Openssl(*openssl, request); !s.ok()) return s;
    return Openssl(*openssl,
                   {"x509", "-req", "-in", path(name + ".csr"), "-CA", path(ca + ".pem"), "-CAkey",
                    path(ca + ".key"), "-set_serial", absl::StrCat(serial++), "-days", "2",
                    "-extfile", config, "-extensions", extensions, "-out", path(name + ".pem")});
  };
  absl::Status made = make_ca("ca");
  if (made.ok()) made = make_leaf("server", "localhost", "server", "ca");
  if (made.ok()) made = make_leaf("client", "sluice test client", "client", "ca");
  if (made.ok()) made = make_ca("stranger_ca");
  if (made.ok()) made = make_leaf("stranger", "stranger", "client", "stranger_ca");
  if (!made.ok()) return made;
  TestPki pki;
  pki.ca_cert = path("ca.pem");
  pki.server_cert = path("server.pem");
  pki.server_key = path("server.key");
  pki.client_cert = path("client.pem");
  pki.client_key = path("client.key");
  pki.stranger_ca_cert = path("stranger_ca.pem");
  pki.stranger_cert = path("stranger.pem");
  pki.stranger_key = path("stranger.key");
  return pki;
}

}  // namespace sluice::testing
