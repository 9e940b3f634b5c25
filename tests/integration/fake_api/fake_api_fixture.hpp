#pragma once

#include "support/fake_api/fake_api.hpp"
#include "support/run_process.hpp"
#include "support/temp_dir.hpp"
#include "tls_test_client.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <memory>

namespace modeldrop::test {

// One PKI for the whole binary (key generation is the slow part), one server per test.
class FakeApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!pki_dir_) {
      pki_dir_ = std::make_unique<TempDir>();
      pki_ = TestPki::generate(pki_dir_->path());
    }
  }

  void start(FakeApiOptions options = {}) {
    options.cert_file = pki_.server_cert;
    options.key_file = pki_.server_key;
    api_ = std::make_unique<FakeApi>(options);
  }
  FakeApi& api() { return *api_; }
  [[nodiscard]] std::string url(std::string_view path) const {
    return "https://localhost:" + std::to_string(api_->port()) + std::string(path);
  }
  static const TestPki& pki() { return pki_; }

  // curl with the test CA; prints the body, then a line with the status code.
  ProcessResult curl(std::vector<std::string> args, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::vector<std::string> argv{"/usr/bin/curl", "-sS", "--cacert", pki_.ca_cert.string(), "-w", "\n%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions options;
    options.timeout = timeout;
    options.env_unset = {"HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"};
    return run_process(argv, options);
  }

  struct CurlAnswer {
    int exit_code = -1;
    int status = 0;
    std::string body;
    std::string err;
  };
  CurlAnswer curl_answer(std::vector<std::string> args) {
    const auto result = curl(std::move(args));
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
  CurlAnswer upload(const std::filesystem::path& file, std::string_view filename, std::vector<std::string> extra = {},
                    std::string_view path = "/v0/models/upload") {
    std::vector<std::string> args{"-H", "Authorization: Bearer test-token", "-F",
                                  "file=@" + file.string() + ";filename=" + std::string(filename)};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(url(path));
    return curl_answer(std::move(args));
  }

  std::unique_ptr<TlsTestClient> client() { return std::make_unique<TlsTestClient>(api_->port(), pki_.ca_cert); }

  TempDir temp_;

 private:
  static inline std::unique_ptr<TempDir> pki_dir_;
  static inline TestPki pki_;
  std::unique_ptr<FakeApi> api_;
};

inline boost::json::object json_object(std::string_view text) {
  boost::json::error_code ec;
  auto value = boost::json::parse(text, ec);
  if (ec || !value.is_object()) {
    ADD_FAILURE() << "not a JSON object: " << text.substr(0, 300);
    return {};
  }
  return value.as_object();
}

}  // namespace modeldrop::test
