// One request in flight: the only thing that moves bytes between a client
// connection (nginx) and an instance connection.  Owned by its
// ClientConnection; observed by the function queue while waiting and by the
// instance connection while running.  It ends when its response side ended
// (RESPONSE + DATA… + END_STREAM, or one ERROR frame); the client connection
// then drains what is left of the request body.  The client connection
// hands a finished exchange to the DeferredDeleter: it ends inside its own
// callbacks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "deferred_delete.h"
#include "frames.h"
#include "http_head.h"
#include "response_sink.h"
#include "uv_handle.h"

namespace fc {

class ClientConnection;
class Function;
struct FunctionConfig;
struct FunctionVersion;
class Instance;
class InstanceConnection;

class Exchange final : public ResponseSink, public DeferredDeletable {
 public:
  Exchange(ClientConnection& client, Function& function, RequestHead&& head, bool request_ended);
  ~Exchange() override;

  const std::string& request_id() const { return head_.request_id; }
  Function& function() const { return function_; }

  // Client side.
  void on_request_body(const ChunkRef& chunk, const char* data, size_t len);
  void on_request_end();
  void on_client_gone();
  void on_client_drained();
  // Bytes waiting to be written towards the instance (backpressure).
  size_t request_backlog() const;

  // Scheduler side.
  uint64_t enqueued_ms = 0;
  // Function::ready_serials() when the request arrived: an instance that
  // became ready later was started (or still starting) while it waited.
  uint64_t ready_serials_seen = 0;
  bool cold_start() const { return cold_start_; }
  void start(Instance& instance, InstanceConnection& conn);
  // Fails the exchange with a gateway error (ERROR frame, END_STREAM).
  void fail(GatewayError&& error);

  // Instance side (ResponseSink).
  void on_response_head(int status, HeaderViews& headers) override;
  void on_response_body(const ChunkRef& chunk, const char* data, size_t len) override;
  void on_response_end() override;
  void on_response_failed(GatewayError&& error) override;
  void on_request_drained() override;

 private:
  struct Slice {
    ChunkRef chunk;
    const char* data;
    size_t len;
  };
  void detach_instance();
  void finish();
  // Counts the request once in its function's metrics: `code` is the
  // status class or the gateway error code.
  void record(const std::string& code);
  // The function's timeout, bounded by the REQUEST's deadline_ms.
  uint64_t instance_timeout_ms() const;
  // The config of the version that serves this request: the instance's,
  // once one took it; the function's serving one before.
  const FunctionConfig& config() const;

  ClientConnection& client_;
  Function& function_;
  RequestHead head_;  // its request_id is never empty
  bool request_ended_;
  uint64_t request_end_ms_;  // when nginx finished sending (its read timer starts)

  std::string instance_id_;
  std::shared_ptr<const FunctionVersion> version_;  // set by start()
  InstanceConnection* conn_ = nullptr;
  std::vector<Slice> pending_;  // body bytes that arrived before an instance took the exchange
  size_t pending_bytes_ = 0;

  bool response_started_ = false;
  bool function_error_ = false;
  bool finished_ = false;
  bool invoke_logged_ = false;
  bool cold_start_ = false;  // $fc_cold_start: served by an instance it waited for
  uint64_t created_ns_;      // uv_hrtime() at arrival, for fc_request_duration_seconds
  int response_status_ = 0;
  bool recorded_ = false;
};

}  // namespace fc
