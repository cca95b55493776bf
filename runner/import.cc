// s.yaml to runner config (see import.h).  Reading and writing both go
// through yaml-cpp; variables are resolved on the parsed tree, so a whole
// `${vars.service}` becomes the map it names.

#include "import.h"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

#include "config.h"

namespace fc {

namespace {

namespace fs = std::filesystem;

// ${vars.a} may name a var that names another: deeper than this is a loop.
constexpr int kMaxVarDepth = 16;

// FC function keys the runner config takes as they are (FC 2.0 names).
constexpr std::string_view kCopiedKeys[] = {
    "runtime", "handler", "initializer", "initializationTimeout", "timeout", "memorySize",
    "instanceConcurrency", "environmentVariables", "caPort",
};

// FC's code directory inside the instance: /code/main in a command is
// codeUri/main here (the instance runs in codeUri).
constexpr std::string_view kFcCodeMount = "/code/";

int line_of(const YAML::Node& node) { return node.Mark().line + 1; }

class Importer {
 public:
  Importer(std::string path, const ImportOptions& options)
      : path_(std::move(path)), base_dir_(fs::absolute(path_).parent_path()), options_(options) {}

  ImportResult run(const YAML::Node& root);

 private:
  // Nodes rebuilt by variable substitution have no position: they are
  // reported at the line of the service/resource they belong to.
  int line_at(const YAML::Node& at) const {
    return at.IsDefined() && !at.Mark().is_null() ? line_of(at) : fallback_line_;
  }
  void note(const YAML::Node& at, const std::string& what) {
    result_.notes.push_back(path_ + ":" + std::to_string(line_at(at)) + ": " + what);
  }
  [[noreturn]] void fail(const YAML::Node& at, const std::string& what) const {
    throw ImportError(path_ + ":" + std::to_string(line_at(at)) + ": " + what);
  }

  YAML::Node resolve(const YAML::Node& node, int depth);
  YAML::Node lookup_var(std::string_view dotted, const YAML::Node& at, int depth);
  std::string substitute(const std::string& text, const YAML::Node& at, int depth);

  void import_fc2(const std::string& key, const YAML::Node& props);
  void import_fc3(const std::string& key, const YAML::Node& props);
  // Shared: the function map, with FC 2.0 and FC 3.0 differences handled by the callers.
  YAML::Node common_function(const YAML::Node& fn, std::set<std::string>& handled);
  std::string code_dir(const YAML::Node& code, const std::string& key);
  YAML::Node command_list(const YAML::Node& list, const std::string& what);
  void add_function(const std::string& name, const YAML::Node& at, YAML::Node fn);
  void note_rest(const YAML::Node& map, const std::set<std::string>& handled, const std::string& where);

  std::string path_;
  fs::path base_dir_;
  ImportOptions options_;
  YAML::Node vars_;
  YAML::Node functions_ = YAML::Node(YAML::NodeType::Map);
  ImportResult result_;
  int fallback_line_ = 1;
};

// ---- variables ------------------------------------------------------------------

YAML::Node Importer::lookup_var(std::string_view dotted, const YAML::Node& at, int depth) {
  // const lookups and reset(): operator[] and operator= of a non-const
  // node would write into vars_.
  YAML::Node node;
  node.reset(vars_);
  std::string_view rest = dotted;
  while (!rest.empty()) {
    size_t dot = rest.find('.');
    std::string part(rest.substr(0, dot));
    const YAML::Node& here = node;
    if (!here.IsMap() || !here[part]) return YAML::Node(YAML::NodeType::Undefined);
    node.reset(here[part]);
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  }
  (void)at;  // the caller notes what is missing
  return resolve(node, depth + 1);
}

// One scalar: ${vars.x}, ${env(X)}, ${env('X')}, ${env.X} are replaced; other
// ${...} (outputs of other resources, config(), ...) stay and are noted.
std::string Importer::substitute(const std::string& text, const YAML::Node& at, int depth) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find("${", pos);
    if (open == std::string::npos) break;
    size_t close = text.find('}', open);
    if (close == std::string::npos) break;
    out += text.substr(pos, open - pos);
    std::string expr = text.substr(open + 2, close - open - 2);
    std::string whole = text.substr(open, close - open + 1);
    pos = close + 1;
    auto trim = [](std::string s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\'' || s.front() == '"')) s.erase(0, 1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\'' || s.back() == '"')) s.pop_back();
      return s;
    };
    expr = trim(expr);
    std::string env_name;
    if (expr.starts_with("env(") && expr.ends_with(")")) {
      env_name = trim(expr.substr(4, expr.size() - 5));
    } else if (expr.starts_with("env.")) {
      env_name = expr.substr(4);
    }
    if (!env_name.empty()) {
      const char* value = std::getenv(env_name.c_str());
      if (!value) note(at, whole + ": environment variable " + env_name + " is not set; replaced by an empty string");
      out += value ? value : "";
    } else if (expr.starts_with("vars.")) {
      YAML::Node value = lookup_var(expr.substr(5), at, depth);
      if (!value.IsDefined()) {
        note(at, whole + ": no such var; left as it is");
        out += whole;
      } else if (!value.IsScalar()) {
        note(at, whole + ": a " + std::string(value.IsMap() ? "map" : "list") +
                     " inside a string; left as it is");
        out += whole;
      } else {
        out += value.Scalar();
      }
    } else {
      note(at, whole + ": not supported by fc-runner import (only ${vars.x}, ${env(X)}, ${env.X}); left as it is");
      out += whole;
    }
  }
  out += text.substr(std::min(pos, text.size()));
  return out;
}

YAML::Node Importer::resolve(const YAML::Node& node, int depth) {
  if (depth > kMaxVarDepth) fail(node, "variables nest deeper than " + std::to_string(kMaxVarDepth) + " (a loop?)");
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      if (text.find("{{") != std::string::npos) {
        note(node, "template placeholder " + text + " (from `s init`) left as it is: replace it");
      }
      // The whole scalar is one ${vars.x}: the var itself, map or list included.
      if (text.starts_with("${vars.") && text.ends_with("}") && text.find("${", 2) == std::string::npos) {
        std::string dotted = text.substr(7, text.size() - 8);
        YAML::Node value = lookup_var(dotted, node, depth);
        if (value.IsDefined()) return value;
      }
      if (text.find("${") == std::string::npos) return node;  // shared: keeps its line
      YAML::Node out(substitute(text, node, depth));
      return out;
    }
    // Unchanged subtrees are the parsed nodes themselves (with their lines);
    // the importer only reads them.
    case YAML::NodeType::Sequence: {
      YAML::Node out(YAML::NodeType::Sequence);
      bool changed = false;
      for (const YAML::Node& item : node) {
        YAML::Node value = resolve(item, depth);
        changed = changed || !value.is(item);
        out.push_back(value);
      }
      return changed ? out : node;
    }
    case YAML::NodeType::Map: {
      YAML::Node out(YAML::NodeType::Map);
      bool changed = false;
      for (const auto& item : node) {
        YAML::Node value = resolve(item.second, depth);
        changed = changed || !value.is(item.second);
        out[item.first.Scalar()] = value;
      }
      return changed ? out : node;
    }
    default:
      return node;
  }
}

// ---- functions --------------------------------------------------------------------

void Importer::note_rest(const YAML::Node& map, const std::set<std::string>& handled, const std::string& where) {
  std::string rest;
  for (const auto& item : map) {
    std::string key = item.first.Scalar();
    if (handled.count(key)) continue;
    rest += (rest.empty() ? "" : ", ") + key;
  }
  if (!rest.empty()) note(map, where + ": not carried over (no meaning on one machine, or not supported): " + rest);
}

std::string Importer::code_dir(const YAML::Node& code, const std::string& key) {
  std::string src;
  if (code.IsScalar()) {
    src = code.Scalar();
  } else if (code.IsMap() && code["src"] && code["src"].IsScalar()) {
    src = code["src"].Scalar();  // FC 2.0 { src: ./code, excludes: [...] }
  } else {
    note(code, key + ": only a local directory can be imported (not an OSS bucket or a zip URL); set codeUri yourself");
    return {};
  }
  fs::path dir = src;
  if (dir.is_relative()) dir = base_dir_ / dir;
  std::string text = dir.lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  if (text.ends_with(".zip") || text.ends_with(".jar")) {
    note(code, key + ": " + text + " is an archive: unpack it and point codeUri at the directory");
  }
  return text;
}

YAML::Node Importer::command_list(const YAML::Node& list, const std::string& what) {
  YAML::Node out(YAML::NodeType::Sequence);
  if (!list.IsSequence()) {
    note(list, what + ": expected a list; not carried over");
    return out;
  }
  for (const YAML::Node& item : list) {
    std::string word = item.IsScalar() ? item.Scalar() : "";
    if (word.starts_with(kFcCodeMount)) {
      std::string local = "./" + word.substr(kFcCodeMount.size());
      note(item, what + ": " + word + " is FC's code mount; written as " + local + " (the instance runs in codeUri)");
      word = local;
    }
    out.push_back(word);
  }
  return out;
}

YAML::Node Importer::common_function(const YAML::Node& fn, std::set<std::string>& handled) {
  YAML::Node out(YAML::NodeType::Map);
  for (std::string_view key : kCopiedKeys) {
    std::string k(key);
    if (fn[k]) {
      out[k] = fn[k];
      handled.insert(k);
    }
  }
  return out;
}

void Importer::add_function(const std::string& name, const YAML::Node& at, YAML::Node fn) {
  if (!is_valid_function_name(name)) fail(at, "function name \"" + name + "\" is not a valid FC function name");
  if (static_cast<const YAML::Node&>(functions_)[name]) fail(at, "function " + name + " is defined twice (fc-runner function names are flat)");
  functions_[name] = fn;
  result_.functions.push_back(name);
}

// The type from the triggers: an HTTP trigger makes an HTTP function;
// anything else (timer, oss, mns, ...) is delivered as events.
std::string trigger_type(const YAML::Node& triggers, const char* type_key, const char* config_key,
                         std::vector<std::string>& notes, const std::string& file, const std::string& where) {
  bool http = false;
  bool other = false;
  if (triggers && triggers.IsSequence()) {
    for (const YAML::Node& trigger : triggers) {
      std::string type = trigger[type_key] && trigger[type_key].IsScalar() ? trigger[type_key].Scalar() : "";
      int line = line_of(trigger);
      if (type == "http") {
        http = true;
        YAML::Node config = trigger[config_key];
        if (config && config["authType"] && config["authType"].IsScalar() &&
            config["authType"].Scalar() != "anonymous") {
          notes.push_back(file + ":" + std::to_string(line) + ": " + where + ": HTTP trigger authType " +
                          config["authType"].Scalar() + " is not enforced: protect the location in nginx");
        }
        if (config && config["methods"]) {
          notes.push_back(file + ":" + std::to_string(line) + ": " + where +
                          ": HTTP trigger methods are not enforced (use nginx limit_except if needed)");
        }
      } else {
        other = true;
        notes.push_back(file + ":" + std::to_string(line) + ": " + where + ": " +
                        (type.empty() ? std::string("a trigger without a type") : type + " trigger") +
                        " is not created here: the function is type event, call it through its location");
      }
    }
  }
  if (http) return "http";
  return other ? "event" : "";
}

void Importer::import_fc2(const std::string& key, const YAML::Node& props) {
  std::set<std::string> handled_props = {"region", "service", "function", "triggers"};
  const YAML::Node service = props["service"];
  if (service && service.IsMap()) {
    std::set<std::string> handled_service = {"name", "description"};
    note_rest(service, handled_service, "services." + key + ".props.service");
  }
  const YAML::Node fn = props["function"];
  if (!fn || !fn.IsMap()) fail(props, "services." + key + ".props.function: required (a map)");
  std::string name = fn["name"] && fn["name"].IsScalar() ? fn["name"].Scalar() : "";
  if (name.empty() || !is_valid_function_name(name)) {
    note(fn, "services." + key + ".props.function.name " + (name.empty() ? "missing" : "\"" + name + "\" unusable") +
                 ": the function is named " + key);
    name = key;
  }
  std::string where = "services." + key + ".props.function";
  std::set<std::string> handled = {"name", "codeUri", "customRuntimeConfig", "instanceLifecycleConfig"};
  YAML::Node out = common_function(fn, handled);
  if (fn["codeUri"]) {
    std::string dir = code_dir(fn["codeUri"], where + ".codeUri");
    if (!dir.empty()) out["codeUri"] = dir;
  }
  if (YAML::Node crc = fn["customRuntimeConfig"]; crc && crc.IsMap()) {
    YAML::Node c(YAML::NodeType::Map);
    if (crc["command"]) c["command"] = command_list(crc["command"], where + ".customRuntimeConfig.command");
    if (crc["args"]) c["args"] = command_list(crc["args"], where + ".customRuntimeConfig.args");
    if (c.size() > 0) out["customRuntimeConfig"] = c;
    note_rest(crc, {"command", "args"}, where + ".customRuntimeConfig");
  }
  if (YAML::Node lc = fn["instanceLifecycleConfig"]; lc && lc.IsMap()) {
    YAML::Node l(YAML::NodeType::Map);
    for (const char* hook : {"preStop", "preFreeze"}) {
      if (lc[hook]) l[hook] = lc[hook];
    }
    if (l.size() > 0) out["instanceLifecycleConfig"] = l;
    note_rest(lc, {"preStop", "preFreeze"}, where + ".instanceLifecycleConfig");
  }
  note_rest(fn, handled, where);
  std::string type = trigger_type(props["triggers"], "type", "config", result_.notes, path_,
                                  "services." + key + ".props.triggers");
  if (type.empty()) {
    note(fn, where + ": no trigger: imported as type http (change to type: event for an event function)");
    type = "http";
  }
  out["type"] = type;
  note_rest(props, handled_props, "services." + key + ".props");
  add_function(name, fn, out);
}

void Importer::import_fc3(const std::string& key, const YAML::Node& props) {
  std::string where = "resources." + key + ".props";
  std::string name = props["functionName"] && props["functionName"].IsScalar() ? props["functionName"].Scalar() : "";
  if (name.empty() || !is_valid_function_name(name)) {
    note(props, where + ".functionName " + (name.empty() ? "missing" : "\"" + name + "\" unusable") +
                    ": the function is named " + key);
    name = key;
  }
  std::set<std::string> handled = {"region", "functionName", "code", "customRuntimeConfig", "instanceLifecycleConfig",
                                   "triggers"};
  YAML::Node out = common_function(props, handled);
  if (props["code"]) {
    std::string dir = code_dir(props["code"], where + ".code");
    if (!dir.empty()) out["codeUri"] = dir;
  }
  if (YAML::Node crc = props["customRuntimeConfig"]; crc && crc.IsMap()) {
    YAML::Node c(YAML::NodeType::Map);
    if (crc["command"]) c["command"] = command_list(crc["command"], where + ".customRuntimeConfig.command");
    if (crc["args"]) c["args"] = command_list(crc["args"], where + ".customRuntimeConfig.args");
    if (c.size() > 0) out["customRuntimeConfig"] = c;
    if (crc["port"]) out["caPort"] = crc["port"];  // FC 3.0's name for caPort
    note_rest(crc, {"command", "args", "port"}, where + ".customRuntimeConfig");
  }
  if (YAML::Node lc = props["instanceLifecycleConfig"]; lc && lc.IsMap()) {
    // FC 3.0 moves the initializer here: { handler, timeout }.
    if (YAML::Node init = lc["initializer"]; init && init.IsMap()) {
      if (init["handler"]) out["initializer"] = init["handler"];
      if (init["timeout"]) out["initializationTimeout"] = init["timeout"];
    }
    YAML::Node l(YAML::NodeType::Map);
    for (const char* hook : {"preStop", "preFreeze"}) {
      if (lc[hook]) l[hook] = lc[hook];
    }
    if (l.size() > 0) out["instanceLifecycleConfig"] = l;
    note_rest(lc, {"initializer", "preStop", "preFreeze"}, where + ".instanceLifecycleConfig");
  }
  std::string type = trigger_type(props["triggers"], "triggerType", "triggerConfig", result_.notes, path_,
                                  where + ".triggers");
  if (type.empty()) {
    note(props, where + ": no trigger: imported as type http (change to type: event for an event function)");
    type = "http";
  }
  out["type"] = type;
  note_rest(props, handled, where);
  add_function(name, props, out);
}

// ---- the document ------------------------------------------------------------------

ImportResult Importer::run(const YAML::Node& raw) {
  if (!raw.IsMap()) fail(raw, "expected a Serverless Devs s.yaml (a map with services: or resources:)");
  if (raw["vars"]) vars_ = raw["vars"];
  std::set<std::string> handled = {"edition", "name", "vars", "services", "resources"};
  if (raw["access"]) {
    handled.insert("access");
    note(raw["access"], "access (cloud credentials) is not used by fc-runner");
  }
  note_rest(raw, handled, "top level");

  YAML::Node components = raw["services"] ? raw["services"] : raw["resources"];
  std::string section = raw["services"] ? "services" : "resources";
  if (!components || !components.IsMap()) fail(raw, "no services: (FC 2.0) or resources: (FC 3.0) map found");
  for (const auto& item : components) {
    std::string key = item.first.Scalar();
    const YAML::Node& entry = item.second;
    fallback_line_ = line_of(item.first);
    if (!entry.IsMap()) fail(entry, section + "." + key + ": expected a map");
    std::string component = entry["component"] && entry["component"].IsScalar() ? entry["component"].Scalar() : "";
    // "devsapp/fc@0.1.2" -> "fc"
    std::string base = component.substr(0, component.find('@'));
    if (base.starts_with("devsapp/")) base = base.substr(8);
    if (entry["actions"]) {
      note(entry["actions"], section + "." + key + ".actions (build hooks such as pre-deploy) are not run: "
                             "run them yourself before starting the runner");
    }
    note_rest(entry, {"component", "props", "actions"}, section + "." + key);
    if (base != "fc" && base != "fc3") {
      note(entry, section + "." + key + ": component " + (component.empty() ? "(none)" : component) +
                      " is not a function (only fc, devsapp/fc and fc3 are imported); skipped");
      continue;
    }
    YAML::Node props = resolve(entry["props"], 0);
    if (!props.IsMap()) fail(entry, section + "." + key + ".props: required (a map)");
    if (base == "fc") {
      import_fc2(key, props);
    } else {
      import_fc3(key, props);
    }
  }

  YAML::Node config(YAML::NodeType::Map);
  config["listen"] = options_.listen;
  config["functions"] = functions_;
  YAML::Emitter emitter;
  emitter << YAML::Comment("generated by fc-runner import from " + fs::absolute(path_).lexically_normal().string())
          << YAML::Newline << config;
  result_.runner_config = std::string(emitter.c_str()) + "\n";

  std::ostringstream locations;
  locations << "# generated by fc-runner import from " << fs::absolute(path_).lexically_normal().string() << "\n"
            << "# include inside a server {} of an http {} that has fc_runner " << options_.listen << ";\n";
  for (const std::string& name : result_.functions) {
    // The app sees "/" and its own routes: the prefix is stripped.
    locations << "location /" << name << "/ {\n"
              << "    rewrite ^/" << name << "(/.*)$ $1 break;\n"
              << "    fc_function " << name << ";\n"
              << "}\n";
  }
  result_.nginx_locations = locations.str();
  // A var used twice would repeat its notes.
  std::vector<std::string> unique;
  std::set<std::string> seen;
  for (std::string& n : result_.notes) {
    if (seen.insert(n).second) unique.push_back(std::move(n));
  }
  result_.notes = std::move(unique);
  return result_;
}

void usage(FILE* out) {
  std::fprintf(out,
               "usage: fc-runner import S.YAML [--runner-config OUT.yaml] [--nginx-locations OUT.conf] "
               "[--listen ADDR]\n"
               "\n"
               "Converts a Serverless Devs s.yaml (FC 2.0 component fc / devsapp/fc, FC 3.0 component fc3)\n"
               "into a runner config (stdout without --runner-config) and nginx location blocks routing\n"
               "/<function>/... to each function.  What is not carried over is listed on stderr.\n"
               "\n"
               "  --listen ADDR  the runner's listen address in the config (default unix:/run/fc-runner/fc.sock)\n");
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::fprintf(stderr, "fc-runner import: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

ImportResult import_s_yaml(const std::string& yaml_text, const std::string& path, const ImportOptions& options) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ImportError(path + ":" + std::to_string(e.mark.line + 1) + ": YAML error: " + e.msg);
  }
  try {
    return Importer(path, options).run(root);
  } catch (const YAML::Exception& e) {
    throw ImportError(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

ImportResult import_s_yaml_file(const std::string& path, const ImportOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ImportError(path + ": cannot read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return import_s_yaml(text.str(), path, options);
}

int run_import(int argc, char** argv) {
  std::string input, runner_config, nginx_locations;
  ImportOptions options;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--runner-config" && i + 1 < argc) {
      runner_config = argv[++i];
    } else if (arg == "--nginx-locations" && i + 1 < argc) {
      nginx_locations = argv[++i];
    } else if (arg == "--listen" && i + 1 < argc) {
      options.listen = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (input.empty() && !arg.starts_with("-")) {
      input = arg;
    } else {
      std::fprintf(stderr, "fc-runner import: unknown argument '%s'\n", arg.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (input.empty()) {
    usage(stderr);
    return 2;
  }
  try {
    parse_address(options.listen);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "fc-runner import: --listen: %s\n", e.what());
    return 2;
  }
  ImportResult result;
  try {
    result = import_s_yaml_file(input, options);
  } catch (const ImportError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  for (const std::string& note : result.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  if (runner_config.empty()) {
    std::fputs(result.runner_config.c_str(), stdout);
  } else if (!write_text(runner_config, result.runner_config)) {
    return 1;
  }
  if (!nginx_locations.empty() && !write_text(nginx_locations, result.nginx_locations)) return 1;
  std::fprintf(stderr, "fc-runner import: %zu function(s)%s%s%s%s\n", result.functions.size(),
               runner_config.empty() ? "" : ", runner config ", runner_config.c_str(),
               nginx_locations.empty() ? "" : ", nginx locations ", nginx_locations.c_str());
  return 0;
}

}  // namespace fc
