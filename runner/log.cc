#include "log.h"

#include "byte_scan.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
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

// `out`: a std::string (the batch) or fmt's memory buffer.
void put(std::string& out, const char* begin, const char* end) { out.append(begin, static_cast<size_t>(end - begin)); }
template <typename Buffer>
void put(Buffer& out, const char* begin, const char* end) {
  out.append(begin, end);
}

template <typename Out>
void append(Out& out, std::string_view text) {
  put(out, text.data(), text.data() + text.size());
}

template <typename Out>
void append_escaped(std::string_view text, Out& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char* run = text.data();
  const char* end = text.data() + text.size();
  for (const char* p = byte_scan::find_control(run, end); p < end; p = byte_scan::find_control(p + 1, end)) {
    auto c = static_cast<unsigned char>(*p);
    put(out, run, p);
    char esc[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    put(out, esc, esc + 4);
    run = p + 1;
  }
  put(out, run, end);
}

// The message, cut at kMaxLogMessage; `cut` says how many bytes went.
std::string_view bounded(std::string_view text, size_t& cut) {
  cut = 0;
  if (text.size() > kMaxLogMessage) {
    cut = text.size() - kMaxLogMessage;
    text = text.substr(0, kMaxLogMessage);
  }
  return text;
}

template <typename Out>
void append_cut_notice(Out& out, size_t cut) {
  if (cut > 0) fmt::format_to(std::back_inserter(out), "... ({} bytes cut)", cut);
}

// "YYYY-mm-dd HH:MM:SS." of a second, local time for text lines (as
// spdlog's "%Y-%m-%d %H:%M:%S."), UTC with a T for JSON lines: made once
// per second, not per line.
class SecondStamp {
 public:
  explicit SecondStamp(bool utc) : utc_(utc) {}
  std::string_view of(std::time_t secs) {
    if (secs != secs_ || len_ == 0) {
      std::tm tm{};
      if (utc_) {
        gmtime_r(&secs, &tm);
      } else {
        localtime_r(&secs, &tm);
      }
      auto r = fmt::format_to_n(text_, sizeof text_, "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}.", tm.tm_year + 1900,
                                tm.tm_mon + 1, tm.tm_mday, utc_ ? 'T' : ' ', tm.tm_hour, tm.tm_min, tm.tm_sec);
      len_ = std::min(r.size, sizeof text_);
      secs_ = secs;
    }
    return std::string_view(text_, len_);
  }

 private:
  bool utc_;
  std::time_t secs_ = 0;
  char text_[32] = {};
  size_t len_ = 0;
};

using LogClock = spdlog::log_clock;

// Milliseconds of the second, three digits (spdlog's %e).
template <typename Out>
void append_millis(Out& out, LogClock::time_point time) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  char digits[3] = {static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                    static_cast<char>('0' + ms % 10)};
  put(out, digits, digits + 3);
}

std::time_t seconds_of(LogClock::time_point time) {
  return static_cast<std::time_t>(std::chrono::duration_cast<std::chrono::seconds>(time.time_since_epoch()).count());
}

// A text line: "2026-12-02 01:30:00.123 info message\n", the message escaped
// and bounded (what the pattern "%Y-%m-%d %H:%M:%S.%e %l %&" wrote before).
SecondStamp& text_stamp() {
  static SecondStamp stamp(false);
  return stamp;
}

// True when `text` has no byte append_escaped() would change.
bool clean(std::string_view text) { return byte_scan::has_no_control(text); }

template <typename Out>
void append_text_line(Out& out, spdlog::level::level_enum level, LogClock::time_point time, std::string_view text) {
  append(out, text_stamp().of(seconds_of(time)));
  append_millis(out, time);
  out.push_back(' ');
  auto name = spdlog::level::to_string_view(level);
  put(out, name.data(), name.data() + name.size());
  out.push_back(' ');
  size_t cut = 0;
  append_escaped(bounded(text, cut), out);
  append_cut_notice(out, cut);
  out.push_back('\n');
}

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

// True when nlohmann's dump would give the text back unchanged in quotes:
// printable ASCII without " and \\ (the per-request lines are).
bool json_plain(std::string_view text) {
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

template <typename Out>
void append_json_string(std::string_view text, Out& out) {
  if (json_plain(text)) {
    out.push_back('"');
    append(out, text);
    out.push_back('"');
    return;
  }
  // nlohmann's dump escapes control characters, quotes and backslashes, and
  // replaces bytes that are not UTF-8, so every line parses.
  std::string quoted = nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  append(out, quoted);
}

// One JSON object per line: time (UTC, ms), level, then function, instance,
// connection, request_id where the message names them, stream for instance
// output, msg.
template <typename Out>
void append_json_line(Out& out, spdlog::level::level_enum level, LogClock::time_point time, std::string_view message) {
  static SecondStamp stamp(true);
  append(out, std::string_view("{\"time\":\""));
  append(out, stamp.of(seconds_of(time)));
  append_millis(out, time);
  append(out, std::string_view("Z\",\"level\":\""));
  auto name = spdlog::level::to_string_view(level);
  put(out, name.data(), name.data() + name.size());
  out.push_back('"');
  size_t cut = 0;
  std::string_view text = bounded(message, cut);
  MessageFields f = fields_of(text, g_output.active);
  auto field = [&out](std::string_view key, std::string_view value) {
    if (value.empty()) return;
    out.push_back(',');
    append_json_string(key, out);
    out.push_back(':');
    append_json_string(value, out);
  };
  field("function", f.function);
  field("instance", f.instance);
  field("connection", f.connection);
  field("request_id", f.request_id);
  if (g_output.active) field("stream", g_output.fd == 2 ? "stderr" : "stdout");
  append(out, std::string_view(",\"msg\":"));
  if (cut == 0) {
    append_json_string(f.text, out);
  } else {
    std::string body(f.text);
    body += fmt::format("... ({} bytes cut)", cut);
    append_json_string(body, out);
  }
  append(out, std::string_view("}\n"));
}

template <typename Out>
void append_line(Out& out, LogFormat format, spdlog::level::level_enum level, LogClock::time_point time,
                 std::string_view text) {
  if (format == LogFormat::kJson) {
    append_json_line(out, level, time, text);
  } else {
    append_text_line(out, level, time, text);
  }
}

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
  LogSink(std::string path, LogFormat format) : path_(std::move(path)), format_(format) {}
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

  // One line, formatted straight into the batch; dropped (and counted)
  // when the batch has no room for it.
  void add(spdlog::level::level_enum level, LogClock::time_point time, std::string_view text) {
    if (surely_fits(text.size())) {
      append_line(pending_, format_, level, time, text);
    } else {
      // Near the bound: made aside first, so the batch never grows past it.
      fmt::memory_buffer line;
      append_line(line, format_, level, time, text);
      if (pending_.size() + line.size() > kLogBufferBytes) return drop();
      append(pending_, std::string_view(line.data(), line.size()));
    }
    if (!loop_) drain();
  }

  // The text line of a message given in parts, when none of them needs
  // escaping: the batch grows once and each piece is copied (the same
  // bytes append_text_line() writes).  False: the caller joins the parts
  // and uses add().
  bool add_clean_text(spdlog::level::level_enum level, LogClock::time_point time,
                      std::initializer_list<std::string_view> parts) {
    if (format_ != LogFormat::kText) return false;
    size_t total = 0;
    for (std::string_view part : parts) total += part.size();
    if (total > kMaxLogMessage || !surely_fits(total)) return false;
    std::string_view stamp = text_stamp().of(seconds_of(time));
    auto name = spdlog::level::to_string_view(level);
    size_t at = pending_.size();
    pending_.resize(at + stamp.size() + 3 + 1 + name.size() + 1 + total + 1);
    char* p = pending_.data() + at;
    auto put_bytes = [&p](const char* data, size_t len) {
      if (len > 0) std::memcpy(p, data, len);
      p += len;
    };
    put_bytes(stamp.data(), stamp.size());
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
    *p++ = static_cast<char>('0' + ms / 100);
    *p++ = static_cast<char>('0' + ms / 10 % 10);
    *p++ = static_cast<char>('0' + ms % 10);
    *p++ = ' ';
    put_bytes(name.data(), name.size());
    *p++ = ' ';
    const char* message = p;
    for (std::string_view part : parts) put_bytes(part.data(), part.size());
    // Checked once copied: one scan of the message, not one per part
    // (most parts are a few bytes, and a scan's tail is byte by byte).
    if (!clean(std::string_view(message, total))) {
      pending_.resize(at);
      return false;
    }
    *p = '\n';
    if (!loop_) drain();
    return true;
  }

 protected:
  // The line's format is the sink's own (append_line), not spdlog's
  // formatter: no pattern to interpret per line.
  void sink_it_(const spdlog::details::log_msg& msg) override {
    add(msg.level, msg.time, std::string_view(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override { drain(); }

 private:
  // A line of a message of `size` bytes fits in the batch whatever it
  // holds: a JSON line carries the message's bytes at most twice (fields
  // and msg), each escaped to at most 6 (\\u00XX); the time, level and
  // field names stay within kLineOverhead.
  bool surely_fits(size_t size) const {
    constexpr size_t kLineOverhead = 512;
    return size <= kMaxLogMessage && pending_.size() + 12 * size + kLineOverhead <= kLogBufferBytes;
  }

  void drop() {
    dropped_++;
    unreported_++;
  }

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
    append_line(pending_, format_, spdlog::level::warn, LogClock::now(), text);
  }

  std::string path_;
  LogFormat format_;
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
  auto sink = std::make_shared<LogSink>(path, format);
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

void log_line(spdlog::level::level_enum level, std::initializer_list<std::string_view> parts) {
  if (!spdlog::should_log(level)) return;
  LogClock::time_point now = LogClock::now();
  if (g_sink && g_sink->add_clean_text(level, now, parts)) return;
  // Joined first (cheaper than escaping part by part into the batch).
  fmt::memory_buffer message;
  for (std::string_view part : parts) append(message, part);
  std::string_view text(message.data(), message.size());
  if (g_sink) {
    g_sink->add(level, now, text);
  } else {
    spdlog::log(level, "{}", text);
  }
}

void log_instance_output(std::string_view tag, int fd, std::string_view line) {
  auto level = fd == 2 ? spdlog::level::warn : spdlog::level::info;
  if (!spdlog::should_log(level)) return;
  g_output = {true, fd};
  spdlog::log(level, "[{}] {}", tag, line);
  g_output = {};
}

}  // namespace fc
