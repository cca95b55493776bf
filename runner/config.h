// Runner configuration (DESIGN §5): YAML with the property names of
// Serverless Devs s.yaml (component fc, FC 2.0) plus the runner's own
// extensions.  Parsing happens once at start-up (and on reload); errors are
// ConfigError exceptions that name the file, the key path and the line.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fc {

struct Address {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix
  std::string host;  // kTcp: a literal IPv4/IPv6 address (no DNS on the loop)
  int port = 0;      // kTcp
  std::string to_string() const;  // "unix:/path" or "host:port"
};

// "unix:/path", "/path" (unix), "host:port", "[::1]:port".  Throws
// std::invalid_argument with a reason.
Address parse_address(const std::string& text);

enum class Runtime { kCustom, kPython3, kNodejs };
enum class FunctionType { kHttp, kEvent };

const char* to_string(Runtime runtime);
const char* to_string(FunctionType type);

// runtime nodejs runs this Node.js unless `interpreter` names another.
inline constexpr const char* kDefaultNodeInterpreter = "/usr/bin/node";
// FC's nodejs runtime names: nodejs12 ... nodejs20 (and plain nodejs).
inline constexpr int kNodejsMajors[] = {12, 14, 16, 18, 20};
// FC's caPort when s.yaml names none: custom runtimes may listen here.
inline constexpr int kFcDefaultCaPort = 9000;
// Extension `instancePorts`: the runner's own range for instance ports,
// below the kernel's ephemeral range (32768-60999) so no outgoing
// connection takes one.
inline constexpr int kDefaultInstancePortFirst = 20000;
inline constexpr int kDefaultInstancePortLast = 29999;

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, int line, const std::string& key, const std::string& reason);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
};

struct PreStopConfig {
  std::string handler;  // informational (FC s.yaml); the call is GET /pre-stop
  double timeout_s = 3;
};

struct FunctionConfig {
  std::string name;
  int line = 0;  // where the function's entry starts, for messages

  Runtime runtime = Runtime::kCustom;
  std::string runtime_name;                     // as written: "python3.10" (a version wish)
  // The version of FC's versioned runtime name ("18" for nodejs18); empty
  // for the plain name.  Informational: the local interpreter runs either way.
  std::string runtime_version;
  FunctionType type = FunctionType::kHttp;      // extension: `type`
  std::string code_uri;                         // absolute path
  std::string handler;                          // FC default "index.handler"
  std::string initializer;                      // empty: none
  double initialization_timeout_s = 10;         // FC `initializationTimeout`
  double timeout_s = 60;                        // FC `timeout`
  int memory_size_mb = 512;                     // FC `memorySize`
  int instance_concurrency = 1;                 // FC `instanceConcurrency`, 1..100
  std::vector<std::pair<std::string, std::string>> environment;  // ordered

  // Custom runtime (FC `customRuntimeConfig`, `caPort`).
  std::vector<std::string> command;
  std::vector<std::string> args;
  int ca_port = kFcDefaultCaPort;
  bool ca_port_set = false;  // true: the app listens on caPort itself

  // Extension `network`: kDefault is the host's network for apps on
  // $FC_SERVER_PORT and an own namespace per instance for apps on a fixed
  // port (when the runner may create one); kHost always the host's; kPrivate
  // always an own namespace with only its loopback (no outside access).
  enum class Network { kDefault, kHost, kPrivate };
  Network network = Network::kDefault;
  int network_line = 0;  // where `network` is, for the problem it may cause

  // Built-in runtimes: the interpreter (extension `interpreter`), e.g.
  // /usr/bin/python3 so Debian's Flask is importable.  nodejs defaults to
  // kDefaultNodeInterpreter.
  std::string interpreter;

  std::optional<PreStopConfig> pre_stop;  // instanceLifecycleConfig.preStop

  // FC keys this runner accepts without effect (vpcConfig, role, ...), in
  // file order: one warning per function names them (ignored_keys_warning).
  std::vector<std::string> ignored_keys;
  // Why the runner cannot serve this function (unknown runtime, missing
  // codeUri, a command that is not there or not executable, a built-in
  // runtime that is not shipped), each naming file:line:key.  Not empty: the
  // function starts no instance and answers 503 InitializationFailed with
  // these; the other functions serve.  `--check` fails on them.
  std::vector<ConfigError> problems;
  // "FILE:LINE: functions.NAME: ..." naming ignored_keys; empty when none.
  std::string ignored_keys_warning(const std::string& file) const;

  // Extensions: pool bounds, idle reaping, queue.
  int min_instances = 0;
  int max_instances = 10;
  double idle_timeout_s = 300;
  int max_queue_size = 100;
  double max_queue_time_s = 10;

  // Extensions: isolation (issue 9, docs/isolation.md).  `user`/`group` as
  // written; uid/gid are the named ones (-1 when not named).  Without
  // `user`, the instances run as a uid of the function's own from
  // instanceUids, handed out at its first instance start (UidPool,
  // instance_uids.h), with gid = that uid unless `group` names one.
  // `root` only when named.
  std::string user;
  std::string group;
  int uid = -1;
  int gid = -1;
  std::vector<std::string> read_write_paths;  // `readWritePaths`: absolute, bound writable
  int max_processes = 1024;                   // `maxProcesses`: tasks per instance (pids cgroup, RLIMIT_NPROC)
  int max_open_files = 1024;                  // `maxOpenFiles`: RLIMIT_NOFILE
  int tmp_size_mb = 512;                      // `tmpSize`: the private /tmp, MB

  // A digest of every field above but `line`: equal digests mean an
  // unchanged function on reload.
  std::string digest() const;
};

struct RunnerConfig {
  std::string path;      // the config file, absolute
  Address listen;        // default unix:/run/fc-runner/fc.sock
  int listen_mode = 0660;  // extension `listenMode` (unix sockets), octal string or int
  std::optional<Address> admin;
  std::string log_level = "info";  // extension `logLevel`
  std::string log_file;            // extension `logFile`: absolute; empty = stderr
  std::string log_format = "text";  // extension `logFormat`: text | json (one JSON object per line)
  // extension `listenBacklog`; 0 = the kernel's maximum (net.core.somaxconn).
  int listen_backlog = 0;
  // extension `frameTimeout`: a frame begun on a runner connection must be
  // complete within this (idle half-frames are closed, DESIGN §3).
  double frame_timeout_s = 10;
  double shutdown_timeout_s = 10;  // extension `shutdownTimeout`: SIGTERM drain bound
  // extension `listenGroup`: the unix socket's group (name as written, gid);
  // -1: the runner's own group.
  std::string listen_group;
  int listen_gid = -1;
  // extension `instanceUids`: the range per-function uids come from
  // (systemd's DynamicUser range by default).
  int instance_uid_first = 61184;
  int instance_uid_last = 65519;
  // The uids of that range never handed out: the passwd database's
  // accounts and named `user:`s (sorted).
  std::vector<int> reserved_instance_uids;
  // extension `readWritePaths` at the top level: bound writable into every
  // function's instances (the function's own list adds to it).
  std::vector<std::string> read_write_paths;
  // extension `instancePorts: FIRST-LAST`: ports for instances on the host's
  // network, guarded so only the runner connects to them (instance_ports.h).
  int instance_port_first = kDefaultInstancePortFirst;
  int instance_port_last = kDefaultInstancePortLast;
  std::vector<FunctionConfig> functions;  // in file order

  const FunctionConfig* find(std::string_view name) const;
  // Every function's problems, in file order.
  std::vector<const ConfigError*> problems() const;
};


// FC's name rule: [A-Za-z_][A-Za-z0-9_-]{0,127}.
bool is_valid_function_name(std::string_view name);

// Reads and validates a config file.  Throws ConfigError.
RunnerConfig load_config(const std::string& path);

// The same, from text; `path` is used for messages and to resolve relative
// codeUri values (against its directory).
RunnerConfig parse_config(const std::string& yaml_text, const std::string& path);

}  // namespace fc
