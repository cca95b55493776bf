// Counters the runner keeps for the admin API (admin.h) and their
// Prometheus text exposition, format 0.0.4.  Counters and histograms are
// plain integers bumped where the event happens (Exchange, Function,
// Instance, Listener, ClientConnection); gauges (queue depth, instances by
// state, in-flight, connections) are read from the live objects when
// /metrics is asked for, so they cannot drift.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fc {

// A histogram with fixed upper bounds (seconds); +Inf is implicit.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket counts, not cumulative; the last one is (last bound, +Inf).
  const std::vector<uint64_t>& counts() const { return counts_; }
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Upper bounds of fc_request_duration_seconds and of the queue wait.
const std::vector<double>& request_duration_buckets();
// Upper bounds of fc_cold_start_duration_seconds (spawn to ready).
const std::vector<double>& cold_start_buckets();

// What one function counted since the runner started.
struct FunctionMetrics {
  FunctionMetrics();
  // `code`: the response's status class ("2xx"...) or the gateway error
  // code (QueueFull, FunctionTimeout...), or "ClientClosed".
  void request_done(const std::string& code, double seconds);

  std::map<std::string, uint64_t> requests;  // by code
  Histogram request_duration;
  uint64_t cold_starts = 0;
  Histogram cold_start_duration;
  uint64_t queue_full = 0;
  uint64_t queue_timeout = 0;
  uint64_t instance_starts = 0;    // spawned
  uint64_t instance_failures = 0;  // left service for any reason but retirement
  uint64_t instance_kills = 0;     // SIGKILLed by the runner (start failed, wedged, grace over)
  std::map<std::string, uint64_t> instance_exits;  // by reason
  // Instances that reached a limit (isolation: "processes", "memory").
  std::map<std::string, uint64_t> limit_hits;
  // New versions by how their rollout ended: done (it serves), failed (an
  // instance did not start; the old version kept serving), superseded (a
  // later reload replaced it before it served).
  std::map<std::string, uint64_t> rollouts;
};

// The runner's own counters.
struct RunnerMetrics {
  uint64_t frame_errors = 0;       // runner connections closed for a protocol error or frameTimeout
  uint64_t shed_connections = 0;   // idle runner connections closed to make room
  uint64_t reloads_applied = 0;    // reloads whose config was taken
  uint64_t reloads_refused = 0;    // reloads refused (invalid config); the old one kept serving
  // Requests naming no defined function (404 FunctionNotFound): one series
  // (fc_requests_total{function="(unknown)"}) whatever the names, so a
  // client cannot make series without bound.
  uint64_t function_not_found = 0;
};

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// Writes the text exposition format 0.0.4.  Every family starts with
// family(); samples of a family follow it.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  void sample(std::string_view name, const Labels& labels, uint64_t value);
  // name_bucket{...,le="..."} (cumulative), name_sum, name_count.
  void histogram(std::string_view name, const Labels& labels, const Histogram& histogram);
  const std::string& text() const { return out_; }

  // The escaping of the format: label values escape \ " and newline, HELP
  // text escapes \ and newline.
  static std::string escape_label_value(std::string_view value);
  static std::string escape_help(std::string_view help);
  // Go's strconv-like shortest form that Prometheus parses ("0.005", "+Inf").
  static std::string format_value(double value);

 private:
  void write_labels(const Labels& labels, std::string_view extra_name = {}, std::string_view extra_value = {});
  std::string out_;
};

}  // namespace fc
