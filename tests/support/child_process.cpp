#include "support/child_process.hpp"

#include "support/temp_dir.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <csignal>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace modeldrop::test {

ChildProcess::ChildProcess(std::vector<std::string> argv, const std::filesystem::path& log_dir,
                           std::map<std::string, std::string> env_set, std::vector<std::string> env_unset) {
  static std::atomic<int> counter{0};
  const int n = counter++;
  const std::string stem = std::filesystem::path(argv.at(0)).filename().string() + "." + std::to_string(n);
  out_file_ = log_dir / (stem + ".stdout");
  err_file_ = log_dir / (stem + ".stderr");

  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (auto eq = entry.find('='); eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& name : env_unset) env.erase(name);
  for (auto& [name, value] : env_set) env[name] = value;
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  const int out = ::open(out_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = ::open(err_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0 || err < 0) throw std::runtime_error("cannot create child log files in " + log_dir.string());
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    // Its own process group, so a test's kill cannot hit the test runner.
    ::setpgid(0, 0);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(out);
  ::close(err);
}

ChildProcess::~ChildProcess() {
  if (running()) {
    signal(SIGKILL);
    (void)wait(std::chrono::seconds(10));
  }
}

void ChildProcess::signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool ChildProcess::running() {
  if (exit_code_ || term_signal_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    if (WIFEXITED(status)) exit_code_ = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) term_signal_ = WTERMSIG(status);
  }
  return false;
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (!wait_until([this] { return !running(); }, timeout)) return std::nullopt;
  return exit_code_ ? *exit_code_ : -1;
}

std::string ChildProcess::stderr_text() const {
  return read_file(err_file_);
}
std::string ChildProcess::stdout_text() const {
  return read_file(out_file_);
}

bool process_gone(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto after_name = line.rfind(')');
  return after_name != std::string::npos && line.compare(after_name, 3, ") Z") == 0;
}

}  // namespace modeldrop::test
