// A YAML document as a small tree of our own, built from libyaml's event
// parser: only what the config reader needs (scalars with their quoting,
// lists, maps in file order, the line of every node).  yaml-cpp's node
// tree cost about 0.1 ms and 8 KB per function of a config; this one is a
// few nodes in one deque, and it is gone when the config has been read.
#pragma once

#include <deque>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fc::yaml {

struct Node {
  enum class Type { kNull, kScalar, kSequence, kMap };
  Type type = Type::kNull;
  int line = 0;         // 1-based, where the node starts
  bool quoted = false;  // a scalar written quoted (or with an explicit tag): never a number or boolean
  std::string scalar;   // kScalar
  // kSequence: the items; kMap: key, value, key, value ... in file order
  // (duplicate keys kept, so the reader can name them).
  std::vector<const Node*> children;

  bool is_null() const { return type == Type::kNull; }
  bool is_scalar() const { return type == Type::kScalar; }
  bool is_sequence() const { return type == Type::kSequence; }
  bool is_map() const { return type == Type::kMap; }
  size_t map_size() const { return children.size() / 2; }
  const Node& key(size_t i) const { return *children[2 * i]; }
  const Node& value(size_t i) const { return *children[2 * i + 1]; }
};

// A syntax error: libyaml's reason and the 1-based line it points at.
class SyntaxError : public std::runtime_error {
 public:
  SyntaxError(int line, const std::string& reason) : std::runtime_error(reason), line_(line) {}
  int line() const { return line_; }

 private:
  int line_;
};

// Every document of a stream; the nodes live as long as the Stream.
class Stream {
 public:
  // Throws SyntaxError.
  explicit Stream(std::string_view text);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  const std::vector<const Node*>& documents() const { return documents_; }

 private:
  Node& add(Node::Type type, int line);

  std::deque<Node> nodes_;  // stable addresses
  std::vector<const Node*> documents_;
};

}  // namespace fc::yaml
