#include "log.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

namespace fc {

namespace {

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

void append_escaped(std::string_view text, spdlog::memory_buf_t& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char* run = text.data();
  const char* end = text.data() + text.size();
  for (const char* p = run; p < end; p++) {
    auto c = static_cast<unsigned char>(*p);
    if (!is_control(c)) continue;
    out.append(run, p);
    char esc[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    out.append(esc, esc + 4);
    run = p + 1;
  }
  out.append(run, end);
}

// The message, cut at kMaxLogMessage; `cut` says how many bytes went.
std::string_view bounded(const spdlog::details::log_msg& msg, size_t& cut) {
  std::string_view text(msg.payload.data(), msg.payload.size());
  cut = 0;
  if (text.size() > kMaxLogMessage) {
    cut = text.size() - kMaxLogMessage;
    text = text.substr(0, kMaxLogMessage);
  }
  return text;
}

// %& in the pattern: the message, escaped and bounded.
class EscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    size_t cut = 0;
    append_escaped(bounded(msg, cut), dest);
    if (cut > 0) fmt::format_to(std::back_inserter(dest), "... ({} bytes cut)", cut);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<EscapedMessage>(); }
};

// Set while an instance's output line is being logged (log_instance_output):
// the JSON formatter then takes the tag apart but reads nothing else out of
// the line.  The loop is single-threaded.
struct InstanceOutput {
  bool active = false;
  int fd = 0;
};
InstanceOutput g_output;

// What a runner message says about itself: its leading tag ("[fn]",
// "[fn/instance]", "[conn#N]", or "function NAME: ...") and the FC
// convention "RequestId: ID".  The runner writes every line that concerns a
// function, instance, connection or request in this shape.
struct MessageFields {
  std::string_view function, instance, connection, request_id, text;
};

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }

MessageFields fields_of(std::string_view text, bool instance_output) {
  MessageFields f;
  f.text = text;
  if (text.size() > 2 && text.front() == '[') {
    size_t close = text.find(']');
    if (close != std::string_view::npos) {
      std::string_view tag = text.substr(1, close - 1);
      f.text = text.substr(close + 1);
      if (!f.text.empty() && f.text.front() == ' ') f.text.remove_prefix(1);
      if (tag.rfind("conn#", 0) == 0) {
        f.connection = tag;
      } else {
        size_t slash = tag.find('/');
        f.function = tag.substr(0, slash);
        if (slash != std::string_view::npos) f.instance = tag.substr(slash + 1);
      }
    }
  } else if (text.rfind("function ", 0) == 0) {
    std::string_view rest = text.substr(9);
    size_t end = 0;
    while (end < rest.size() && is_name_char(rest[end])) end++;
    if (end > 0 && end < rest.size() && rest[end] == ':') f.function = rest.substr(0, end);
  }
  if (instance_output) return f;
  constexpr std::string_view kRequestId = "RequestId: ";
  size_t at = f.text.find(kRequestId);
  if (at != std::string_view::npos) {
    std::string_view id = f.text.substr(at + kRequestId.size());
    size_t end = 0;
    while (end < id.size() && id[end] != ',' && id[end] != ':' && id[end] != ' ') end++;
    f.request_id = id.substr(0, end);
  }
  return f;
}

void append_json_string(std::string_view text, spdlog::memory_buf_t& out) {
  // nlohmann's dump escapes control characters, quotes and backslashes, and
  // replaces bytes that are not UTF-8, so every line parses.
  std::string quoted = nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out.append(quoted.data(), quoted.data() + quoted.size());
}

// One JSON object per line: time (UTC, ms), level, then function, instance,
// connection, request_id where the message names them, stream for instance
// output, msg.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto since_epoch = msg.time.time_since_epoch();
    std::time_t secs = duration_cast<seconds>(since_epoch).count();
    auto millis = duration_cast<milliseconds>(since_epoch).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    fmt::format_to(std::back_inserter(dest), "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"level\":\"",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    dest.push_back('"');
    size_t cut = 0;
    std::string_view text = bounded(msg, cut);
    MessageFields f = fields_of(text, g_output.active);
    auto field = [&dest](std::string_view name, std::string_view value) {
      if (value.empty()) return;
      dest.push_back(',');
      append_json_string(name, dest);
      dest.push_back(':');
      append_json_string(value, dest);
    };
    field("function", f.function);
    field("instance", f.instance);
    field("connection", f.connection);
    field("request_id", f.request_id);
    if (g_output.active) field("stream", g_output.fd == 2 ? "stderr" : "stdout");
    std::string body(f.text);
    if (cut > 0) body += fmt::format("... ({} bytes cut)", cut);
    dest.append(std::string_view(",\"msg\":"));
    append_json_string(body, dest);
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

// Where the lines go, written so that no write ever blocks the loop.
class LogOutput {
 public:
  LogOutput() = default;
  LogOutput(const LogOutput&) = delete;
  LogOutput& operator=(const LogOutput&) = delete;
  ~LogOutput() { close_owned(); }

  // stderr: a pipe or terminal gets an open file description of its own
  // (via /proc/self/fd), made non-blocking without touching the one the
  // runner shares with whoever started it; a socket is written with
  // MSG_DONTWAIT; a regular file is written as is.
  void use_stderr() {
    close_owned();
    fd_ = STDERR_FILENO;
    struct stat st{};
    if (::fstat(fd_, &st) != 0 || S_ISREG(st.st_mode)) {
      mode_ = Mode::kPlain;
    } else if (S_ISSOCK(st.st_mode)) {
      mode_ = Mode::kSocket;
    } else {
      int own = ::open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (own >= 0) {
        fd_ = own;
        owned_ = true;
        mode_ = Mode::kPlain;
      } else {
        mode_ = Mode::kPolled;
      }
    }
  }

  // A `logFile`: ours alone, so it is simply made non-blocking.
  bool open_file(const std::string& path, std::string& error) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
    if (fd < 0) {
      error = fmt::format("cannot open {}: {}", path, std::strerror(errno));
      return false;
    }
    close_owned();
    fd_ = fd;
    owned_ = true;
    mode_ = Mode::kPlain;
    return true;
  }

  // Bytes written, or -1 with errno (EAGAIN when the log takes nothing now).
  ssize_t write_some(const char* data, size_t len) {
    switch (mode_) {
      case Mode::kSocket:
        return ::send(fd_, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
      case Mode::kPolled: {
        // A shared blocking pipe: room for PIPE_BUF bytes is all poll promises.
        pollfd p{fd_, POLLOUT, 0};
        int ready = ::poll(&p, 1, 0);
        if (ready < 0) return -1;
        if (ready == 0 || !(p.revents & POLLOUT)) {
          errno = EAGAIN;
          return -1;
        }
        return ::write(fd_, data, std::min<size_t>(len, PIPE_BUF));
      }
      case Mode::kPlain:
        break;
    }
    return ::write(fd_, data, len);
  }

 private:
  enum class Mode { kPlain, kSocket, kPolled };
  void close_owned() {
    if (owned_) ::close(fd_);
    owned_ = false;
  }
  int fd_ = STDERR_FILENO;
  bool owned_ = false;
  Mode mode_ = Mode::kPolled;
};

// Formats each line into a bounded buffer, written in batches (see log.h).
// The loop is single-threaded: no mutex.
class LogSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit LogSink(std::string path) : path_(std::move(path)) {}
  ~LogSink() override {
    drain();
    detach();
  }

  bool open(std::string& error) {
    if (path_.empty()) {
      output_ = std::make_unique<LogOutput>();
      output_->use_stderr();
      return true;
    }
    return reopen(error);
  }

  bool reopen(std::string& error) {
    if (path_.empty()) return true;
    auto next = std::make_unique<LogOutput>();
    if (!next->open_file(path_, error)) return false;
    if (output_) drain();  // what the old file can still take
    output_ = std::move(next);
    drain();
    return true;
  }

  void attach(uv_loop_t* loop) {
    detach();
    loop_ = loop;
    prepare_ = new uv_prepare_t{};
    uv_prepare_init(loop, prepare_);
    prepare_->data = this;
    uv_prepare_start(prepare_, [](uv_prepare_t* p) { static_cast<LogSink*>(p->data)->on_prepare(); });
    uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
    retry_ = new uv_timer_t{};
    uv_timer_init(loop, retry_);
    retry_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(retry_));
  }

  void detach() {
    if (!loop_) return;
    drain();
    auto free_handle = [](uv_handle_t* h) {
      if (h->type == UV_PREPARE) delete reinterpret_cast<uv_prepare_t*>(h);
      else delete reinterpret_cast<uv_timer_t*>(h);
    };
    uv_close(reinterpret_cast<uv_handle_t*>(prepare_), free_handle);
    uv_close(reinterpret_cast<uv_handle_t*>(retry_), free_handle);
    prepare_ = nullptr;
    retry_ = nullptr;
    loop_ = nullptr;
  }

  uint64_t dropped() const { return dropped_; }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    if (pending_.size() + line.size() > kLogBufferBytes) {
      dropped_++;
      unreported_++;
      return;
    }
    pending_.append(line.data(), line.size());
    if (!loop_) drain();
  }
  void flush_() override { drain(); }

 private:
  void on_prepare() {
    if (!pending_.empty() && !blocked_) drain();
  }

  // Writes as much as the log takes now; never waits.
  void drain() {
    if (!output_) return;
    while (!pending_.empty()) {
      size_t written = 0;
      blocked_ = false;
      while (written < pending_.size()) {
        ssize_t n = output_->write_some(pending_.data() + written, pending_.size() - written);
        if (n > 0) {
          written += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          blocked_ = true;
          break;
        } else {
          // EPIPE, ENOSPC, EIO...: these lines are lost; count them.
          auto lost = std::count(pending_.begin() + static_cast<long>(written), pending_.end(), '\n');
          dropped_ += static_cast<uint64_t>(lost);
          unreported_ += static_cast<uint64_t>(lost);
          written = pending_.size();
        }
      }
      pending_.erase(0, written);
      if (blocked_) {
        if (retry_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(retry_))) {
          uv_timer_start(retry_, [](uv_timer_t* t) { static_cast<LogSink*>(t->data)->on_retry(); }, kLogRetryMs, 0);
        }
        return;
      }
      if (pending_.capacity() > kLogBufferBytes / 4) std::string().swap(pending_);  // give a burst's memory back
      if (unreported_ == 0) return;
      append_drop_notice();  // and write it on the next round
    }
  }

  void on_retry() {
    blocked_ = false;
    drain();
  }

  void append_drop_notice() {
    std::string text = fmt::format("{} log line{} dropped: the log did not take them in time", unreported_,
                                   unreported_ == 1 ? "" : "s");
    unreported_ = 0;
    spdlog::details::log_msg msg(spdlog::string_view_t("fc-runner"), spdlog::level::warn,
                                 spdlog::string_view_t(text.data(), text.size()));
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    pending_.append(line.data(), line.size());
  }

  std::string path_;
  std::unique_ptr<LogOutput> output_;
  std::string pending_;
  uint64_t dropped_ = 0;
  uint64_t unreported_ = 0;  // dropped since the last notice
  bool blocked_ = false;      // the last write took nothing more: wait for the retry timer
  uv_loop_t* loop_ = nullptr;
  uv_prepare_t* prepare_ = nullptr;
  uv_timer_t* retry_ = nullptr;
};

std::shared_ptr<LogSink> g_sink;

}  // namespace

std::string escape_control(std::string_view text) {
  spdlog::memory_buf_t out;
  append_escaped(text, out);
  return std::string(out.data(), out.size());
}

std::string printable(std::string_view text, size_t max) {
  if (text.size() <= max) return escape_control(text);
  return escape_control(text.substr(0, max)) + "...";
}

bool init_log(const std::string& path, const std::string& level, std::string& error, LogFormat format) {
  auto sink = std::make_shared<LogSink>(path);
  if (format == LogFormat::kJson) {
    sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<EscapedMessage>('&').set_pattern("%Y-%m-%d %H:%M:%S.%e %l %&");
    sink->set_formatter(std::move(formatter));
  }
  if (!sink->open(error)) return false;
  auto logger = std::make_shared<spdlog::logger>("fc-runner", sink);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  g_sink = std::move(sink);
  return true;
}

void attach_log(uv_loop_t* loop) {
  if (g_sink) g_sink->attach(loop);
}

void detach_log() {
  if (g_sink) g_sink->detach();
}

bool reopen_log(std::string& error) { return g_sink ? g_sink->reopen(error) : true; }

uint64_t log_lines_dropped() { return g_sink ? g_sink->dropped() : 0; }

void log_instance_output(std::string_view tag, int fd, std::string_view line) {
  auto level = fd == 2 ? spdlog::level::warn : spdlog::level::info;
  if (!spdlog::should_log(level)) return;
  g_output = {true, fd};
  spdlog::log(level, "[{}] {}", tag, line);
  g_output = {};
}

}  // namespace fc
