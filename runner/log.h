// The runner's log: one line per message, on stderr or in the `logFile` the
// config names (reopened on SIGUSR1, as logrotate expects).  Every value that
// came from outside (function names, request ids, instance output) may hold
// control characters; the formatter escapes them in the whole message, so no
// line of the log can be forged, and cuts messages past kMaxLogMessage.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fc {

// Longest message written as is; the rest is replaced by "... (N bytes cut)".
inline constexpr size_t kMaxLogMessage = 8192;

// Control characters (and DEL) as \xNN; used by the log formatter and for
// values echoed back to clients in error messages.
std::string escape_control(std::string_view text);

// escape_control(text), cut to `max` input bytes with "..." after it: for
// names and values quoted in one line.
std::string printable(std::string_view text, size_t max = 64);

// Installs the default logger: to `path` (appending) or stderr when empty.
// Returns false with `error` set when the file cannot be opened.
bool init_log(const std::string& path, const std::string& level, std::string& error);

// SIGUSR1: reopens the log file (a no-op on stderr).  Returns false with
// `error` set when the file cannot be opened; the old file keeps the log.
bool reopen_log(std::string& error);

}  // namespace fc
