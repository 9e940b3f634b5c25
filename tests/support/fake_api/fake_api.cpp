// The fake API server: one io_context run by `threads` threads, one coroutine per TLS
// connection on its own strand, shared state (token, faults, records) behind one mutex.

#include "support/fake_api/fake_api.hpp"

#include "common/text.hpp"
#include "support/fake_api/fake_api_json.hpp"
#include "support/fake_api/file_listing.hpp"
#include "support/fake_api/model_registry.hpp"
#include "support/fake_api/multipart.hpp"

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <functional>
#include <iostream>
#include <limits>
#include <mutex>
#include <random>
#include <thread>
#include <variant>

namespace modeldrop::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A plain socket under TLS, with a per-connection watchdog for deadlines: beast::tcp_stream
// re-arms a timer on every 16 KiB TLS record, which cost more CPU than the decryption.
using TlsStream = ssl::stream<tcp::socket>;
using SteadyTime = std::chrono::steady_clock::time_point;
using RequestParser = http::request_parser<http::buffer_body>;
using JsonResponse = http::response<http::string_body>;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kBodyChunk = 256 * 1024;
constexpr std::size_t kControlBodyLimit = 1 << 20;
constexpr auto kHandshakeTimeout = 10s;
constexpr auto kIdleTimeout = 60s;  // between bytes, while the server waits for a client
constexpr auto kShutdownTimeout = 1s;

constexpr std::string_view kNotAuthenticated = R"({"detail":"Not authenticated"})";
constexpr std::string_view kInvalidScheme = R"({"detail":"Invalid authentication credentials"})";
constexpr std::string_view kWrongToken = R"({"detail":"Invalid API key"})";
constexpr std::string_view kBodyParseError = R"({"detail":"There was an error parsing the body"})";
constexpr std::string_view kMissingFile =
    R"({"detail":[{"type":"missing","loc":["body","file"],"msg":"Field required","input":null}]})";

std::string sha256_hex(const unsigned char* digest, unsigned int size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xF]);
  }
  return hex;
}

// The shared, mutable part of the server; every member behind `mutex`.
struct ServerState {
  mutable std::mutex mutex;
  std::vector<std::string> tokens;  // every bearer token accepted
  std::deque<Fault> faults;
  std::deque<Fault> list_faults;
  std::size_t list_page_cap = 0;
  std::function<void(const ReceivedFile&)> on_stored;
  Fault default_fault;
  FaultMix mix;
  std::mt19937_64 mix_random;
  std::vector<ReceivedFile> files;
  std::vector<RequestRecord> requests;
  boost::uuids::random_generator uuids;
  ModelRegistry models;
  std::deque<Fault> model_faults;

  Fault take_fault() {
    std::lock_guard lock(mutex);
    if (faults.empty()) {
      if (mix.probability > 0 && !mix.faults.empty()) {
        std::uniform_real_distribution<double> chance(0.0, 1.0);
        if (chance(mix_random) < mix.probability) {
          std::uniform_int_distribution<std::size_t> pick(0, mix.faults.size() - 1);
          return mix.faults[pick(mix_random)];
        }
      }
      return default_fault;
    }
    Fault fault = std::move(faults.front());
    faults.pop_front();
    return fault;
  }
  Fault take_list_fault() {
    std::lock_guard lock(mutex);
    if (list_faults.empty()) return Fault{.kind = FaultKind::none};
    Fault fault = std::move(list_faults.front());
    list_faults.pop_front();
    return fault;
  }
  Fault take_model_fault() {
    std::lock_guard lock(mutex);
    if (model_faults.empty()) return Fault{.kind = FaultKind::none};
    Fault fault = std::move(model_faults.front());
    model_faults.pop_front();
    return fault;
  }
  // POST /v0/models, under the mutex: the model is made from a file stored by then.
  JsonAnswer create_model(std::string_view body, const std::optional<std::string>& project_id) {
    std::lock_guard lock(mutex);
    const auto file_exists = [this](std::string_view id) {
      return std::any_of(files.begin(), files.end(), [&](const ReceivedFile& file) { return file.id == id; });
    };
    const auto unix_now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return models.create(body, project_id, file_exists, std::chrono::steady_clock::now(), unix_now);
  }
  void record(const RequestRecord& record) {
    std::lock_guard lock(mutex);
    requests.push_back(record);
  }
  std::vector<std::string> current_tokens() const {
    std::lock_guard lock(mutex);
    return tokens;
  }
  void set_mix(FaultMix next) {
    std::lock_guard lock(mutex);
    mix_random.seed(next.seed);
    mix = std::move(next);
  }
  std::string new_file_id() {
    std::lock_guard lock(mutex);
    return "file-" + boost::uuids::to_string(uuids());
  }
};

// FastAPI's HTTPBearer, then the token check behind it.
struct AuthResult {
  bool ok = false;
  http::status status = http::status::forbidden;
  std::string_view body;
};

AuthResult check_bearer(const std::optional<std::string>& header, const std::vector<std::string>& tokens) {
  if (!header || header->empty()) return {false, http::status::forbidden, kNotAuthenticated};
  const auto space = header->find(' ');
  const std::string scheme = header->substr(0, space);
  const std::string credentials = space == std::string::npos ? std::string() : header->substr(space + 1);
  if (scheme.empty() || credentials.empty()) return {false, http::status::forbidden, kNotAuthenticated};
  if (ascii_lower(scheme) != "bearer") return {false, http::status::forbidden, kInvalidScheme};
  if (std::find(tokens.begin(), tokens.end(), credentials) == tokens.end()) {
    return {false, http::status::unauthorized, kWrongToken};
  }
  return {true, http::status::ok, {}};
}

// Collects the form's `file` field while the body streams through: hashing as it goes,
// keeping nothing of the content. The last `file` field wins, as in Starlette's FormData.
class UploadCollector final : public multipart::PartSink {
 public:
  explicit UploadCollector(bool hash) : hash_(hash) {}

  struct FilePart {
    std::string filename;
    std::string content_type;
    std::uint64_t bytes = 0;
    std::string sha256;
  };

  void on_part_begin(const multipart::PartHeaders& headers) override {
    current_ = Part{};
    const auto disposition = headers.find("content-disposition");
    const auto options = multipart::parse_options_header(disposition.value_or(""));
    const auto name = options.params.find("name");
    if (name == options.params.end()) {
      // Starlette: 'The Content-Disposition header field "name" must be provided.' -> 400.
      malformed_ = true;
      return;
    }
    current_.is_file_field = multipart::decode_header_text(name->second) == "file";
    if (!current_.is_file_field) return;
    const auto filename = options.params.find("filename");
    current_.has_filename = filename != options.params.end();
    if (current_.has_filename) current_.file.filename = multipart::decode_header_text(filename->second);
    current_.file.content_type = std::string(headers.find("content-type").value_or(""));
    if (hash_ && current_.has_filename) {
      sha_.reset(EVP_MD_CTX_new());
      EVP_DigestInit_ex(sha_.get(), EVP_sha256(), nullptr);
    }
  }
  void on_part_data(std::string_view bytes) override {
    if (!current_.is_file_field) return;
    current_.file.bytes += bytes.size();
    if (sha_) EVP_DigestUpdate(sha_.get(), bytes.data(), bytes.size());
    if (!current_.has_filename && current_.text.size() < 1024) current_.text.append(bytes.substr(0, 1024));
  }
  void on_part_end() override {
    if (!current_.is_file_field) return;
    if (sha_) {
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int size = 0;
      EVP_DigestFinal_ex(sha_.get(), digest, &size);
      current_.file.sha256 = sha256_hex(digest, size);
      sha_.reset();
    }
    last_file_field_ = current_;
  }

  [[nodiscard]] bool malformed() const { return malformed_; }
  // The `file` field, if the form had one: a file part, or a plain text field.
  [[nodiscard]] bool has_file_field() const { return last_file_field_.has_value(); }
  [[nodiscard]] bool file_field_is_text() const { return last_file_field_ && !last_file_field_->has_filename; }
  [[nodiscard]] const FilePart& file() const { return last_file_field_->file; }
  [[nodiscard]] const std::string& text() const { return last_file_field_->text; }

 private:
  struct Part {
    bool is_file_field = false;
    bool has_filename = false;
    FilePart file;
    std::string text;  // a text `file` field (no filename), for the 422 message
  };
  struct MdFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };

  bool hash_;
  bool malformed_ = false;
  Part current_;
  std::optional<Part> last_file_field_;
  std::unique_ptr<EVP_MD_CTX, MdFree> sha_;
};

// FastAPI's UploadFile validator on a plain (filename-less) form field. Built outside the
// coroutines: gcc 12 miscompiles brace-initialised JSON with string literals in a coroutine.
std::string text_file_field_error(const std::string& text) {
  boost::json::object detail{
      {"type", "value_error"},
      {"loc", boost::json::array{"body", "file"}},
      {"msg", "Value error, Expected UploadFile, received: <class 'str'>"},
      {"input", multipart::decode_header_text(text)},
      {"ctx", boost::json::object{{"error", boost::json::object{}}}},
  };
  return boost::json::serialize(boost::json::object{{"detail", boost::json::array{std::move(detail)}}});
}

// How an exchange left the connection.
enum class ConnectionNext {
  keep_alive,  // read the next request
  close,       // close_notify, then close
  drop,        // already reset or closed: just forget the socket
};

struct BodyRead {
  beast::error_code ec;
  std::uint64_t bytes = 0;
};

// Body bytes handed over as they are read.
using BodyConsumer = std::function<void(std::string_view)>;

class Server;

// One TLS connection: reads requests one after another (keep-alive) until one ends it.
class Connection {
 public:
  Connection(Server& server, tcp::socket socket, std::uint64_t id);
  asio::awaitable<void> run();

 private:
  tcp::socket& socket() { return stream_.next_layer(); }
  // Every network step runs under a deadline; the watchdog cancels the socket when it passes.
  void expires_after(std::chrono::steady_clock::duration idle) { deadline_ = std::chrono::steady_clock::now() + idle; }
  void expires_at(SteadyTime deadline) { deadline_ = deadline; }
  asio::awaitable<void> session();
  asio::awaitable<void> watchdog();
  RequestParser& parser() { return *parser_; }
  http::request<http::buffer_body>& request() { return parser_->get(); }

  asio::awaitable<ConnectionNext> serve_request();
  asio::awaitable<ConnectionNext> serve_upload(RequestRecord record, std::optional<std::string> project_id);
  asio::awaitable<ConnectionNext> serve_upload_normally(RequestRecord record, std::optional<std::string> project_id,
                                                        const Fault& fault);
  asio::awaitable<ConnectionNext> serve_list(RequestRecord record, const boost::urls::url_view& url);
  asio::awaitable<ConnectionNext> serve_get(RequestRecord record, const std::string& id);
  asio::awaitable<std::optional<ConnectionNext>> serve_read_fault(RequestRecord& record, const Fault& fault);
  asio::awaitable<ConnectionNext> serve_model_create(RequestRecord record, std::optional<std::string> project_id);
  asio::awaitable<ConnectionNext> serve_model_read(RequestRecord record, std::optional<std::string> name,
                                                   std::optional<std::string> project_id);
  asio::awaitable<void> pause_for(std::chrono::milliseconds how_long);
  asio::awaitable<ConnectionNext> serve_control(const std::string& path);

  // Reads the body (all of it, or up to `limit` bytes), re-arming the idle deadline per read
  // unless `deadline` is given; at `bytes_per_second` when not zero.
  asio::awaitable<BodyRead> read_body(const BodyConsumer& consume, std::optional<std::uint64_t> limit = {},
                                      std::uint64_t bytes_per_second = 0,
                                      std::optional<std::chrono::steady_clock::time_point> deadline = {});
  // Drains the body, records the exchange and sends `response`.
  asio::awaitable<ConnectionNext> answer_after_body(RequestRecord record, JsonResponse response);
  asio::awaitable<ConnectionNext> send(JsonResponse response);
  asio::awaitable<ConnectionNext> send_oversized(const ReceivedFile& file, std::uint64_t size);
  asio::awaitable<void> close_gracefully();
  void reset_connection();

  JsonResponse json_response(http::status status, std::string body) const;
  JsonResponse fault_response(const Fault& fault) const;

  Server& server_;
  TlsStream stream_;
  SteadyTime deadline_ = SteadyTime::max();
  std::uint64_t id_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::vector<char> chunk_;
  bool interim_sent_ = false;  // "100 Continue" sent, or no longer wanted (a final answer went out)
};

class Server {
 public:
  explicit Server(FakeApiOptions options) : options_(std::move(options)) {
    state_.tokens = {options_.token};
    configure_tls();
    const auto address = asio::ip::make_address(options_.bind_address);
    const tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, accept_loop(), asio::detached);
    const int threads = std::max(1, options_.threads);
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }

  ~Server() {
    ioc_.stop();
    for (auto& thread : threads_) thread.join();
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] const FakeApiOptions& options() const { return options_; }
  ServerState& state() { return state_; }
  ssl::context& tls() { return tls_; }
  [[nodiscard]] std::uint64_t connections() const { return connections_.load(); }

 private:
  void configure_tls() {
    if (options_.cert_file.empty() || options_.key_file.empty()) {
      throw std::invalid_argument("FakeApi needs cert_file and key_file (see TestPki)");
    }
    tls_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
    tls_.use_certificate_chain_file(options_.cert_file.string());
    tls_.use_private_key_file(options_.key_file.string(), ssl::context::pem);
  }

  // A strand per connection only when several threads run the loop.
  asio::any_io_executor connection_executor() {
    if (options_.threads > 1) return asio::make_strand(ioc_);
    return ioc_.get_executor();
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(connection_executor(), use_tuple);
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of descriptors and the like: wait a little rather than spin.
        asio::steady_timer pause(ioc_, 50ms);
        co_await pause.async_wait(use_tuple);
        continue;
      }
      const std::uint64_t id = ++connections_;
      beast::error_code ignored;  // a peer that already left fails later, on its own connection
      socket.set_option(tcp::no_delay(true), ignored);
      auto executor = socket.get_executor();
      asio::co_spawn(executor, serve(std::move(socket), id), [](const std::exception_ptr& error) {
        if (!error) return;
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          std::cerr << "fake-api: connection failed: " << e.what() << "\n";
        }
      });
    }
  }

  asio::awaitable<void> serve(tcp::socket socket, std::uint64_t id) {
    Connection connection(*this, std::move(socket), id);
    co_await connection.run();
  }

  FakeApiOptions options_;
  ServerState state_;
  ssl::context tls_{ssl::context::tls_server};           // outlives every connection in ioc_
  asio::io_context ioc_{std::max(1, options_.threads)};  // 1: Asio skips its locking
  tcp::acceptor acceptor_{ioc_};
  std::uint16_t port_ = 0;
  std::atomic<std::uint64_t> connections_{0};
  std::vector<std::thread> threads_;
};

Connection::Connection(Server& server, tcp::socket socket, std::uint64_t id)
    : server_(server), stream_(std::move(socket), server.tls()), id_(id), chunk_(kBodyChunk) {
  // Beast reads at most the buffer's free capacity (512 bytes when empty): that would be one
  // SSL_read, and one trip through the event loop, per 512 bytes of a 16 KiB TLS record.
  buffer_.reserve(64 * 1024);
}

asio::awaitable<void> Connection::run() {
  using namespace asio::experimental::awaitable_operators;
  co_await (session() || watchdog());  // the watchdog is cancelled when the session ends
}

asio::awaitable<void> Connection::watchdog() {
  // Polling keeps deadlines cheap to move (one store per read); 25 ms is precise enough here.
  asio::steady_timer tick(stream_.get_executor());
  for (;;) {
    tick.expires_after(25ms);
    auto [ec] = co_await tick.async_wait(use_tuple);
    if (ec) co_return;
    if (std::chrono::steady_clock::now() >= deadline_) {
      deadline_ = SteadyTime::max();
      beast::error_code ignored;
      socket().cancel(ignored);
    }
  }
}

asio::awaitable<void> Connection::session() {
  expires_after(kHandshakeTimeout);
  auto [handshake_ec] = co_await stream_.async_handshake(ssl::stream_base::server, use_tuple);
  if (handshake_ec) co_return;  // e.g. the client refused our certificate: nothing was sent
  for (;;) {
    parser_.emplace();
    parser().body_limit(boost::none);
    parser().header_limit(64 * 1024);
    interim_sent_ = false;
    expires_after(kIdleTimeout);
    auto [ec, unused] = co_await http::async_read_header(stream_, buffer_, parser(), use_tuple);
    if (ec) {
      if (ec.category() == http::make_error_code(http::error::bad_version).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message) {
        JsonResponse bad = json_response(http::status::bad_request, R"({"detail":"Invalid HTTP request"})");
        bad.keep_alive(false);
        co_await send(std::move(bad));
        co_await close_gracefully();
      }
      co_return;
    }
    const ConnectionNext next = co_await serve_request();
    if (next == ConnectionNext::drop) co_return;
    if (next == ConnectionNext::close) {
      co_await close_gracefully();
      co_return;
    }
  }
}

asio::awaitable<ConnectionNext> Connection::serve_request() {
  const auto& req = request();
  RequestRecord record;
  record.method = std::string(req.method_string());
  record.target = std::string(req.target());
  record.connection_id = id_;
  if (const auto it = req.find(http::field::authorization); it != req.end()) {
    record.authorization = std::string(it->value());
  }
  if (const auto it = req.find(http::field::user_agent); it != req.end()) record.user_agent = std::string(it->value());
  record.authorized = check_bearer(record.authorization, server_.state().current_tokens()).ok;

  const auto url = boost::urls::parse_origin_form(req.target());
  if (!url)
    co_return co_await answer_after_body(record, json_response(http::status::not_found, R"({"detail":"Not Found"})"));
  const std::string path = url->path();
  const auto method_not_allowed = [&](std::string_view allowed) {
    JsonResponse res = json_response(http::status::method_not_allowed, R"({"detail":"Method Not Allowed"})");
    res.set(http::field::allow, allowed);
    return res;
  };

  if (path.starts_with("/_fake/")) co_return co_await serve_control(path);
  if (path == "/v0/models/upload") {
    if (req.method() != http::verb::post) co_return co_await answer_after_body(record, method_not_allowed("POST"));
    std::optional<std::string> project_id;
    if (const auto it = url->params().find("ai_project_id"); it != url->params().end()) {
      project_id = (*it).value;
    }
    co_return co_await serve_upload(std::move(record), std::move(project_id));
  }
  if (path == "/v1/files") {
    if (req.method() != http::verb::get) co_return co_await answer_after_body(record, method_not_allowed("GET"));
    co_return co_await serve_list(std::move(record), *url);
  }
  if (path == "/v0/models" ||
      (path.starts_with("/v0/models/") && path.size() > 11 && path.find('/', 11) == std::string::npos)) {
    std::optional<std::string> project_id;
    if (const auto it = url->params().find("ai_project_id"); it != url->params().end()) project_id = (*it).value;
    if (path == "/v0/models" && req.method() == http::verb::post) {
      co_return co_await serve_model_create(std::move(record), std::move(project_id));
    }
    if (req.method() != http::verb::get) {
      co_return co_await answer_after_body(record, method_not_allowed(path == "/v0/models" ? "GET, POST" : "GET"));
    }
    std::optional<std::string> name;
    if (path != "/v0/models") name = path.substr(11);
    co_return co_await serve_model_read(std::move(record), std::move(name), std::move(project_id));
  }
  static constexpr std::string_view kFilesPrefix = "/v1/files/";
  if (path.starts_with(kFilesPrefix) && path.size() > kFilesPrefix.size() &&
      path.find('/', kFilesPrefix.size()) == std::string::npos) {
    if (req.method() != http::verb::get) co_return co_await answer_after_body(record, method_not_allowed("GET"));
    co_return co_await serve_get(std::move(record), path.substr(kFilesPrefix.size()));
  }
  co_return co_await answer_after_body(record, json_response(http::status::not_found, R"({"detail":"Not Found"})"));
}

asio::awaitable<ConnectionNext> Connection::serve_upload(RequestRecord record, std::optional<std::string> project_id) {
  const Fault fault = server_.state().take_fault();
  record.fault = fault.kind;
  const auto discard = [](std::string_view) {};
  switch (fault.kind) {
    case FaultKind::none:
    case FaultKind::throttle:
    case FaultKind::malformed_json:
    case FaultKind::oversized_response:
    case FaultKind::slow:
      co_return co_await serve_upload_normally(std::move(record), std::move(project_id), fault);

    case FaultKind::status:
      co_return co_await answer_after_body(std::move(record), fault_response(fault));

    case FaultKind::early_status: {
      // Answer now, then read and discard for a while (nginx's lingering_close) so that a
      // client still writing does not get a RST before it could read the answer.
      JsonResponse response = fault_response(fault);
      response.keep_alive(false);
      record.status = fault.status;
      server_.state().record(record);
      interim_sent_ = true;
      if (co_await send(std::move(response)) == ConnectionNext::drop) co_return ConnectionNext::drop;
      const auto lingered =
          co_await read_body(discard, std::nullopt, 0, std::chrono::steady_clock::now() + fault.linger_for);
      if (!lingered.ec && parser().is_done()) co_return ConnectionNext::close;
      // Body not fully read: a plain close, which the kernel turns into a RST if more arrives.
      beast::error_code ignored;
      socket().shutdown(tcp::socket::shutdown_both, ignored);
      socket().close(ignored);
      co_return ConnectionNext::drop;
    }

    case FaultKind::reset_after_bytes:
    case FaultKind::reset_after_body: {
      if (fault.kind == FaultKind::reset_after_body && fault.store_first) {
        co_return co_await serve_upload_normally(std::move(record), std::move(project_id), fault);
      }
      const auto limit =
          fault.kind == FaultKind::reset_after_bytes ? std::optional<std::uint64_t>(fault.after_bytes) : std::nullopt;
      const auto read = co_await read_body(discard, limit);
      record.body_bytes_read = read.bytes;
      server_.state().record(record);
      reset_connection();
      co_return ConnectionNext::drop;
    }

    case FaultKind::stall: {
      if (fault.store_first) co_return co_await serve_upload_normally(std::move(record), std::move(project_id), fault);
      const auto read = co_await read_body(discard);
      record.body_bytes_read = read.bytes;
      server_.state().record(record);
      if (read.ec) co_return ConnectionNext::drop;
      asio::steady_timer silence(stream_.get_executor(), fault.stall_for);
      co_await silence.async_wait(use_tuple);
      beast::error_code ignored;
      socket().shutdown(tcp::socket::shutdown_both, ignored);
      socket().close(ignored);
      co_return ConnectionNext::drop;
    }
  }
  co_return ConnectionNext::drop;
}

asio::awaitable<ConnectionNext> Connection::serve_upload_normally(RequestRecord record,
                                                                  std::optional<std::string> project_id,
                                                                  const Fault& fault) {
  const auto auth = check_bearer(record.authorization, server_.state().current_tokens());
  if (!auth.ok) {
    // FastAPI reads the body before it runs the security dependency; so does the fake.
    JsonResponse refused = json_response(auth.status, std::string(auth.body));
    if (auth.status == http::status::unauthorized) refused.set(http::field::www_authenticate, "Bearer");
    co_return co_await answer_after_body(std::move(record), std::move(refused));
  }
  const auto content_type = multipart::parse_options_header(std::string(request()[http::field::content_type]));
  if (content_type.value != "multipart/form-data") {
    // Starlette reads any other body as an empty form: the `file` field is missing.
    co_return co_await answer_after_body(std::move(record),
                                         json_response(http::status::unprocessable_entity, std::string(kMissingFile)));
  }
  const auto boundary = content_type.params.find("boundary");
  if (boundary == content_type.params.end()) {
    co_return co_await answer_after_body(std::move(record),
                                         json_response(http::status::bad_request, std::string(kBodyParseError)));
  }

  UploadCollector collector(!server_.options().sink_mode);
  multipart::StreamingParser form(boundary->second, collector);
  const std::uint64_t rate = fault.kind == FaultKind::throttle ? fault.bytes_per_second : 0;
  const auto read = co_await read_body([&form](std::string_view bytes) { form.feed(bytes); }, std::nullopt, rate);
  record.body_bytes_read = read.bytes;
  if (read.ec) {
    server_.state().record(record);
    co_return ConnectionNext::drop;
  }
  if (form.failed() || collector.malformed()) {
    record.status = static_cast<int>(http::status::bad_request);
    server_.state().record(record);
    co_return co_await send(json_response(http::status::bad_request, std::string(kBodyParseError)));
  }
  if (!collector.has_file_field()) {
    record.status = static_cast<int>(http::status::unprocessable_entity);
    server_.state().record(record);
    co_return co_await send(json_response(http::status::unprocessable_entity, std::string(kMissingFile)));
  }
  if (collector.file_field_is_text()) {
    record.status = static_cast<int>(http::status::unprocessable_entity);
    server_.state().record(record);
    co_return co_await send(json_response(http::status::unprocessable_entity, text_file_field_error(collector.text())));
  }

  ReceivedFile file;
  file.id = server_.state().new_file_id();
  file.filename = collector.file().filename;
  file.project_id = std::move(project_id);
  file.bytes = collector.file().bytes;
  file.sha256 = collector.file().sha256;
  file.content_type = collector.file().content_type;
  file.created_at =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  record.status = 200;
  record.file_id = file.id;
  std::function<void(const ReceivedFile&)> on_stored;
  {
    auto& state = server_.state();
    std::lock_guard lock(state.mutex);
    state.files.push_back(file);
    state.requests.push_back(record);
    on_stored = state.on_stored;
  }
  if (on_stored) on_stored(file);
  if (fault.kind == FaultKind::reset_after_body) {
    reset_connection();
    co_return ConnectionNext::drop;
  }
  if (fault.kind == FaultKind::stall) {
    co_await pause_for(fault.stall_for);
    beast::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
    co_return ConnectionNext::drop;
  }
  if (fault.kind == FaultKind::malformed_json) {
    std::string body =
        fault.body.empty() ? R"({"id": "file-)" + file.id.substr(5, 8) + R"(", "object": "fi)" : fault.body;
    co_return co_await send(json_response(http::status::ok, std::move(body)));
  }
  if (fault.kind == FaultKind::oversized_response) co_return co_await send_oversized(file, fault.oversized_bytes);
  // Stored, and the answer still on its way: what another client listing the files then sees.
  if (fault.kind == FaultKind::slow) co_await pause_for(fault.stall_for);
  co_return co_await send(json_response(http::status::ok, openai_file_json(file)));
}

asio::awaitable<ConnectionNext> Connection::serve_list(RequestRecord record, const boost::urls::url_view& url) {
  const Fault fault = server_.state().take_list_fault();
  if (fault.kind != FaultKind::none && fault.kind != FaultKind::slow) {
    if (auto next = co_await serve_read_fault(record, fault)) co_return *next;
  }
  const auto auth = check_bearer(record.authorization, server_.state().current_tokens());
  if (!auth.ok)
    co_return co_await answer_after_body(std::move(record), json_response(auth.status, std::string(auth.body)));
  auto query = parse_list_query(url.params());
  if (auto* invalid = std::get_if<std::string>(&query)) {
    co_return co_await answer_after_body(std::move(record),
                                         json_response(http::status::unprocessable_entity, std::move(*invalid)));
  }
  record.fault = fault.kind;
  // Slow: the page is made after the pause, from the files stored by then.
  if (fault.kind == FaultKind::slow) co_await pause_for(fault.stall_for);
  std::string page;
  {
    auto& state = server_.state();
    std::lock_guard lock(state.mutex);  // never held across a co_await
    page = list_page_json(list_page(state.files, std::get<ListQuery>(query), state.list_page_cap));
  }
  co_return co_await answer_after_body(std::move(record), json_response(http::status::ok, std::move(page)));
}

// A fault on a read request (listing, file lookup); none for kinds that do not apply to reads.
asio::awaitable<std::optional<ConnectionNext>> Connection::serve_read_fault(RequestRecord& record, const Fault& fault) {
  record.fault = fault.kind;
  switch (fault.kind) {
    case FaultKind::status:
      co_return co_await answer_after_body(std::move(record), fault_response(fault));
    case FaultKind::malformed_json: {
      // Built before the co_await: gcc 12 destroys a conditional's temporary twice inside one.
      std::string body = fault.body.empty() ? std::string("<html>gateway</html>") : fault.body;
      co_return co_await answer_after_body(std::move(record), json_response(http::status::ok, std::move(body)));
    }
    case FaultKind::reset_after_body:
      server_.state().record(record);
      reset_connection();
      co_return ConnectionNext::drop;
    case FaultKind::stall: {
      server_.state().record(record);
      co_await pause_for(fault.stall_for);
      beast::error_code ignored;
      socket().shutdown(tcp::socket::shutdown_both, ignored);
      socket().close(ignored);
      co_return ConnectionNext::drop;
    }
    default:
      co_return std::nullopt;
  }
}

asio::awaitable<ConnectionNext> Connection::serve_model_create(RequestRecord record,
                                                               std::optional<std::string> project_id) {
  std::string body;
  bool too_large = false;
  const auto read = co_await read_body([&](std::string_view bytes) {
    if (body.size() + bytes.size() > kControlBodyLimit) too_large = true;
    if (!too_large) body.append(bytes);
  });
  record.body_bytes_read = read.bytes;
  if (read.ec) {
    server_.state().record(record);
    co_return ConnectionNext::drop;
  }
  const Fault fault = server_.state().take_model_fault();
  record.fault = fault.kind;
  const bool create_first =
      fault.kind == FaultKind::slow ||
      ((fault.kind == FaultKind::stall || fault.kind == FaultKind::reset_after_body) && fault.store_first);
  if (fault.kind != FaultKind::none && !create_first) {
    if (auto next = co_await serve_read_fault(record, fault)) co_return *next;
  }
  const auto auth = check_bearer(record.authorization, server_.state().current_tokens());
  if (!auth.ok) {
    JsonResponse refused = json_response(auth.status, std::string(auth.body));
    if (auth.status == http::status::unauthorized) refused.set(http::field::www_authenticate, "Bearer");
    co_return co_await answer_after_body(std::move(record), std::move(refused));
  }
  if (too_large) {
    co_return co_await answer_after_body(std::move(record),
                                         json_response(http::status::payload_too_large, R"({"detail":"too large"})"));
  }
  auto answer = server_.state().create_model(body, project_id);
  if (create_first && fault.kind != FaultKind::slow) {
    // Made, and the answer lost: what a client whose connection broke cannot know.
    record.status = answer.status;
    if (auto next = co_await serve_read_fault(record, fault)) co_return *next;
  }
  if (fault.kind == FaultKind::slow) co_await pause_for(fault.stall_for);
  co_return co_await answer_after_body(std::move(record),
                                       json_response(static_cast<http::status>(answer.status), std::move(answer.body)));
}

asio::awaitable<ConnectionNext> Connection::serve_model_read(RequestRecord record, std::optional<std::string> name,
                                                             std::optional<std::string> project_id) {
  const Fault fault = server_.state().take_model_fault();
  if (fault.kind != FaultKind::none && fault.kind != FaultKind::slow) {
    if (auto next = co_await serve_read_fault(record, fault)) co_return *next;
  }
  record.fault = fault.kind;
  if (fault.kind == FaultKind::slow) co_await pause_for(fault.stall_for);
  const auto auth = check_bearer(record.authorization, server_.state().current_tokens());
  if (!auth.ok)
    co_return co_await answer_after_body(std::move(record), json_response(auth.status, std::string(auth.body)));
  JsonAnswer answer;
  {
    auto& state = server_.state();
    std::lock_guard lock(state.mutex);  // never held across a co_await
    const auto now = std::chrono::steady_clock::now();
    answer = name ? state.models.get(*name, now) : state.models.list(project_id, now);
  }
  co_return co_await answer_after_body(std::move(record),
                                       json_response(static_cast<http::status>(answer.status), std::move(answer.body)));
}

asio::awaitable<void> Connection::pause_for(std::chrono::milliseconds how_long) {
  asio::steady_timer delay(stream_.get_executor(), how_long);
  co_await delay.async_wait(use_tuple);
}

asio::awaitable<ConnectionNext> Connection::serve_get(RequestRecord record, const std::string& id) {
  const Fault fault = server_.state().take_list_fault();
  if (fault.kind != FaultKind::none && fault.kind != FaultKind::slow) {
    if (auto next = co_await serve_read_fault(record, fault)) co_return *next;
  }
  if (fault.kind == FaultKind::slow) co_await pause_for(fault.stall_for);
  const auto auth = check_bearer(record.authorization, server_.state().current_tokens());
  if (!auth.ok)
    co_return co_await answer_after_body(std::move(record), json_response(auth.status, std::string(auth.body)));
  std::optional<ReceivedFile> found;
  {
    auto& state = server_.state();
    std::lock_guard lock(state.mutex);
    for (const auto& file : state.files) {
      if (file.id == id) found = file;
    }
  }
  if (!found) {
    co_return co_await answer_after_body(std::move(record),
                                         json_response(http::status::not_found, R"({"detail":"File not found"})"));
  }
  co_return co_await answer_after_body(std::move(record), json_response(http::status::ok, openai_file_json(*found)));
}

asio::awaitable<ConnectionNext> Connection::serve_control(const std::string& path) {
  std::string body;
  bool too_large = false;
  const auto read = co_await read_body([&](std::string_view bytes) {
    if (body.size() + bytes.size() > kControlBodyLimit) too_large = true;
    if (!too_large) body.append(bytes);
  });
  if (read.ec) co_return ConnectionNext::drop;
  if (too_large) co_return co_await send(json_response(http::status::payload_too_large, R"({"detail":"too large"})"));

  auto& state = server_.state();
  const auto method = request().method();
  const auto ok = [&](std::string json) { return json_response(http::status::ok, std::move(json)); };
  const auto bad = [&](const std::string& message) {
    return json_response(http::status::bad_request, boost::json::serialize(boost::json::object{{"detail", message}}));
  };
  if ((path == "/_fake/faults" || path == "/_fake/list-faults" || path == "/_fake/model-faults") &&
      method == http::verb::post) {
    auto faults = faults_from_json(body);
    if (!faults) co_return co_await send(bad(faults.error().message));
    auto& queue = path == "/_fake/faults"        ? state.faults
                  : path == "/_fake/list-faults" ? state.list_faults
                                                 : state.model_faults;
    std::size_t queued = 0;
    {
      std::lock_guard lock(state.mutex);
      for (auto& fault : *faults) queue.push_back(std::move(fault));
      queued = queue.size();
    }
    co_return co_await send(ok(R"({"queued":)" + std::to_string(queued) + "}"));
  }
  if (path == "/_fake/list-page-cap" && method == http::verb::post) {
    boost::json::error_code ec;
    const auto value = boost::json::parse(body, ec);
    const auto* object = ec ? nullptr : value.if_object();
    const auto* cap = object != nullptr ? object->if_contains("files_per_page") : nullptr;
    if (cap == nullptr || !cap->is_int64() || cap->get_int64() < 0) {
      co_return co_await send(bad(R"(expected {"files_per_page": N})"));
    }
    {
      std::lock_guard lock(state.mutex);
      state.list_page_cap = static_cast<std::size_t>(cap->get_int64());
    }
    co_return co_await send(ok(R"({"ok":true})"));
  }
  if (path == "/_fake/model-behaviour" && method == http::verb::post) {
    auto behaviour = model_behaviour_from_json(body);
    if (!behaviour) co_return co_await send(bad(behaviour.error().message));
    {
      std::lock_guard lock(state.mutex);
      state.models.set_behaviour(std::move(*behaviour));
    }
    co_return co_await send(ok(R"({"ok":true})"));
  }
  if (path == "/_fake/models" && method == http::verb::get) {
    std::string json;
    {
      std::lock_guard lock(state.mutex);
      json = fake_models_to_json(state.models.snapshot(std::chrono::steady_clock::now()));
    }
    co_return co_await send(ok(std::move(json)));
  }
  if (path == "/_fake/default-fault" && method == http::verb::post) {
    auto fault = fault_from_json(body);
    if (!fault) co_return co_await send(bad(fault.error().message));
    {
      std::lock_guard lock(state.mutex);
      state.default_fault = std::move(*fault);
    }
    co_return co_await send(ok(R"({"ok":true})"));
  }
  if (path == "/_fake/fault-mix" && method == http::verb::post) {
    auto mix = fault_mix_from_json(body);
    if (!mix) co_return co_await send(bad(mix.error().message));
    state.set_mix(std::move(*mix));
    co_return co_await send(ok(R"({"ok":true})"));
  }
  if (path == "/_fake/token" && method == http::verb::post) {
    boost::json::error_code ec;
    const auto value = boost::json::parse(body, ec);
    const auto* object = ec ? nullptr : value.if_object();
    // {"token": "t"} accepts that token alone; {"tokens": ["a", "b"]} each of them.
    const auto* token = object != nullptr ? object->if_contains("token") : nullptr;
    const auto* list = object != nullptr ? object->if_contains("tokens") : nullptr;
    std::vector<std::string> tokens;
    if (token != nullptr && token->is_string()) tokens.emplace_back(token->get_string());
    if (token == nullptr && list != nullptr && list->is_array()) {
      for (const auto& item : list->get_array()) {
        if (item.is_string()) tokens.emplace_back(item.get_string());
      }
      if (tokens.size() != list->get_array().size()) tokens.clear();
    }
    if (tokens.empty()) co_return co_await send(bad(R"(expected {"token": "..."} or {"tokens": ["...", ...]})"));
    {
      std::lock_guard lock(state.mutex);
      state.tokens = std::move(tokens);
    }
    co_return co_await send(ok(R"({"ok":true})"));
  }
  if (path == "/_fake/reset" && method == http::verb::post) {
    {
      std::lock_guard lock(state.mutex);
      state.faults.clear();
      state.list_faults.clear();
      state.list_page_cap = 0;
      state.default_fault = Fault{};
      state.mix = FaultMix{};
      state.files.clear();
      state.requests.clear();
      state.models.clear();
      state.model_faults.clear();
    }
    co_return co_await send(ok(R"({"ok":true})"));
  }
  if (path == "/_fake/files" && method == http::verb::get) {
    std::string json;
    {
      std::lock_guard lock(state.mutex);  // never held across a co_await: resumption may be on another thread
      json = received_files_to_json(state.files);
    }
    co_return co_await send(ok(std::move(json)));
  }
  if (path == "/_fake/requests" && method == http::verb::get) {
    std::string json;
    {
      std::lock_guard lock(state.mutex);  // never held across a co_await: resumption may be on another thread
      json = request_records_to_json(state.requests);
    }
    co_return co_await send(ok(std::move(json)));
  }
  if (path == "/_fake/connections" && method == http::verb::get) {
    co_return co_await send(ok(R"({"accepted":)" + std::to_string(server_.connections()) + "}"));
  }
  co_return co_await send(json_response(http::status::not_found, R"({"detail":"Not Found"})"));
}

asio::awaitable<BodyRead> Connection::read_body(const BodyConsumer& consume, std::optional<std::uint64_t> limit,
                                                std::uint64_t bytes_per_second,
                                                std::optional<std::chrono::steady_clock::time_point> deadline) {
  BodyRead result;
  if (parser().is_done()) co_return result;
  if (!interim_sent_ && beast::iequals(request()[http::field::expect], "100-continue")) {
    // curl waits for this (up to a second) before it sends a large body; uvicorn sends it
    // when the application starts reading.
    interim_sent_ = true;
    http::response<http::empty_body> go_on{http::status::continue_, 11};
    expires_after(kIdleTimeout);
    auto [ec, unused] = co_await http::async_write(stream_, go_on, use_tuple);
    if (ec) {
      result.ec = ec;
      co_return result;
    }
  }
  interim_sent_ = true;
  const auto started = std::chrono::steady_clock::now();
  std::size_t step = chunk_.size();
  if (bytes_per_second != 0) step = static_cast<std::size_t>(std::clamp<std::uint64_t>(bytes_per_second / 20, 1, step));
  if (deadline) expires_at(*deadline);
  while (!parser().is_done()) {
    std::size_t want = step;
    if (limit) {
      if (result.bytes >= *limit) break;
      want = static_cast<std::size_t>(std::min<std::uint64_t>(want, *limit - result.bytes));
    }
    auto& body = request().body();
    body.data = chunk_.data();
    body.size = want;
    if (!deadline) expires_after(kIdleTimeout);
    auto [ec, unused] = co_await http::async_read(stream_, buffer_, parser(), use_tuple);
    const std::size_t got = want - body.size;
    result.bytes += got;
    if (got != 0) consume(std::string_view(chunk_.data(), got));
    if (ec && ec != http::error::need_buffer) {
      result.ec = ec;
      break;
    }
    if (bytes_per_second != 0) {
      const auto due = started + std::chrono::microseconds(result.bytes * 1'000'000 / bytes_per_second);
      if (due > std::chrono::steady_clock::now()) {
        asio::steady_timer pace(stream_.get_executor(), due);
        co_await pace.async_wait(use_tuple);
      }
    }
  }
  co_return result;
}

asio::awaitable<ConnectionNext> Connection::answer_after_body(RequestRecord record, JsonResponse response) {
  const auto read = co_await read_body([](std::string_view) {});
  record.body_bytes_read = read.bytes;
  if (read.ec) {
    server_.state().record(record);
    co_return ConnectionNext::drop;
  }
  record.status = static_cast<int>(response.result_int());
  server_.state().record(record);
  co_return co_await send(std::move(response));
}

asio::awaitable<ConnectionNext> Connection::send(JsonResponse response) {
  const bool keep_alive = response.keep_alive() && parser().keep_alive() && parser().is_done();
  response.keep_alive(keep_alive);
  response.prepare_payload();
  interim_sent_ = true;
  expires_after(kIdleTimeout);
  auto [ec, unused] = co_await http::async_write(stream_, response, use_tuple);
  if (ec) co_return ConnectionNext::drop;
  co_return keep_alive ? ConnectionNext::keep_alive : ConnectionNext::close;
}

asio::awaitable<ConnectionNext> Connection::send_oversized(const ReceivedFile& file, std::uint64_t size) {
  // A valid OpenAIFile padded with a long extra string field up to `size` bytes, streamed.
  std::string head = openai_file_json(file);
  head.pop_back();
  head += R"(,"padding":")";
  const std::string tail = "\"}";
  const std::uint64_t fixed = head.size() + tail.size();
  const std::uint64_t padding = size > fixed ? size - fixed : 0;
  http::response<http::buffer_body> response{http::status::ok, 11};
  response.set(http::field::server, "modeldrop-fake-api");
  response.set(http::field::content_type, "application/json");
  response.content_length(fixed + padding);
  response.keep_alive(parser().keep_alive());
  response.body().data = nullptr;
  response.body().more = true;
  http::response_serializer<http::buffer_body> serializer{response};
  expires_after(kIdleTimeout);
  if (auto [ec, unused] = co_await http::async_write_header(stream_, serializer, use_tuple); ec) {
    co_return ConnectionNext::drop;
  }
  const std::string filler(64 * 1024, 'x');
  std::uint64_t padding_left = padding;
  int piece = 0;  // 0 head, 1 padding, 2 tail
  while (piece < 3) {
    std::string_view bytes;
    if (piece == 0) {
      bytes = head;
      ++piece;
    } else if (piece == 1) {
      if (padding_left == 0) {
        ++piece;
        continue;
      }
      bytes = std::string_view(filler).substr(
          0, static_cast<std::size_t>(std::min<std::uint64_t>(padding_left, filler.size())));
      padding_left -= bytes.size();
    } else {
      bytes = tail;
      ++piece;
    }
    response.body().data = const_cast<char*>(bytes.data());
    response.body().size = bytes.size();
    response.body().more = piece < 3;
    expires_after(kIdleTimeout);
    auto [ec, unused] = co_await http::async_write(stream_, serializer, use_tuple);
    if (ec && ec != http::error::need_buffer) co_return ConnectionNext::drop;
  }
  co_return response.keep_alive() ? ConnectionNext::keep_alive : ConnectionNext::close;
}

asio::awaitable<void> Connection::close_gracefully() {
  expires_after(kShutdownTimeout);
  co_await stream_.async_shutdown(use_tuple);  // stream_truncated and timeouts are fine here
  beast::error_code ignored;
  socket().shutdown(tcp::socket::shutdown_both, ignored);
  socket().close(ignored);
}

void Connection::reset_connection() {
  // SO_LINGER {on, 0} makes close() send a RST instead of a FIN.
  beast::error_code ignored;
  socket().set_option(asio::socket_base::linger(true, 0), ignored);
  socket().close(ignored);
}

JsonResponse Connection::json_response(http::status status, std::string body) const {
  JsonResponse response{status, 11};
  response.set(http::field::server, "modeldrop-fake-api");
  response.set(http::field::content_type, "application/json");
  response.body() = std::move(body);
  return response;
}

JsonResponse Connection::fault_response(const Fault& fault) const {
  std::string body = fault.body;
  if (body.empty()) {
    const auto reason = http::obsolete_reason(static_cast<http::status>(fault.status));
    body = boost::json::serialize(boost::json::object{{"detail", reason}});
  }
  JsonResponse response = json_response(static_cast<http::status>(fault.status), std::move(body));
  for (const auto& [name, value] : fault.headers) response.set(name, value);
  return response;
}

}  // namespace

struct FakeApi::Impl {
  explicit Impl(FakeApiOptions options) : server(std::move(options)) {}
  Server server;
};

FakeApi::FakeApi(FakeApiOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
FakeApi::~FakeApi() = default;

std::uint16_t FakeApi::port() const {
  return impl_->server.port();
}
std::string FakeApi::base_url() const {
  // A wildcard address is reached through loopback; IPv6 literals need brackets in a URL.
  const auto address = asio::ip::make_address(impl_->server.options().bind_address);
  std::string host = address.to_string();
  if (address.is_unspecified()) host = address.is_v6() ? "::1" : "127.0.0.1";
  if (address.is_v6()) host = "[" + host + "]";
  return "https://" + host + ":" + std::to_string(port());
}

void FakeApi::push_fault(Fault fault) {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  state.faults.push_back(std::move(fault));
}

void FakeApi::set_default_fault(Fault fault) {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  state.default_fault = std::move(fault);
}

void FakeApi::set_fault_mix(double probability, std::vector<Fault> faults, std::uint64_t seed) {
  impl_->server.state().set_mix({.probability = probability, .faults = std::move(faults), .seed = seed});
}

void FakeApi::push_list_fault(Fault fault) {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  state.list_faults.push_back(std::move(fault));
}

void FakeApi::set_list_page_cap(std::size_t files_per_page) {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  state.list_page_cap = files_per_page;
}

ReceivedFile FakeApi::add_file(ReceivedFile file) {
  auto& state = impl_->server.state();
  if (file.id.empty()) file.id = state.new_file_id();
  std::lock_guard lock(state.mutex);
  state.files.push_back(file);
  return file;
}

void FakeApi::on_file_stored(std::function<void(const ReceivedFile&)> callback) {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  state.on_stored = std::move(callback);
}

void FakeApi::set_token(std::string token) {
  set_tokens({std::move(token)});
}

void FakeApi::set_tokens(std::vector<std::string> tokens) {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  state.tokens = std::move(tokens);
}

void FakeApi::push_model_fault(Fault fault) {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  state.model_faults.push_back(std::move(fault));
}

void FakeApi::set_model_behaviour(ModelBehaviour behaviour) {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  state.models.set_behaviour(std::move(behaviour));
}

void FakeApi::add_model(FakeModel model) {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  state.models.add(std::move(model));
}

std::vector<FakeModel> FakeApi::models() const {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  return state.models.snapshot(std::chrono::steady_clock::now());
}

std::vector<ReceivedFile> FakeApi::files() const {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  return state.files;
}

std::vector<RequestRecord> FakeApi::requests() const {
  auto& state = impl_->server.state();
  std::lock_guard lock(state.mutex);
  return state.requests;
}

std::uint64_t FakeApi::connections_accepted() const {
  return impl_->server.connections();
}

}  // namespace modeldrop::test
