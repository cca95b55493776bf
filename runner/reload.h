// Reload (DESIGN §4.4, issue 10): what is read from disk for it, off the
// loop.  A reload reads the config file, validates it whole (load_config,
// which also stats codeUri and the commands), and hashes the contents of
// every function's code tree; all of that is disk I/O, so it runs in libuv's
// thread pool (run_in_background) and only the result reaches the loop,
// where Runner::apply_reload() compares it with what runs.  Nothing here
// logs: the loop thread owns the log.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include "config.h"

namespace fc {

// Bounds of one code tree walk, so a codeUri of "/" or a runaway tree cannot
// keep a worker thread busy for ever.  Past either, the tree has no hash
// (CodeHash::error says why) and its code changes are not detected.
struct CodeTreeLimits {
  static constexpr size_t kMaxEntries = 200'000;                 // files, directories, links
  static constexpr uint64_t kMaxBytes = 2ULL * 1024 * 1024 * 1024;  // file contents read
  size_t max_entries = kMaxEntries;
  uint64_t max_bytes = kMaxBytes;
};

struct CodeHash {
  std::string digest;  // hex SHA-256 (first 16 bytes) of the tree; empty on error
  std::string error;   // why there is none
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// A content hash of the tree under `dir`: every entry's relative path (in
// sorted order), its type, its permission bits and, for regular files, the
// bytes, for symbolic links the target (links are not followed).  mtimes do
// not count: a touch is no change, an edit that keeps the size is one.
// `__pycache__` and `.git` directories are skipped (derived or not code).
// Blocking: for a worker thread.
CodeHash hash_code_tree(const std::string& dir, const CodeTreeLimits& limits = {});

// The result of reading a config for reload.
struct LoadedConfig {
  std::optional<RunnerConfig> config;           // absent: refused (errors)
  std::vector<ConfigError> errors;              // each file:line:key: reason
  std::map<std::string, CodeHash> code_hashes;  // by function name
  std::map<std::string, std::string> runtime_warnings;  // by function name (runtimes.h)
};

// Reads, validates and hashes, in that order; a config with errors (the
// file's own, or a function the runner could not serve) is refused whole.
// Blocking: for a worker thread.
LoadedConfig load_for_reload(const std::string& path);

// Every function's code hash, for the config the runner started with.
std::map<std::string, CodeHash> hash_code_trees(const RunnerConfig& config);

// Functions this runner cannot serve get a problem naming the key: a
// built-in runtime whose bootstrap is not there, `network: private` without
// network namespaces (root).  At start and --check (main.cc) and on reload.
void mark_unservable_functions(RunnerConfig& config);

// Runs `work` on libuv's thread pool, then `done` on the loop.  `done` is
// not called when `alive` has expired by then (its owner is gone).
void run_in_background(uv_loop_t* loop, std::function<void()> work, std::function<void()> done,
                       std::weak_ptr<void> alive);

}  // namespace fc
