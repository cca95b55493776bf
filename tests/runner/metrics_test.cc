// The Prometheus text exposition (format 0.0.4) of runner/metrics.h.
#include "metrics.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "admin.h"

namespace fc {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(ExpositionTest, LabelValuesEscapeBackslashQuoteAndNewline) {
  EXPECT_EQ(Exposition::escape_label_value(R"(a\b"c)" "\n" "d"), R"(a\\b\"c\nd)");
  EXPECT_EQ(Exposition::escape_label_value("plain-name_1"), "plain-name_1");
  Exposition out;
  out.family("fc_x_total", "counter", "X.");
  out.sample("fc_x_total", {{"function", "f\"1\n"}, {"code", "2xx"}}, uint64_t{3});
  EXPECT_EQ(out.text(), "# HELP fc_x_total X.\n# TYPE fc_x_total counter\nfc_x_total{function=\"f\\\"1\\n\",code=\"2xx\"} 3\n");
}

TEST(ExpositionTest, HelpEscapesBackslashAndNewlineButNotQuotes) {
  EXPECT_EQ(Exposition::escape_help("a \"b\" \\ c\nd"), "a \"b\" \\\\ c\\nd");
}

TEST(ExpositionTest, ValuesAreFormattedAsPrometheusParsesThem) {
  EXPECT_EQ(Exposition::format_value(0.005), "0.005");
  EXPECT_EQ(Exposition::format_value(1), "1");
  EXPECT_EQ(Exposition::format_value(2.5), "2.5");
  EXPECT_EQ(Exposition::format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(Exposition::format_value(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(Exposition::format_value(0.0 / 0.0), "NaN");
  Exposition out;
  out.sample("g", {}, 0.25);
  EXPECT_EQ(out.text(), "g 0.25\n");
}

TEST(HistogramTest, BucketsAreCumulativeWithInclusiveUpperBoundsAndInf) {
  Histogram h({0.25, 0.5, 1});
  h.observe(0.125);
  h.observe(0.25);  // exactly on a bound: le="0.25"
  h.observe(0.375);
  h.observe(7);     // beyond the last bound: only +Inf
  Exposition out;
  out.histogram("d_seconds", {{"function", "f"}}, h);
  std::vector<std::string> expect = {
      R"(d_seconds_bucket{function="f",le="0.25"} 2)",
      R"(d_seconds_bucket{function="f",le="0.5"} 3)",
      R"(d_seconds_bucket{function="f",le="1"} 3)",
      R"(d_seconds_bucket{function="f",le="+Inf"} 4)",
      R"(d_seconds_sum{function="f"} 7.75)",
      R"(d_seconds_count{function="f"} 4)",
  };
  EXPECT_EQ(lines_of(out.text()), expect);
}

TEST(HistogramTest, EmptyHistogramHasEveryBucketAtZero) {
  Histogram h(request_duration_buckets());
  Exposition out;
  out.histogram("d", {}, h);
  auto lines = lines_of(out.text());
  ASSERT_EQ(lines.size(), request_duration_buckets().size() + 3);
  EXPECT_EQ(lines.front(), R"(d_bucket{le="0.005"} 0)");
  EXPECT_EQ(lines[lines.size() - 3], R"(d_bucket{le="+Inf"} 0)");
  EXPECT_EQ(lines.back(), "d_count 0");
}

TEST(HistogramTest, BucketBoundsAreIncreasing) {
  for (const auto* bounds : {&request_duration_buckets(), &cold_start_buckets()}) {
    for (size_t i = 1; i < bounds->size(); i++) EXPECT_LT((*bounds)[i - 1], (*bounds)[i]);
  }
}

TEST(FunctionMetricsTest, RequestDoneCountsByCodeAndObservesTheDuration) {
  FunctionMetrics m;
  m.request_done("2xx", 0.01);
  m.request_done("2xx", 0.02);
  m.request_done("QueueFull", 0.0001);
  EXPECT_EQ(m.requests["2xx"], 2u);
  EXPECT_EQ(m.requests["QueueFull"], 1u);
  EXPECT_EQ(m.request_duration.count(), 3u);
  EXPECT_NEAR(m.request_duration.sum(), 0.0301, 1e-9);
}

TEST(AdminAddressTest, LoopbackHostsAreRecognised) {
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("127.1.2.3"));
  EXPECT_TRUE(is_loopback_host("::1"));
  EXPECT_TRUE(is_loopback_host("::ffff:127.0.0.1"));
  EXPECT_FALSE(is_loopback_host("0.0.0.0"));
  EXPECT_FALSE(is_loopback_host("10.0.0.1"));
  EXPECT_FALSE(is_loopback_host("::"));
  EXPECT_FALSE(is_loopback_host("128.0.0.1"));
}

}  // namespace
}  // namespace fc
