#include "reload.h"

#include <fcntl.h>
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "netns.h"
#include "runtimes.h"

namespace fc {

namespace fs = std::filesystem;

namespace {

// Files are read in pieces of this size (one buffer per walk).
constexpr size_t kReadChunkBytes = 64 * 1024;

// SHA-256 from nettle: plain functions on a context of our own.  (OpenSSL's
// EVP, used before, loads its providers at the first digest: some 3 MB of
// libcrypto pages resident in the runner for its whole life.)
class Sha256 {
 public:
  Sha256() { sha256_init(&ctx_); }
  void add(const void* data, size_t len) { sha256_update(&ctx_, len, static_cast<const uint8_t*>(data)); }
  // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
  void add_field(std::string_view text) {
    uint64_t n = text.size();
    add(&n, sizeof n);
    add(text.data(), text.size());
  }
  std::string hex(size_t bytes) {
    uint8_t out[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx_, sizeof out, out);
    static const char* kDigits = "0123456789abcdef";
    std::string text;
    for (size_t i = 0; i < std::min<size_t>(bytes, sizeof out); i++) {
      text.push_back(kDigits[out[i] >> 4]);
      text.push_back(kDigits[out[i] & 15]);
    }
    return text;
  }

 private:
  sha256_ctx ctx_;
};

bool skipped_directory(const fs::path& name) { return name == "__pycache__" || name == ".git"; }

}  // namespace

CodeHash hash_code_tree(const std::string& dir, const CodeTreeLimits& limits) {
  CodeHash result;
  std::error_code ec;
  // Walk first, sorted, so the hash does not depend on readdir order.
  std::vector<fs::path> entries;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) {
    result.error = "cannot read " + dir + ": " + ec.message();
    return result;
  }
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      result.error = "cannot read " + dir + ": " + ec.message();
      return result;
    }
    const fs::path& path = it->path();
    if (it->is_directory(ec) && !it->is_symlink(ec) && skipped_directory(path.filename())) {
      it.disable_recursion_pending();
      continue;
    }
    if (entries.size() >= limits.max_entries) {
      result.error = dir + " has more than " + std::to_string(limits.max_entries) +
                     " entries (CodeTreeLimits::kMaxEntries): its code changes are not detected";
      return result;
    }
    entries.push_back(path.lexically_relative(dir));
  }
  std::sort(entries.begin(), entries.end());

  Sha256 hash;
  std::vector<char> buffer(kReadChunkBytes);
  for (const fs::path& rel : entries) {
    fs::path full = fs::path(dir) / rel;
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0) continue;  // gone meanwhile
    hash.add_field(rel.string());
    char type = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : 'o';
    hash.add(&type, 1);
    uint32_t mode = st.st_mode & 07777;
    hash.add(&mode, sizeof mode);
    if (S_ISLNK(st.st_mode)) {
      std::string target = fs::read_symlink(full, ec).string();
      hash.add_field(target);
    } else if (S_ISREG(st.st_mode)) {
      result.files++;
      int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) {
        // Unreadable to the runner: its size still counts.
        uint64_t size = static_cast<uint64_t>(st.st_size);
        hash.add(&size, sizeof size);
        continue;
      }
      uint64_t file_bytes = 0;
      for (;;) {
        ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        file_bytes += static_cast<uint64_t>(n);
        result.bytes += static_cast<uint64_t>(n);
        if (result.bytes > limits.max_bytes) {
          ::close(fd);
          result.error = dir + " holds more than " + std::to_string(limits.max_bytes) +
                         " bytes (CodeTreeLimits::kMaxBytes): its code changes are not detected";
          return result;
        }
        hash.add(buffer.data(), static_cast<size_t>(n));
      }
      ::close(fd);
      hash.add(&file_bytes, sizeof file_bytes);
    }
  }
  result.digest = hash.hex(16);
  return result;
}

void mark_unservable_functions(RunnerConfig& config) {
  for (auto& fn : config.functions) {
    std::string bootstrap = builtin_bootstrap(fn.runtime);
    if (fn.problems.empty() && !bootstrap.empty() && access(bootstrap.c_str(), R_OK) != 0) {
      fn.problems.emplace_back(config.path, fn.line, "functions." + fn.name + ".runtime",
                               std::string("runtime ") + to_string(fn.runtime) +
                                   " is not available in this build yet (no " + bootstrap +
                                   "); use runtime: custom with customRuntimeConfig");
    }
    if (fn.network == FunctionConfig::Network::kPrivate && !network_namespaces_available()) {
      fn.problems.emplace_back(config.path, fn.network_line, "functions." + fn.name + ".network",
                               kPrivateNetworkNeedsRoot);
    }
  }
}

std::map<std::string, CodeHash> hash_code_trees(const RunnerConfig& config) {
  std::map<std::string, CodeHash> hashes;
  // Functions that share a codeUri share its tree: read once per load.
  std::map<std::string, CodeHash> by_dir;
  for (const FunctionConfig& fn : config.functions) {
    if (!fn.problems.empty()) continue;
    auto it = by_dir.find(fn.code_uri);
    if (it == by_dir.end()) it = by_dir.emplace(fn.code_uri, hash_code_tree(fn.code_uri)).first;
    hashes[fn.name] = it->second;
  }
  return hashes;
}

LoadedConfig load_for_reload(const std::string& path) {
  LoadedConfig loaded;
  RunnerConfig config;
  try {
    config = load_config(path);
  } catch (const ConfigError& e) {
    loaded.errors.push_back(e);
    return loaded;
  } catch (const std::exception& e) {
    loaded.errors.emplace_back(path, 0, "", e.what());
    return loaded;
  }
  mark_unservable_functions(config);
  for (const ConfigError* problem : config.problems()) loaded.errors.push_back(*problem);
  if (!loaded.errors.empty()) return loaded;
  loaded.code_hashes = hash_code_trees(config);
  loaded.runtime_warnings = runtime_version_warnings(config);
  loaded.config = std::move(config);
  return loaded;
}

namespace {

struct BackgroundWork {
  uv_work_t req{};
  std::function<void()> work;
  std::function<void()> done;
  std::weak_ptr<void> alive;
};

}  // namespace

void run_in_background(uv_loop_t* loop, std::function<void()> work, std::function<void()> done,
                       std::weak_ptr<void> alive) {
  auto* job = new BackgroundWork{{}, std::move(work), std::move(done), std::move(alive)};
  job->req.data = job;
  int rc = uv_queue_work(
      loop, &job->req, [](uv_work_t* req) { static_cast<BackgroundWork*>(req->data)->work(); },
      [](uv_work_t* req, int) {
        std::unique_ptr<BackgroundWork> owned(static_cast<BackgroundWork*>(req->data));
        if (!owned->alive.expired()) owned->done();
      });
  if (rc != 0) {
    // The thread pool refused (it does not, short of a bad loop): do it here.
    std::unique_ptr<BackgroundWork> owned(job);
    owned->work();
    if (!owned->alive.expired()) owned->done();
  }
}

}  // namespace fc
