#include "metrics.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>

namespace fc {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  // The first bucket whose upper bound is >= value (Prometheus: le is inclusive).
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  counts_[static_cast<size_t>(it - bounds_.begin())]++;
  count_++;
  sum_ += value;
}

const std::vector<double>& request_duration_buckets() {
  static const std::vector<double> bounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return bounds;
}

const std::vector<double>& cold_start_buckets() {
  static const std::vector<double> bounds{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60};
  return bounds;
}

FunctionMetrics::FunctionMetrics()
    : request_duration(request_duration_buckets()), cold_start_duration(cold_start_buckets()) {}

void FunctionMetrics::request_done(const std::string& code, double seconds) {
  requests[code]++;
  request_duration.observe(seconds);
}

// ---- exposition ----------------------------------------------------------------

std::string Exposition::escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Exposition::escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Exposition::format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);  // shortest round-trip form
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
}

void Exposition::write_labels(const Labels& labels, std::string_view extra_name, std::string_view extra_value) {
  if (labels.empty() && extra_name.empty()) return;
  out_ += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out_ += ',';
    first = false;
    out_ += fmt::format("{}=\"{}\"", name, escape_label_value(value));
  }
  if (!extra_name.empty()) {
    if (!first) out_ += ',';
    out_ += fmt::format("{}=\"{}\"", extra_name, escape_label_value(extra_value));
  }
  out_ += '}';
}

void Exposition::sample(std::string_view name, const Labels& labels, double value) {
  out_ += name;
  write_labels(labels);
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

void Exposition::sample(std::string_view name, const Labels& labels, uint64_t value) {
  out_ += name;
  write_labels(labels);
  out_ += fmt::format(" {}\n", value);
}

void Exposition::histogram(std::string_view name, const Labels& labels, const Histogram& histogram) {
  uint64_t cumulative = 0;
  const auto& counts = histogram.counts();
  for (size_t i = 0; i < counts.size(); i++) {
    cumulative += counts[i];
    std::string le = i < histogram.bounds().size() ? format_value(histogram.bounds()[i]) : "+Inf";
    out_ += fmt::format("{}_bucket", name);
    write_labels(labels, "le", le);
    out_ += fmt::format(" {}\n", cumulative);
  }
  sample(fmt::format("{}_sum", name), labels, histogram.sum());
  sample(fmt::format("{}_count", name), labels, histogram.count());
}

}  // namespace fc
