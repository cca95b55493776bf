#include "reload.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace fc {
namespace {

namespace fs = std::filesystem;

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fc-reload-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& rel) const { return dir_ + "/" + rel; }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(path(rel)).parent_path());
    std::ofstream(path(rel), std::ios::binary) << text;
  }
  std::string hash(const CodeTreeLimits& limits = {}) {
    CodeHash h = hash_code_tree(path("code"), limits);
    EXPECT_TRUE(h.error.empty()) << h.error;
    return h.digest;
  }

  std::string dir_;
};

TEST_F(ReloadTest, CodeHashFollowsContentsNotTimes) {
  write("code/index.py", "print(1)\n");
  write("code/lib/util.py", "x = 1\n");
  std::string first = hash();
  EXPECT_EQ(first.size(), 32u);
  EXPECT_EQ(hash(), first);
  // A touch is no change.
  ASSERT_EQ(utimes(path("code/index.py").c_str(), nullptr), 0);
  EXPECT_EQ(hash(), first);
  // An edit that keeps the size is one.
  write("code/index.py", "print(2)\n");
  std::string edited = hash();
  EXPECT_NE(edited, first);
  // So are a new file, a new empty directory, a mode change, a rename.
  write("code/new.txt", "");
  std::string added = hash();
  EXPECT_NE(added, edited);
  fs::create_directories(path("code/empty"));
  std::string with_dir = hash();
  EXPECT_NE(with_dir, added);
  ASSERT_EQ(chmod(path("code/new.txt").c_str(), 0755), 0);
  std::string chmodded = hash();
  EXPECT_NE(chmodded, with_dir);
  fs::rename(path("code/new.txt"), path("code/new2.txt"));
  EXPECT_NE(hash(), chmodded);
}

TEST_F(ReloadTest, CodeHashSkipsPycacheAndGitAndDoesNotFollowLinks) {
  write("code/index.py", "print(1)\n");
  write("outside/big.txt", "a");
  std::string first = hash();
  write("code/__pycache__/index.cpython-311.pyc", "bytecode");
  write("code/.git/HEAD", "ref: refs/heads/main\n");
  EXPECT_EQ(hash(), first);
  // A link counts by its target, not by what it points at.
  fs::create_symlink(path("outside"), path("code/link"));
  std::string linked = hash();
  EXPECT_NE(linked, first);
  write("outside/big.txt", "b");
  EXPECT_EQ(hash(), linked);
}

TEST_F(ReloadTest, CodeHashLimitsAreKeptExactly) {
  // Three entries: a directory and two files of 4 bytes each.
  write("code/d/a", "1234");
  write("code/b", "5678");
  CodeTreeLimits at_limit;
  at_limit.max_entries = 3;
  at_limit.max_bytes = 8;
  EXPECT_FALSE(hash(at_limit).empty());

  CodeTreeLimits fewer_entries = at_limit;
  fewer_entries.max_entries = 2;
  CodeHash over = hash_code_tree(path("code"), fewer_entries);
  EXPECT_TRUE(over.digest.empty());
  EXPECT_NE(over.error.find("more than 2 entries"), std::string::npos) << over.error;

  CodeTreeLimits fewer_bytes = at_limit;
  fewer_bytes.max_bytes = 7;
  over = hash_code_tree(path("code"), fewer_bytes);
  EXPECT_TRUE(over.digest.empty());
  EXPECT_NE(over.error.find("more than 7 bytes"), std::string::npos) << over.error;
}

TEST_F(ReloadTest, CodeHashOfAMissingDirectoryIsAnError) {
  CodeHash h = hash_code_tree(path("nope"));
  EXPECT_TRUE(h.digest.empty());
  EXPECT_NE(h.error.find("cannot read"), std::string::npos) << h.error;
}

TEST_F(ReloadTest, LoadForReloadRefusesAnInvalidFileWithItsLine) {
  write("code/bootstrap", "#!/bin/sh\n");
  ASSERT_EQ(chmod(path("code/bootstrap").c_str(), 0755), 0);
  write("fc.yaml", "listen: 127.0.0.1:9100\nfunctions:\n  a:\n    runtime: custom\n    codeUri: ./code\n"
                   "    timeout: -1\n");
  LoadedConfig loaded = load_for_reload(path("fc.yaml"));
  EXPECT_FALSE(loaded.config);
  ASSERT_EQ(loaded.errors.size(), 1u);
  EXPECT_EQ(loaded.errors[0].line(), 6);
  EXPECT_EQ(loaded.errors[0].key(), "functions.a.timeout");
  EXPECT_TRUE(loaded.code_hashes.empty());
}

TEST_F(ReloadTest, LoadForReloadRefusesAFunctionItCannotServe) {
  write("fc.yaml", "listen: 127.0.0.1:9100\nfunctions:\n  a:\n    runtime: custom\n    codeUri: ./missing\n");
  LoadedConfig loaded = load_for_reload(path("fc.yaml"));
  EXPECT_FALSE(loaded.config);
  ASSERT_EQ(loaded.errors.size(), 1u);
  EXPECT_EQ(loaded.errors[0].key(), "functions.a.codeUri");
}

TEST_F(ReloadTest, LoadForReloadHashesEveryFunctionsCode) {
  write("code/bootstrap", "#!/bin/sh\n");
  ASSERT_EQ(chmod(path("code/bootstrap").c_str(), 0755), 0);
  write("fc.yaml", "listen: 127.0.0.1:9100\nfunctions:\n  a:\n    runtime: custom\n    codeUri: ./code\n");
  LoadedConfig loaded = load_for_reload(path("fc.yaml"));
  ASSERT_TRUE(loaded.config);
  EXPECT_TRUE(loaded.errors.empty());
  ASSERT_EQ(loaded.code_hashes.count("a"), 1u);
  EXPECT_EQ(loaded.code_hashes["a"].digest, hash());
}

}  // namespace
}  // namespace fc
