// The runner's log: one line per message, on stderr or in the `logFile` the
// config names (reopened on SIGUSR1, as logrotate expects), as text or as
// JSON lines (`logFormat`).  Every value that came from outside (function
// names, request ids, instance output) may hold control characters; the
// formatter escapes them in the whole message, so no line of the log can be
// forged, and cuts messages past kMaxLogMessage.
//
// Logging never stalls the loop: once attach_log() has a loop, lines are
// appended to a buffer of at most kLogBufferBytes and written in one batch
// per loop iteration (the prepare phase, right before the loop waits), by a
// write that never blocks.  A log that cannot take them (a pipe nobody
// reads, a full disk) loses lines instead: they are counted
// (log_lines_dropped(), fc_log_lines_dropped_total) and, once the log takes
// lines again, one line says "N log lines dropped".
#pragma once

#include <spdlog/common.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace fc {

// Longest message written as is; the rest is replaced by "... (N bytes cut)".
inline constexpr size_t kMaxLogMessage = 8192;
// Formatted lines waiting for the log; a line that does not fit is dropped.
inline constexpr size_t kLogBufferBytes = 256 * 1024;
// While the log takes nothing, how often writing is tried again (ms).
inline constexpr uint64_t kLogRetryMs = 50;

enum class LogFormat { kText, kJson };

// Control characters (and DEL) as \xNN; used by the log formatter and for
// values echoed back to clients in error messages.
std::string escape_control(std::string_view text);

// escape_control(text), cut to `max` input bytes with "..." after it: for
// names and values quoted in one line.
std::string printable(std::string_view text, size_t max = 64);

// Installs the default logger: to `path` (appending) or stderr when empty.
// Returns false with `error` set when the file cannot be opened.  Until
// attach_log(), each line is written at once (still without blocking).
bool init_log(const std::string& path, const std::string& level, std::string& error,
              LogFormat format = LogFormat::kText);

// From now on lines are batched and written on `loop`'s prepare phase.
void attach_log(uv_loop_t* loop);
// Writes what is buffered (as far as the log takes it) and goes back to
// writing each line at once; the loop's handles close on its next run.
void detach_log();

// SIGUSR1: reopens the log file (a no-op on stderr).  Returns false with
// `error` set when the file cannot be opened; the old file keeps the log.
bool reopen_log(std::string& error);

// Lines the log could not take since start-up.
uint64_t log_lines_dropped();

// One line whose message is `parts` joined, at `level`: the same line
// spdlog::log(level, ...) writes, formatted straight into the batch without
// spdlog's logger and formatter.  For the lines of every request (FC
// Invoke Start/End).
void log_line(spdlog::level::level_enum level, std::initializer_list<std::string_view> parts);

// One line an instance wrote on stdout (fd 1) or stderr (fd 2), under its
// tag ("function/instance"): JSON lines carry it as "output", never reading
// fields (a request id, say) out of what the instance wrote.
void log_instance_output(std::string_view tag, int fd, std::string_view line);

}  // namespace fc
