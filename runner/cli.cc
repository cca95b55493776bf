#include "cli.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <type_traits>
#include <vector>

#include "config.h"
#include "fc_errors.h"
#include "fc_proto.h"

#ifndef FC_VERSION
#define FC_VERSION "0.1.0"  // as main.cc's --version
#endif

namespace fc {

namespace {

using json = nlohmann::json;

// status and /metrics answer from memory at once; a runner that does not
// answer within this is stuck or not a runner.
constexpr long kAdminTimeoutMs = 30'000;
// A reload may wait for new versions to initialize, each bounded by
// initializationTimeout (at most FC_MAX_INITIALIZATION_TIMEOUT_S).
constexpr long kReloadTimeoutMs = (FC_MAX_INITIALIZATION_TIMEOUT_S + 60) * 1000L;
// The larger an admin answer may be (a /status of many instances stays far below).
constexpr size_t kMaxAdminReplyBytes = 64 * 1024 * 1024;
// How the CLI cuts an event into DATA frames.
constexpr size_t kEventChunkBytes = FC_MAX_FRAME_PAYLOAD;
// An invocation reads the runner's answer in pieces of this size.
constexpr size_t kReadBufferBytes = 64 * 1024;

void cli_usage(FILE* out) {
  std::fprintf(out,
               "usage: fc-runner status [--config FILE] [--admin ADDRESS] [--json]\n"
               "       fc-runner reload [--config FILE] [--admin ADDRESS]\n"
               "       fc-runner invoke NAME [--event TEXT | --event-file FILE | -] [--config FILE]\n"
               "                        [--listen ADDRESS] [--timeout SECONDS]\n"
               "       fc-runner check [--config FILE]\n"
               "\n"
               "They find the runner through its config (default %s):\n"
               "status and reload use the admin API (`admin:`), invoke the runner socket (`listen:`),\n"
               "as nginx does.  --admin / --listen name the address instead.\n"
               "\n"
               "  status   functions, versions, instances, in-flight requests, queues and cold starts\n"
               "           (--json: /status as the runner answers it)\n"
               "  reload   POST /reload; prints the runner's reply; exit 1 when the reload is refused\n"
               "  invoke   one invocation of function NAME with the event (the bytes of TEXT, FILE or\n"
               "           stdin; none: empty); the result bytes go to stdout unchanged; a function\n"
               "           or gateway error goes to stderr with exit status 1\n"
               "  check    validate the config, as --config FILE --check\n"
               "\n"
               "Exit status: 0 ok, 1 the runner answered with a failure, 2 bad usage or config,\n"
               "3 the runner could not be reached.\n",
               kDefaultConfigPath);
}

// ---- options and config -----------------------------------------------------------

struct CliOptions {
  std::string command;
  std::string config_path = kDefaultConfigPath;
  std::optional<std::string> admin;   // --admin
  std::optional<std::string> listen;  // --listen
  bool json_out = false;
  std::string function;
  std::optional<std::string> event_text;
  std::optional<std::string> event_file;
  bool event_stdin = false;
  double timeout_s = 0;  // 0: as long as the runner takes (it has its own timeouts)
};

// Parses argv (argv[0] = the command); false with `error` on bad usage.
bool parse_options(int argc, char** argv, CliOptions& o, std::string& error) {
  o.command = argv[0];
  const bool invoke = o.command == "invoke";
  int event_sources = 0;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    // `--name VALUE` or `--name=VALUE`, for the commands that take it.
    std::string v;
    auto option = [&](const char* name, bool accepted) {
      if (!accepted) return false;
      std::string eq = std::string(name) + "=";
      if (arg.rfind(eq, 0) == 0) {
        v = arg.substr(eq.size());
        return true;
      }
      if (arg != name) return false;
      if (i + 1 >= argc) {
        error = fmt::format("{}: {} needs a value", o.command, name);
        return false;
      }
      v = argv[++i];
      return true;
    };
    if (option("--config", true)) {
      o.config_path = v;
    } else if (option("--admin", !invoke)) {
      o.admin = v;
    } else if (option("--listen", invoke)) {
      o.listen = v;
    } else if (option("--event", invoke)) {
      o.event_text = v;
      event_sources++;
    } else if (option("--event-file", invoke)) {
      o.event_file = v;
      event_sources++;
    } else if (option("--timeout", invoke)) {
      char* end = nullptr;
      o.timeout_s = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(o.timeout_s > 0)) {
        error = fmt::format("invoke: --timeout: '{}' is not a positive number of seconds", v);
        return false;
      }
    } else if (!error.empty()) {
      return false;
    } else if (arg == "-" && invoke) {
      o.event_stdin = true;
      event_sources++;
    } else if (arg == "--json" && o.command == "status") {
      o.json_out = true;
    } else if (invoke && o.function.empty() && !arg.empty() && arg[0] != '-') {
      o.function = arg;
    } else {
      error = fmt::format("{}: unknown argument '{}'", o.command, arg);
      return false;
    }
  }
  if (!error.empty()) return false;
  if (o.command == "invoke") {
    if (o.function.empty()) {
      error = "invoke: which function? (fc-runner invoke NAME ...)";
      return false;
    }
    if (!is_valid_function_name(o.function)) {
      error = fmt::format("invoke: '{}' is not a function name ([A-Za-z_][A-Za-z0-9_-]{{0,127}})", o.function);
      return false;
    }
    if (event_sources > 1) {
      error = "invoke: give one event: --event TEXT, --event-file FILE or - (stdin)";
      return false;
    }
  }
  return true;
}

// The address the command talks to: the option, else the config's key.
// nullopt with the reason printed.
std::optional<Address> target_address(const CliOptions& o, bool admin) {
  const std::optional<std::string>& given = admin ? o.admin : o.listen;
  try {
    if (given) return parse_address(*given);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "fc-runner %s: %s: %s\n", o.command.c_str(), admin ? "--admin" : "--listen", e.what());
    return std::nullopt;
  }
  RunnerConfig config;
  try {
    config = load_config(o.config_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fc-runner %s: %s\n", o.command.c_str(), e.what());
    return std::nullopt;
  }
  if (!admin) return config.listen;
  if (!config.admin) {
    std::fprintf(stderr,
                 "fc-runner %s: %s has no admin: address (e.g. admin: unix:/run/fc-runner/admin.sock), "
                 "so the runner has no admin API to ask\n",
                 o.command.c_str(), config.path.c_str());
    return std::nullopt;
  }
  return config.admin;
}

// ---- admin API over libcurl -----------------------------------------------------------

struct AdminReply {
  long status = 0;      // 0: no HTTP answer
  std::string body;
  std::string error;    // why there is no answer
};

size_t collect_body(char* data, size_t size, size_t n, void* userp) {
  auto* body = static_cast<std::string*>(userp);
  size_t len = size * n;
  if (body->size() + len > kMaxAdminReplyBytes) return 0;  // curl fails the transfer
  body->append(data, len);
  return len;
}

// libcurl is loaded when a CLI command runs, not linked: linked, its
// dependency tree (GnuTLS, OpenSSL, Kerberos, LDAP ...) was mapped and
// initialized in every fc-runner daemon too, some 5 MB resident that the
// daemon never uses.
struct LibCurl {
  decltype(&curl_global_init) global_init = nullptr;
  decltype(&curl_easy_init) easy_init = nullptr;
  decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&curl_easy_setopt) easy_setopt = nullptr;
  decltype(&curl_easy_perform) easy_perform = nullptr;
  decltype(&curl_easy_strerror) easy_strerror = nullptr;
  decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
  std::string error;  // why it is not usable
};

const LibCurl& libcurl() {
  static const LibCurl lib = [] {
    LibCurl l;
    void* so = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!so) {
      const char* why = dlerror();
      l.error = std::string("cannot load libcurl (Debian: libcurl4): ") + (why ? why : "dlopen failed");
      return l;
    }
    auto symbol = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(so, name));
      if (!fn && l.error.empty()) l.error = std::string("libcurl has no ") + name;
    };
    symbol(l.global_init, "curl_global_init");
    symbol(l.easy_init, "curl_easy_init");
    symbol(l.easy_cleanup, "curl_easy_cleanup");
    symbol(l.easy_setopt, "curl_easy_setopt");
    symbol(l.easy_perform, "curl_easy_perform");
    symbol(l.easy_strerror, "curl_easy_strerror");
    symbol(l.easy_getinfo, "curl_easy_getinfo");
    if (l.error.empty() && l.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) l.error = "libcurl did not initialize";
    return l;
  }();
  return lib;
}

AdminReply admin_request(const Address& admin, const char* method, const std::string& path, long timeout_ms) {
  const LibCurl& lib = libcurl();
  AdminReply reply;
  if (!lib.error.empty()) {
    reply.error = lib.error;
    return reply;
  }
  std::unique_ptr<CURL, decltype(lib.easy_cleanup)> curl(lib.easy_init(), lib.easy_cleanup);
  std::string url;
  if (admin.kind == Address::Kind::kUnix) {
    lib.easy_setopt(curl.get(), CURLOPT_UNIX_SOCKET_PATH, admin.path.c_str());
    url = "http://localhost" + path;
  } else {
    bool v6 = admin.host.find(':') != std::string::npos;
    url = fmt::format("http://{}{}{}:{}{}", v6 ? "[" : "", admin.host, v6 ? "]" : "", admin.port, path);
  }
  char curl_error[CURL_ERROR_SIZE] = {0};
  lib.easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  lib.easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, curl_error);
  lib.easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  lib.easy_setopt(curl.get(), CURLOPT_NOPROXY, "*");  // the admin API is local, never via a proxy
  lib.easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, timeout_ms);
  lib.easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, collect_body);
  lib.easy_setopt(curl.get(), CURLOPT_WRITEDATA, &reply.body);
  if (std::strcmp(method, "POST") == 0) {
    lib.easy_setopt(curl.get(), CURLOPT_POST, 1L);
    lib.easy_setopt(curl.get(), CURLOPT_POSTFIELDS, "");
    lib.easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, 0L);
  }
  CURLcode rc = lib.easy_perform(curl.get());
  if (rc != CURLE_OK) {
    reply.error = curl_error[0] ? curl_error : lib.easy_strerror(rc);
    reply.status = 0;
    return reply;
  }
  lib.easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

void print_unreachable(const CliOptions& o, const Address& where, const std::string& error) {
  std::fprintf(stderr, "fc-runner %s: cannot reach the runner at %s: %s\n", o.command.c_str(),
               where.to_string().c_str(), error.c_str());
}

// ---- status -----------------------------------------------------------------------------

std::string scalar_text(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string duration_text(double seconds) {
  if (seconds < 0) seconds = 0;
  auto s = static_cast<long long>(seconds);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

std::string bytes_text(const json& v) {
  if (!v.is_number()) return "-";
  double b = v.get<double>();
  if (b < 1024) return fmt::format("{:.0f} B", b);
  if (b < 1024 * 1024) return fmt::format("{:.1f} KiB", b / 1024);
  if (b < 1024.0 * 1024 * 1024) return fmt::format("{:.1f} MiB", b / (1024 * 1024));
  return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
}

json field(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? json(nullptr) : *it;
}

// Columns padded to their widest cell, two spaces apart, each row prefixed with `indent`.
std::string table(const std::vector<std::vector<std::string>>& rows, const std::string& indent) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); c++) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line = indent;
    for (size_t c = 0; c < row.size(); c++) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

bool any_has(const json& items, const char* key) {
  if (!items.is_array()) return false;
  for (const auto& item : items) {
    if (item.is_object() && item.contains(key)) return true;
  }
  return false;
}

int cmd_status(const CliOptions& o) {
  auto admin = target_address(o, true);
  if (!admin) return kCliUsage;
  AdminReply reply = admin_request(*admin, "GET", "/status", kAdminTimeoutMs);
  if (reply.status == 0) {
    print_unreachable(o, *admin, reply.error);
    return kCliUnreachable;
  }
  if (reply.status != 200) {
    std::fprintf(stderr, "fc-runner status: the admin API answered %ld: %s\n", reply.status, reply.body.c_str());
    return kCliFailed;
  }
  if (o.json_out) {
    std::fwrite(reply.body.data(), 1, reply.body.size(), stdout);
    return kCliOk;
  }
  json status = json::parse(reply.body, nullptr, false);
  if (status.is_discarded() || !status.is_object()) {
    std::fprintf(stderr, "fc-runner status: %s did not answer /status with JSON\n", admin->to_string().c_str());
    return kCliFailed;
  }
  // Cold-start counts live in /metrics; without them the column shows "-".
  AdminReply metrics = admin_request(*admin, "GET", "/metrics", kAdminTimeoutMs);
  std::map<std::string, uint64_t> cold_starts;
  if (metrics.status == 200) cold_starts = cold_starts_from_metrics(metrics.body);
  std::fputs(format_status(status, cold_starts).c_str(), stdout);
  return kCliOk;
}

// ---- reload ----------------------------------------------------------------------------

int cmd_reload(const CliOptions& o) {
  auto admin = target_address(o, true);
  if (!admin) return kCliUsage;
  AdminReply reply = admin_request(*admin, "POST", "/reload", kReloadTimeoutMs);
  if (reply.status == 0) {
    print_unreachable(o, *admin, reply.error);
    return kCliUnreachable;
  }
  std::string body = reply.body;
  if (!body.empty() && body.back() != '\n') body += "\n";
  if (reply.status >= 200 && reply.status < 300) {
    std::fputs(body.c_str(), stdout);
    return kCliOk;
  }
  std::fprintf(stderr, "fc-runner reload: refused (HTTP %ld)\n%s", reply.status, body.c_str());
  return kCliFailed;
}

// ---- invoke ------------------------------------------------------------------------------

int connect_address(const Address& a, std::string& error) {
  int fd = -1;
  int rc = -1;
  if (a.kind == Address::Kind::kUnix) {
    sockaddr_un addr{};
    if (a.path.size() >= sizeof addr.sun_path) {
      error = "the socket path is too long";
      return -1;
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, a.path.c_str(), a.path.size() + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else if (a.host.find(':') != std::string::npos) {
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(static_cast<uint16_t>(a.port));
    if (inet_pton(AF_INET6, a.host.c_str(), &addr.sin6_addr) != 1) {
      error = "not an IPv6 address";
      return -1;
    }
    fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(a.port));
    if (inet_pton(AF_INET, a.host.c_str(), &addr.sin_addr) != 1) {
      error = "not an IPv4 address";
      return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (fd < 0 || rc != 0) {
    error = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

bool read_event(const CliOptions& o, std::string& event) {
  if (o.event_text) {
    event = *o.event_text;
    return true;
  }
  if (o.event_file || o.event_stdin) {
    std::ifstream file;
    std::istream* in = &std::cin;
    if (o.event_file) {
      file.open(*o.event_file, std::ios::binary);
      if (!file) {
        std::fprintf(stderr, "fc-runner invoke: --event-file %s: %s\n", o.event_file->c_str(), std::strerror(errno));
        return false;
      }
      in = &file;
    }
    event.assign(std::istreambuf_iterator<char>(*in), std::istreambuf_iterator<char>());
    if (in->bad()) {
      std::fprintf(stderr, "fc-runner invoke: cannot read the event\n");
      return false;
    }
  }
  return true;
}

// nginx's $request_id shape: 32 hex digits.
std::string new_request_id() {
  std::random_device rd;
  std::uniform_int_distribution<int> hex(0, 15);
  std::string id;
  for (int i = 0; i < 32; i++) id += "0123456789abcdef"[hex(rd)];
  return id;
}

fc_str_t str(std::string_view s) { return fc_str_t{s.data(), s.size()}; }
std::string_view view(fc_str_t s) { return s.data ? std::string_view(s.data, s.len) : std::string_view(); }

void append_frame(std::string& out, uint8_t type, uint16_t flags, std::string_view payload) {
  uint8_t head[FC_FRAME_HEADER_SIZE];
  fc_frame_header_encode(head, type, flags, static_cast<uint32_t>(payload.size()));
  out.append(reinterpret_cast<const char*>(head), sizeof head);
  out.append(payload);
}

// What the runner answered, as its frames arrive.
struct Invocation {
  fc_frame_header_t hdr{};
  std::string meta;  // a RESPONSE or ERROR payload being collected
  bool got_response = false;
  bool failed = false;     // function error, gateway error or a status >= 400
  bool done = false;       // END_STREAM seen, or an ERROR
  uint32_t status = 0;
  std::string error_type;  // x-fc-error-type
  std::string error_line;  // for stderr, at the end
  std::string instance;
  std::vector<std::unique_ptr<uint8_t[]>> arena;  // decoded header arrays
};

void* arena_alloc(void* ctx, size_t size) {
  auto* arena = static_cast<std::vector<std::unique_ptr<uint8_t[]>>*>(ctx);
  arena->emplace_back(new (std::nothrow) uint8_t[size]);
  return arena->back().get();
}

int on_frame_header(fc_parser_t* p, const fc_frame_header_t* hdr) {
  auto* inv = static_cast<Invocation*>(p->data);
  inv->hdr = *hdr;
  inv->meta.clear();
  return 0;
}

int on_frame_payload(fc_parser_t* p, const uint8_t* data, size_t len) {
  auto* inv = static_cast<Invocation*>(p->data);
  if (inv->hdr.type != FC_FRAME_DATA) {
    inv->meta.append(reinterpret_cast<const char*>(data), len);
  } else if (inv->got_response) {
    // The result bytes, unchanged; an error's body is the error, for stderr.
    std::fwrite(data, 1, len, inv->failed ? stderr : stdout);
  }
  return 0;
}

int on_frame_end(fc_parser_t* p) {
  auto* inv = static_cast<Invocation*>(p->data);
  const auto* payload = reinterpret_cast<const uint8_t*>(inv->meta.data());
  switch (inv->hdr.type) {
    case FC_FRAME_RESPONSE: {
      fc_response_t resp{};
      if (fc_response_decode(payload, inv->meta.size(), &resp, arena_alloc, &inv->arena) != FC_OK) {
        inv->error_line = "the runner sent a RESPONSE frame that does not decode";
        inv->failed = inv->done = true;
        return 1;
      }
      inv->got_response = true;
      inv->status = resp.status;
      inv->instance = std::string(view(resp.instance));
      for (size_t i = 0; i < resp.nheaders; i++) {
        std::string_view name = view(resp.headers[i].name);
        if (name.size() == std::strlen(FC_ERROR_TYPE_HEADER) &&
            strncasecmp(name.data(), FC_ERROR_TYPE_HEADER, name.size()) == 0) {
          inv->error_type = std::string(view(resp.headers[i].value));
        }
      }
      if (!inv->error_type.empty() || inv->status >= 400) {
        inv->failed = true;
        inv->error_line = inv->error_type.empty() ? fmt::format("the function answered HTTP {}", inv->status)
                                                  : fmt::format("function error ({}, HTTP {})", inv->error_type,
                                                                inv->status);
      }
      break;
    }
    case FC_FRAME_ERROR: {
      fc_error_t err{};
      if (fc_error_decode(payload, inv->meta.size(), &err) != FC_OK) {
        inv->error_line = "the runner sent an ERROR frame that does not decode";
      } else {
        inv->error_line = fmt::format("{}{} {}: {}", inv->got_response ? "the response was cut short: " : "",
                                      err.status, view(err.code), view(err.message));
      }
      inv->failed = inv->done = true;
      return 1;
    }
    case FC_FRAME_DATA:
      if (inv->hdr.flags & FC_FLAG_END_STREAM) {
        inv->done = true;
        return 1;
      }
      break;
    default:
      break;
  }
  return 0;
}

int cmd_invoke(const CliOptions& o) {
  std::string event;
  if (!read_event(o, event)) return kCliUsage;
  auto listen = target_address(o, false);
  if (!listen) return kCliUsage;

  // The request nginx would send for `POST /` to a location with
  // fc_function NAME; event functions get it as POST /invoke.
  std::string request_id = new_request_id();
  std::string length = std::to_string(event.size());
  std::string agent = "fc-runner-invoke/" FC_VERSION;
  fc_header_t headers[] = {
      {str("host"), str("localhost")},
      {str("user-agent"), str(agent)},
      {str("content-type"), str("application/octet-stream")},
      {str("content-length"), str(length)},
  };
  fc_request_t req{};
  req.function = str(o.function);
  req.method = str("POST");
  req.uri = str("/");
  req.version = str("HTTP/1.1");
  req.headers = headers;
  req.nheaders = std::size(headers);
  req.remote_addr = str("127.0.0.1");
  req.scheme = str("http");
  req.host = str("localhost");
  req.request_id = str(request_id);
  req.content_length = static_cast<int64_t>(event.size());
  std::string meta(fc_request_size_bound(&req), '\0');
  size_t written = 0;
  if (fc_request_encode(&req, reinterpret_cast<uint8_t*>(meta.data()), meta.size(), &written) != FC_OK ||
      written > FC_MAX_META_PAYLOAD) {
    std::fprintf(stderr, "fc-runner invoke: cannot encode the request\n");
    return kCliFailed;
  }
  meta.resize(written);
  std::string out;
  out.reserve(FC_FRAME_HEADER_SIZE * (2 + event.size() / kEventChunkBytes) + written + event.size());
  append_frame(out, FC_FRAME_REQUEST, 0, meta);
  size_t off = 0;
  do {
    size_t n = std::min(kEventChunkBytes, event.size() - off);
    append_frame(out, FC_FRAME_DATA, off + n == event.size() ? FC_FLAG_END_STREAM : 0,
                 std::string_view(event).substr(off, n));
    off += n;
  } while (off < event.size());

  std::string error;
  int fd = connect_address(*listen, error);
  if (fd < 0) {
    print_unreachable(o, *listen, error);
    return kCliUnreachable;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  // Both directions at once: a large event's result may stream back while
  // the event is still going out (the runner applies backpressure both ways).
  Invocation inv;
  fc_parser_t parser;
  fc_parser_init(&parser, &inv);
  static const fc_parser_callbacks_t callbacks = {on_frame_header, on_frame_payload, on_frame_end};
  size_t sent = 0;
  bool peer_closed = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.timeout_s);
  std::vector<char> buf(kReadBufferBytes);
  while (!inv.done && !peer_closed) {
    int wait_ms = -1;
    if (o.timeout_s > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ::close(fd);
        std::fprintf(stderr, "fc-runner invoke: %s: no answer within --timeout %g s (request id %s)\n",
                     o.function.c_str(), o.timeout_s, request_id.c_str());
        return kCliFailed;
      }
      wait_ms = static_cast<int>(left.count());
    }
    pollfd pfd{fd, static_cast<short>(POLLIN | (sent < out.size() ? POLLOUT : 0)), 0};
    int ready = poll(&pfd, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    if (sent < out.size() && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        sent = out.size();  // the runner stopped reading (it may have answered already)
      }
    }
    if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        peer_closed = true;
      } else if (n > 0) {
        fc_parser_execute(&parser, &callbacks, reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(n));
        if (parser.error != 0 && !inv.done) {
          inv.error_line = fmt::format("the runner's answer is not fc protocol v1: {}", fc_strerror(parser.error));
          inv.failed = inv.done = true;
        }
      }
    }
  }
  ::close(fd);
  std::fflush(stdout);
  if (!inv.done) {
    inv.failed = true;
    inv.error_line = inv.got_response ? "the runner closed the connection before the end of the result"
                                      : "the runner closed the connection without an answer";
  }
  if (!inv.failed) return kCliOk;
  std::fprintf(stderr, "%sfc-runner invoke: %s: %s (request id %s%s%s)\n",
               inv.got_response && inv.status ? "\n" : "", o.function.c_str(), inv.error_line.c_str(),
               request_id.c_str(), inv.instance.empty() ? "" : ", instance ", inv.instance.c_str());
  return kCliFailed;
}

}  // namespace

// ---- public --------------------------------------------------------------------------------

bool is_cli_command(std::string_view arg) { return arg == "status" || arg == "reload" || arg == "invoke"; }

int run_cli(int argc, char** argv) {
  CliOptions o;
  std::string error;
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    cli_usage(stdout);
    return kCliOk;
  }
  if (!parse_options(argc, argv, o, error)) {
    std::fprintf(stderr, "fc-runner %s\n", error.c_str());
    cli_usage(stderr);
    return kCliUsage;
  }
  if (o.command == "status") return cmd_status(o);
  if (o.command == "reload") return cmd_reload(o);
  return cmd_invoke(o);
}

std::map<std::string, uint64_t> cold_starts_from_metrics(std::string_view text) {
  // Function names are [A-Za-z_][A-Za-z0-9_-]*: no escapes inside the label.
  static const std::regex sample(R"re(^fc_cold_starts_total\{function="([A-Za-z0-9_-]+)"\} ([0-9.e+]+)$)re");
  std::map<std::string, uint64_t> counts;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, sample)) counts[m[1]] = static_cast<uint64_t>(std::stod(m[2]));
  }
  return counts;
}

std::string format_status(const json& status, const std::map<std::string, uint64_t>& cold_starts) {
  const json runner = field(status, "runner");
  const json functions = field(status, "functions").is_array() ? field(status, "functions") : json::array();
  double uptime = field(runner, "uptime_s").is_number() ? field(runner, "uptime_s").get<double>() : 0;
  double started = field(runner, "started_at").is_number() ? field(runner, "started_at").get<double>() : 0;
  double now = started + uptime;  // the runner's clock, not ours

  std::string out = fmt::format("fc-runner {}  pid {}  up {}  nginx connections {}{}\n",
                                scalar_text(field(runner, "version")), scalar_text(field(runner, "pid")),
                                duration_text(uptime), scalar_text(field(runner, "connections")),
                                field(runner, "shutting_down") == json(true) ? "  SHUTTING DOWN" : "");
  out += fmt::format("config  {}\nlisten  {}   admin {}\n", scalar_text(field(runner, "config")),
                     scalar_text(field(runner, "listen")), scalar_text(field(runner, "admin")));
  if (functions.empty()) return out + "\nno functions\n";

  // The version columns appear once the runner reports versions.
  bool versions = any_has(functions, "version");
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"FUNCTION"});
  if (versions) rows[0].push_back("VERSION");
  for (const char* h : {"RUNTIME", "INSTANCES", "READY", "IN-FLIGHT", "QUEUE", "COLD STARTS", "SERVED"})
    rows[0].push_back(h);
  for (const auto& fn : functions) {
    std::string name = scalar_text(field(fn, "name"));
    const json instances = field(fn, "instances").is_array() ? field(fn, "instances") : json::array();
    long long live = 0, ready = 0, in_flight = 0, served = 0;
    for (const auto& inst : instances) {
      std::string state = scalar_text(field(inst, "state"));
      if (state != "exited") live++;
      if (state == "ready" || state == "busy") ready++;
      if (field(inst, "in_flight").is_number()) in_flight += field(inst, "in_flight").get<long long>();
      if (field(inst, "requests_served").is_number()) served += field(inst, "requests_served").get<long long>();
    }
    auto cold = cold_starts.find(name);
    std::vector<std::string> row{name};
    if (versions) row.push_back(scalar_text(field(fn, "version")));
    row.push_back(scalar_text(field(fn, "runtime")) + "/" + scalar_text(field(fn, "type")));
    row.push_back(fmt::format("{}/{}", live, scalar_text(field(field(fn, "limits"), "max_instances"))));
    row.push_back(std::to_string(ready));
    row.push_back(std::to_string(in_flight));
    row.push_back(scalar_text(field(fn, "queue_depth")));
    row.push_back(cold == cold_starts.end() ? "-" : std::to_string(cold->second));
    row.push_back(std::to_string(served));
    rows.push_back(std::move(row));
  }
  out += "\n" + table(rows, "");

  for (const auto& fn : functions) {
    const json instances = field(fn, "instances").is_array() ? field(fn, "instances") : json::array();
    const json cap = field(fn, "cap_reason");
    if (instances.empty() && cap.is_null()) continue;
    out += fmt::format("\n{}  (concurrency {}, instances {}..{})\n", scalar_text(field(fn, "name")),
                       scalar_text(field(field(fn, "limits"), "instance_concurrency")),
                       scalar_text(field(field(fn, "limits"), "min_instances")),
                       scalar_text(field(field(fn, "limits"), "max_instances")));
    if (!cap.is_null()) out += "  capped: " + scalar_text(cap) + "\n";
    if (instances.empty()) continue;
    bool inst_versions = any_has(instances, "version");
    std::vector<std::vector<std::string>> irows;
    irows.push_back({"INSTANCE"});
    if (inst_versions) irows[0].push_back("VERSION");
    for (const char* h : {"STATE", "PID", "IN-FLIGHT", "SERVED", "COLD START", "UP", "MEMORY"})
      irows[0].push_back(h);
    // The limits an instance reached (memory, processes, open_files, tmp), when any did.
    bool any_limit = false;
    for (const auto& inst : instances) any_limit = any_limit || !field(inst, "limits_hit").empty();
    if (any_limit) irows[0].push_back("LIMITS HIT");
    for (const auto& inst : instances) {
      std::vector<std::string> row{scalar_text(field(inst, "id"))};
      if (inst_versions) row.push_back(scalar_text(field(inst, "version")));
      row.push_back(scalar_text(field(inst, "state")));
      row.push_back(scalar_text(field(inst, "pid")));
      row.push_back(scalar_text(field(inst, "in_flight")));
      row.push_back(scalar_text(field(inst, "requests_served")));
      const json cold_ms = field(inst, "cold_start_ms");
      row.push_back(cold_ms.is_number() ? fmt::format("{} ms", cold_ms.get<long long>()) : "-");
      const json at = field(inst, "started_at");
      row.push_back(at.is_number() && now > 0 ? duration_text(now - at.get<double>()) : "-");
      row.push_back(bytes_text(field(inst, "memory_bytes")));
      if (any_limit) {
        std::string hit;
        for (const auto& name : field(inst, "limits_hit")) hit += (hit.empty() ? "" : ",") + scalar_text(name);
        row.push_back(hit.empty() ? "-" : hit);
      }
      irows.push_back(std::move(row));
    }
    out += table(irows, "  ");
  }
  return out;
}

}  // namespace fc
