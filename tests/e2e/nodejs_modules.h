// The npm packages of the nodejs tests and examples (express 4, raw-body):
// tests/e2e/apps/nodejs/install.sh puts them into build/npm/node_modules
// once (idempotent, locked against parallel tests; `make npm-modules` runs
// it too).  Returns that directory.
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>

namespace fc::e2e {

inline std::string nodejs_test_modules() {
  static const std::string dir = [] {
    std::string cmd = std::string(FC_E2E_APPS_DIR) + "/nodejs/install.sh " + FC_BUILD_DIR + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) throw std::runtime_error("cannot run " + cmd);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = pclose(p);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    if (status != 0) throw std::runtime_error("npm install for the nodejs tests failed:\n" + out);
    size_t last = out.rfind('\n');
    return last == std::string::npos ? out : out.substr(last + 1);
  }();
  return dir;
}

}  // namespace fc::e2e
