#include "daemon_fixture.hpp"

#include "support/pseudo_random_file.hpp"

#include <openssl/evp.h>

#include <fstream>
#include <random>

namespace modeldrop::test {

using namespace std::chrono_literals;

std::optional<std::string> held_reason(const std::filesystem::path& database) {
  auto store = store::JobStore::open_existing(database);
  if (!store) return std::nullopt;
  auto record = store->daemon_record();
  if (!record || !*record) return std::nullopt;
  return (*record)->held_reason;
}

std::optional<store::JobWithAttempts> job_with_attempts(const std::filesystem::path& database, store::JobId id) {
  auto store = store::JobStore::open_existing(database);
  if (!store) return std::nullopt;
  auto job = store->job_with_attempts(id);
  if (!job || !*job) return std::nullopt;
  return std::move(**job);
}

void DaemonTest::SetUp() {
  incoming_ = dir_ / "incoming";
  std::filesystem::create_directories(incoming_);
  config_ = dir_ / "modeldrop.yaml";
  pki_ = TestPki::generate(dir_ / "pki");
  FakeApiOptions options;
  options.token = "test-token";
  options.cert_file = pki_.server_cert;
  options.key_file = pki_.server_key;
  api_ = std::make_unique<FakeApi>(options);
  dir_.write("token", "test-token\n", 0600);
  write_config();
}

std::string DaemonTest::config_text(const std::string& extra) const {
  return "api:\n"
         "  base_url: " +
         api_->base_url() +
         "\n"
         "  token_file: token\n"
         "  ca_file: " +
         pki_.ca_cert.string() +
         "\n"
         "  connect_timeout: 5s\n"
         "  idle_timeout: 10s\n"
         "upload:\n"
         "  sessions: 2\n" +
         config_options_.upload +
         "retry:\n"
         "  initial_backoff: 100ms\n"
         "  max_backoff: 1s\n"
         "database: " +
         config_options_.database +
         "\n"
         "watch:\n"
         "  - path: incoming\n"
         "    settle: 200ms\n"
         "    validate: " +
         config_options_.validate + "\n" + config_options_.incoming_watch + extra +
         "log:\n  level: debug\n  format: " + config_options_.log_format + "\n" + config_options_.top_level;
}

void DaemonTest::write_config(const std::string& extra) {
  database_ = dir_ / config_options_.database;
  std::filesystem::create_directories(database_.parent_path());  // modeldropd refuses to invent it
  dir_.write("modeldrop.yaml", config_text(extra));
}

std::unique_ptr<ChildProcess> DaemonTest::start_daemon(const std::vector<std::string>& wrapper) {
  std::vector<std::string> argv = wrapper;
  argv.insert(argv.end(), {MODELDROPD_PATH, "--config", config_.string()});
  return std::make_unique<ChildProcess>(argv, dir_.path(), daemon_environment_,
                                        std::vector<std::string>{"NEBIUS_API_KEY", "CREDENTIALS_DIRECTORY",
                                                                 "NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM"});
}

ProcessResult DaemonTest::run_cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{MODELDROP_CLI_PATH, "--db", database_.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions options;
  options.env_unset = {"MODELDROP_CONFIG"};
  return run_process(argv, options);
}

std::unique_ptr<ChildProcess> DaemonTest::start_ready_daemon(const std::vector<std::string>& wrapper) {
  auto daemon = start_daemon(wrapper);
  const bool ready = wait_until([&] { return daemon->stderr_text().find("ready:") != std::string::npos; }, 20s);
  EXPECT_TRUE(ready) << daemon->stderr_text();
  return daemon;
}

std::filesystem::path DaemonTest::drop(const std::string& name, std::size_t bytes, const std::filesystem::path& dir) {
  const auto target_dir = dir.empty() ? incoming_ : dir;
  // A short temporary name: `name` itself may be as long as a name can be (NAME_MAX).
  static int drops = 0;
  const auto temp = target_dir / (".drop-" + std::to_string(++drops) + ".part");
  write_pseudo_random_file(temp, bytes, std::hash<std::string>{}(name));
  const auto final_path = target_dir / name;
  std::filesystem::rename(temp, final_path);
  return final_path;
}

std::vector<store::Job> DaemonTest::jobs() const {
  if (!std::filesystem::exists(database_)) return {};
  auto store = store::JobStore::open_existing(database_);
  if (!store) return {};
  auto list = store->list_jobs({}, 100000);
  return list ? *list : std::vector<store::Job>{};
}

bool DaemonTest::all_jobs_in(store::JobState state, std::size_t count) const {
  const auto all = jobs();
  if (all.size() != count) return false;
  for (const auto& job : all) {
    if (job.state != state) return false;
  }
  return true;
}

std::string DaemonTest::sha256_of(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

}  // namespace modeldrop::test
