// modeldrop-fake-api: the fake Nebius API as a process, for the demo, the benchmarks, the
// soak and the systemd test. Runs until SIGINT or SIGTERM.

#include "common/exit_codes.hpp"
#include "common/text.hpp"
#include "support/fake_api/fake_api.hpp"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>

namespace {

using modeldrop::test::FakeApi;
using modeldrop::test::FakeApiOptions;
using modeldrop::test::TestPki;

// Written to a temporary name and renamed, so a script polling for it never reads half a number.
void write_port_file(const std::filesystem::path& path, std::uint16_t port) {
  auto temporary = path;
  temporary += ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << port << "\n";
    if (!out.flush()) throw std::runtime_error("cannot write " + temporary.string());
  }
  std::filesystem::rename(temporary, path);
}

std::string read_token_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read token file " + path.string());
  std::stringstream content;
  content << in.rdbuf();
  return std::string(modeldrop::trim(content.str()));
}

int run(int argc, char** argv) {
  CLI::App cli{"modeldrop-fake-api: a fake of the Nebius Token Factory upload API over HTTPS", "modeldrop-fake-api"};
  FakeApiOptions options;
  std::filesystem::path pki_dir;
  std::filesystem::path token_file;
  std::filesystem::path port_file;
  cli.add_option("--listen", options.bind_address, "address to listen on")->capture_default_str();
  cli.add_option("--port", options.port, "TCP port (0 = any free port)")->capture_default_str();
  auto* cert = cli.add_option("--cert", options.cert_file, "server certificate chain (PEM)");
  auto* key = cli.add_option("--key", options.key_file, "server private key (PEM)");
  auto* pki = cli.add_option("--pki-dir", pki_dir, "generate a test CA and server certificate here and use them");
  cert->needs(key);
  key->needs(cert);
  pki->excludes(cert)->excludes(key);
  auto* token = cli.add_option("--token", options.token, "bearer token to accept")->capture_default_str();
  cli.add_option("--token-file", token_file, "read the bearer token from this file")->excludes(token);
  cli.add_flag("--sink", options.sink_mode, "count bytes only: no hashing (benchmarks)");
  cli.add_option("--threads", options.threads, "event-loop threads")->check(CLI::Range(1, 64))->capture_default_str();
  cli.add_option("--port-file", port_file, "write the bound port here once listening");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return rc == 0 ? modeldrop::exit_code::kSuccess : modeldrop::exit_code::kUsage;
  }
  if (pki_dir.empty() && options.cert_file.empty()) {
    std::cerr << "modeldrop-fake-api: give --cert and --key, or --pki-dir\n";
    return modeldrop::exit_code::kUsage;
  }
  if (!pki_dir.empty()) {
    const auto generated = TestPki::generate(pki_dir);
    options.cert_file = generated.server_cert;
    options.key_file = generated.server_key;
  }
  if (!token_file.empty()) options.token = read_token_file(token_file);

  // A peer that vanishes must cost a connection, never the process.
  std::signal(SIGPIPE, SIG_IGN);
  // Blocked before the server's threads start, so that only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const FakeApi api(options);
  if (!port_file.empty()) write_port_file(port_file, api.port());
  std::cerr << "modeldrop-fake-api: listening on https://" << options.bind_address << ":" << api.port()
            << (options.sink_mode ? " (sink mode)" : "") << std::endl;
  int received = 0;
  sigwait(&stop_signals, &received);
  std::cerr << "modeldrop-fake-api: stopping on signal " << received << std::endl;
  return modeldrop::exit_code::kSuccess;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "modeldrop-fake-api: fatal: " << e.what() << "\n";
    return modeldrop::exit_code::kRuntimeError;
  }
}
