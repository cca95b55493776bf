#include "uv_handle.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fc {

// ---- HandleBase --------------------------------------------------------------

void HandleBase::close(std::function<void()> on_closed) {
  if (state_ == State::kClosing) return;
  if (state_ == State::kUninitialized) {
    // libuv never saw this handle: nothing can call back into it.
    if (on_closed) on_closed();
    delete this;
    return;
  }
  state_ = State::kClosing;
  on_closed_ = std::move(on_closed);
  drop_callbacks();
  uv_handle_t* h = raw();
  h->data = this;
  uv_close(h, &HandleBase::on_close);
}

void HandleBase::on_close(uv_handle_t* handle) {
  auto* self = static_cast<HandleBase*>(handle->data);
  auto on_closed = std::move(self->on_closed_);
  delete self;
  if (on_closed) on_closed();
}

// ---- Timer ---------------------------------------------------------------------

HandlePtr<Timer> Timer::create(uv_loop_t* loop) {
  HandlePtr<Timer> t(new Timer());
  uv_timer_init(loop, &t->h_);
  t->h_.data = t.get();
  t->set_initialized();
  return t;
}

void Timer::start(uint64_t ms, std::function<void()> cb) {
  if (closing()) return;
  cb_ = std::move(cb);
  uv_timer_start(&h_, &Timer::on_timer, ms, 0);
}

void Timer::stop() {
  if (closing()) return;
  uv_timer_stop(&h_);
}

bool Timer::active() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(&h_)) != 0; }

void Timer::on_timer(uv_timer_t* t) {
  auto* self = static_cast<Timer*>(t->data);
  if (self->closing() || !self->cb_) return;
  // The callback may restart the timer (replacing cb_) or drop its owner.
  auto cb = std::move(self->cb_);
  self->cb_ = nullptr;
  cb();
}

// ---- Signal --------------------------------------------------------------------

HandlePtr<Signal> Signal::create(uv_loop_t* loop) {
  HandlePtr<Signal> s(new Signal());
  uv_signal_init(loop, &s->h_);
  s->h_.data = s.get();
  s->set_initialized();
  return s;
}

int Signal::start(int signum, std::function<void(int)> cb) {
  cb_ = std::move(cb);
  return uv_signal_start(&h_, &Signal::on_signal, signum);
}

void Signal::on_signal(uv_signal_t* s, int signum) {
  auto* self = static_cast<Signal*>(s->data);
  if (!self->closing() && self->cb_) self->cb_(signum);
}

// ---- Immediate ------------------------------------------------------------------

HandlePtr<Immediate> Immediate::create(uv_loop_t* loop) {
  HandlePtr<Immediate> im(new Immediate());
  uv_check_init(loop, &im->check_);
  im->check_.data = im.get();
  im->idle_ = new uv_idle_t();
  uv_idle_init(loop, im->idle_);
  im->set_initialized();
  return im;
}

Immediate::~Immediate() = default;

void Immediate::drop_callbacks() {
  cb_ = nullptr;
  uv_idle_t* idle = idle_;
  idle_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(idle), [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
}

void Immediate::schedule(std::function<void()> cb) {
  if (closing()) return;
  cb_ = std::move(cb);
  uv_check_start(&check_, &Immediate::on_check);
  uv_idle_start(idle_, &Immediate::on_idle);
}

void Immediate::on_check(uv_check_t* c) {
  auto* self = static_cast<Immediate*>(c->data);
  uv_check_stop(c);
  if (self->closing()) return;
  uv_idle_stop(self->idle_);
  auto cb = std::move(self->cb_);
  self->cb_ = nullptr;
  if (cb) cb();
}

// ---- WriteReq ----------------------------------------------------------------

void WriteReq::add_piece(Piece piece) {
  size_ += piece.len;
  if (!pieces_.empty() && piece.owned >= 0 && pieces_.back().owned >= 0 &&
      static_cast<size_t>(pieces_.back().owned) + pieces_.back().len == static_cast<size_t>(piece.owned)) {
    pieces_.back().len += piece.len;
    return;
  }
  if (pieces_.empty()) pieces_.reserve(4);  // frame, data header, body, end
  pieces_.push_back(piece);
}

namespace {

std::vector<std::unique_ptr<WriteReq>>& free_write_reqs() {
  static std::vector<std::unique_ptr<WriteReq>> reqs;
  return reqs;
}

}  // namespace

std::unique_ptr<WriteReq> WriteReq::take() {
  auto& pool = free_write_reqs();
  if (pool.empty()) return std::make_unique<WriteReq>();
  std::unique_ptr<WriteReq> req = std::move(pool.back());
  pool.pop_back();
  return req;
}

void WriteReq::give_back(std::unique_ptr<WriteReq> req) {
  auto& pool = free_write_reqs();
  if (!req || pool.size() >= kPooledWriteReqs) return;
  req->holds_.clear();
  req->pieces_.clear();
  if (req->owned_.capacity() > kKeptCopyBytes) {
    std::string().swap(req->owned_);
  } else {
    req->owned_.clear();
  }
  req->size_ = 0;
  req->stream_ = nullptr;
  req->req_ = uv_write_t{};
  pool.push_back(std::move(req));
}

void WriteReq::copy(std::string_view bytes) {
  if (bytes.empty()) return;
  long at = static_cast<long>(owned_.size());
  owned_.append(bytes);
  add_piece({at, nullptr, bytes.size()});
}

void WriteReq::copy(std::string&& bytes) {
  if (bytes.empty()) return;
  // A pooled buffer that has the room keeps it (bytes is freed either way).
  if (!owned_.empty() || owned_.capacity() >= bytes.size()) return copy(std::string_view(bytes));
  size_t len = bytes.size();
  owned_ = std::move(bytes);
  add_piece({0, nullptr, len});
}

void WriteReq::ref(const char* data, size_t len) {
  if (len == 0) return;
  size_ += len;
  pieces_.push_back({-1, data, len});
}

// ---- Stream ----------------------------------------------------------------------

void Stream::drop_callbacks() {
  read_cb_ = nullptr;
  end_cb_ = nullptr;
  write_done_cb_ = nullptr;
  connection_cb_ = nullptr;
  shutdown_cb_ = nullptr;
  reading_ = false;
}

int Stream::read_start(ReadCb on_read, EndCb on_end) {
  read_cb_ = std::move(on_read);
  end_cb_ = std::move(on_end);
  return read_resume();
}

int Stream::read_resume() {
  if (closing()) return UV_EINVAL;
  if (reading_) return 0;
  stream()->data = this;
  int rc = uv_read_start(stream(), &Stream::on_alloc, &Stream::on_read);
  if (rc == 0) reading_ = true;
  return rc;
}

void Stream::read_stop() {
  if (closing() || !reading_) return;
  uv_read_stop(stream());
  reading_ = false;
}

namespace {

// Chunks no stream reads into and nobody holds, for the next read of any
// stream (the loop is single-threaded).  An idle stream holds no read
// memory, as in nginx: a thousand quiet streams cost no chunk each.
std::vector<ChunkRef>& free_chunks() {
  static std::vector<ChunkRef> chunks;
  return chunks;
}

ChunkRef take_chunk() {
  auto& pool = free_chunks();
  if (pool.empty()) return std::make_shared<Chunk>(Stream::kChunkSize);
  ChunkRef c = std::move(pool.back());
  pool.pop_back();
  c->used = 0;
  return c;
}

void give_back(ChunkRef&& c) {
  auto& pool = free_chunks();
  if (pool.size() < Stream::kPooledChunks) pool.push_back(std::move(c));
  c.reset();
}

}  // namespace

size_t Stream::pooled_chunks() { return free_chunks().size(); }

void Stream::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Stream*>(h->data);
  constexpr size_t kMinRead = 4096;
  ChunkRef& c = self->chunk_;
  if (c && c.use_count() == 1) c->used = 0;  // nobody else holds any of it
  if (!c || c->capacity - c->used < kMinRead) c = take_chunk();
  buf->base = c->data.get() + c->used;
  buf->len = c->capacity - c->used;
}

void Stream::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Stream*>(s->data);
  (void)buf;
  if (self->closing()) return;
  if (nread == 0) {  // EAGAIN: nothing came after all
    if (self->chunk_ && self->chunk_.use_count() == 1) give_back(std::move(self->chunk_));
    self->chunk_.reset();
    return;
  }
  if (nread < 0) {
    uv_read_stop(s);
    self->reading_ = false;
    if (self->chunk_.use_count() == 1) give_back(std::move(self->chunk_));
    self->chunk_.reset();
    auto cb = std::move(self->end_cb_);
    self->end_cb_ = nullptr;
    if (cb) cb(static_cast<int>(nread));
    return;
  }
  // Keep the chunk alive across the callback even if it drops the stream.
  ChunkRef chunk = self->chunk_;
  const char* data = chunk->data.get() + chunk->used;
  chunk->used += static_cast<size_t>(nread);
  if (self->read_cb_) self->read_cb_(chunk, data, static_cast<size_t>(nread));
  // Everything read was handed on and nobody holds it: the stream waits for
  // its next bytes without memory of its own.
  if (self->chunk_ == chunk && chunk.use_count() == 2) {
    self->chunk_.reset();
    give_back(std::move(chunk));
  }
}

int Stream::write(std::unique_ptr<WriteReq> req) {
  if (closing()) return UV_EPIPE;
  if (req->empty()) {
    WriteReq::give_back(std::move(req));
    return 0;
  }
  // libuv copies the buffer list (uv_write, uv_try_write): a short one lives
  // on the stack, not in an allocation per write.
  constexpr size_t kStackBufs = 8;
  uv_buf_t stack_bufs[kStackBufs];
  std::vector<uv_buf_t> heap_bufs;
  uv_buf_t* bufs = stack_bufs;
  if (req->pieces_.size() > kStackBufs) {
    heap_bufs.resize(req->pieces_.size());
    bufs = heap_bufs.data();
  }
  size_t nbufs = 0;
  for (const auto& p : req->pieces_) {
    const char* data = p.owned >= 0 ? req->owned_.data() + p.owned : p.data;
    bufs[nbufs++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(p.len));
  }
  // Most writes fit the socket buffer: written now, with no request, no
  // callback and no epoll change.  Only a remainder is queued.
  size_t first = 0;
  if (uv_stream_get_write_queue_size(stream()) == 0) {
    int n = uv_try_write(stream(), bufs, static_cast<unsigned>(nbufs));
    if (n == static_cast<int>(req->size_)) {
      WriteReq::give_back(std::move(req));
      return 0;
    }
    if (n > 0) {
      size_t left = static_cast<size_t>(n);
      while (left >= bufs[first].len) left -= bufs[first++].len;
      bufs[first].base += left;
      bufs[first].len -= static_cast<unsigned>(left);
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      return n;
    }
  }
  req->stream_ = this;
  req->req_.data = req.get();
  int rc = uv_write(&req->req_, stream(), bufs + first, static_cast<unsigned>(nbufs - first), &Stream::on_write);
  if (rc == 0) req.release();  // freed in on_write
  return rc;
}

void Stream::on_write(uv_write_t* r, int status) {
  std::unique_ptr<WriteReq> req(static_cast<WriteReq*>(r->data));
  Stream* self = req->stream_;
  WriteReq::give_back(std::move(req));  // releases the held buffers before telling the owner
  // libuv cancels pending writes (UV_ECANCELED) before the close callback,
  // so `self` is still alive here; the owner may not be.
  if (!self->closing() && self->write_done_cb_) self->write_done_cb_(status);
}

size_t Stream::write_queue_size() const { return uv_stream_get_write_queue_size(stream()); }

int Stream::shutdown(std::function<void(int)> cb) {
  if (closing()) return UV_EINVAL;
  shutdown_cb_ = std::move(cb);
  shutdown_req_.data = this;
  return uv_shutdown(&shutdown_req_, stream(), &Stream::on_shutdown);
}

void Stream::on_shutdown(uv_shutdown_t* req, int status) {
  auto* self = static_cast<Stream*>(req->data);
  if (self->closing() || !self->shutdown_cb_) return;
  auto cb = std::move(self->shutdown_cb_);
  self->shutdown_cb_ = nullptr;
  cb(status);
}

int Stream::listen(int backlog, ConnectionCb cb) {
  connection_cb_ = std::move(cb);
  stream()->data = this;
  return uv_listen(stream(), backlog, &Stream::on_connection);
}

void Stream::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Stream*>(server->data);
  if (!self->closing() && self->connection_cb_) self->connection_cb_(status);
}

int Stream::accept(Stream& client) { return uv_accept(stream(), client.stream()); }

// ---- Tcp ---------------------------------------------------------------------------

HandlePtr<Tcp> Tcp::create(uv_loop_t* loop) {
  HandlePtr<Tcp> t(new Tcp());
  uv_tcp_init(loop, &t->h_);
  t->h_.data = t.get();
  t->set_initialized();
  return t;
}

void Tcp::quickack() {
  uv_os_fd_t fd;
  if (uv_fileno(raw(), &fd) != 0) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

int Tcp::bind(const sockaddr* addr) { return uv_tcp_bind(&h_, addr, 0); }

int Tcp::connect(const sockaddr* addr, std::function<void(int)> cb) {
  connect_cb_ = std::move(cb);
  connect_req_.data = this;
  return uv_tcp_connect(&connect_req_, &h_, addr, &Tcp::on_connect);
}

void Tcp::drop_callbacks() {
  Stream::drop_callbacks();
  connect_cb_ = nullptr;
}

void Tcp::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<Tcp*>(req->data);
  if (self->closing() || !self->connect_cb_) return;
  auto cb = std::move(self->connect_cb_);
  self->connect_cb_ = nullptr;
  cb(status);
}

// ---- Pipe ----------------------------------------------------------------------------

HandlePtr<Pipe> Pipe::create(uv_loop_t* loop) {
  HandlePtr<Pipe> p(new Pipe());
  uv_pipe_init(loop, &p->h_, 0);
  p->h_.data = p.get();
  p->set_initialized();
  return p;
}

int Pipe::bind(const std::string& path) { return uv_pipe_bind(&h_, path.c_str()); }

int Pipe::open(int fd) { return uv_pipe_open(&h_, fd); }

// ---- Process -----------------------------------------------------------------------------

HandlePtr<Process> Process::create(uv_loop_t* loop) { return HandlePtr<Process>(new Process(loop)); }

int Process::spawn(const Options& options, ExitCb cb) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  // As uv_spawn's child did: stdin from /dev/null, the pipes on 1 and 2,
  // every signal at its default and none blocked, a session of its own.
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (options.stdout_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, options.stdout_fd, 1);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  }
  if (options.stderr_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, options.stderr_fd, 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  if (options.cwd != nullptr) posix_spawn_file_actions_addchdir_np(&actions, options.cwd);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, options.file, &actions, &attr, options.args, options.env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return -rc;

  // The child is ours until waited for, so its pid cannot be reused before
  // the pidfd refers to it.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0 && errno == ENOSYS) {
    pid_ = pid;
    exit_cb_ = std::move(cb);
    exit_signal_ = Signal::create(loop_);
    exit_signal_->start(SIGCHLD, [this](int) { reap_if_exited(); });
    exit_poll_ = Timer::create(loop_);
    poll_for_exit();
    return 0;
  }
  int poll_rc = pidfd >= 0 ? uv_poll_init(loop_, &h_, pidfd) : -errno;
  if (poll_rc == 0) {
    set_initialized();
    h_.data = this;
    pidfd_ = pidfd;
    poll_rc = uv_poll_start(&h_, UV_READABLE, &Process::on_pidfd);
  }
  if (poll_rc != 0) {
    // Cannot watch it: it must not run unwatched.
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    if (pidfd >= 0 && pidfd_ < 0) ::close(pidfd);
    exited_ = true;
    return poll_rc;
  }
  pid_ = pid;
  exit_cb_ = std::move(cb);
  return 0;
}

Process::~Process() {
  // After uv_close: libuv no longer polls the descriptor.
  if (pidfd_ >= 0) ::close(pidfd_);
  // Dropped before its exit was seen: reap it if it is a zombie already.
  if (!exited_ && pid_ > 0) waitpid(pid_, nullptr, WNOHANG);
}

int Process::kill_group(int signum) const {
  if (pid_ <= 0) return UV_ESRCH;
  return ::kill(-pid_, signum) == 0 ? 0 : -errno;
}

void Process::on_pidfd(uv_poll_t* p, int, int) { static_cast<Process*>(p->data)->reap_if_exited(); }

void Process::poll_for_exit() {
  constexpr uint64_t kFirstExitPollMs = 5;
  constexpr uint64_t kLastExitPollMs = 1000;
  exit_poll_ms_ = exit_poll_ms_ == 0 ? kFirstExitPollMs : std::min(exit_poll_ms_ * 2, kLastExitPollMs);
  exit_poll_->start(exit_poll_ms_, [this] {
    reap_if_exited();
    if (!exited_) poll_for_exit();
  });
}

void Process::reap_if_exited() {
  Process* self = this;
  if (self->exited_) return;
  int status = 0;
  pid_t done = waitpid(self->pid_, &status, WNOHANG);
  if (done == 0 || (done < 0 && errno == EINTR)) return;  // not yet
  self->exited_ = true;
  if (self->pidfd_ >= 0) uv_poll_stop(&self->h_);
  if (self->exit_poll_) self->exit_poll_->stop();
  int64_t exit_status = 0;
  int term_signal = 0;
  if (done == self->pid_) {
    if (WIFEXITED(status)) exit_status = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) term_signal = WTERMSIG(status);
  }
  if (!self->closing() && self->exit_cb_) {
    auto cb = std::move(self->exit_cb_);
    self->exit_cb_ = nullptr;
    cb(exit_status, term_signal);
  }
}

}  // namespace fc
