#include "ids.h"

#include <spdlog/fmt/fmt.h>

#include <random>

namespace fc {

namespace {
std::mt19937_64& rng() {
  static std::mt19937_64 gen{std::random_device{}()};
  return gen;
}
}  // namespace

std::string new_request_id() {
  uint64_t a = rng()();
  uint64_t b = rng()();
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff,
                     b >> 48, b & 0xffffffffffffULL);
}

std::string new_instance_id() { return fmt::format("c-{:012x}", rng()() & 0xffffffffffffULL); }

}  // namespace fc
