#pragma once

// A faithful fake of the Nebius Token Factory upload and model API (tests/support/fake_api/upload-openapi.yaml):
// a real HTTPS server on loopback with scriptable faults. Used in-process by tests and, as
// the `modeldrop-fake-api` executable, by the demo, the benchmarks and the systemd test.
// README.md beside this file describes the behaviour and the /_fake/ control API.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace modeldrop::test {

// A throwaway PKI generated with OpenSSL at test time: a CA, a server certificate for
// localhost/127.0.0.1/::1 signed by it, a certificate for another host name, and a second
// CA nobody trusts (with its own "localhost" certificate).
struct TestPki {
  std::filesystem::path ca_cert;      // trust this via api.ca_file
  std::filesystem::path server_cert;  // SAN: DNS localhost, IP 127.0.0.1, IP ::1
  std::filesystem::path server_key;
  std::filesystem::path wrong_host_cert;  // SAN: DNS wrong.example, signed by ca_cert
  std::filesystem::path wrong_host_key;
  std::filesystem::path untrusted_ca_cert;      // a CA not in any trust store
  std::filesystem::path untrusted_server_cert;  // SAN like server_cert, signed by untrusted_ca_cert
  std::filesystem::path untrusted_server_key;

  // Writes every file into `dir` (created if missing). Throws on failure.
  static TestPki generate(const std::filesystem::path& dir);
};

enum class FaultKind {
  none,
  status,              // answer `status` with `headers` and `body` after reading the whole request
  early_status,        // answer before reading the body, then a lingering close (as nginx does)
  reset_after_bytes,   // RST the connection after `after_bytes` body bytes were read
  reset_after_body,    // read the whole body, then RST without answering
  stall,               // read the whole body, then say nothing for `stall_for` (then close)
  throttle,            // read the body at `bytes_per_second`, then answer normally
  malformed_json,      // 200 with a body that is not an OpenAIFile
  oversized_response,  // 200 with a `oversized_bytes` JSON body
  slow,                // store the file (or build the listing), wait `stall_for`, then answer normally
};

struct Fault {
  FaultKind kind = FaultKind::none;
  int status = 500;
  std::vector<std::pair<std::string, std::string>> headers{};  // e.g. {"Retry-After", "3"}
  std::string body{};                                          // for status/early_status
  std::uint64_t after_bytes = 0;
  std::uint64_t bytes_per_second = 0;
  std::chrono::milliseconds stall_for{std::chrono::seconds(30)};
  std::uint64_t oversized_bytes = 64ull << 20;
  // early_status: how long the server keeps reading and discarding the body after its
  // answer before it closes (unread data then makes the kernel send a RST).
  std::chrono::milliseconds linger_for{std::chrono::seconds(2)};
  // reset_after_body and stall: the upload is stored first (the answer is then lost), as a
  // server that committed the file before the connection failed.
  bool store_first = false;
};

// A seeded random share of failing uploads: each upload request that finds the fault queue
// empty fails with probability `probability` (0..1), with a fault drawn uniformly from
// `faults`; the others get the default fault. The same seed gives the same sequence of draws.
struct FaultMix {
  double probability = 0;
  std::vector<Fault> faults{};
  std::uint64_t seed = 0;
};

// One stored upload, as the server decoded it.
struct ReceivedFile {
  std::string id;  // "file-<uuid>"
  std::string filename;
  std::optional<std::string> project_id;
  std::uint64_t bytes = 0;
  std::string sha256;        // lowercase hex; empty in sink mode
  std::string content_type;  // of the part
  std::int64_t created_at = 0;
};

// Every request seen, whatever its outcome.
struct RequestRecord {
  std::string method;
  std::string target;
  std::optional<std::string> authorization;  // the raw header, if sent
  std::optional<std::string> user_agent;
  std::uint64_t body_bytes_read = 0;
  int status = 0;  // 0 when no answer was sent (reset, stall)
  FaultKind fault = FaultKind::none;
  std::uint64_t connection_id = 0;  // same id = same TCP connection (keep-alive)
  bool authorized = false;          // the header carried a token accepted at that moment
  std::string file_id{};            // the ReceivedFile stored by this request, if any
};

// A custom model made from an uploaded file (POST /v0/models).
struct FakeModel {
  std::string name{};
  std::string base_model{};
  std::string source{};  // the file id it was made from
  std::optional<std::string> description{};
  std::optional<std::string> project_id{};
  std::int64_t created_at = 0;
  // How its validation ends, fixed when it is created (ModelBehaviour): `validating` until
  // `settles_at`, then `final_status` ("active" or "error", with `final_reason`).
  std::chrono::steady_clock::time_point settles_at{};
  std::string final_status = "active";
  std::string final_reason{};
  // As last reported (models()): validating, active or error.
  std::string status = "validating";
};

// What happens to the models created from now on.
struct ModelBehaviour {
  std::chrono::milliseconds validate_for{200};  // `validating` this long
  std::string status = "active";                // then this: "active" or "error"
  std::string reason{};                         // status_reason when it ends in "error"
};

struct FakeApiOptions {
  std::string token = "test-token";  // Bearer token accepted; others get 401, none 403
  bool sink_mode = false;            // no hashing, no storing of content: benchmark speed
  std::string bind_address = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = ephemeral
  std::filesystem::path cert_file{};
  std::filesystem::path key_file{};
  int threads = 1;
};

class FakeApi {
 public:
  explicit FakeApi(FakeApiOptions options);  // listening when the constructor returns
  ~FakeApi();                                // stops and joins its threads
  FakeApi(const FakeApi&) = delete;
  FakeApi& operator=(const FakeApi&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] std::string base_url() const;  // "https://127.0.0.1:<port>" (the bind address)

  // Faults apply to upload requests (POST /v0/models/upload) in FIFO order, one each;
  // with the queue empty the default fault (none unless set) applies.
  void push_fault(Fault fault);
  void set_default_fault(Fault fault);
  // Between the queue and the default fault: see FaultMix. Probability 0 or no faults turns it off.
  void set_fault_mix(double probability, std::vector<Fault> faults, std::uint64_t seed);
  // The bearer tokens accepted from now on: `set_token` one, `set_tokens` several (one per team);
  // any other gets 401.
  void set_token(std::string token);
  void set_tokens(std::vector<std::string> tokens);
  // Faults for GET /v1/files and GET /v1/files/{id}, FIFO, one per request (none when empty):
  // status, stall, slow, malformed_json and reset_after_body; other kinds answer normally.
  void push_list_fault(Fault fault);
  // GET /v1/files returns at most this many files per page, whatever `limit` asks (0 = no cap).
  void set_list_page_cap(std::size_t files_per_page);
  // Stores a file as if it had been uploaded (its id is made up when empty): crowds the listing.
  ReceivedFile add_file(ReceivedFile file);
  // Runs on the server's thread right after an upload is stored, before its answer is sent.
  void on_file_stored(std::function<void(const ReceivedFile&)> callback);

  // Custom models (POST /v0/models, GET /v0/models[/{name}]). Faults for those requests, FIFO,
  // one per request: status (e.g. 409, 422, 503 with Retry-After), slow, stall, malformed_json
  // and reset_after_body; `store_first` on stall or reset_after_body creates the model before
  // the answer is lost.
  void push_model_fault(Fault fault);
  void set_model_behaviour(ModelBehaviour behaviour);
  // A model that exists already (as made by another client): its name is taken.
  void add_model(FakeModel model);
  [[nodiscard]] std::vector<FakeModel> models() const;

  [[nodiscard]] std::vector<ReceivedFile> files() const;
  [[nodiscard]] std::vector<RequestRecord> requests() const;
  [[nodiscard]] std::uint64_t connections_accepted() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modeldrop::test
