// TestPki::generate: a throwaway CA hierarchy made with the OpenSSL 3 C API (no openssl CLI).

#include "support/fake_api/fake_api.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace modeldrop::test {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

[[noreturn]] void fail(const std::string& what) {
  const unsigned long code = ERR_get_error();
  char reason[256] = "no OpenSSL error";
  if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
  throw std::runtime_error("TestPki: " + what + ": " + reason);
}

Key make_key() {
  Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) fail("EC P-256 key generation");
  return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (extension == nullptr) fail(std::string("extension ") + OBJ_nid2sn(nid) + "=" + value);
  const int added = X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
  if (added != 1) fail("X509_add_ext");
}

struct Issuer {
  X509* cert = nullptr;  // null: self-signed
  EVP_PKEY* key = nullptr;
};

// A v3 certificate for `key`, valid from an hour ago for 30 days. A CA when `san` is empty.
Cert make_certificate(const std::string& common_name, EVP_PKEY* key, const Issuer& issuer, const char* san) {
  Cert cert(X509_new());
  if (!cert) fail("X509_new");
  X509_set_version(cert.get(), X509_VERSION_3);
  std::uint64_t serial = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1) fail("RAND_bytes");
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial >> 1);  // positive
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600);
  if (X509_set_pubkey(cert.get(), key) != 1) fail("X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("modeldrop tests"), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                             -1, 0);
  X509* issuer_cert = issuer.cert != nullptr ? issuer.cert : cert.get();
  EVP_PKEY* signing_key = issuer.key != nullptr ? issuer.key : key;
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)) != 1) fail("X509_set_issuer_name");
  add_extension(cert.get(), issuer_cert, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), issuer_cert, NID_authority_key_identifier, "keyid:always");
  if (san == nullptr) {
    add_extension(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), issuer_cert, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), issuer_cert, NID_ext_key_usage, "serverAuth");
    add_extension(cert.get(), issuer_cert, NID_subject_alt_name, san);
  }
  if (X509_sign(cert.get(), signing_key, EVP_sha256()) == 0) fail("X509_sign");
  return cert;
}

std::string pem_of(const std::function<int(BIO*)>& write) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) fail("PEM encoding");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

void write_file(const std::filesystem::path& path, const std::string& content, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("TestPki: cannot create " + path.string() + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("TestPki: cannot write " + path.string());
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

void write_cert(const std::filesystem::path& path, X509* cert) {
  write_file(path, pem_of([cert](BIO* bio) { return PEM_write_bio_X509(bio, cert); }), 0644);
}

void write_key(const std::filesystem::path& path, EVP_PKEY* key) {
  write_file(path, pem_of([key](BIO* bio) {
               return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
             }),
             0600);
}

}  // namespace

TestPki TestPki::generate(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  TestPki pki;
  pki.ca_cert = dir / "ca.pem";
  pki.server_cert = dir / "server.pem";
  pki.server_key = dir / "server.key";
  pki.wrong_host_cert = dir / "wrong-host.pem";
  pki.wrong_host_key = dir / "wrong-host.key";
  pki.untrusted_ca_cert = dir / "untrusted-ca.pem";
  pki.untrusted_server_cert = dir / "untrusted-server.pem";
  pki.untrusted_server_key = dir / "untrusted-server.key";

  static constexpr const char* kLocalNames = "DNS:localhost,IP:127.0.0.1,IP:::1";
  const Key ca_key = make_key();
  const Cert ca = make_certificate("modeldrop test CA", ca_key.get(), {}, nullptr);
  const Key server_key = make_key();
  const Cert server = make_certificate("localhost", server_key.get(), {ca.get(), ca_key.get()}, kLocalNames);
  const Key wrong_key = make_key();
  const Cert wrong = make_certificate("wrong.example", wrong_key.get(), {ca.get(), ca_key.get()}, "DNS:wrong.example");
  const Key untrusted_ca_key = make_key();
  const Cert untrusted_ca = make_certificate("untrusted test CA", untrusted_ca_key.get(), {}, nullptr);
  const Key untrusted_key = make_key();
  const Cert untrusted =
      make_certificate("localhost", untrusted_key.get(), {untrusted_ca.get(), untrusted_ca_key.get()}, kLocalNames);

  write_cert(pki.ca_cert, ca.get());
  write_cert(pki.server_cert, server.get());
  write_key(pki.server_key, server_key.get());
  write_cert(pki.wrong_host_cert, wrong.get());
  write_key(pki.wrong_host_key, wrong_key.get());
  write_cert(pki.untrusted_ca_cert, untrusted_ca.get());
  write_cert(pki.untrusted_server_cert, untrusted.get());
  write_key(pki.untrusted_server_key, untrusted_key.get());
  return pki;
}

}  // namespace modeldrop::test
