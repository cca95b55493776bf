// Runner configuration: YAML (FC s.yaml property names) to RunnerConfig.
//
// Every problem becomes one ConfigError naming the file, the line and the key
// path, so an operator can fix the file without reading this code.  Errors
// point at the line of the key they are about (for list items, the item);
// cross-field checks point at the key that has to change.

#include "config.h"

#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <sstream>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

#include "admin.h"  // is_loopback_host
#include "yaml_tree.h"

namespace fc {

namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Keys.  The lists are the whole vocabulary: anything else is an error.

constexpr std::string_view kTopLevelKeys[] = {
    "listen", "listenMode", "listenBacklog", "frameTimeout", "admin", "logLevel", "logFormat", "logFile",
    "shutdownTimeout",
    "instancePorts",
    "functions",
    // Isolation (docs/isolation.md).
    "listenGroup", "instanceUids", "readWritePaths",
};

constexpr std::string_view kFunctionKeys[] = {
    // FC s.yaml (component fc, FC 2.0).  `name` is accepted so a pasted s.yaml
    // block works; it must match the map key.
    "name", "runtime", "codeUri", "handler", "initializer", "initializationTimeout", "timeout",
    "memorySize", "instanceConcurrency", "environmentVariables", "caPort", "customRuntimeConfig",
    "instanceLifecycleConfig",
    // Runner extensions.
    "type", "interpreter", "minInstances", "maxInstances", "idleTimeout", "maxQueueSize",
    "maxQueueTime", "network",
    // Isolation (docs/isolation.md).
    "user", "group", "readWritePaths", "maxProcesses", "maxOpenFiles", "tmpSize",
};

// FC keys that mean nothing on one machine: accepted with any value, no
// effect, and named in one warning per function (at start and by --check),
// so a pasted s.yaml works and nobody believes they apply.
constexpr std::string_view kIgnoredFunctionKeys[] = {
    "description", "cpu", "diskSize", "instanceType", "internetAccess", "logConfig", "role",
    "vpcConfig", "nasConfig", "ossMountConfig", "layers", "tracingConfig", "customDNS",
    "gpuMemorySize", "gpuConfig", "asyncConfiguration", "instanceSoftConcurrency",
    "customHealthCheckConfig", "tags",
};

constexpr std::string_view kCustomRuntimeConfigKeys[] = {"command", "args"};
constexpr std::string_view kLifecycleKeys[] = {"preStop", "preFreeze"};
constexpr std::string_view kHookKeys[] = {"handler", "timeout"};

constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error"};

constexpr std::string_view kDefaultListen = "unix:/run/fc-runner/fc.sock";
constexpr size_t kMaxUnixPathBytes = 107;  // sizeof(sockaddr_un::sun_path) - 1
constexpr size_t kMaxFunctionNameBytes = 128;

bool contains(std::span<const std::string_view> keys, std::string_view key) {
  return !key.empty() && std::find(keys.begin(), keys.end(), key) != keys.end();
}

// Optimal string alignment distance (Levenshtein plus adjacent swaps), so
// "timeotu" suggests "timeout".
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string nearest_key(std::string_view key, std::span<const std::string_view> a,
                        std::span<const std::string_view> b = {}) {
  std::string best;
  size_t best_distance = 3;  // suggest only within distance 2
  for (auto keys : {a, b}) {
    for (std::string_view candidate : keys) {
      if (candidate.empty()) continue;
      size_t distance = edit_distance(key, candidate);
      if (distance < best_distance) {
        best_distance = distance;
        best = candidate;
      }
    }
  }
  return best;
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string join(std::span<const std::string_view> items) {
  std::string out;
  for (std::string_view item : items) {
    if (item.empty()) continue;
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Scalars.

int line_of(const yaml::Node& node) { return node.line; }

bool is_quoted(const yaml::Node& node) { return node.quoted; }  // quoted, or an explicit tag

bool parse_int(std::string_view text, long long& out, bool& overflow) {
  overflow = false;
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (end != text.data() + text.size()) return false;
  if (ec == std::errc::result_out_of_range) {
    overflow = true;
    return true;
  }
  return ec == std::errc();
}

bool parse_double(std::string_view text, double& out) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return false;
  for (char c : text) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == 'e' ||
          c == 'E' || c == '+')) {
      return false;  // keeps from_chars from accepting "inf", "nan", hex
    }
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (end != text.data() + text.size()) return false;
  if (ec == std::errc::result_out_of_range) {
    out = text.front() == '-' ? -HUGE_VAL : HUGE_VAL;
    return true;
  }
  return ec == std::errc();
}

bool is_bool_literal(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text == "true" || text == "false" || text == "yes" || text == "no" || text == "on" ||
         text == "off";
}

// What a node is, for "expected X, got Y".
std::string describe(const yaml::Node& node) {
  switch (node.type) {
    case yaml::Node::Type::kNull:
      return "an empty value";
    case yaml::Node::Type::kSequence:
      return "a list";
    case yaml::Node::Type::kMap:
      return "a map";
    case yaml::Node::Type::kScalar:
      break;
  }
  const std::string& text = node.scalar;
  if (!is_quoted(node)) {
    double ignored;
    if (parse_double(text, ignored)) return "the number " + text;
    if (is_bool_literal(text)) return "the boolean " + text;
  }
  return "the string " + in_quotes(text);
}

std::string format_number(double value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

// ---------------------------------------------------------------------------
// The parser: one per file, knows the file name for messages and the
// directory that relative codeUri values start from.

// One `key: value` of a map (or one item of a list: key is empty).
struct Entry {
  std::string key;
  std::string path;  // "functions.hello.timeout", "...command[0]"
  int line = 0;      // the key's line (the item's, for list items)
  const yaml::Node* value = nullptr;
};

class Parser {
 public:
  Parser(std::string file, fs::path base_dir) : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  RunnerConfig parse_document(const yaml::Node& root);

 private:
  [[noreturn]] void fail(int line, const std::string& path, const std::string& reason) const {
    throw ConfigError(file_, line, path, reason);
  }
  [[noreturn]] void fail(const Entry& entry, const std::string& reason) const {
    fail(entry.line, entry.path, reason);
  }

  // The entries of `map` in file order.  Unknown keys (when `known` is not
  // empty), non-scalar keys and duplicates are errors.  Keys in `ignored`
  // are dropped (and appended to `ignored_seen` when given).
  std::vector<Entry> entries(const yaml::Node& map, const std::string& path,
                             std::span<const std::string_view> known,
                             std::span<const std::string_view> ignored = {},
                             std::vector<std::string>* ignored_seen = nullptr) const;

  // A map-valued entry: null reads as an empty map.
  std::vector<Entry> map_entries(const Entry& entry, std::span<const std::string_view> known,
                                 std::span<const std::string_view> ignored = {}) const;

  std::string as_string(const Entry& entry) const;
  std::string as_nonempty_string(const Entry& entry) const;
  long long as_int(const Entry& entry, long long min, long long max) const;
  // Seconds: ints or floats.  `min_exclusive`: the value must be > min.
  double as_seconds(const Entry& entry, double min, double max, bool min_exclusive = false) const;
  std::vector<std::string> as_string_list(const Entry& entry) const;

  Address as_address(const Entry& entry) const;
  int as_mode(const Entry& entry) const;
  // readWritePaths: absolute paths (relative ones from the config's directory).
  std::vector<std::string> as_path_list(const Entry& entry) const;
  // "FIRST-LAST" (or one port), 1024..65535, FIRST <= LAST.
  void parse_port_range(const Entry& entry, int& first, int& last) const;
  FunctionConfig parse_function(const Entry& entry) const;
  PreStopConfig parse_hook(const Entry& entry) const;
  // The absolute code directory; `problem` says why it cannot be used
  // (the function cannot be served, the file still loads).
  std::string as_code_dir(const Entry& entry, std::string& problem) const;
  // Why `program` (argv[0], run in `code_dir`) cannot be started, or empty.
  static std::string program_problem(const std::string& program, const std::string& code_dir,
                                     const std::string& search_path);

  // What stat() said about each directory and program, per file read:
  // functions that share a codeUri and a command (the common case in a
  // config of many) cost one look each, not one per function.
  std::string cached_program_problem(const std::string& program, const std::string& code_dir,
                                     const std::string& search_path) const;

  std::string file_;
  fs::path base_dir_;
  mutable std::unordered_map<std::string, std::string> code_dir_problems_;
  mutable std::unordered_map<std::string, std::string> program_problems_;
};

std::vector<Entry> Parser::entries(const yaml::Node& map, const std::string& path,
                                   std::span<const std::string_view> known,
                                   std::span<const std::string_view> ignored,
                                   std::vector<std::string>* ignored_seen) const {
  std::vector<Entry> out;
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < map.map_size(); i++) {
    const yaml::Node& key_node = map.key(i);
    int line = line_of(key_node);
    std::string prefix = path.empty() ? "" : path + ".";
    if (!key_node.is_scalar()) {
      fail(line, path, "keys must be plain names, got " + describe(key_node) + " as a key");
    }
    std::string key = key_node.scalar;
    std::string key_path = prefix + key;
    if (!seen.insert(key).second) fail(line, key_path, "duplicate key");
    if (contains(ignored, key)) {
      if (ignored_seen) ignored_seen->push_back(key);
      continue;
    }
    if (!known.empty() && !contains(known, key)) {
      std::string reason = "unknown key";
      std::string suggestion = nearest_key(key, known, ignored);
      if (!suggestion.empty()) reason += " (did you mean " + in_quotes(suggestion) + "?)";
      fail(line, key_path, reason);
    }
    out.push_back(Entry{std::move(key), std::move(key_path), line, &map.value(i)});
  }
  return out;
}

std::vector<Entry> Parser::map_entries(const Entry& entry, std::span<const std::string_view> known,
                                       std::span<const std::string_view> ignored) const {
  if (entry.value->is_null()) return {};
  if (!entry.value->is_map()) fail(entry, "expected a map, got " + describe(*entry.value));
  return entries(*entry.value, entry.path, known, ignored);
}

std::string Parser::as_string(const Entry& entry) const {
  if (!entry.value->is_scalar()) fail(entry, "expected a string, got " + describe(*entry.value));
  return entry.value->scalar;
}

std::string Parser::as_nonempty_string(const Entry& entry) const {
  std::string text = as_string(entry);
  if (text.empty()) fail(entry, "must not be empty");
  return text;
}

long long Parser::as_int(const Entry& entry, long long min, long long max) const {
  const yaml::Node& node = *entry.value;
  if (!node.is_scalar() || is_quoted(node)) fail(entry, "expected an integer, got " + describe(node));
  long long value = 0;
  bool overflow = false;
  double number = 0;
  bool is_int = parse_int(node.scalar, value, overflow);
  if (!is_int && !parse_double(node.scalar, number)) fail(entry, "expected an integer, got " + describe(node));
  if (!is_int || overflow || value < min || value > max) {
    fail(entry, "must be an integer between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                    node.scalar);
  }
  return value;
}

double Parser::as_seconds(const Entry& entry, double min, double max, bool min_exclusive) const {
  const yaml::Node& node = *entry.value;
  double value;
  if (!node.is_scalar() || is_quoted(node) || !parse_double(node.scalar, value)) {
    fail(entry, "expected a number (seconds), got " + describe(node));
  }
  bool ok = std::isfinite(value) && (min_exclusive ? value > min : value >= min) && value <= max;
  if (!ok) {
    if (min_exclusive) {
      fail(entry, "must be a number greater than " + format_number(min) + " and at most " +
                      format_number(max));
    }
    fail(entry, "must be a number between " + format_number(min) + " and " + format_number(max));
  }
  return value;
}

std::vector<std::string> Parser::as_string_list(const Entry& entry) const {
  if (!entry.value->is_sequence()) fail(entry, "expected a list of strings, got " + describe(*entry.value));
  std::vector<std::string> out;
  size_t index = 0;
  for (const yaml::Node* item : entry.value->children) {
    Entry item_entry{"", entry.path + "[" + std::to_string(index++) + "]", line_of(*item), item};
    out.push_back(as_string(item_entry));
  }
  return out;
}

Address Parser::as_address(const Entry& entry) const {
  std::string text = as_nonempty_string(entry);
  try {
    return parse_address(text);
  } catch (const std::invalid_argument& e) {
    fail(entry, e.what());
  }
}

void Parser::parse_port_range(const Entry& entry, int& first, int& last) const {
  const std::string reason = "must be a port range FIRST-LAST between 1024 and 65535 (e.g. \"20000-29999\")";
  if (!entry.value->is_scalar()) fail(entry, reason + ", got " + describe(*entry.value));
  std::string text = entry.value->scalar;
  size_t dash = text.find('-');
  std::string_view a = std::string_view(text).substr(0, dash);
  std::string_view b = dash == std::string::npos ? a : std::string_view(text).substr(dash + 1);
  auto number = [&](std::string_view digits, int& out) {
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return !digits.empty() && ec == std::errc() && end == digits.data() + digits.size() && out >= 1024 &&
           out <= 65535;
  };
  int lo = 0, hi = 0;
  if (!number(a, lo) || !number(b, hi) || lo > hi) fail(entry, reason + ", got " + in_quotes(text));
  first = lo;
  last = hi;
}

// Octal string ("0660", "660" quoted, "0o660") or an int; see README.
int Parser::as_mode(const Entry& entry) const {
  const yaml::Node& node = *entry.value;
  const std::string reason = "must be a file mode between 0000 and 0777, written in octal (e.g. \"0660\")";
  if (!node.is_scalar()) fail(entry, "expected an octal string like \"0660\", got " + describe(node));
  std::string_view text = node.scalar;
  bool octal = is_quoted(node) || text.starts_with("0");
  if (text.starts_with("0o")) text.remove_prefix(2);
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    fail(entry, "expected an octal string like \"0660\", got " + describe(node));
  }
  long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, octal ? 8 : 10);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > 0777) {
    fail(entry, reason + ", got " + node.scalar);
  }
  return static_cast<int>(value);
}

std::vector<std::string> Parser::as_path_list(const Entry& entry) const {
  std::vector<std::string> out;
  for (std::string path : as_string_list(entry)) {
    if (path.empty()) fail(entry, "paths must not be empty");
    if (path.front() != '/') path = (base_dir_ / path).lexically_normal().string();
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    if (path == "/") fail(entry, "must not be / (name the directories the instances may write)");
    out.push_back(path);
  }
  return out;
}

// A user or group name, or a number: the id, or -1 when unknown.
int user_id(const std::string& name) {
  if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return name.size() < 10 ? std::atoi(name.c_str()) : -1;
  }
  const passwd* pw = getpwnam(name.c_str());
  return pw ? static_cast<int>(pw->pw_uid) : -1;
}

int group_id(const std::string& name) {
  if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return name.size() < 10 ? std::atoi(name.c_str()) : -1;
  }
  const group* gr = getgrnam(name.c_str());
  return gr ? static_cast<int>(gr->gr_gid) : -1;
}

// The uids inside instanceUids that are never handed out (instance_uids.h):
// accounts of the passwd database (one pass over it, not a lookup per
// function: with NSS modules a lookup is some thirty system calls) and the
// uids of named `user:`s.
std::vector<int> reserved_instance_uids(const RunnerConfig& config) {
  std::unordered_set<int> reserved;
  auto in_range = [&](long long uid) { return uid >= config.instance_uid_first && uid <= config.instance_uid_last; };
  setpwent();
  while (const passwd* pw = getpwent()) {
    if (in_range(pw->pw_uid)) reserved.insert(static_cast<int>(pw->pw_uid));
  }
  endpwent();
  for (const FunctionConfig& fn : config.functions) {
    if (!fn.user.empty() && in_range(fn.uid)) reserved.insert(fn.uid);
  }
  std::vector<int> out(reserved.begin(), reserved.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::string Parser::as_code_dir(const Entry& entry, std::string& problem) const {
  fs::path path = as_nonempty_string(entry);
  if (path.is_relative()) path = base_dir_ / path;
  path = path.lexically_normal();
  std::string text = path.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  auto cached = code_dir_problems_.find(text);
  if (cached != code_dir_problems_.end()) {
    problem = cached->second;
    return text;
  }
  std::error_code ec;
  fs::file_status status = fs::status(text, ec);
  if (ec || !fs::exists(status)) {
    problem = "directory " + text + " does not exist";
  } else if (!fs::is_directory(status)) {
    problem = text + " is not a directory";
  }
  code_dir_problems_.emplace(text, problem);
  return text;
}

std::string Parser::cached_program_problem(const std::string& program, const std::string& code_dir,
                                           const std::string& search_path) const {
  std::string key = program;
  key.push_back('\0');
  // Where the program is looked for depends on codeUri only for relative
  // names and empty PATH entries.
  bool needs_dir = program.find('/') == std::string::npos || !fs::path(program).is_absolute();
  if (needs_dir) key += code_dir;
  key.push_back('\0');
  if (program.find('/') == std::string::npos) key += search_path;
  auto cached = program_problems_.find(key);
  if (cached != program_problems_.end()) return cached->second;
  std::string problem = program_problem(program, code_dir, search_path);
  program_problems_.emplace(std::move(key), problem);
  return problem;
}

// execvp's view: a name with a slash is a path (relative ones from the
// instance's working directory, codeUri); otherwise the first executable in
// PATH.  A file without a #! line is fine: execvp runs it with /bin/sh.
std::string Parser::program_problem(const std::string& program, const std::string& code_dir,
                                    const std::string& search_path) {
  auto file_problem = [](const fs::path& file, const std::string& shown) -> std::string {
    std::error_code ec;
    fs::file_status status = fs::status(file, ec);
    if (ec || !fs::exists(status)) return shown + " does not exist";
    if (fs::is_directory(status)) return shown + " is a directory, not a program";
    if (access(file.c_str(), X_OK) != 0) {
      return shown + " is not executable (fix: chmod +x " + file.string() + ")";
    }
    return {};
  };
  if (program.find('/') != std::string::npos) {
    fs::path file = fs::path(program).is_absolute() ? fs::path(program) : fs::path(code_dir) / program;
    file = file.lexically_normal();
    std::string shown = file.string() == program ? program : in_quotes(program) + " (" + file.string() + ")";
    return file_problem(file, shown);
  }
  std::string not_executable;
  size_t start = 0;
  while (start <= search_path.size()) {
    size_t end = search_path.find(':', start);
    if (end == std::string::npos) end = search_path.size();
    std::string dir = search_path.substr(start, end - start);
    fs::path file = (dir.empty() ? fs::path(code_dir) : fs::path(dir)) / program;
    std::error_code ec;
    if (fs::is_regular_file(file, ec)) {
      std::string problem = file_problem(file, file.string());
      if (problem.empty()) return {};
      if (not_executable.empty()) not_executable = problem;
    }
    start = end + 1;
  }
  if (!not_executable.empty()) return not_executable;
  return "command " + in_quotes(program) + " not found in PATH (" + search_path + ")";
}

PreStopConfig Parser::parse_hook(const Entry& entry) const {
  PreStopConfig hook;
  bool has_handler = false;
  for (const Entry& field : map_entries(entry, kHookKeys)) {
    if (field.key == "handler") {
      hook.handler = as_string(field);
      has_handler = true;
    } else if (field.key == "timeout") {
      hook.timeout_s = as_seconds(field, 1, 600);
    }
  }
  if (!has_handler) {
    fail(entry.line, entry.path + ".handler",
         "required (FC enables the hook by its handler; an empty string turns it off)");
  }
  return hook;
}

bool valid_function_name(std::string_view name) {
  auto head = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; };
  auto tail = [&](char c) { return head(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '-'; };
  return !name.empty() && name.size() <= kMaxFunctionNameBytes && head(name.front()) &&
         std::all_of(name.begin() + 1, name.end(), tail);
}

// FC's runtime names, versioned aliases included, folded to what the runner
// runs: "python3.10" is python3 (the interpreter is whatever is installed).
std::optional<Runtime> runtime_from_name(std::string_view name) {
  auto versioned = [&](std::string_view base, std::string_view separator) {
    if (!name.starts_with(base)) return false;
    std::string_view rest = name.substr(base.size());
    if (rest.empty()) return true;
    if (!rest.starts_with(separator)) return false;
    rest.remove_prefix(separator.size());
    if (rest.empty()) return false;
    return std::all_of(rest.begin(), rest.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
    });
  };
  if (name == "custom" || name.starts_with("custom.debian")) {
    std::string_view version = name.substr(std::min(name.size(), std::string_view("custom.debian").size()));
    if (name == "custom" || (!version.empty() && std::all_of(version.begin(), version.end(), [](char c) {
                               return std::isdigit(static_cast<unsigned char>(c));
                             }))) {
      return Runtime::kCustom;
    }
    return std::nullopt;
  }
  // FC's python names; each runs on the local interpreter (a warning at
  // start says when its version differs).
  static constexpr std::string_view kPythonNames[] = {"python3",   "python3.6",  "python3.7", "python3.8",
                                                      "python3.9", "python3.10", "python3.11", "python3.12"};
  if (name.starts_with("python")) {
    return std::find(std::begin(kPythonNames), std::end(kPythonNames), name) != std::end(kPythonNames)
               ? std::optional<Runtime>(Runtime::kPython3)
               : std::nullopt;
  }
  if (versioned("nodejs", "")) return Runtime::kNodejs;
  return std::nullopt;
}

// The major of FC's nodejs names: "nodejs18" -> "18", "nodejs" -> "";
// nullopt for a version FC does not have (nodejs19, nodejs8.10).
std::optional<std::string> nodejs_version(std::string_view name) {
  std::string_view version = name.substr(std::string_view("nodejs").size());
  if (version.empty()) return std::string();
  for (int major : kNodejsMajors) {
    if (version == std::to_string(major)) return std::string(version);
  }
  return std::nullopt;
}

FunctionConfig Parser::parse_function(const Entry& entry) const {
  FunctionConfig fn;
  fn.name = entry.key;
  fn.line = entry.line;
  fn.handler = "index.handler";
  if (!valid_function_name(fn.name)) {
    fail(entry, "invalid function name: it must start with a letter or _, contain only letters, "
                "digits, _ and -, and be at most 128 characters");
  }
  if (!entry.value->is_map()) fail(entry, "expected a map of function settings, got " + describe(*entry.value));

  const Entry* runtime = nullptr;
  const Entry* code_uri = nullptr;
  const Entry* custom_runtime_config = nullptr;
  std::optional<Entry> command;  // customRuntimeConfig.command
  const Entry* interpreter = nullptr;
  const Entry* min_instances = nullptr;
  const Entry* max_instances = nullptr;

  // Problems that make this one function unservable, not the file unreadable.
  auto problem = [&](int line, const std::string& key, const std::string& reason) {
    fn.problems.emplace_back(file_, line, key, reason);
  };
  bool runtime_known = false;
  bool code_dir_ok = false;

  std::vector<Entry> fields =
      entries(*entry.value, entry.path, kFunctionKeys, kIgnoredFunctionKeys, &fn.ignored_keys);
  for (const Entry& field : fields) {
    const std::string& key = field.key;
    if (key == "name") {
      if (as_string(field) != fn.name) {
        fail(field, "must match the function's key " + in_quotes(fn.name) + " (or be left out)");
      }
    } else if (key == "runtime") {
      std::string name = as_nonempty_string(field);
      std::optional<Runtime> parsed = runtime_from_name(name);
      runtime = &field;
      if (!parsed) {
        problem(field.line, field.path,
                "unsupported runtime " + in_quotes(name) +
                    "; use custom, python3 or nodejs (FC's versioned names such as "
                    "custom.debian10, python3.6 ... python3.12, nodejs18 are accepted)");
        continue;
      }
      fn.runtime = *parsed;
      fn.runtime_name = name;
      if (fn.runtime == Runtime::kNodejs) {
        std::optional<std::string> version = nodejs_version(name);
        if (!version) {
          problem(field.line, field.path,
                  "unsupported runtime " + in_quotes(name) +
                      "; FC's Node.js runtimes are nodejs12, nodejs14, nodejs16, nodejs18, nodejs20 "
                      "(or plain nodejs)");
          continue;
        }
        fn.runtime_version = *version;
      }
      runtime_known = true;
    } else if (key == "type") {
      std::string type = as_string(field);
      if (type == "http") {
        fn.type = FunctionType::kHttp;
      } else if (type == "event") {
        fn.type = FunctionType::kEvent;
      } else {
        fail(field, "must be http or event, got " + in_quotes(type));
      }
    } else if (key == "codeUri") {
      std::string why;
      fn.code_uri = as_code_dir(field, why);
      code_uri = &field;
      if (why.empty()) {
        code_dir_ok = true;
      } else {
        problem(field.line, field.path, why);
      }
    } else if (key == "handler") {
      fn.handler = as_nonempty_string(field);
    } else if (key == "initializer") {
      fn.initializer = as_string(field);
    } else if (key == "initializationTimeout") {
      fn.initialization_timeout_s = as_seconds(field, 1, 600);
    } else if (key == "timeout") {
      fn.timeout_s = as_seconds(field, 1, 86400);
    } else if (key == "memorySize") {
      fn.memory_size_mb = static_cast<int>(as_int(field, 64, 32768));
    } else if (key == "instanceConcurrency") {
      fn.instance_concurrency = static_cast<int>(as_int(field, 1, 100));
    } else if (key == "environmentVariables") {
      for (const Entry& var : map_entries(field, {})) {
        if (var.key.empty() || var.key.find('=') != std::string::npos ||
            var.key.find('\0') != std::string::npos) {
          fail(var, "invalid environment variable name (empty, or contains = or NUL)");
        }
        std::string value;
        if (var.value->is_scalar()) {
          value = var.value->scalar;
        } else if (!var.value->is_null()) {
          fail(var, "expected a string, number or boolean, got " + describe(*var.value));
        }
        if (value.find('\0') != std::string::npos) fail(var, "value contains a NUL byte");
        fn.environment.emplace_back(var.key, std::move(value));
      }
    } else if (key == "caPort") {
      fn.ca_port = static_cast<int>(as_int(field, 1, 65535));
      fn.ca_port_set = true;
    } else if (key == "customRuntimeConfig") {
      custom_runtime_config = &field;
      for (const Entry& sub : map_entries(field, kCustomRuntimeConfigKeys)) {
        if (sub.key == "command") {
          fn.command = as_string_list(sub);
          command = sub;
        } else if (sub.key == "args") {
          fn.args = as_string_list(sub);
        }
      }
    } else if (key == "interpreter") {
      fn.interpreter = as_nonempty_string(field);
      interpreter = &field;
    } else if (key == "instanceLifecycleConfig") {
      for (const Entry& hook : map_entries(field, kLifecycleKeys)) {
        PreStopConfig parsed = parse_hook(hook);  // preFreeze: checked, then ignored
        if (hook.key == "preStop" && !parsed.handler.empty()) fn.pre_stop = parsed;
      }
    } else if (key == "minInstances") {
      fn.min_instances = static_cast<int>(as_int(field, 0, 1000));
      min_instances = &field;
    } else if (key == "maxInstances") {
      fn.max_instances = static_cast<int>(as_int(field, 1, 1000));
      max_instances = &field;
    } else if (key == "idleTimeout") {
      fn.idle_timeout_s = as_seconds(field, 1, 31536000);
    } else if (key == "maxQueueSize") {
      fn.max_queue_size = static_cast<int>(as_int(field, 0, 100000));
    } else if (key == "maxQueueTime") {
      fn.max_queue_time_s = as_seconds(field, 0, 86400, /*min_exclusive=*/true);
    } else if (key == "user") {
      fn.user = as_nonempty_string(field);
      fn.uid = user_id(fn.user);
      if (fn.uid < 0) problem(field.line, field.path, "no such user " + in_quotes(fn.user));
      if (const passwd* pw = fn.uid >= 0 ? getpwuid(static_cast<uid_t>(fn.uid)) : nullptr) {
        if (fn.gid < 0) fn.gid = static_cast<int>(pw->pw_gid);  // the user's group unless `group` says
      }
    } else if (key == "group") {
      fn.group = as_nonempty_string(field);
      int gid = group_id(fn.group);
      if (gid < 0) problem(field.line, field.path, "no such group " + in_quotes(fn.group));
      fn.gid = gid;
    } else if (key == "readWritePaths") {
      fn.read_write_paths = as_path_list(field);
    } else if (key == "maxProcesses") {
      fn.max_processes = static_cast<int>(as_int(field, 8, 1 << 22));
    } else if (key == "maxOpenFiles") {
      fn.max_open_files = static_cast<int>(as_int(field, 16, 1 << 20));
    } else if (key == "tmpSize") {
      fn.tmp_size_mb = static_cast<int>(as_int(field, 1, 1 << 20));
    } else if (key == "network") {
      std::string network = as_string(field);
      if (network == "host") {
        fn.network = FunctionConfig::Network::kHost;
      } else if (network == "private") {
        fn.network = FunctionConfig::Network::kPrivate;
      } else {
        fail(field, "must be host or private, got " + in_quotes(network));
      }
      fn.network_line = field.line;
    }
  }

  if (!runtime) problem(entry.line, entry.path + ".runtime", "required (custom, python3 or nodejs)");
  if (!code_uri) problem(entry.line, entry.path + ".codeUri", "required (the function's code directory)");

  if (fn.runtime == Runtime::kNodejs && fn.interpreter.empty()) fn.interpreter = kDefaultNodeInterpreter;

  if (!runtime_known) {
    // Which runtime-specific keys apply is unknown: the runtime's problem says it all.
  } else if (fn.runtime == Runtime::kCustom) {
    if (interpreter) {
      fail(*interpreter, "only applies to the built-in runtimes (python3, nodejs); "
                         "runtime custom starts customRuntimeConfig.command");
    }
    // No customRuntimeConfig or no command: FC's default, ./bootstrap in codeUri.
    if (command && (fn.command.empty() || fn.command.front().empty())) {
      fail(*command, "must name the program to start, e.g. [python3] (or leave command out for ./bootstrap)");
    }
  } else if (custom_runtime_config) {
    fail(*custom_runtime_config, "only applies to runtime custom (this function's runtime is " +
                                     std::string(to_string(fn.runtime)) + ")");
  }

  if (fn.min_instances > fn.max_instances) {
    const Entry& culprit = min_instances ? *min_instances : *max_instances;
    fail(culprit, "minInstances (" + std::to_string(fn.min_instances) + ") must not exceed maxInstances (" +
                      std::to_string(fn.max_instances) + (max_instances ? ")" : ", the default)"));
  }

  // The program must be there and executable now, not only at the first
  // spawn: found by --check and at start, with the key to change.
  if (runtime_known && code_dir_ok) {
    std::string search_path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/local/bin:/usr/bin:/bin";
    for (const auto& [name, value] : fn.environment) {
      if (name == "PATH") search_path = value;  // what the instance's execvp searches
    }
    if (fn.runtime == Runtime::kCustom) {
      if (command) {
        std::string why = cached_program_problem(fn.command.front(), fn.code_uri, search_path);
        if (!why.empty()) problem(command->line, command->path, why);
      } else {
        std::string why = cached_program_problem("./bootstrap", fn.code_uri, search_path);
        int line = custom_runtime_config ? custom_runtime_config->line : entry.line;
        if (!why.empty()) {
          problem(line, entry.path + ".customRuntimeConfig.command",
                  why + "; without customRuntimeConfig.command FC runs ./bootstrap in codeUri");
        }
      }
    } else if (interpreter) {
      std::string why = cached_program_problem(fn.interpreter, fn.code_uri, search_path);
      if (!why.empty()) problem(interpreter->line, interpreter->path, why);
    }
  }
  return fn;
}

RunnerConfig Parser::parse_document(const yaml::Node& root) {
  RunnerConfig config;
  config.listen = parse_address(std::string(kDefaultListen));

  if (root.is_null()) fail(1, "functions", "required; the file is empty");
  if (!root.is_map()) fail(line_of(root), "", "expected a map of settings at the top level, got " + describe(root));

  const Entry* admin = nullptr;
  bool has_functions = false;
  std::vector<Entry> fields = entries(root, "", kTopLevelKeys);
  for (const Entry& field : fields) {
    const std::string& key = field.key;
    if (key == "listen") {
      config.listen = as_address(field);
    } else if (key == "listenMode") {
      config.listen_mode = as_mode(field);
    } else if (key == "admin") {
      config.admin = as_address(field);
      admin = &field;
    } else if (key == "logLevel") {
      std::string level = as_string(field);
      if (!contains(kLogLevels, level)) fail(field, "must be one of " + join(kLogLevels) + ", got " + in_quotes(level));
      config.log_level = level;
    } else if (key == "logFormat") {
      std::string format = as_string(field);
      if (format != "text" && format != "json") fail(field, "must be text or json, got " + in_quotes(format));
      config.log_format = format;
    } else if (key == "logFile") {
      config.log_file = as_string(field);
      if (config.log_file.empty()) fail(field, "must be a file path");
      if (config.log_file.front() != '/') config.log_file = (base_dir_ / config.log_file).lexically_normal().string();
    } else if (key == "listenBacklog") {
      config.listen_backlog = static_cast<int>(as_int(field, 1, 1 << 20));
    } else if (key == "frameTimeout") {
      config.frame_timeout_s = as_seconds(field, 0, 3600, true);
    } else if (key == "shutdownTimeout") {
      config.shutdown_timeout_s = as_seconds(field, 0, 86400);
    } else if (key == "listenGroup") {
      config.listen_group = as_nonempty_string(field);
      config.listen_gid = group_id(config.listen_group);
      if (config.listen_gid < 0) fail(field, "no such group " + in_quotes(config.listen_group));
    } else if (key == "instanceUids") {
      // "FIRST-LAST", as systemd's DynamicUser range 61184-65519.
      std::string text = as_nonempty_string(field);
      long long first = 0, last = 0;
      bool overflow = false;
      size_t dash = text.find('-');
      bool ok = dash != std::string::npos && parse_int(std::string_view(text).substr(0, dash), first, overflow) &&
                !overflow && parse_int(std::string_view(text).substr(dash + 1), last, overflow) && !overflow;
      if (!ok || first < 1000 || last > 2147483646 || first > last) {
        fail(field, "must be a uid range FIRST-LAST with 1000 <= FIRST <= LAST (e.g. 61184-65519), got " +
                        in_quotes(text));
      }
      config.instance_uid_first = static_cast<int>(first);
      config.instance_uid_last = static_cast<int>(last);
    } else if (key == "readWritePaths") {
      config.read_write_paths = as_path_list(field);
    } else if (key == "instancePorts") {
      parse_port_range(field, config.instance_port_first, config.instance_port_last);
    } else if (key == "functions") {
      has_functions = true;
      if (!field.value->is_null() && !field.value->is_map()) {
        fail(field, "expected a map of function name to settings, got " + describe(*field.value));
      }
      for (const Entry& function : map_entries(field, {})) config.functions.push_back(parse_function(function));
    }
  }
  if (!has_functions) {
    fail(line_of(root), "functions", "required (a map of function name to settings; it may be empty: {})");
  }
  config.reserved_instance_uids = reserved_instance_uids(config);
  if (admin && config.admin->to_string() == config.listen.to_string()) {
    fail(*admin, "must differ from listen (" + config.listen.to_string() + ")");
  }
  if (admin && config.admin->kind == Address::Kind::kTcp && !is_loopback_host(config.admin->host)) {
    // The admin API has no authentication: a unix socket (mode 0600) or loopback only.
    fail(*admin, "must be a unix socket or a loopback address (127.0.0.0/8, ::1), got " + config.admin->host +
                     ": the admin API has no authentication");
  }
  return config;
}

// ---------------------------------------------------------------------------
// FNV-1a, 64 bit: stable across runs and builds (std::hash is not).

class Digest {
 public:
  void add(std::string_view field, std::string_view value) {
    // Length-prefixed so ("ab", "c") and ("a", "bc") differ.
    mix(field);
    mix(":" + std::to_string(value.size()) + ":");
    mix(value);
    mix(";");
  }
  void add(std::string_view field, long long value) { add(field, std::to_string(value)); }
  void add(std::string_view field, double value) { add(field, format_number(value)); }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash_));
    return buf;
  }

 private:
  void mix(std::string_view bytes) {
    for (unsigned char c : bytes) {
      hash_ ^= c;
      hash_ *= 0x100000001b3ULL;
    }
  }
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

fs::path absolute_path(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path.empty() ? fs::path(".") : fs::path(path), ec);
  return ec ? fs::path(path) : absolute.lexically_normal();
}

}  // namespace

bool is_valid_function_name(std::string_view name) { return valid_function_name(name); }

// ---------------------------------------------------------------------------

ConfigError::ConfigError(const std::string& file, int line, const std::string& key, const std::string& reason)
    : std::runtime_error(file + ":" + std::to_string(line) + ": " + (key.empty() ? "" : key + ": ") + reason),
      file_(file),
      line_(line),
      key_(key) {}

std::string Address::to_string() const {
  if (kind == Kind::kUnix) return "unix:" + path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Address parse_address(const std::string& text) {
  Address address;
  if (text.empty()) throw std::invalid_argument("empty address");
  std::string_view view = text;
  if (view.starts_with("unix:") || view.starts_with("/")) {
    if (view.starts_with("unix:")) view.remove_prefix(5);
    if (!view.starts_with("/")) {
      throw std::invalid_argument("unix socket path must be absolute, got " + in_quotes(view));
    }
    if (view.size() > kMaxUnixPathBytes) {
      throw std::invalid_argument("unix socket path is longer than " + std::to_string(kMaxUnixPathBytes) +
                                  " bytes");
    }
    address.kind = Address::Kind::kUnix;
    address.path = std::string(view);
    return address;
  }

  std::string host;
  std::string_view port;
  if (view.starts_with("[")) {
    size_t close = view.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument("missing ] in " + in_quotes(text));
    host = std::string(view.substr(1, close - 1));
    std::string_view rest = view.substr(close + 1);
    if (!rest.starts_with(":")) throw std::invalid_argument("expected [ipv6]:port, got " + in_quotes(text));
    port = rest.substr(1);
    in6_addr ignored;
    if (inet_pton(AF_INET6, host.c_str(), &ignored) != 1) {
      throw std::invalid_argument(in_quotes(host) + " is not an IPv6 address");
    }
  } else {
    size_t colon = view.rfind(':');
    if (colon == std::string_view::npos) {
      throw std::invalid_argument("expected unix:/path, /path or host:port, got " + in_quotes(text));
    }
    if (view.find(':') != colon) {
      throw std::invalid_argument("an IPv6 address needs brackets, as in [::1]:9100");
    }
    host = std::string(view.substr(0, colon));
    port = view.substr(colon + 1);
    if (host == "localhost") host = "127.0.0.1";
    in_addr ignored;
    if (inet_pton(AF_INET, host.c_str(), &ignored) != 1) {
      throw std::invalid_argument("host must be an IP address or localhost (no DNS), got " + in_quotes(host));
    }
  }
  int port_number = -1;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || port_number < 0 ||
      port_number > 65535) {
    throw std::invalid_argument("port must be a number between 0 and 65535, got " + in_quotes(port));
  }
  address.kind = Address::Kind::kTcp;
  address.host = std::move(host);
  address.port = port_number;
  return address;
}

const char* to_string(Runtime runtime) {
  switch (runtime) {
    case Runtime::kCustom:
      return "custom";
    case Runtime::kPython3:
      return "python3";
    case Runtime::kNodejs:
      return "nodejs";
  }
  return "unknown";
}

const char* to_string(FunctionType type) {
  switch (type) {
    case FunctionType::kHttp:
      return "http";
    case FunctionType::kEvent:
      return "event";
  }
  return "unknown";
}

std::string FunctionConfig::digest() const {
  Digest d;
  d.add("name", name);
  d.add("runtime", to_string(runtime));
  d.add("runtimeName", runtime_name);
  d.add("type", to_string(type));
  d.add("codeUri", code_uri);
  d.add("handler", handler);
  d.add("initializer", initializer);
  d.add("initializationTimeout", initialization_timeout_s);
  d.add("timeout", timeout_s);
  d.add("memorySize", static_cast<long long>(memory_size_mb));
  d.add("instanceConcurrency", static_cast<long long>(instance_concurrency));
  d.add("environment", static_cast<long long>(environment.size()));
  for (const auto& [key, value] : environment) {
    d.add("env.key", key);
    d.add("env.value", value);
  }
  d.add("command", static_cast<long long>(command.size()));
  for (const std::string& word : command) d.add("command[]", word);
  d.add("args", static_cast<long long>(args.size()));
  for (const std::string& word : args) d.add("args[]", word);
  d.add("caPort", static_cast<long long>(ca_port));
  d.add("caPortSet", static_cast<long long>(ca_port_set));
  d.add("network", static_cast<long long>(network));
  d.add("interpreter", interpreter);
  d.add("preStop", static_cast<long long>(pre_stop.has_value()));
  if (pre_stop) {
    d.add("preStop.handler", pre_stop->handler);
    d.add("preStop.timeout", pre_stop->timeout_s);
  }
  d.add("minInstances", static_cast<long long>(min_instances));
  d.add("maxInstances", static_cast<long long>(max_instances));
  d.add("idleTimeout", idle_timeout_s);
  d.add("maxQueueSize", static_cast<long long>(max_queue_size));
  d.add("maxQueueTime", max_queue_time_s);
  d.add("user", user);
  d.add("group", group);
  d.add("uid", static_cast<long long>(uid));
  d.add("gid", static_cast<long long>(gid));
  d.add("readWritePaths", static_cast<long long>(read_write_paths.size()));
  for (const std::string& path : read_write_paths) d.add("readWritePaths[]", path);
  d.add("maxProcesses", static_cast<long long>(max_processes));
  d.add("maxOpenFiles", static_cast<long long>(max_open_files));
  d.add("tmpSize", static_cast<long long>(tmp_size_mb));
  for (const ConfigError& problem : problems) d.add("problem", std::string_view(problem.what()));
  return d.hex();
}

std::string FunctionConfig::ignored_keys_warning(const std::string& file) const {
  if (ignored_keys.empty()) return {};
  std::string keys;
  for (const std::string& key : ignored_keys) keys += (keys.empty() ? "" : ", ") + key;
  return file + ":" + std::to_string(line) + ": functions." + name + ": " +
         (ignored_keys.size() == 1 ? "key " : "keys ") + keys +
         " accepted but ignored (FC settings with no meaning on one machine)";
}

std::vector<const ConfigError*> RunnerConfig::problems() const {
  std::vector<const ConfigError*> out;
  for (const FunctionConfig& fn : functions) {
    for (const ConfigError& problem : fn.problems) out.push_back(&problem);
  }
  return out;
}

const FunctionConfig* RunnerConfig::find(std::string_view name) const {
  for (const FunctionConfig& fn : functions) {
    if (fn.name == name) return &fn;
  }
  return nullptr;
}

RunnerConfig parse_config(const std::string& yaml_text, const std::string& path) {
  fs::path absolute = absolute_path(path);
  Parser parser(path, absolute.parent_path());
  std::unique_ptr<yaml::Stream> stream;
  try {
    stream = std::make_unique<yaml::Stream>(yaml_text);
  } catch (const yaml::SyntaxError& e) {
    throw ConfigError(path, e.line(), "", std::string("YAML syntax error: ") + e.what());
  }
  const std::vector<const yaml::Node*>& documents = stream->documents();
  if (documents.size() > 1) {
    throw ConfigError(path, 0, "", "expected one YAML document, found " + std::to_string(documents.size()));
  }
  static const yaml::Node kEmptyDocument;  // null
  RunnerConfig config = parser.parse_document(documents.empty() ? kEmptyDocument : *documents.front());
  config.path = absolute.string();
  return config;
}

RunnerConfig load_config(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw ConfigError(path, 0, "", "cannot read the config file: it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int saved = errno;
    throw ConfigError(path, 0, "", std::string("cannot read the config file: ") +
                                       (saved ? std::strerror(saved) : "open failed"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path, 0, "", "cannot read the config file: read error");
  return parse_config(text.str(), path);
}

}  // namespace fc
