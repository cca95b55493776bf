#include "log.h"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

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

// %& in the pattern: the message, escaped and bounded.
class EscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    size_t cut = 0;
    if (text.size() > kMaxLogMessage) {
      cut = text.size() - kMaxLogMessage;
      text = text.substr(0, kMaxLogMessage);
    }
    append_escaped(text, dest);
    if (cut > 0) fmt::format_to(std::back_inserter(dest), "... ({} bytes cut)", cut);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<EscapedMessage>(); }
};

// Writes each formatted line with one write(2) to an fd that SIGUSR1 can
// swap.  The loop is single-threaded: no mutex.
class FdSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit FdSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FdSink() override {
    if (fd_ > 2) ::close(fd_);
  }

  bool reopen(std::string& error) {
    if (path_.empty()) return true;
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
      error = fmt::format("cannot open {}: {}", path_, std::strerror(errno));
      return false;
    }
    if (fd_ > 2) ::close(fd_);
    fd_ = fd;
    return true;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // a log that cannot be written must not stop the runner
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  void flush_() override {}

 private:
  int fd_;
  std::string path_;
};

std::shared_ptr<FdSink> g_sink;

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

bool init_log(const std::string& path, const std::string& level, std::string& error) {
  auto sink = std::make_shared<FdSink>(STDERR_FILENO, path);
  if (!path.empty() && !sink->reopen(error)) return false;
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<EscapedMessage>('&').set_pattern("%Y-%m-%d %H:%M:%S.%e %l %&");
  sink->set_formatter(std::move(formatter));
  auto logger = std::make_shared<spdlog::logger>("fc-runner", sink);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  g_sink = std::move(sink);
  return true;
}

bool reopen_log(std::string& error) { return g_sink ? g_sink->reopen(error) : true; }

}  // namespace fc
