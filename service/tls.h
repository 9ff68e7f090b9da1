#ifndef SLUICE_SERVICE_TLS_H_
#define SLUICE_SERVICE_TLS_H_

// TLS credentials from PEM files, for the server and for clients. Files are
// read and checked once, when the credentials are made; a certificate that
// is replaced on disk takes effect at the next start.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace sluice {

// ServerTlsFiles: PEM files for a server.
struct ServerTlsFiles {
  std::string cert_file;       // certificate chain, the server's own first
  std::string key_file;        // its private key
  std::string client_ca_file;  // if set: require client certificates signed by these CAs
};

// ServerTlsCredentials: credentials that accept only TLS (and, with a client
// CA, only clients presenting a certificate that CA signed). Fails, naming
// the file, if one cannot be read, is not PEM, or the key does not belong
// to the certificate.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerTlsCredentials(
    const ServerTlsFiles& files);

// ClientTlsFiles: PEM files for a client.
struct ClientTlsFiles {
  std::string ca_file;    // CAs to trust for the server's certificate; empty: the system's
  std::string cert_file;  // mutual TLS: the client's certificate chain...
  std::string key_file;   // ...and its key (both or neither)
};

// ClientTlsCredentials: TLS channel credentials from `files`, checked as
// ServerTlsCredentials checks its own.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientTlsCredentials(
    const ClientTlsFiles& files);

// ReadPemFile: the text of PEM file `path`, which must hold at least one
// `kind` block ("CERTIFICATE" or "PRIVATE KEY"); `what` names the file in
// errors (e.g. "--tls_cert").
absl::StatusOr<std::string> ReadPemFile(absl::string_view what, const std::string& path,
                                        absl::string_view kind);

}  // namespace sluice

#endif  // SLUICE_SERVICE_TLS_H_
