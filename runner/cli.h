// The operator's command line (issue 10): the commands that talk to a
// running fc-runner, found through its config file.
//
//   fc-runner status [--config F] [--admin ADDR] [--json]   GET /status (+ /metrics) as a table
//   fc-runner reload [--config F] [--admin ADDR]            POST /reload, prints the reply
//   fc-runner invoke NAME [--event TEXT | --event-file F | -] [--config F] [--listen ADDR]
//
// status and reload speak HTTP to the admin API (`admin:`) with libcurl.
// invoke is a client of the runner protocol (DESIGN §3) on `listen:`: the
// same REQUEST/DATA frames nginx sends, so an invocation takes the path a
// request from nginx takes (router, function queue, scheduler, instance)
// and nothing in the runner exists for the CLI alone.
//
// Exit status: 0 success; 1 the runner answered with a failure (a function
// error, a gateway error, a refused reload); 2 bad usage or config; 3 the
// runner could not be reached.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace fc {

inline constexpr const char* kDefaultConfigPath = "/etc/fc-runner/fc-runner.yaml";

enum CliExit : int { kCliOk = 0, kCliFailed = 1, kCliUsage = 2, kCliUnreachable = 3 };

// True for the commands run_cli() handles (status, reload, invoke).
bool is_cli_command(std::string_view arg);

// argv[0] is the command.
int run_cli(int argc, char** argv);

// The table `fc-runner status` prints for one /status document;
// `cold_starts` by function (from /metrics; absent functions show "-").
// Columns that /status does not carry (e.g. versions, before a runner has
// them) are left out.
std::string format_status(const nlohmann::json& status, const std::map<std::string, uint64_t>& cold_starts);

// fc_cold_starts_total{function="..."} samples of a Prometheus text exposition.
std::map<std::string, uint64_t> cold_starts_from_metrics(std::string_view text);

}  // namespace fc
