#include "uv_handle.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace fc {
namespace {

class UvHandleTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was not closed";
  }
  uv_loop_t loop_{};
};

TEST_F(UvHandleTest, TimerMayDropItsOwnerFromItsCallback) {
  auto timer = Timer::create(&loop_);
  bool fired = false;
  timer->start(1, [&] {
    fired = true;
    timer.reset();  // closes the handle while inside its callback
  });
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_TRUE(fired);
  EXPECT_EQ(timer, nullptr);
}

TEST_F(UvHandleTest, NoCallbackReachesTheOwnerAfterClose) {
  auto timer = Timer::create(&loop_);
  bool fired = false;
  timer->start(1, [&] { fired = true; });
  timer.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(fired);
}

TEST_F(UvHandleTest, ImmediateRunsAfterTheIterationWithoutBlocking) {
  auto immediate = Immediate::create(&loop_);
  auto timer = Timer::create(&loop_);
  int order = 0, immediate_at = 0;
  // Nothing else would wake the loop for 10 s: the immediate must not wait.
  timer->start(10'000, [] {});
  immediate->schedule([&] {
    immediate_at = ++order;
    timer->stop();
  });
  uint64_t start = uv_now(&loop_);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(immediate_at, 1);
  EXPECT_LT(uv_now(&loop_) - start, 1000u);
  immediate.reset();
  timer.reset();
}

TEST_F(UvHandleTest, LargeWriteCompletesWhileTheReaderDrainsAndHoldsItsBytes) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  auto writer = Pipe::create(&loop_);
  auto reader = Pipe::create(&loop_);
  ASSERT_EQ(uv_pipe_open(writer->pipe(), fds[0]), 0);
  ASSERT_EQ(uv_pipe_open(reader->pipe(), fds[1]), 0);

  // 8 MiB: more than any socket buffer, so part of it is queued in libuv.
  auto payload = std::make_shared<std::string>(8 << 20, 'x');
  for (size_t i = 0; i < payload->size(); i += 4096) (*payload)[i] = static_cast<char>('a' + (i / 4096) % 26);
  std::weak_ptr<std::string> watch = payload;
  auto req = std::make_unique<WriteReq>();
  req->copy(std::string_view("head:"));
  req->ref(payload->data(), payload->size());
  req->hold(payload);
  payload.reset();  // only the write keeps it now
  int done_status = 1;
  writer->on_write_done([&](int status) { done_status = status; });
  ASSERT_EQ(writer->write(std::move(req)), 0);
  EXPECT_GT(writer->write_queue_size(), 0u);
  EXPECT_FALSE(watch.expired()) << "bytes freed before they were written";

  std::string got;
  reader->read_start([&](const ChunkRef&, const char* data, size_t len) { got.append(data, len); },
                     [](int) {});
  while (got.size() < (8u << 20) + 5 && uv_run(&loop_, UV_RUN_ONCE)) {
  }
  EXPECT_EQ(done_status, 0);
  EXPECT_TRUE(watch.expired()) << "the write did not release its hold";
  ASSERT_EQ(got.size(), (8u << 20) + 5);
  EXPECT_EQ(got.substr(0, 6), "head:a");
  EXPECT_EQ(got[5 + 4096], 'b');
  writer.reset();
  reader.reset();
}

// A written request goes back to the pool with its holds released; one
// taken from the pool is handed out emptied (no old bytes are written
// again).  copy_with() that declines adds nothing.
TEST_F(UvHandleTest, PooledWriteRequestsAreReleasedAndEmptied) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  auto writer = Pipe::create(&loop_);
  ASSERT_EQ(uv_pipe_open(writer->pipe(), fds[0]), 0);

  auto body = std::make_shared<std::string>("body");
  std::weak_ptr<std::string> watch = body;
  auto req = WriteReq::take();
  EXPECT_FALSE(req->copy_with([](std::string& out) {
    out.append("not this");
    return false;
  }));
  EXPECT_TRUE(req->empty());
  EXPECT_TRUE(req->copy_with([](std::string& out) {
    out.append(std::string(1000, 'h'));
    return true;
  }));
  req->ref(body->data(), body->size());
  req->hold(body);
  body.reset();
  EXPECT_EQ(req->size(), 1004u);
  ASSERT_EQ(writer->write(std::move(req)), 0);  // fits the socket buffer: written at once
  EXPECT_TRUE(watch.expired()) << "a pooled request still holds its bytes";

  auto again = WriteReq::take();
  EXPECT_TRUE(again->empty());
  EXPECT_EQ(again->size(), 0u);
  again->copy(std::string_view("x"));
  char got[1100] = {};
  ASSERT_EQ(writer->write(std::move(again)), 0);
  ssize_t n = ::read(fds[1], got, sizeof got);
  EXPECT_EQ(n, 1005) << "the pooled request wrote old bytes";
  EXPECT_EQ(std::string(got + 1000, 5), "bodyx");
  writer.reset();
  ::close(fds[1]);
}

// An idle stream holds no read memory: a chunk whose bytes were handed on
// goes back to the pool; one a reader still holds stays with it.  The pool
// keeps at most kPooledChunks; the rest are freed.
TEST_F(UvHandleTest, ReadChunksGoBackToThePoolUnlessHeld) {
  std::vector<int> writers;
  std::vector<HandlePtr<Pipe>> readers;
  std::vector<ChunkRef> held;
  const size_t streams = Stream::kPooledChunks + 4;
  size_t reads = 0;
  bool hold_all = true;
  for (size_t i = 0; i < streams; i++) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    auto reader = Pipe::create(&loop_);
    ASSERT_EQ(uv_pipe_open(reader->pipe(), fds[1]), 0);
    reader->read_start(
        [&, i](const ChunkRef& chunk, const char*, size_t) {
          reads++;
          if (hold_all || i == 0) held.push_back(chunk);
        },
        [](int) {});
    readers.push_back(std::move(reader));
    writers.push_back(fds[0]);
  }
  auto read_once_each = [&] {
    reads = 0;
    for (int fd : writers) ASSERT_EQ(write(fd, "hi", 2), 2);
    while (reads < streams && uv_run(&loop_, UV_RUN_ONCE)) {
    }
    ASSERT_EQ(reads, streams);
  };
  // Every stream's bytes are held: each has a chunk of its own.
  read_once_each();
  EXPECT_EQ(Stream::pooled_chunks(), 0u);
  // Let go; on the next read each stream hands its chunk back after use.
  held.clear();
  hold_all = false;
  read_once_each();
  EXPECT_EQ(Stream::pooled_chunks(), Stream::kPooledChunks) << "the pool is bounded";
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].use_count(), 2) << "the stream whose bytes are held keeps its chunk";
  held.clear();
  readers.clear();
  for (int fd : writers) close(fd);
}

// Process: posix_spawn in a session of its own, stdout on the given
// descriptor, the exit (status or signal) seen through its pidfd.
struct Spawned {
  int64_t status = -1;
  int signal = -1;
  std::string output;
};

Spawned run_process(uv_loop_t* loop, std::vector<std::string> args, bool kill_it = false) {
  Spawned result;
  int out[2];
  EXPECT_EQ(uv_socketpair(SOCK_STREAM, 0, out, 0, 0), 0);
  auto reader = Pipe::create(loop);
  EXPECT_EQ(reader->open(out[0]), 0);
  reader->read_start([&](const ChunkRef&, const char* data, size_t len) { result.output.append(data, len); },
                     [&](int) { reader.reset(); });
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  Process::Options options;
  options.file = argv[0];
  options.args = argv.data();
  options.env = envp;
  options.cwd = "/";
  options.stdout_fd = out[1];
  auto process = Process::create(loop);
  int rc = process->spawn(options, [&](int64_t status, int signal) {
    result.status = status;
    result.signal = signal;
  });
  close(out[1]);
  EXPECT_EQ(rc, 0);
  if (rc == 0 && kill_it) {
    EXPECT_EQ(process->kill_group(SIGTERM), 0);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  EXPECT_TRUE(process->exited());
  return result;
}

TEST_F(UvHandleTest, ProcessRunsInItsOwnSessionAndReportsItsExitStatus) {
  // $$ is the process group and the session: setsid() ran.
  Spawned done = run_process(&loop_, {"/bin/sh", "-c", "echo $$ $(ps -o pgid= -p $$) $(ps -o sid= -p $$) $(pwd); exit 3"});
  EXPECT_EQ(done.status, 3);
  EXPECT_EQ(done.signal, 0);
  std::vector<std::string> words;
  for (size_t at = 0; at < done.output.size();) {
    size_t end = done.output.find_first_of(" \n", at);
    if (end == std::string::npos) end = done.output.size();
    if (end > at) words.push_back(done.output.substr(at, end - at));
    at = end + 1;
  }
  ASSERT_EQ(words.size(), 4u) << done.output;
  EXPECT_EQ(words[1], words[0]) << "its own process group";
  EXPECT_EQ(words[2], words[0]) << "its own session";
  EXPECT_EQ(words[3], "/") << "the working directory given";
}

TEST_F(UvHandleTest, ProcessKilledThroughItsGroupReportsTheSignal) {
  Spawned done = run_process(&loop_, {"/bin/sleep", "30"}, true);
  EXPECT_EQ(done.signal, SIGTERM);
}

TEST_F(UvHandleTest, ProcessThatCannotBeExecutedIsASpawnError) {
  char missing[] = "/nonexistent/program";
  char* argv[] = {missing, nullptr};
  char* envp[] = {nullptr};
  Process::Options options;
  options.file = missing;
  options.args = argv;
  options.env = envp;
  auto process = Process::create(&loop_);
  EXPECT_EQ(process->spawn(options, [](int64_t, int) { ADD_FAILURE() << "no exit of what never ran"; }), UV_ENOENT);
  process.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
}

}  // namespace
}  // namespace fc
