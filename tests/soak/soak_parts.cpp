#include "soak_parts.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <span>
#include <thread>

namespace modeldrop::soak {
namespace {

using namespace std::chrono_literals;

constexpr std::array<std::string_view, 4> kExtensions{".zip", ".tar", ".tar.gz", ".tgz"};
constexpr std::size_t kBlock = 256 * 1024;

// Fast, seeded, reproducible content: a rewrite after ENOSPC produces the same bytes.
class ContentStream {
 public:
  explicit ContentStream(std::uint64_t seed) : state_(seed) {}
  void fill(std::span<std::uint64_t> words) {
    for (auto& word : words) {
      state_ += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = state_;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31);
    }
  }

 private:
  std::uint64_t state_;
};

struct MdFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

std::string hex(const unsigned char* digest, unsigned size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (unsigned i = 0; i < size; ++i) {
    text.push_back(kHex[digest[i] >> 4]);
    text.push_back(kHex[digest[i] & 15]);
  }
  return text;
}

enum class WriteResult { written, no_space, stopped, failed };

struct FileCloser {
  int fd = -1;
  ~FileCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// One try at writing `archive` completely. On ENOSPC the partial file is removed at once, before
// the daemon's settle time could pass, so no partial archive is ever queued.
WriteResult write_archive(Archive& archive, std::mt19937_64& random, const std::atomic<bool>& stop,
                          std::string& error) {
  const auto final_path = archive.dir / archive.name;
  const auto path = archive.careful ? archive.dir / ("." + archive.name + ".part") : final_path;
  FileCloser file{::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
  if (file.fd < 0) {
    if (errno == ENOSPC) return WriteResult::no_space;
    error = "cannot create " + path.string() + ": " + std::strerror(errno);
    return WriteResult::failed;
  }
  std::unique_ptr<EVP_MD_CTX, MdFree> sha(EVP_MD_CTX_new());
  EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
  ContentStream content(archive.content_seed);
  std::vector<std::uint64_t> block(kBlock / sizeof(std::uint64_t));
  // Careless writers write in about 32 pieces with short pauses: well inside the settle time.
  const std::uint64_t piece = archive.careful ? archive.size : std::max<std::uint64_t>(64 * 1024, archive.size / 32);
  std::uniform_int_distribution<int> pause_ms(10, 60);
  std::uint64_t done = 0;
  std::uint64_t since_pause = 0;
  while (done < archive.size) {
    if (stop) {
      ::unlink(path.c_str());
      return WriteResult::stopped;
    }
    content.fill(block);
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kBlock, archive.size - done));
    const char* bytes = reinterpret_cast<const char*>(block.data());
    std::size_t off = 0;
    while (off < n) {
      const ssize_t w = ::write(file.fd, bytes + off, n - off);
      if (w < 0) {
        const int e = errno;
        if (e == EINTR) continue;
        ::unlink(path.c_str());
        if (e == ENOSPC) return WriteResult::no_space;
        error = "cannot write " + path.string() + ": " + std::strerror(e);
        return WriteResult::failed;
      }
      off += static_cast<std::size_t>(w);
    }
    EVP_DigestUpdate(sha.get(), bytes, n);
    done += n;
    since_pause += n;
    if (!archive.careful && since_pause >= piece && done < archive.size) {
      since_pause = 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(random)));
    }
  }
  const int fd = file.fd;
  file.fd = -1;
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    if (e == ENOSPC) return WriteResult::no_space;
    error = "cannot close " + path.string() + ": " + std::strerror(e);
    return WriteResult::failed;
  }
  if (archive.careful && ::rename(path.c_str(), final_path.c_str()) != 0) {
    error = "cannot rename " + path.string() + ": " + std::strerror(errno);
    ::unlink(path.c_str());
    return WriteResult::failed;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  EVP_DigestFinal_ex(sha.get(), digest, &size);
  archive.sha256 = hex(digest, size);
  return WriteResult::written;
}

std::uint64_t log_uniform(std::mt19937_64& random, std::uint64_t low, std::uint64_t high) {
  std::uniform_real_distribution<double> exponent(std::log(static_cast<double>(low)),
                                                  std::log(static_cast<double>(high)));
  return static_cast<std::uint64_t>(std::exp(exponent(random)));
}

}  // namespace

bool sleep_unless_stopped(std::chrono::milliseconds duration, const std::atomic<bool>& stop) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (!stop) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(until - now, 50ms));
  }
  return false;
}

std::vector<Archive> plan_archives(int count, std::uint64_t seed, const std::vector<std::filesystem::path>& dirs,
                                   std::chrono::milliseconds spread) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Archive> archives;
  for (int i = 0; i < count; ++i) {
    Archive a;
    a.index = i;
    const double kind = unit(random);
    if (kind < 0.55) {
      a.size = log_uniform(random, 1024, 256 * 1024);
    } else if (kind < 0.85) {
      a.size = log_uniform(random, 256 * 1024, 4 << 20);
    } else if (kind < 0.97) {
      a.size = log_uniform(random, 4 << 20, 32 << 20);
    } else {
      a.size = log_uniform(random, 40 << 20, 96 << 20);  // "a few larger"
    }
    a.careful = unit(random) < 0.7;
    a.dir = dirs[static_cast<std::size_t>(i) % dirs.size()];
    a.name = "soak-" + std::to_string(seed) + "-" + std::to_string(i) + "-" + std::to_string(a.size) +
             std::string(kExtensions[static_cast<std::size_t>(i) % kExtensions.size()]);
    a.content_seed = random();
    a.due = std::chrono::milliseconds(spread.count() * i / std::max(1, count));
    archives.push_back(std::move(a));
  }
  return archives;
}

void run_writer(std::vector<Archive>& archives, int writer, int writers, SteadyTime start, std::atomic<bool>& stop,
                std::atomic<int>& written, std::atomic<int>& enospc, EventLog& events) {
  std::mt19937_64 random(static_cast<std::uint64_t>(writer) * 7919 + 17);
  std::uniform_int_distribution<int> retry_ms(500, 1500);
  for (auto& archive : archives) {
    if (archive.index % writers != writer) continue;
    const auto wait = start + archive.due - std::chrono::steady_clock::now();
    if (wait > 0ns && !sleep_unless_stopped(std::chrono::duration_cast<std::chrono::milliseconds>(wait), stop)) return;
    for (;;) {
      std::string error;
      const auto result = write_archive(archive, random, stop, error);
      if (result == WriteResult::written) {
        archive.written = true;
        ++written;
        break;
      }
      if (result == WriteResult::stopped) return;
      if (result == WriteResult::failed) {
        events.problem("writer: " + error);
        return;
      }
      ++archive.enospc_failures;
      ++enospc;
      if (!sleep_unless_stopped(std::chrono::milliseconds(retry_ms(random)), stop)) return;
    }
  }
}

void run_lock_holder(const std::filesystem::path& database, std::uint64_t seed, std::atomic<bool>& stop,
                     EventLog& events) {
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<int> gap_ms(1500, 6000);
  std::uniform_int_distribution<int> hold_ms(500, 3000);
  while (!std::filesystem::exists(database)) {
    if (!sleep_unless_stopped(100ms, stop)) return;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(database.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    events.problem("lock holder: cannot open " + database.string() + ": " + sqlite3_errmsg(db));
    sqlite3_close(db);
    return;
  }
  sqlite3_busy_timeout(db, 10000);
  while (sleep_unless_stopped(std::chrono::milliseconds(gap_ms(random)), stop)) {
    char* message = nullptr;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, &message) != SQLITE_OK) {
      // The daemon holds the lock longer than 10 s: worth knowing, though not an error of ours.
      events.problem(std::string("lock holder: BEGIN IMMEDIATE waited over 10 s: ") + (message ? message : "?"));
      sqlite3_free(message);
      continue;
    }
    const auto from = std::chrono::system_clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms(random)));
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    std::lock_guard lock(events.mutex);
    events.lock_periods.push_back({from, std::chrono::system_clock::now()});
  }
  sqlite3_close(db);
}

void run_filler(const std::filesystem::path& dir, SteadyTime phase_start, std::chrono::milliseconds phase_length,
                std::atomic<bool>& stop, EventLog& events) {
  const auto wait = phase_start - std::chrono::steady_clock::now();
  if (wait > 0ns && !sleep_unless_stopped(std::chrono::duration_cast<std::chrono::milliseconds>(wait), stop)) return;
  const auto ballast = dir / ".soak-ballast";  // a dot name: the daemon ignores it
  FileCloser file{::open(ballast.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
  if (file.fd < 0) {
    events.problem("filler: cannot create " + ballast.string() + ": " + std::strerror(errno));
    return;
  }
  const std::vector<char> zeros(1 << 20, 0);
  const auto from = std::chrono::system_clock::now();
  const auto until = std::chrono::steady_clock::now() + phase_length;
  // Top up every 100 ms: the daemon deletes uploaded archives meanwhile, freeing space.
  while (!stop && std::chrono::steady_clock::now() < until) {
    for (;;) {
      const ssize_t w = ::write(file.fd, zeros.data(), zeros.size());
      if (w > 0) continue;
      if (w < 0 && errno == EINTR) continue;
      break;  // ENOSPC (or a short write at the very end): full
    }
    std::this_thread::sleep_for(100ms);
  }
  ::unlink(ballast.c_str());
  std::lock_guard lock(events.mutex);
  events.enospc_phases.push_back({from, std::chrono::system_clock::now()});
}

std::string sha256_hex_of_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::unique_ptr<EVP_MD_CTX, MdFree> sha(EVP_MD_CTX_new());
  EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    EVP_DigestUpdate(sha.get(), buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  EVP_DigestFinal_ex(sha.get(), digest, &size);
  return hex(digest, size);
}

}  // namespace modeldrop::soak
