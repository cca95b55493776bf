// The admin API (config key `admin:`): HTTP/1.1 on a unix socket (mode
// 0600) or a loopback TCP address, on the runner's loop.
//
//   GET  /status   JSON: the runner, its functions and their instances
//   GET  /metrics  Prometheus text exposition format 0.0.4 (metrics.h)
//   GET  /healthz  200 "ok" while serving, 503 while shutting down
//   POST /reload   reloads the config (Runner::reload); the answer waits for
//                  the new config to be read, validated and applied
//
// Requests are parsed with http_parser, bounded by kMaxRequestBytes; a bad
// or oversize request gets a 400/413 and closes only its own connection.
// Answers are built from in-memory state (and cgroupfs/procfs reads, which
// are kernel calls, not disk I/O): nothing blocks the loop.
#pragma once

#include <http_parser.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "config.h"
#include "uv_handle.h"

namespace fc {

class AdminServer;
class Runner;

class AdminConnection {
 public:
  // Request line + headers + body of one request.
  static constexpr size_t kMaxRequestBytes = 16 * 1024;
  // An admin connection with no request in progress closes after this.
  static constexpr uint64_t kIdleTimeoutMs = 10'000;

  AdminConnection(AdminServer& server, Runner& runner, HandlePtr<Stream> stream);
  AdminConnection(const AdminConnection&) = delete;
  AdminConnection& operator=(const AdminConnection&) = delete;

  void start();
  void close(const std::string& why);

 private:
  static const http_parser_settings& settings();
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, size_t len);
  static int on_header_field(http_parser* p, const char* at, size_t len);
  static int on_header_value(http_parser* p, const char* at, size_t len);
  static int on_body(http_parser* p, const char* at, size_t len);
  static int on_message_complete(http_parser* p);

  void start_reading();
  void on_read(const char* data, size_t len);
  // POST /reload: the answer comes when the runner has it; input after the
  // request waits (pipelining keeps its order).
  void begin_reload(bool keep_alive);
  void on_end(int status);
  // Counts request bytes; false (and the connection answers 413) past the limit.
  bool count(size_t len);
  // `extra_headers`: whole lines with CRLF.
  void respond(int status, std::string_view content_type, std::string body, bool keep_alive,
               const std::string& extra_headers = {});
  // Answers and closes once the answer is written.
  void respond_and_close(int status, const std::string& message);
  void arm_idle_timer();

  AdminServer& server_;
  Runner& runner_;
  HandlePtr<Stream> stream_;
  HandlePtr<Timer> idle_timer_;
  http_parser parser_{};
  std::string url_;
  size_t request_bytes_ = 0;
  bool closing_ = false;
  bool finishing_ = false;  // the last answer is on its way; then close
  bool waiting_reload_ = false;
  bool read_stopped_ = false;  // while a reload is answered
  std::string held_input_;   // bytes after a POST /reload, parsed once it is answered
  // The reload's answer comes back through a weak reference: the
  // connection may be gone by then.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

class AdminServer {
 public:
  // At most this many admin connections; more are closed at once.
  static constexpr size_t kMaxConnections = 64;

  AdminServer(Runner& runner, uv_loop_t* loop);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Unix sockets get mode 0600.  False with `error` when it cannot bind.
  bool listen(const Address& address, std::string& error);
  void close_all();
  void on_connection_closed(AdminConnection* conn);

  // The answers, for AdminConnection (and tests).
  std::string status_json() const;
  std::string metrics_text() const;

 private:
  void on_connection(int status);

  Runner& runner_;
  uv_loop_t* loop_;
  Address address_;
  HandlePtr<Stream> server_;
  std::unordered_map<AdminConnection*, std::unique_ptr<AdminConnection>> connections_;
};

// True for 127.0.0.0/8 and ::1 (also ::ffff:127.x): where a TCP admin
// address may listen (config.cc refuses the rest).
bool is_loopback_host(const std::string& host);

}  // namespace fc
