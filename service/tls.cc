#include "service/tls.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

// KeyMatchesCertificate: whether `key_pem` is the private key of the first
// certificate in `cert_pem`.
bool KeyMatchesCertificate(const std::string& cert_pem, const std::string& key_pem) {
  BIO* cert_bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  BIO* key_bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  X509* cert = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  const bool match = cert != nullptr && key != nullptr && X509_check_private_key(cert, key) == 1;
  EVP_PKEY_free(key);
  X509_free(cert);
  BIO_free(key_bio);
  BIO_free(cert_bio);
  return match;
}

// ReadPair: a certificate chain and its key, checked to belong together.
absl::StatusOr<std::pair<std::string, std::string>> ReadPair(absl::string_view cert_what,
                                                             const std::string& cert_file,
                                                             absl::string_view key_what,
                                                             const std::string& key_file) {
  absl::StatusOr<std::string> cert = ReadPemFile(cert_what, cert_file, "CERTIFICATE");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPemFile(key_what, key_file, "PRIVATE KEY");
  if (!key.ok()) return key.status();
  if (!KeyMatchesCertificate(*cert, *key)) {
    return absl::InvalidArgumentError(absl::StrCat(key_what, " ", key_file,
                                                   " is not the private key of the certificate in ",
                                                   cert_what, " ", cert_file));
  }
  return std::make_pair(*std::move(cert), *std::move(key));
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(absl::string_view what, const std::string& path,
                                        absl::string_view kind) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", what, " ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  // "-----BEGIN CERTIFICATE-----", "-----BEGIN EC PRIVATE KEY-----", ...
  if (!absl::StrContains(text.str(), "-----BEGIN ") ||
      !absl::StrContains(text.str(), absl::StrCat(kind, "-----"))) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, " holds no PEM ", kind,
                                                   " (\"-----BEGIN ...", kind, "-----\")"));
  }
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerTlsCredentials(
    const ServerTlsFiles& files) {
  absl::StatusOr<std::pair<std::string, std::string>> pair =
      ReadPair("tls_cert", files.cert_file, "tls_key", files.key_file);
  if (!pair.ok()) return pair.status();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({pair->second, pair->first});
  if (!files.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadPemFile("tls_client_ca", files.client_ca_file, "CERTIFICATE");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientTlsCredentials(
    const ClientTlsFiles& files) {
  grpc::SslCredentialsOptions options;
  if (!files.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile("tls_ca", files.ca_file, "CERTIFICATE");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
  }
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError("tls_cert and tls_key go together: set both or neither");
  }
  if (!files.cert_file.empty()) {
    absl::StatusOr<std::pair<std::string, std::string>> pair =
        ReadPair("tls_cert", files.cert_file, "tls_key", files.key_file);
    if (!pair.ok()) return pair.status();
    options.pem_cert_chain = pair->first;
    options.pem_private_key = pair->second;
  }
  return grpc::SslCredentials(options);
}

}  // namespace sluice
