// runner/cli.h: the table of `fc-runner status` and what it takes from /metrics.
#include "cli.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace fc {
namespace {

using json = nlohmann::json;

json status_doc(bool with_versions) {
  json inst = {{"id", "web-3"},           {"pid", 4242},         {"state", "busy"},
               {"in_flight", 2},          {"requests_served", 17}, {"started_at", 1000.0},
               {"cold_start_ms", 312},    {"memory_bytes", 5 * 1024 * 1024}};
  json fn = {{"name", "web"},
             {"runtime", "custom"},
             {"type", "http"},
             {"queue_depth", 3},
             {"limits", {{"min_instances", 0}, {"max_instances", 4}, {"instance_concurrency", 2}}},
             {"cap_reason", nullptr},
             {"instances", json::array({inst})}};
  if (with_versions) {
    fn["version"] = 7;
    fn["instances"][0]["version"] = 6;
  }
  json idle = {{"name", "idle"},  {"runtime", "python3"}, {"type", "event"},
               {"queue_depth", 0}, {"limits", {{"max_instances", 10}}}, {"instances", json::array()}};
  return {{"runner",
           {{"version", "0.1.0"},
            {"pid", 99},
            {"uptime_s", 125.0},
            {"started_at", 900.0},
            {"listen", "unix:/run/fc-runner/fc.sock"},
            {"admin", "unix:/run/fc-runner/admin.sock"},
            {"config", "/etc/fc-runner/fc-runner.yaml"},
            {"connections", 1}}},
          {"functions", json::array({fn, idle})}};
}

TEST(CliStatus, TableWithoutVersionsHasNoVersionColumn) {
  std::string out = format_status(status_doc(false), {{"web", 5}});
  EXPECT_EQ(out,
            "fc-runner 0.1.0  pid 99  up 2m05s  nginx connections 1\n"
            "config  /etc/fc-runner/fc-runner.yaml\n"
            "listen  unix:/run/fc-runner/fc.sock   admin unix:/run/fc-runner/admin.sock\n"
            "\n"
            "FUNCTION  RUNTIME        INSTANCES  READY  IN-FLIGHT  QUEUE  COLD STARTS  SERVED\n"
            "web       custom/http    1/4        1      2          3      5            17\n"
            "idle      python3/event  0/10       0      0          0      -            0\n"
            "\n"
            "web  (concurrency 2, instances 0..4)\n"
            "  INSTANCE  STATE  PID   IN-FLIGHT  SERVED  COLD START  UP   MEMORY\n"
            "  web-3     busy   4242  2          17      312 ms      25s  5.0 MiB\n");
}

TEST(CliStatus, VersionColumnsAppearWhenStatusHasVersions) {
  std::string out = format_status(status_doc(true), {{"web", 5}, {"idle", 0}});
  EXPECT_NE(out.find("FUNCTION  VERSION  RUNTIME        INSTANCES"), std::string::npos) << out;
  EXPECT_NE(out.find("web       7        custom/http    1/4"), std::string::npos) << out;
  // A function without a version field shows "-" there.
  EXPECT_NE(out.find("idle      -        python3/event  0/10       0      0          0      0"), std::string::npos)
      << out;
  EXPECT_NE(out.find("  INSTANCE  VERSION  STATE  PID"), std::string::npos) << out;
  EXPECT_NE(out.find("  web-3     6        busy   4242"), std::string::npos) << out;
}

TEST(CliStatus, NoFunctionsAndCappedFunctionsAreSaid) {
  json doc = status_doc(false);
  doc["functions"] = json::array();
  EXPECT_NE(format_status(doc, {}).find("\nno functions\n"), std::string::npos);
  doc = status_doc(false);
  doc["functions"][1]["cap_reason"] = "caPort 9000 without network namespaces: one instance";
  std::string out = format_status(doc, {});
  EXPECT_NE(out.find("idle  (concurrency -, instances -..10)\n  capped: caPort 9000 without network namespaces: "
                     "one instance\n"),
            std::string::npos)
      << out;
}

TEST(CliStatus, ColdStartsComeFromTheMetricsSamples) {
  auto counts = cold_starts_from_metrics(
      "# HELP fc_cold_starts_total Instances that became ready (each one cold start).\n"
      "# TYPE fc_cold_starts_total counter\n"
      "fc_cold_starts_total{function=\"web\"} 3\n"
      "fc_cold_starts_total{function=\"a-b_c\"} 12\n"
      "fc_cold_start_duration_seconds_count{function=\"web\"} 3\n"
      "fc_requests_total{function=\"web\",code=\"2xx\"} 9\n");
  EXPECT_EQ(counts, (std::map<std::string, uint64_t>{{"web", 3}, {"a-b_c", 12}}));
  EXPECT_TRUE(cold_starts_from_metrics("garbage\n{}\n").empty());
}

}  // namespace
}  // namespace fc
