// `fc-runner import S.YAML`: a Serverless Devs s.yaml (FC 2.0: component fc
// or devsapp/fc; FC 3.0: component fc3) to a runner config and the nginx
// location blocks that route /<function>/... to each function.  What has no
// meaning here (regions, roles, custom domains, actions, {{ template }}
// placeholders...) is listed in `notes`, never dropped silently.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace fc {

struct ImportOptions {
  // The runner's `listen` in the generated config.
  std::string listen = "unix:/run/fc-runner/fc.sock";
};

struct ImportResult {
  std::string runner_config;       // YAML for --config
  std::string nginx_locations;     // location blocks for a server {}
  std::vector<std::string> notes;  // "S.YAML:LINE: what was not carried over, and why"
  std::vector<std::string> functions;  // the function names, in file order
};

class ImportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws ImportError (file:line: reason) when the file is no s.yaml at all;
// ${env(X)} / ${env.X} read the environment.
ImportResult import_s_yaml(const std::string& yaml_text, const std::string& path, const ImportOptions& options);
ImportResult import_s_yaml_file(const std::string& path, const ImportOptions& options);

// The `import` subcommand: argv[0] is "import".  Returns the exit status.
int run_import(int argc, char** argv);

}  // namespace fc
