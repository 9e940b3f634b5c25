// The modeldrop-fake-api executable and its /_fake/ control API, as scripts use them.

#include "fake_api_fixture.hpp"
#include "support/fake_api/fake_api_json.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <thread>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;

// The executable running in the background, stopped with SIGTERM when the test ends.
class FakeApiProcess {
 public:
  FakeApiProcess(std::vector<std::string> args, const std::filesystem::path& log) {
    std::vector<std::string> argv{MODELDROP_FAKE_API_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> pointers;
    for (auto& arg : argv) pointers.push_back(arg.data());
    pointers.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execv(pointers[0], pointers.data());
      ::_exit(127);
    }
  }
  ~FakeApiProcess() {
    if (pid_ > 0 && exit_code_ < 0) stop();
  }
  FakeApiProcess(const FakeApiProcess&) = delete;
  FakeApiProcess& operator=(const FakeApiProcess&) = delete;

  // SIGTERM, then the exit code (bounded wait; SIGKILL and -1 if it does not stop).
  int stop() {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
      std::this_thread::sleep_for(50ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    exit_code_ = -1;
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// The port the process wrote, once it is listening (bounded wait).
std::optional<std::uint16_t> wait_for_port_file(const std::filesystem::path& path) {
  for (int i = 0; i < 200; ++i) {
    if (std::filesystem::exists(path)) {
      const auto text = read_file(path);
      if (!text.empty() && text.back() == '\n') return static_cast<std::uint16_t>(std::stoul(text));
    }
    std::this_thread::sleep_for(25ms);
  }
  return std::nullopt;
}

class FakeApiProcessTest : public FakeApiTest {
 protected:
  // curl against the process, trusting the CA it generated in its --pki-dir.
  CurlAnswer call(std::vector<std::string> args) {
    std::vector<std::string> argv{"/usr/bin/curl", "-sS", "--cacert", (temp_ / "pki" / "ca.pem").string(), "-w",
                                  "\n%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions options;
    options.env_unset = {"HTTPS_PROXY", "https_proxy"};
    const auto result = run_process(argv, options);
    CurlAnswer answer;
    answer.exit_code = result.exit_code;
    answer.err = result.err;
    const auto newline = result.out.rfind('\n');
    if (newline != std::string::npos) {
      answer.body = result.out.substr(0, newline);
      answer.status = std::atoi(result.out.c_str() + newline + 1);
    }
    return answer;
  }
  std::string at(std::uint16_t port, std::string_view path) {
    return "https://localhost:" + std::to_string(port) + std::string(path);
  }
};

TEST_F(FakeApiProcessTest, ControlApiScriptsFaultsAndReadsRecords) {
  temp_.write("token", "from-file\n", 0600);
  FakeApiProcess process({"--pki-dir", (temp_ / "pki").string(), "--port", "0", "--port-file",
                          (temp_ / "port").string(), "--token-file", (temp_ / "token").string(), "--threads", "2"},
                         temp_ / "log");
  const auto port = wait_for_port_file(temp_ / "port");
  ASSERT_TRUE(port) << read_file(temp_ / "log");
  const auto file = temp_.write("m.zip", test_content(300 * 1024, 9));
  const std::vector<std::string> auth{"-H", "Authorization: Bearer from-file"};
  const auto upload_to = [&](std::uint16_t p) {
    auto args = auth;
    args.insert(args.end(), {"-F", "file=@" + file.string(), at(p, "/v0/models/upload?ai_project_id=p9")});
    return call(args);
  };

  const auto queued =
      call({"--data-binary",
            faults_to_json({{.kind = FaultKind::status, .status = 429}, {.kind = FaultKind::status, .status = 502}}),
            at(*port, "/_fake/faults")});
  EXPECT_EQ(queued.status, 200) << queued.body;
  EXPECT_EQ(upload_to(*port).status, 429);
  EXPECT_EQ(upload_to(*port).status, 502);
  EXPECT_EQ(upload_to(*port).status, 200);

  const auto files = call({at(*port, "/_fake/files")});
  const auto received = received_files_from_json(files.body);
  ASSERT_TRUE(received) << files.body;
  ASSERT_EQ(received.value().size(), 1u);
  EXPECT_EQ(received.value().front().sha256, sha256_of_file(file));
  EXPECT_EQ(received.value().front().project_id, "p9");

  const auto requests = call({at(*port, "/_fake/requests")});
  EXPECT_EQ(requests.status, 200);
  EXPECT_EQ(requests.body.find("from-file"), std::string::npos) << "the token must not be echoed";
  const auto records = boost::json::parse(requests.body).as_array();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].as_object().at("status"), 429);
  EXPECT_EQ(records[0].as_object().at("fault"), "status");
  EXPECT_EQ(records[2].as_object().at("authorized"), true);

  EXPECT_EQ(call({"--data-binary", R"({"kind":"status","status":418})", at(*port, "/_fake/default-fault")}).status,
            200);
  EXPECT_EQ(upload_to(*port).status, 418);
  // A fault mix comes before the default fault; a probability outside 0..1 is refused.
  EXPECT_EQ(call({"--data-binary", R"({"probability":1,"seed":3,"faults":[{"kind":"status","status":502}]})",
                  at(*port, "/_fake/fault-mix")})
                .status,
            200);
  EXPECT_EQ(upload_to(*port).status, 502);
  EXPECT_EQ(call({"--data-binary", R"({"probability":1.5,"faults":[]})", at(*port, "/_fake/fault-mix")}).status, 400);
  EXPECT_EQ(call({"--data-binary", R"({"probability":0.5,"odds":1})", at(*port, "/_fake/fault-mix")}).status, 400);
  EXPECT_EQ(call({"--data-binary", R"({"kind":"bogus"})", at(*port, "/_fake/faults")}).status, 400);
  EXPECT_EQ(call({"--data-binary", R"({"kind":"status","colour":1})", at(*port, "/_fake/faults")}).status, 400);

  EXPECT_EQ(call({"--data-binary", R"({"token":"rotated"})", at(*port, "/_fake/token")}).status, 200);
  EXPECT_EQ(call({"--data-binary", "{}", at(*port, "/_fake/reset")}).status, 200);
  EXPECT_EQ(upload_to(*port).status, 401);  // reset keeps the token
  EXPECT_EQ(call({at(*port, "/_fake/files")}).body, "[]");
  // Several tokens at once, one per team.
  EXPECT_EQ(call({"--data-binary", R"({"tokens":["team-b","from-file"]})", at(*port, "/_fake/token")}).status, 200);
  EXPECT_EQ(upload_to(*port).status, 200);
  EXPECT_EQ(call({"--data-binary", R"({"tokens":["team-b",7]})", at(*port, "/_fake/token")}).status, 400);
  const auto connections = json_object(call({at(*port, "/_fake/connections")}).body);
  EXPECT_GT(connections.at("accepted").to_number<int>(), 8);

  EXPECT_EQ(process.stop(), 0) << read_file(temp_ / "log");
  EXPECT_NE(read_file(temp_ / "log").find("listening on https://127.0.0.1:"), std::string::npos);
}

TEST_F(FakeApiProcessTest, SinkModeAndExplicitCertificate) {
  FakeApiProcess process({"--cert", pki().server_cert.string(), "--key", pki().server_key.string(), "--sink", "--token",
                          "t", "--port-file", (temp_ / "port").string()},
                         temp_ / "log");
  const auto port = wait_for_port_file(temp_ / "port");
  ASSERT_TRUE(port) << read_file(temp_ / "log");
  const auto file = temp_.write("m.zip", test_content(100 * 1024, 8));
  const auto answer = curl_answer({"-H", "Authorization: Bearer t", "-F", "file=@" + file.string(),
                                   "https://localhost:" + std::to_string(*port) + "/v0/models/upload"});
  EXPECT_EQ(answer.status, 200);
  const auto files =
      received_files_from_json(curl_answer({"https://localhost:" + std::to_string(*port) + "/_fake/files"}).body);
  ASSERT_TRUE(files);
  ASSERT_EQ(files.value().size(), 1u);
  EXPECT_EQ(files.value().front().bytes, 100u * 1024);
  EXPECT_EQ(files.value().front().sha256, "");
  EXPECT_EQ(process.stop(), 0) << read_file(temp_ / "log");
}

TEST(FakeApiExecutable, UsageErrors) {
  const auto help = run_process({MODELDROP_FAKE_API_PATH, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--port-file"), std::string::npos);
  EXPECT_EQ(run_process({MODELDROP_FAKE_API_PATH}).exit_code, 2);  // no certificate
  EXPECT_EQ(run_process({MODELDROP_FAKE_API_PATH, "--cert", "x.pem"}).exit_code, 2);
  EXPECT_EQ(run_process({MODELDROP_FAKE_API_PATH, "--bogus"}).exit_code, 2);
}

}  // namespace
}  // namespace modeldrop::test
