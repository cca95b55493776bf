#include "yaml_tree.h"

#include <yaml.h>

#include <memory>

namespace fc::yaml {

namespace {

struct ParserFree {
  void operator()(yaml_parser_t* parser) const {
    yaml_parser_delete(parser);
    delete parser;
  }
};

struct Event {
  yaml_event_t event{};
  ~Event() { yaml_event_delete(&event); }
};

// What yaml-cpp (the reader before this one) reads as null: a plain,
// untagged ~, null, Null, NULL or nothing.
bool is_null_scalar(std::string_view text) {
  return text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL";
}

// libyaml's reasons for the mistakes people make most, in the words the
// config errors have always used (docs and tests name them).
std::string reason_of(const yaml_parser_t& parser) {
  std::string problem = parser.problem ? parser.problem : "invalid YAML";
  if (problem == "mapping values are not allowed in this context") return "illegal map value";
  if (problem == "did not find expected ',' or ']'") return "end of sequence flow not found";
  if (problem == "did not find expected ',' or '}'") return "end of map flow not found";
  if (parser.context) problem += std::string(" (") + parser.context + " at line " +
                                 std::to_string(parser.context_mark.line + 1) + ")";
  return problem;
}

std::string_view text_of(const yaml_char_t* bytes, size_t length) {
  return {reinterpret_cast<const char*>(bytes), length};
}

}  // namespace

Node& Stream::add(Node::Type type, int line) {
  Node& node = nodes_.emplace_back();
  node.type = type;
  node.line = line;
  return node;
}

Stream::Stream(std::string_view text) {
  std::unique_ptr<yaml_parser_t, ParserFree> parser(new yaml_parser_t);
  if (!yaml_parser_initialize(parser.get())) {
    delete parser.release();
    throw SyntaxError(0, "out of memory");
  }
  yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()), text.size());

  std::vector<Node*> open;  // the sequences and maps being filled, innermost last
  std::unordered_map<std::string, const Node*> anchors;
  auto place = [&](const Node* node) {
    if (open.empty()) {
      documents_.push_back(node);
    } else {
      open.back()->children.push_back(node);
    }
  };
  auto remember = [&](const yaml_char_t* anchor, const Node* node) {
    if (anchor) anchors[reinterpret_cast<const char*>(anchor)] = node;
  };
  for (bool done = false; !done;) {
    Event e;
    if (!yaml_parser_parse(parser.get(), &e.event)) {
      throw SyntaxError(static_cast<int>(parser->problem_mark.line) + 1, reason_of(*parser));
    }
    const yaml_event_t& ev = e.event;
    int line = static_cast<int>(ev.start_mark.line) + 1;
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        done = true;
        break;
      case YAML_DOCUMENT_START_EVENT:
        anchors.clear();  // anchors are per document
        break;
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(reinterpret_cast<const char*>(ev.data.alias.anchor));
        if (it == anchors.end()) {
          throw SyntaxError(line, std::string("unknown anchor *") + reinterpret_cast<const char*>(ev.data.alias.anchor));
        }
        place(it->second);
        break;
      }
      case YAML_SCALAR_EVENT: {
        std::string_view value = text_of(ev.data.scalar.value, ev.data.scalar.length);
        bool plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev.data.scalar.tag == nullptr;
        Node& node = add(plain && is_null_scalar(value) ? Node::Type::kNull : Node::Type::kScalar, line);
        if (node.type == Node::Type::kScalar) node.scalar = value;
        node.quoted = !plain;
        remember(ev.data.scalar.anchor, &node);
        place(&node);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        bool map = ev.type == YAML_MAPPING_START_EVENT;
        Node& node = add(map ? Node::Type::kMap : Node::Type::kSequence, line);
        remember(map ? ev.data.mapping_start.anchor : ev.data.sequence_start.anchor, &node);
        place(&node);
        open.push_back(&node);
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        open.pop_back();
        break;
      default:  // STREAM_START, DOCUMENT_END, NO_EVENT
        break;
    }
  }
}

}  // namespace fc::yaml
