// RAII owners over the libuv handles the runner uses (timer, signal, tcp/pipe
// stream, process), after Node's HandleWrap: an owner holds a HandlePtr; when
// the owner lets go, the handle is uv_close()d and the wrapper frees itself
// from the close callback, because libuv may touch the handle until then.
// Once closing, no callback reaches the owner any more (pending writes finish
// with their buffers released, but silently), so owners may capture `this`.
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fc {

class HandleBase {
 public:
  HandleBase(const HandleBase&) = delete;
  HandleBase& operator=(const HandleBase&) = delete;

  // Starts closing (idempotent).  on_closed runs from the close callback,
  // right before the wrapper is freed.
  void close(std::function<void()> on_closed = {});
  bool closing() const { return state_ != State::kInitialized; }

 protected:
  enum class State { kUninitialized, kInitialized, kClosing };
  HandleBase() = default;
  virtual ~HandleBase() = default;
  virtual uv_handle_t* raw() = 0;
  // Drops every owner callback: called when closing starts.
  virtual void drop_callbacks() {}
  void set_initialized() { state_ = State::kInitialized; }

 private:
  static void on_close(uv_handle_t* handle);
  State state_ = State::kUninitialized;
  std::function<void()> on_closed_;
};

struct HandleCloser {
  void operator()(HandleBase* handle) const { handle->close(); }
};
template <class H>
using HandlePtr = std::unique_ptr<H, HandleCloser>;

// ---- timer ---------------------------------------------------------------

class Timer final : public HandleBase {
 public:
  static HandlePtr<Timer> create(uv_loop_t* loop);
  // One shot after `ms`; restarting replaces the previous schedule.
  void start(uint64_t ms, std::function<void()> cb);
  void stop();
  bool active() const;

 private:
  Timer() = default;
  uv_handle_t* raw() override { return reinterpret_cast<uv_handle_t*>(&h_); }
  void drop_callbacks() override { cb_ = nullptr; }
  static void on_timer(uv_timer_t* t);
  uv_timer_t h_{};
  std::function<void()> cb_;
};

// ---- signal --------------------------------------------------------------

class Signal final : public HandleBase {
 public:
  static HandlePtr<Signal> create(uv_loop_t* loop);
  int start(int signum, std::function<void(int)> cb);

 private:
  Signal() = default;
  uv_handle_t* raw() override { return reinterpret_cast<uv_handle_t*>(&h_); }
  void drop_callbacks() override { cb_ = nullptr; }
  static void on_signal(uv_signal_t* s, int signum);
  uv_signal_t h_{};
  std::function<void(int)> cb_;
};

// ---- check + idle: "after this loop iteration's I/O" ---------------------

// Runs `cb` once after the current loop iteration's I/O callbacks (a check
// handle), without letting the loop block in poll first (an idle handle),
// like Node's setImmediate.  Used to batch writes.
class Immediate final : public HandleBase {
 public:
  static HandlePtr<Immediate> create(uv_loop_t* loop);
  void schedule(std::function<void()> cb);
  ~Immediate() override;

 private:
  Immediate() = default;
  uv_handle_t* raw() override { return reinterpret_cast<uv_handle_t*>(&check_); }
  void drop_callbacks() override;
  static void on_check(uv_check_t* c);
  static void on_idle(uv_idle_t*) {}
  uv_check_t check_{};
  uv_idle_t* idle_ = nullptr;  // a second handle, closed on its own
  std::function<void()> cb_;
};

// ---- read chunks -----------------------------------------------------------

// The memory one stream reads into.  Reads fill successive regions of a
// chunk; whoever still needs bytes of it (a pending uv_write of a DATA
// payload slice, say) holds a reference, so nothing is copied and nothing is
// overwritten while in use.
struct Chunk {
  explicit Chunk(size_t capacity) : data(new char[capacity]), capacity(capacity) {}
  std::unique_ptr<char[]> data;
  size_t capacity;
  size_t used = 0;
};
using ChunkRef = std::shared_ptr<Chunk>;

// ---- writes ----------------------------------------------------------------

// One uv_write: pieces either copied into the request (frame headers, HTTP
// heads, chunk sizes) or referenced (body bytes) and kept alive by holds.
// Copied bytes share one buffer (the first string moved in becomes it), and
// a copy that follows a copy extends that piece: one allocation and one
// iovec where a frame header follows a frame.
class WriteReq {
 public:
  // A request from the loop's pool of written ones, its buffers kept (no
  // allocation per write once warm), or a new one.  Stream::write() puts
  // every request it is done with back.
  static std::unique_ptr<WriteReq> take();
  // Emptied (holds released) and pooled; a big copy buffer is freed, and
  // past kPooledWriteReqs the request is.
  static void give_back(std::unique_ptr<WriteReq> req);
  static constexpr size_t kPooledWriteReqs = 64;
  static constexpr size_t kKeptCopyBytes = 16 * 1024;

  void copy(std::string_view bytes);
  void copy(std::string&& bytes);
  // Copied bytes encoded in place: `write(buffer)` appends to the copy
  // buffer (a frame, an HTTP head) and returns false, leaving it as it was,
  // to add nothing.
  template <class Write>
  bool copy_with(Write&& write) {
    size_t at = owned_.size();
    if (!write(owned_)) {
      owned_.resize(at);
      return false;
    }
    if (owned_.size() > at) add_piece({static_cast<long>(at), nullptr, owned_.size() - at});
    return true;
  }
  void ref(const char* data, size_t len);
  void hold(std::shared_ptr<const void> owner) { holds_.push_back(std::move(owner)); }
  size_t size() const { return size_; }
  bool empty() const { return pieces_.empty(); }

 private:
  friend class Stream;
  struct Piece {
    long owned;  // offset in owned_, or -1
    const char* data;
    size_t len;
  };
  void add_piece(Piece piece);
  uv_write_t req_{};
  class Stream* stream_ = nullptr;
  std::string owned_;
  std::vector<Piece> pieces_;
  std::vector<std::shared_ptr<const void>> holds_;
  size_t size_ = 0;
};

// ---- streams -----------------------------------------------------------------

class Stream : public HandleBase {
 public:
  // Bytes read: data points into `chunk`; hold the chunk to keep them.
  using ReadCb = std::function<void(const ChunkRef& chunk, const char* data, size_t len)>;
  // The stream ended: UV_EOF or an error.  Reading has stopped.
  using EndCb = std::function<void(int status)>;
  // A write finished (status 0 or an error); called only while not closing.
  using WriteDoneCb = std::function<void(int status)>;
  using ConnectionCb = std::function<void(int status)>;

  int read_start(ReadCb on_read, EndCb on_end);
  void read_stop();
  // Reading resumes with the callbacks of the last read_start().
  int read_resume();
  bool reading() const { return reading_; }

  int write(std::unique_ptr<WriteReq> req);
  size_t write_queue_size() const;
  void on_write_done(WriteDoneCb cb) { write_done_cb_ = std::move(cb); }

  // Finishes the queued writes, then sends EOF; `cb` runs after (status).
  int shutdown(std::function<void(int status)> cb);

  int listen(int backlog, ConnectionCb cb);
  int accept(Stream& client);

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(raw()); }
  const uv_stream_t* stream() const { return const_cast<Stream*>(this)->stream(); }

  static constexpr size_t kChunkSize = 64 * 1024;
  // Free chunks kept for the next reads (of any stream); more are freed.
  static constexpr size_t kPooledChunks = 16;
  // How many there are now (tests).
  static size_t pooled_chunks();

 protected:
  void drop_callbacks() override;

 private:
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_connection(uv_stream_t* server, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);

  ReadCb read_cb_;
  EndCb end_cb_;
  WriteDoneCb write_done_cb_;
  ConnectionCb connection_cb_;
  std::function<void(int)> shutdown_cb_;
  uv_shutdown_t shutdown_req_{};
  ChunkRef chunk_;
  bool reading_ = false;
};

class Tcp final : public Stream {
 public:
  static HandlePtr<Tcp> create(uv_loop_t* loop);
  int bind(const sockaddr* addr);
  // Adopts a socket created elsewhere (e.g. in another network namespace).
  int open(int fd) { return uv_tcp_open(&h_, fd); }
  // Connects; writes issued before the connection completes are queued.
  int connect(const sockaddr* addr, std::function<void(int status)> cb);
  void nodelay(bool on) { uv_tcp_nodelay(&h_, on ? 1 : 0); }
  // Leaves delayed-ACK mode, so the peer's next segments are acknowledged
  // at once (the kernel re-enters it on its own; call again per exchange).
  void quickack();

 private:
  Tcp() = default;
  uv_handle_t* raw() override { return reinterpret_cast<uv_handle_t*>(&h_); }
  void drop_callbacks() override;
  static void on_connect(uv_connect_t* req, int status);
  uv_tcp_t h_{};
  uv_connect_t connect_req_{};
  std::function<void(int)> connect_cb_;
};

class Pipe final : public Stream {
 public:
  static HandlePtr<Pipe> create(uv_loop_t* loop);
  int bind(const std::string& path);
  // Adopts a descriptor (one end of a socketpair, say).
  int open(int fd);
  uv_pipe_t* pipe() { return &h_; }

 private:
  Pipe() = default;
  uv_handle_t* raw() override { return reinterpret_cast<uv_handle_t*>(&h_); }
  uv_pipe_t h_{};
};

// ---- process -------------------------------------------------------------------

// A child process started with posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK),
// so the caller is paused only until the child execs, with no copy of its
// page tables: uv_spawn fork()s, which cost the runner 5-9 ms per cold
// start with its address space), in a session of its own (setsid: its own
// process group), its exit watched through a pidfd on a uv_poll (no
// SIGCHLD handler; Linux >= 5.3).
class Process final : public HandleBase {
 public:
  using ExitCb = std::function<void(int64_t exit_status, int term_signal)>;
  struct Options {
    const char* file = nullptr;  // an absolute path (not searched in PATH)
    char** args = nullptr;
    char** env = nullptr;
    const char* cwd = nullptr;
    // The child's stdout and stderr (closed by the caller afterwards); -1 is /dev/null.
    int stdout_fd = -1;
    int stderr_fd = -1;
  };
  static HandlePtr<Process> create(uv_loop_t* loop);
  // 0 or a negative errno (the exec's own failure included).  On failure
  // nothing runs and the owner only drops the handle.
  int spawn(const Options& options, ExitCb cb);
  int pid() const { return pid_; }
  bool exited() const { return exited_; }
  // Signals the process group the child leads (it runs setsid()).
  int kill_group(int signum) const;
  ~Process() override;

 private:
  explicit Process(uv_loop_t* loop) : loop_(loop) {}
  uv_handle_t* raw() override { return reinterpret_cast<uv_handle_t*>(&h_); }
  void drop_callbacks() override { exit_cb_ = nullptr; }
  static void on_pidfd(uv_poll_t* p, int status, int events);
  void reap_if_exited();
  void poll_for_exit();
  uv_loop_t* loop_;
  uv_poll_t h_{};
  int pidfd_ = -1;
  // Without pidfd_open (ENOSYS: kernels before 5.3, valgrind 3.19, which
  // `make bench` runs the runner under) SIGCHLD says when to waitpid, and a
  // poll that backs off from 5 ms to 1 s covers an exit before the handler
  // was in place.  (A 5 ms poll alone woke the loop 200 times a second per
  // instance: under callgrind a tenth of the runner's count per request.)
  HandlePtr<Signal> exit_signal_;
  HandlePtr<Timer> exit_poll_;
  uint64_t exit_poll_ms_ = 0;
  int pid_ = 0;
  ExitCb exit_cb_;
  bool exited_ = false;
};

}  // namespace fc
