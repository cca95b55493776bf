// Unit tests for the wire-protocol codec (src/fc_proto.c, DESIGN §3).

#include <gtest/gtest.h>
#include <msgpack.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fc_proto.h"

namespace {

using Bytes = std::vector<uint8_t>;

fc_str_t S(std::string_view s) { return fc_str_t{s.data(), s.size()}; }

std::string_view V(const fc_str_t &s) {
  return s.data ? std::string_view(s.data, s.len) : std::string_view();
}

// The caller's allocator: records every block so tests can count them.
struct Arena {
  std::vector<std::unique_ptr<char[]>> blocks;
  bool fail = false;

  static void *Alloc(void *ctx, size_t size) {
    auto *a = static_cast<Arena *>(ctx);
    if (a->fail) return nullptr;
    a->blocks.emplace_back(new char[size]);
    return a->blocks.back().get();
  }
};

// Builds msgpack by hand, for payloads the encoders would never produce.
class Mp {
 public:
  Mp() {
    msgpack_sbuffer_init(&sbuf_);
    msgpack_packer_init(&pk_, &sbuf_, msgpack_sbuffer_write);
  }
  ~Mp() { msgpack_sbuffer_destroy(&sbuf_); }

  Mp &Map(size_t n) { msgpack_pack_map(&pk_, n); return *this; }
  Mp &Array(size_t n) { msgpack_pack_array(&pk_, n); return *this; }
  Mp &Str(std::string_view s) {
    msgpack_pack_str_with_body(&pk_, s.data(), s.size());
    return *this;
  }
  Mp &Bin(std::string_view s) {
    msgpack_pack_bin_with_body(&pk_, s.data(), s.size());
    return *this;
  }
  Mp &Uint(uint64_t v) { msgpack_pack_uint64(&pk_, v); return *this; }
  Mp &Int(int64_t v) { msgpack_pack_int64(&pk_, v); return *this; }
  Mp &Bool(bool v) {
    if (v) msgpack_pack_true(&pk_); else msgpack_pack_false(&pk_);
    return *this;
  }
  Mp &Nil() { msgpack_pack_nil(&pk_); return *this; }
  Mp &Header(std::string_view n, std::string_view v) {
    return Array(2).Str(n).Str(v);
  }

  Bytes bytes() const {
    return Bytes(sbuf_.data, sbuf_.data + sbuf_.size);
  }

 private:
  msgpack_sbuffer sbuf_;
  msgpack_packer pk_;
};

std::vector<fc_header_t> SampleHeaders() {
  return {
      {S("Host"), S("example.com")},
      {S("Accept"), S("*/*")},
      {S("X-Dup"), S("one")},
      {S("X-Dup"), S("two")},
      {S("X-Empty"), S("")},
  };
}

fc_request_t SampleRequest(const std::vector<fc_header_t> &headers) {
  fc_request_t r{};
  r.function = S("hello_world-1");
  r.method = S("POST");
  r.uri = S("/path/to?q=1&r=%20x");
  r.version = S("HTTP/1.1");
  r.headers = const_cast<fc_header_t *>(headers.data());
  r.nheaders = headers.size();
  r.remote_addr = S("2001:db8::1");
  r.remote_port = 65535;
  r.scheme = S("https");
  r.host = S("example.com");
  r.request_id = S("0123456789abcdef0123456789abcdef");
  r.content_length = INT64_MAX;
  r.deadline_ms = UINT64_MAX;
  return r;
}

Bytes EncodeRequest(const fc_request_t &r) {
  Bytes buf(fc_request_size_bound(&r));
  size_t n = 0;
  EXPECT_EQ(fc_request_encode(&r, buf.data(), buf.size(), &n), FC_OK);
  buf.resize(n);
  return buf;
}

Bytes EncodeResponse(const fc_response_t &r) {
  Bytes buf(fc_response_size_bound(&r));
  size_t n = 0;
  EXPECT_EQ(fc_response_encode(&r, buf.data(), buf.size(), &n), FC_OK);
  buf.resize(n);
  return buf;
}

Bytes EncodeError(const fc_error_t &e) {
  Bytes buf(fc_error_size_bound(&e));
  size_t n = 0;
  EXPECT_EQ(fc_error_encode(&e, buf.data(), buf.size(), &n), FC_OK);
  buf.resize(n);
  return buf;
}

Bytes Frame(uint8_t type, uint16_t flags, const Bytes &payload) {
  Bytes out(FC_FRAME_HEADER_SIZE);
  fc_frame_header_encode(out.data(), type, flags,
                         static_cast<uint32_t>(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void ExpectSameHeaders(const fc_header_t *got, size_t ngot,
                       const std::vector<fc_header_t> &want) {
  ASSERT_EQ(ngot, want.size());
  for (size_t i = 0; i < ngot; i++) {
    EXPECT_EQ(V(got[i].name), V(want[i].name)) << i;
    EXPECT_EQ(V(got[i].value), V(want[i].value)) << i;
  }
}

int DecodeRequest(const Bytes &payload, fc_request_t *r, Arena *arena) {
  return fc_request_decode(payload.data(), payload.size(), r, Arena::Alloc,
                           arena);
}

int DecodeResponse(const Bytes &payload, fc_response_t *r, Arena *arena) {
  return fc_response_decode(payload.data(), payload.size(), r, Arena::Alloc,
                            arena);
}

int DecodeError(const Bytes &payload, fc_error_t *e) {
  return fc_error_decode(payload.data(), payload.size(), e);
}

// A minimal REQUEST map with the three required keys plus `extra` pairs.
Bytes RequestWith(size_t extra_pairs, const std::function<void(Mp &)> &extra) {
  Mp mp;
  mp.Map(3 + extra_pairs)
      .Str("function").Str("f")
      .Str("method").Str("GET")
      .Str("uri").Str("/");
  extra(mp);
  return mp.bytes();
}

// ---- frame header ----------------------------------------------------------

TEST(FrameHeader, EncodesBigEndianFlagsAndLength) {
  uint8_t b[FC_FRAME_HEADER_SIZE];
  fc_frame_header_encode(b, FC_FRAME_DATA, 0x0102, 0x03040506);
  const uint8_t want[] = {1, 3, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06};
  EXPECT_EQ(0, memcmp(b, want, sizeof(want)));
}

TEST(FrameHeader, RoundTripsEveryFrameType) {
  const uint8_t types[] = {FC_FRAME_REQUEST, FC_FRAME_RESPONSE, FC_FRAME_DATA,
                           FC_FRAME_ERROR};
  for (uint8_t type : types) {
    for (uint16_t flags : {0, FC_FLAG_END_STREAM, 0xffff}) {
      for (uint32_t len : {0u, 1u, 4096u}) {
        uint8_t b[FC_FRAME_HEADER_SIZE];
        fc_frame_header_encode(b, type, static_cast<uint16_t>(flags), len);
        fc_frame_header_t h{};
        ASSERT_EQ(fc_frame_header_decode(b, &h), FC_OK);
        EXPECT_EQ(h.version, FC_PROTO_VERSION);
        EXPECT_EQ(h.type, type);
        EXPECT_EQ(h.flags, flags);
        EXPECT_EQ(h.length, len);
      }
    }
  }
}

TEST(FrameHeader, RejectsUnknownVersion) {
  for (uint8_t version : {0, 2, 0xff}) {
    uint8_t b[FC_FRAME_HEADER_SIZE];
    fc_frame_header_encode(b, FC_FRAME_DATA, 0, 0);
    b[0] = version;
    fc_frame_header_t h{};
    EXPECT_EQ(fc_frame_header_decode(b, &h), FC_EVERSION);
    EXPECT_EQ(h.version, version);  // still reported, for the log line
  }
}

TEST(FrameHeader, RejectsUnknownType) {
  for (uint8_t type : {0, 5, 0x7f, 0xff}) {
    uint8_t b[FC_FRAME_HEADER_SIZE];
    fc_frame_header_encode(b, type, 0, 0);
    fc_frame_header_t h{};
    EXPECT_EQ(fc_frame_header_decode(b, &h), FC_ETYPE) << int(type);
  }
}

TEST(FrameHeader, DataPayloadAtLimitAcceptedAndOneOverRejected) {
  uint8_t b[FC_FRAME_HEADER_SIZE];
  fc_frame_header_t h{};
  fc_frame_header_encode(b, FC_FRAME_DATA, 0, FC_MAX_FRAME_PAYLOAD);
  EXPECT_EQ(fc_frame_header_decode(b, &h), FC_OK);
  fc_frame_header_encode(b, FC_FRAME_DATA, 0, FC_MAX_FRAME_PAYLOAD + 1);
  EXPECT_EQ(fc_frame_header_decode(b, &h), FC_ETOOBIG);
  fc_frame_header_encode(b, FC_FRAME_DATA, 0, UINT32_MAX);
  EXPECT_EQ(fc_frame_header_decode(b, &h), FC_ETOOBIG);
}

TEST(FrameHeader, MetaPayloadAtLimitAcceptedAndOneOverRejected) {
  for (uint8_t type : {FC_FRAME_REQUEST, FC_FRAME_RESPONSE, FC_FRAME_ERROR}) {
    uint8_t b[FC_FRAME_HEADER_SIZE];
    fc_frame_header_t h{};
    fc_frame_header_encode(b, type, 0, FC_MAX_META_PAYLOAD);
    EXPECT_EQ(fc_frame_header_decode(b, &h), FC_OK);
    fc_frame_header_encode(b, type, 0, FC_MAX_META_PAYLOAD + 1);
    EXPECT_EQ(fc_frame_header_decode(b, &h), FC_ETOOBIG);
  }
}

TEST(FrameHeader, StrerrorNamesEveryStatus) {
  for (int s = FC_OK; s >= FC_ETOOMANY; s--) {
    EXPECT_STRNE(fc_strerror(s), "unknown error") << s;
  }
  EXPECT_STREQ(fc_strerror(-100), "unknown error");
}

// ---- parser ------------------------------------------------------------------

// Records the callbacks as text, and can ask to pause at a chosen event.
struct Recorder {
  std::vector<std::string> events;
  std::vector<fc_frame_header_t> headers;
  std::vector<Bytes> payloads;  // one per frame, slices joined
  std::vector<std::pair<const uint8_t *, size_t>> slices;
  int pause_at = -1;            // event index to pause at

  static Recorder *Of(fc_parser_t *p) { return static_cast<Recorder *>(p->data); }

  int Pause() {
    return static_cast<int>(events.size()) - 1 == pause_at ? 1 : 0;
  }

  static int OnHeader(fc_parser_t *p, const fc_frame_header_t *h) {
    Recorder *r = Of(p);
    r->headers.push_back(*h);
    r->payloads.emplace_back();
    r->events.push_back("header " + std::to_string(h->type) + " " +
                        std::to_string(h->length));
    return r->Pause();
  }
  static int OnPayload(fc_parser_t *p, const uint8_t *d, size_t n) {
    Recorder *r = Of(p);
    r->payloads.back().insert(r->payloads.back().end(), d, d + n);
    r->slices.emplace_back(d, n);
    r->events.push_back("payload " + std::to_string(n));
    return r->Pause();
  }
  static int OnFrameEnd(fc_parser_t *p) {
    Recorder *r = Of(p);
    r->events.push_back("end");
    return r->Pause();
  }
};

const fc_parser_callbacks_t kRecorderCallbacks = {
    Recorder::OnHeader, Recorder::OnPayload, Recorder::OnFrameEnd};

// One exchange's worth of frames: REQUEST, two DATA, empty DATA END_STREAM.
Bytes SampleStream() {
  auto headers = SampleHeaders();
  Bytes stream = Frame(FC_FRAME_REQUEST, 0, EncodeRequest(SampleRequest(headers)));
  Bytes a = Frame(FC_FRAME_DATA, 0, Bytes{'h', 'e', 'l', 'l', 'o'});
  Bytes b = Frame(FC_FRAME_DATA, 0, Bytes{' ', 'w'});
  Bytes c = Frame(FC_FRAME_DATA, FC_FLAG_END_STREAM, Bytes{});
  for (const Bytes *f : {&a, &b, &c}) stream.insert(stream.end(), f->begin(), f->end());
  return stream;
}

// Merges adjacent payload events so slicing does not change the comparison.
std::vector<std::string> Frames(const Recorder &r) {
  std::vector<std::string> out;
  size_t frame = 0;
  for (const auto &e : r.events) {
    if (e.rfind("payload", 0) == 0) continue;
    if (e == "end") {
      out.push_back("end " + std::to_string(r.payloads[frame++].size()));
    } else {
      out.push_back(e);
    }
  }
  return out;
}

TEST(Parser, WholeStreamGivesHeaderPayloadEndPerFrame) {
  Bytes stream = SampleStream();
  Recorder r;
  fc_parser_t p;
  fc_parser_init(&p, &r);
  EXPECT_EQ(fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size()),
            stream.size());
  EXPECT_EQ(p.error, 0);
  EXPECT_EQ(p.paused, 0);
  ASSERT_EQ(r.headers.size(), 4u);
  EXPECT_EQ(r.headers[0].type, FC_FRAME_REQUEST);
  EXPECT_EQ(r.headers[3].flags, FC_FLAG_END_STREAM);
  EXPECT_EQ(r.payloads[1], (Bytes{'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(r.events.back(), "end");
  EXPECT_EQ(r.events[r.events.size() - 2], "header 3 0");  // no payload event
}

TEST(Parser, OneByteAtATimeGivesTheSameFrames) {
  Bytes stream = SampleStream();
  Recorder whole, bytewise;
  fc_parser_t p;
  fc_parser_init(&p, &whole);
  fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size());

  fc_parser_init(&p, &bytewise);
  for (size_t i = 0; i < stream.size(); i++) {
    ASSERT_EQ(fc_parser_execute(&p, &kRecorderCallbacks, &stream[i], 1), 1u) << i;
  }
  EXPECT_EQ(p.error, 0);
  EXPECT_EQ(Frames(bytewise), Frames(whole));
  EXPECT_EQ(bytewise.payloads, whole.payloads);

  // and the REQUEST reassembled from single bytes still decodes
  Arena arena;
  fc_request_t req{};
  ASSERT_EQ(DecodeRequest(bytewise.payloads[0], &req, &arena), FC_OK);
  EXPECT_EQ(V(req.function), "hello_world-1");
}

TEST(Parser, PayloadSlicesPointIntoCallerBuffer) {
  Bytes stream = Frame(FC_FRAME_DATA, 0, Bytes(100, 'x'));
  Recorder r;
  fc_parser_t p;
  fc_parser_init(&p, &r);
  fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), 50);
  fc_parser_execute(&p, &kRecorderCallbacks, stream.data() + 50, stream.size() - 50);
  ASSERT_EQ(r.slices.size(), 2u);
  EXPECT_EQ(r.slices[0].first, stream.data() + FC_FRAME_HEADER_SIZE);
  EXPECT_EQ(r.slices[0].second, 50u - FC_FRAME_HEADER_SIZE);
  EXPECT_EQ(r.slices[1].first, stream.data() + 50);
  EXPECT_EQ(r.slices[1].second, stream.size() - 50);
}

TEST(Parser, ZeroLengthPayloadGivesHeaderThenFrameEnd) {
  Bytes stream = Frame(FC_FRAME_DATA, FC_FLAG_END_STREAM, Bytes{});
  Recorder r;
  fc_parser_t p;
  fc_parser_init(&p, &r);
  EXPECT_EQ(fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size()),
            stream.size());
  EXPECT_EQ(r.events, (std::vector<std::string>{"header 3 0", "end"}));
}

TEST(Parser, NullCallbacksAreSkipped) {
  Bytes stream = SampleStream();
  fc_parser_callbacks_t none = {nullptr, nullptr, nullptr};
  fc_parser_t p;
  fc_parser_init(&p, nullptr);
  EXPECT_EQ(fc_parser_execute(&p, &none, stream.data(), stream.size()), stream.size());
  EXPECT_EQ(p.error, 0);
}

// Pauses at every event in turn; resuming with the rest of the buffer must
// give the same callbacks as an uninterrupted run.
TEST(Parser, PauseAtAnyCallbackThenResumeLosesNothing) {
  Bytes stream = SampleStream();
  Recorder whole;
  fc_parser_t p;
  fc_parser_init(&p, &whole);
  fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size());

  for (size_t at = 0; at < whole.events.size(); at++) {
    Recorder r;
    r.pause_at = static_cast<int>(at);
    fc_parser_init(&p, &r);
    size_t used = fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size());
    ASSERT_EQ(p.paused, 1) << at;
    EXPECT_EQ(r.events.size(), at + 1) << "stopped right at the pausing callback";
    used += fc_parser_execute(&p, &kRecorderCallbacks, stream.data() + used,
                              stream.size() - used);
    EXPECT_EQ(p.paused, 0);
    EXPECT_EQ(used, stream.size());
    EXPECT_EQ(r.events, whole.events) << "pause at " << at;
  }
}

TEST(Parser, PausedZeroLengthFrameEndsOnResumeWithoutInput) {
  Bytes stream = Frame(FC_FRAME_DATA, FC_FLAG_END_STREAM, Bytes{});
  Recorder r;
  r.pause_at = 0;  // on_header
  fc_parser_t p;
  fc_parser_init(&p, &r);
  EXPECT_EQ(fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size()),
            stream.size());
  EXPECT_EQ(p.paused, 1);
  EXPECT_EQ(r.events, (std::vector<std::string>{"header 3 0"}));
  EXPECT_EQ(fc_parser_execute(&p, &kRecorderCallbacks, nullptr, 0), 0u);
  EXPECT_EQ(r.events, (std::vector<std::string>{"header 3 0", "end"}));
}

TEST(Parser, PauseInLastPayloadSliceStillEndsFrameOnResume) {
  Bytes stream = Frame(FC_FRAME_DATA, 0, Bytes{'a', 'b'});
  Recorder r;
  r.pause_at = 1;  // on_payload
  fc_parser_t p;
  fc_parser_init(&p, &r);
  EXPECT_EQ(fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size()),
            stream.size());
  EXPECT_EQ(p.paused, 1);
  EXPECT_EQ(fc_parser_execute(&p, &kRecorderCallbacks, nullptr, 0), 0u);
  EXPECT_EQ(r.events, (std::vector<std::string>{"header 3 2", "payload 2", "end"}));
}

TEST(Parser, BadVersionSetsErrorAndStops) {
  Bytes stream = Frame(FC_FRAME_DATA, 0, Bytes{'a'});
  stream[0] = 2;
  Recorder r;
  fc_parser_t p;
  fc_parser_init(&p, &r);
  fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size());
  EXPECT_EQ(p.error, FC_EVERSION);
  EXPECT_TRUE(r.events.empty());
  // the error sticks: nothing more is consumed
  EXPECT_EQ(fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size()), 0u);
}

TEST(Parser, BadTypeAndOversizeLengthSetError) {
  Bytes bad_type = Frame(9, 0, Bytes{});
  Bytes too_big(FC_FRAME_HEADER_SIZE);
  fc_frame_header_encode(too_big.data(), FC_FRAME_REQUEST, 0, FC_MAX_META_PAYLOAD + 1);
  fc_parser_t p;
  Recorder r;
  fc_parser_init(&p, &r);
  fc_parser_execute(&p, &kRecorderCallbacks, bad_type.data(), bad_type.size());
  EXPECT_EQ(p.error, FC_ETYPE);
  fc_parser_init(&p, &r);
  for (uint8_t b : too_big) fc_parser_execute(&p, &kRecorderCallbacks, &b, 1);
  EXPECT_EQ(p.error, FC_ETOOBIG);
  EXPECT_TRUE(r.events.empty());
}

TEST(Parser, DataFrameAtMaxPayloadIsDelivered) {
  Bytes stream = Frame(FC_FRAME_DATA, FC_FLAG_END_STREAM, Bytes(FC_MAX_FRAME_PAYLOAD, 7));
  Recorder r;
  fc_parser_t p;
  fc_parser_init(&p, &r);
  EXPECT_EQ(fc_parser_execute(&p, &kRecorderCallbacks, stream.data(), stream.size()),
            stream.size());
  EXPECT_EQ(p.error, 0);
  ASSERT_EQ(r.payloads.size(), 1u);
  EXPECT_EQ(r.payloads[0].size(), static_cast<size_t>(FC_MAX_FRAME_PAYLOAD));
  EXPECT_EQ(r.events.back(), "end");
}

// ---- message round trips --------------------------------------------------

TEST(Request, RoundTripsEveryField) {
  auto headers = SampleHeaders();
  fc_request_t in = SampleRequest(headers);
  Bytes payload = EncodeRequest(in);
  EXPECT_LE(payload.size(), fc_request_size_bound(&in));

  Arena arena;
  fc_request_t out{};
  ASSERT_EQ(DecodeRequest(payload, &out, &arena), FC_OK);
  EXPECT_EQ(V(out.function), V(in.function));
  EXPECT_EQ(V(out.method), V(in.method));
  EXPECT_EQ(V(out.uri), V(in.uri));
  EXPECT_EQ(V(out.version), V(in.version));
  ExpectSameHeaders(out.headers, out.nheaders, headers);
  EXPECT_EQ(V(out.remote_addr), V(in.remote_addr));
  EXPECT_EQ(out.remote_port, in.remote_port);
  EXPECT_EQ(V(out.scheme), V(in.scheme));
  EXPECT_EQ(V(out.host), V(in.host));
  EXPECT_EQ(V(out.request_id), V(in.request_id));
  EXPECT_EQ(out.content_length, in.content_length);
  EXPECT_EQ(out.deadline_ms, in.deadline_ms);
  EXPECT_EQ(arena.blocks.size(), 1u) << "one allocation: the header array";
}

TEST(Request, UnknownContentLengthRoundTripsAsMinusOne) {
  fc_request_t in{};
  in.function = S("f");
  in.method = S("GET");
  in.uri = S("/");
  in.content_length = -1;
  Bytes payload = EncodeRequest(in);
  Arena arena;
  fc_request_t out{};
  ASSERT_EQ(DecodeRequest(payload, &out, &arena), FC_OK);
  EXPECT_EQ(out.content_length, -1);
  EXPECT_EQ(out.nheaders, 0u);
  EXPECT_EQ(out.headers, nullptr);
  EXPECT_TRUE(arena.blocks.empty()) << "no headers, no allocation";
}

TEST(Request, EncoderWritesAllKeys) {
  fc_request_t in{};
  Bytes payload = EncodeRequest(in);
  msgpack_zone zone;
  msgpack_zone_init(&zone, 1024);
  msgpack_object obj;
  size_t off = 0;
  ASSERT_EQ(msgpack_unpack(reinterpret_cast<const char *>(payload.data()), payload.size(),
                           &off, &zone, &obj),
            MSGPACK_UNPACK_SUCCESS);
  ASSERT_EQ(obj.type, MSGPACK_OBJECT_MAP);
  std::vector<std::string> keys;
  for (uint32_t i = 0; i < obj.via.map.size; i++) {
    keys.emplace_back(obj.via.map.ptr[i].key.via.str.ptr, obj.via.map.ptr[i].key.via.str.size);
  }
  msgpack_zone_destroy(&zone);
  EXPECT_EQ(keys, (std::vector<std::string>{"function", "method", "uri", "version", "headers",
                                            "remote_addr", "remote_port", "scheme", "host",
                                            "request_id", "content_length", "deadline_ms"}));
}

// The encoder writes each value in its smallest form, byte for byte what
// msgpack-c's packer makes, at every size boundary of str, uint and int.
TEST(Request, EncoderBytesAreMsgpackCPackersBytes) {
  for (size_t len : {0u, 1u, 31u, 32u, 63u, 64u, 255u, 256u, 511u, 512u, 65535u}) {
    for (int64_t cl : std::vector<int64_t>{-1, 0, 127, 128, 255, 256, 65535, 65536, 4294967295LL,
                                           4294967296LL, INT64_MAX}) {
      std::string big(len, 'v');
      std::string_view value = std::string_view(big).substr(0, len / 64);
      std::vector<fc_header_t> headers(len % 20, {S("n"), S(value)});
      fc_request_t in{};
      in.function = S("fn");
      in.method = S("GET");
      in.uri = S(std::string_view(big).substr(0, len / 2));
      in.version = S("HTTP/1.1");
      in.headers = headers.data();
      in.nheaders = headers.size();
      in.remote_addr = S("127.0.0.1");
      in.remote_port = static_cast<uint32_t>(cl < 0 ? 0 : cl % 65536);
      in.request_id = S(std::string_view(big).substr(0, len / 8));
      in.content_length = cl;
      in.deadline_ms = static_cast<uint64_t>(cl < 0 ? 0 : cl) * 3;
      Bytes ours = EncodeRequest(in);

      Mp m;
      m.Map(12).Str("function").Str(V(in.function)).Str("method").Str(V(in.method));
      m.Str("uri").Str(V(in.uri)).Str("version").Str(V(in.version));
      m.Str("headers").Array(headers.size());
      for (auto &h : headers) m.Header(V(h.name), V(h.value));
      m.Str("remote_addr").Str(V(in.remote_addr)).Str("remote_port").Uint(in.remote_port);
      m.Str("scheme").Str("").Str("host").Str("").Str("request_id").Str(V(in.request_id));
      m.Str("content_length").Int(in.content_length).Str("deadline_ms").Uint(in.deadline_ms);
      ASSERT_EQ(ours, m.bytes()) << "len " << len << " content_length " << cl;
    }
  }
}

// Every msgpack integer form decodes (a signed form holding a value >= 0 is
// a positive integer, as in msgpack-c); floats, exts and nested containers
// under unknown keys are skipped whole.
TEST(Request, DecoderReadsEveryIntegerFormAndSkipsAnyUnknownValue) {
  struct Form { std::vector<uint8_t> bytes; int64_t value; };
  std::vector<Form> forms = {
      {{0x05}, 5}, {{0xcc, 0xff}, 255}, {{0xcd, 0x01, 0x00}, 256},
      {{0xce, 0x00, 0x01, 0x00, 0x00}, 65536},
      {{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, 4294967296LL},
      {{0xd0, 0x05}, 5}, {{0xd1, 0x01, 0x00}, 256}, {{0xd2, 0x00, 0x01, 0x00, 0x00}, 65536},
      {{0xd3, 0, 0, 0, 0, 0, 0, 0, 9}, 9}, {{0xff}, -1}, {{0xd0, 0xff}, -1},
      {{0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, -1}};
  for (const Form &f : forms) {
    Bytes payload = Mp().Map(6).Str("function").Str("f").Str("method").Str("GET")
                        .Str("uri").Str("/").bytes();
    payload.push_back(0xae);  // fixstr 14
    for (char c : std::string("content_length")) payload.push_back(static_cast<uint8_t>(c));
    payload.insert(payload.end(), f.bytes.begin(), f.bytes.end());
    Bytes rest = Mp().Str("float").bytes();
    payload.insert(payload.end(), rest.begin(), rest.end());
    for (uint8_t b : {0xcb, 0, 0, 0, 0, 0, 0, 0, 0}) payload.push_back(b);  // float64
    rest = Mp().Str("nested").Map(1).Array(2).Str("k").Bin("v").Array(1).Map(0).bytes();
    payload.insert(payload.end(), rest.begin(), rest.end());
    payload[0] = 0x86;  // the map holds 6 pairs
    Arena arena;
    fc_request_t out{};
    ASSERT_EQ(DecodeRequest(payload, &out, &arena), FC_OK) << f.value;
    EXPECT_EQ(out.content_length, f.value);
    EXPECT_EQ(V(out.uri), "/");
  }
  Bytes ext = Mp().Map(4).Str("function").Str("f").Str("method").Str("GET")
                  .Str("uri").Str("/").Str("ext").bytes();
  for (uint8_t b : {0xc7, 2, 1, 0x61, 0x62}) ext.push_back(b);  // ext8: 2 bytes, type 1
  Arena arena;
  fc_request_t out{};
  EXPECT_EQ(DecodeRequest(ext, &out, &arena), FC_OK);
}

TEST(Request, DecodedStringsPointIntoPayload) {
  auto headers = SampleHeaders();
  Bytes payload = EncodeRequest(SampleRequest(headers));
  Arena arena;
  fc_request_t out{};
  ASSERT_EQ(DecodeRequest(payload, &out, &arena), FC_OK);
  auto inside = [&](const fc_str_t &s) {
    auto *p = reinterpret_cast<const uint8_t *>(s.data);
    return p >= payload.data() && p + s.len <= payload.data() + payload.size();
  };
  EXPECT_TRUE(inside(out.function));
  EXPECT_TRUE(inside(out.uri));
  EXPECT_TRUE(inside(out.request_id));
  EXPECT_TRUE(inside(out.headers[0].name));
  EXPECT_TRUE(inside(out.headers[4].value));
}

TEST(Request, AcceptsBinAsWellAsStr) {
  Bytes payload = Mp()
                      .Map(4)
                      .Bin("function").Bin("f")
                      .Str("method").Bin("GET")
                      .Str("uri").Bin("/x")
                      .Str("headers").Array(1).Array(2).Bin("A").Bin("b")
                      .bytes();
  Arena arena;
  fc_request_t out{};
  ASSERT_EQ(DecodeRequest(payload, &out, &arena), FC_OK);
  EXPECT_EQ(V(out.function), "f");
  EXPECT_EQ(V(out.method), "GET");
  EXPECT_EQ(V(out.uri), "/x");
  ASSERT_EQ(out.nheaders, 1u);
  EXPECT_EQ(V(out.headers[0].value), "b");
}

TEST(Request, AbsentOptionalFieldsGetDefaults) {
  Bytes payload = RequestWith(0, [](Mp &) {});
  Arena arena;
  fc_request_t out{};
  ASSERT_EQ(DecodeRequest(payload, &out, &arena), FC_OK);
  EXPECT_EQ(out.version.data, nullptr);
  EXPECT_EQ(out.version.len, 0u);
  EXPECT_EQ(out.host.data, nullptr);
  EXPECT_EQ(out.content_length, -1);
  EXPECT_EQ(out.deadline_ms, 0u);
  EXPECT_EQ(out.remote_port, 0u);
  EXPECT_EQ(out.headers, nullptr);
}

TEST(Request, UnknownKeysAreIgnored) {
  Bytes payload = RequestWith(3, [](Mp &m) {
    m.Str("future_key").Map(1).Str("x").Array(0);
    m.Uint(7).Str("integer key");
    m.Str("trace").Nil();
  });
  Arena arena;
  fc_request_t out{};
  EXPECT_EQ(DecodeRequest(payload, &out, &arena), FC_OK);
}

TEST(Request, MissingRequiredKeyIsSchemaError) {
  for (const char *drop : {"function", "method", "uri"}) {
    Mp m;
    m.Map(2);
    for (const char *k : {"function", "method", "uri"}) {
      if (strcmp(k, drop) != 0) m.Str(k).Str("v");
    }
    Arena arena;
    fc_request_t out{};
    EXPECT_EQ(DecodeRequest(m.bytes(), &out, &arena), FC_ESCHEMA) << drop;
  }
}

TEST(Request, WrongTypedFieldsAreSchemaErrors) {
  struct Case {
    const char *name;
    std::function<void(Mp &)> pack;
  };
  const Case cases[] = {
      {"version int", [](Mp &m) { m.Str("version").Uint(11); }},
      {"host nil", [](Mp &m) { m.Str("host").Nil(); }},
      {"headers map", [](Mp &m) { m.Str("headers").Map(0); }},
      {"headers of strings", [](Mp &m) { m.Str("headers").Array(1).Str("Host"); }},
      {"header pair of 3", [](Mp &m) { m.Str("headers").Array(1).Array(3).Str("a").Str("b").Str("c"); }},
      {"header pair of 1", [](Mp &m) { m.Str("headers").Array(1).Array(1).Str("a"); }},
      {"header value int", [](Mp &m) { m.Str("headers").Array(1).Array(2).Str("a").Uint(1); }},
      {"remote_port string", [](Mp &m) { m.Str("remote_port").Str("80"); }},
      {"remote_port > 65535", [](Mp &m) { m.Str("remote_port").Uint(65536); }},
      {"remote_port negative", [](Mp &m) { m.Str("remote_port").Int(-1); }},
      {"content_length -2", [](Mp &m) { m.Str("content_length").Int(-2); }},
      {"content_length > INT64_MAX", [](Mp &m) { m.Str("content_length").Uint(uint64_t(INT64_MAX) + 1); }},
      {"content_length bool", [](Mp &m) { m.Str("content_length").Bool(true); }},
      {"deadline_ms negative", [](Mp &m) { m.Str("deadline_ms").Int(-5); }},
      {"duplicate key", [](Mp &m) { m.Str("uri").Str("/again"); }},
  };
  for (const Case &c : cases) {
    Bytes payload = RequestWith(1, c.pack);
    Arena arena;
    fc_request_t out{};
    EXPECT_EQ(DecodeRequest(payload, &out, &arena), FC_ESCHEMA) << c.name;
    EXPECT_TRUE(arena.blocks.empty()) << c.name << ": failed decode allocated";
  }
  Arena arena;
  fc_request_t out{};
  EXPECT_EQ(DecodeRequest(Mp().Map(3).Str("function").Uint(1).Str("method").Str("G")
                              .Str("uri").Str("/").bytes(), &out, &arena),
            FC_ESCHEMA);
}

TEST(Request, FailedDecodeLeavesOutputUntouched) {
  fc_request_t out{};
  out.function = S("sentinel");
  Arena arena;
  Bytes payload = RequestWith(1, [](Mp &m) { m.Str("remote_port").Str("x"); });
  EXPECT_EQ(DecodeRequest(payload, &out, &arena), FC_ESCHEMA);
  EXPECT_EQ(V(out.function), "sentinel");
}

TEST(Request, AllocatorFailureIsNoMem) {
  auto headers = SampleHeaders();
  Bytes payload = EncodeRequest(SampleRequest(headers));
  Arena arena;
  arena.fail = true;
  fc_request_t out{};
  EXPECT_EQ(DecodeRequest(payload, &out, &arena), FC_ENOMEM);
  EXPECT_EQ(fc_request_decode(payload.data(), payload.size(), &out, nullptr, nullptr),
            FC_ENOMEM);
}

TEST(Request, MaxHeadersAcceptedAndOneMoreRejected) {
  std::vector<std::string> names;
  for (int i = 0; i <= FC_MAX_HEADERS; i++) names.push_back("X-H" + std::to_string(i));
  std::vector<fc_header_t> headers;
  for (const auto &n : names) headers.push_back({S(n), S("v")});

  fc_request_t in{};
  in.function = S("f");
  in.method = S("GET");
  in.uri = S("/");
  in.headers = headers.data();
  in.nheaders = FC_MAX_HEADERS;
  Bytes payload = EncodeRequest(in);
  Arena arena;
  fc_request_t out{};
  ASSERT_EQ(DecodeRequest(payload, &out, &arena), FC_OK);
  EXPECT_EQ(out.nheaders, static_cast<size_t>(FC_MAX_HEADERS));
  EXPECT_EQ(V(out.headers[FC_MAX_HEADERS - 1].name), "X-H255");

  // the encoder refuses one more ...
  in.nheaders = FC_MAX_HEADERS + 1;
  Bytes buf(fc_request_size_bound(&in));
  size_t n = 0;
  EXPECT_EQ(fc_request_encode(&in, buf.data(), buf.size(), &n), FC_ETOOMANY);

  // ... and so does the decoder, given a hand-built payload
  Bytes many = RequestWith(1, [](Mp &m) {
    m.Str("headers").Array(FC_MAX_HEADERS + 1);
    for (int i = 0; i <= FC_MAX_HEADERS; i++) m.Header("a", "b");
  });
  EXPECT_EQ(DecodeRequest(many, &out, &arena), FC_ETOOMANY);
}

TEST(Request, EncodeIntoEveryShortBufferIsNoSpace) {
  auto headers = SampleHeaders();
  fc_request_t in = SampleRequest(headers);
  Bytes full = EncodeRequest(in);
  for (size_t cap = 0; cap < full.size(); cap++) {
    Bytes buf(cap + 16, 0xAA);
    size_t n = 12345;
    ASSERT_EQ(fc_request_encode(&in, buf.data(), cap, &n), FC_ENOSPACE) << cap;
    EXPECT_EQ(n, 12345u) << "written untouched on failure";
    for (size_t i = cap; i < buf.size(); i++) ASSERT_EQ(buf[i], 0xAA) << "wrote past cap";
  }
  Bytes exact(full.size());
  size_t n = 0;
  EXPECT_EQ(fc_request_encode(&in, exact.data(), exact.size(), &n), FC_OK);
  EXPECT_EQ(exact, full);
}

TEST(Request, EncodeOverMetaLimitIsTooBig) {
  std::string huge(FC_MAX_META_PAYLOAD, 'u');
  fc_request_t in{};
  in.function = S("f");
  in.method = S("GET");
  in.uri = S(huge);  // the string fits, the map around it does not
  Bytes buf(fc_request_size_bound(&in));
  size_t n = 0;
  EXPECT_EQ(fc_request_encode(&in, buf.data(), buf.size(), &n), FC_ETOOBIG);
  in.uri = S(std::string_view(huge).substr(0, FC_MAX_META_PAYLOAD - 200));
  EXPECT_EQ(fc_request_encode(&in, buf.data(), buf.size(), &n), FC_OK);
  EXPECT_LE(n, static_cast<size_t>(FC_MAX_META_PAYLOAD));
}

TEST(Request, DecodeOverMetaLimitIsTooBig) {
  std::string big(FC_MAX_META_PAYLOAD, 'u');
  Bytes payload = RequestWith(1, [&](Mp &m) { m.Str("host").Str(big); });
  Arena arena;
  fc_request_t out{};
  EXPECT_EQ(DecodeRequest(payload, &out, &arena), FC_ETOOBIG);
}

TEST(Response, RoundTripsEveryField) {
  auto headers = SampleHeaders();
  for (int cold : {0, 1}) {
    fc_response_t in{};
    in.status = 201;
    in.headers = headers.data();
    in.nheaders = headers.size();
    in.cold_start = cold;
    in.instance = S("fn-a/3");
    Bytes payload = EncodeResponse(in);
    EXPECT_LE(payload.size(), fc_response_size_bound(&in));
    Arena arena;
    fc_response_t out{};
    ASSERT_EQ(DecodeResponse(payload, &out, &arena), FC_OK);
    EXPECT_EQ(out.status, 201u);
    ExpectSameHeaders(out.headers, out.nheaders, headers);
    EXPECT_EQ(out.cold_start, cold);
    EXPECT_EQ(V(out.instance), "fn-a/3");
  }
}

TEST(Response, OnlyStatusIsRequired) {
  Arena arena;
  fc_response_t out{};
  ASSERT_EQ(DecodeResponse(Mp().Map(1).Str("status").Uint(204).bytes(), &out, &arena), FC_OK);
  EXPECT_EQ(out.status, 204u);
  EXPECT_EQ(out.nheaders, 0u);
  EXPECT_EQ(out.cold_start, 0);
  EXPECT_EQ(out.instance.data, nullptr);
  EXPECT_EQ(DecodeResponse(Mp().Map(1).Str("instance").Str("i").bytes(), &out, &arena),
            FC_ESCHEMA);
}

TEST(Response, WrongTypedFieldsAreSchemaErrors) {
  Arena arena;
  fc_response_t out{};
  EXPECT_EQ(DecodeResponse(Mp().Map(1).Str("status").Str("200").bytes(), &out, &arena), FC_ESCHEMA);
  EXPECT_EQ(DecodeResponse(Mp().Map(1).Str("status").Uint(99).bytes(), &out, &arena), FC_ESCHEMA);
  EXPECT_EQ(DecodeResponse(Mp().Map(1).Str("status").Uint(1000).bytes(), &out, &arena), FC_ESCHEMA);
  EXPECT_EQ(DecodeResponse(Mp().Map(2).Str("status").Uint(200).Str("cold_start").Uint(1).bytes(),
                           &out, &arena),
            FC_ESCHEMA);
  EXPECT_EQ(DecodeResponse(Mp().Map(2).Str("status").Uint(200).Str("instance").Uint(1).bytes(),
                           &out, &arena),
            FC_ESCHEMA);
  EXPECT_EQ(DecodeResponse(Mp().Map(2).Str("status").Uint(200).Str("headers").Str("x").bytes(),
                           &out, &arena),
            FC_ESCHEMA);
  EXPECT_TRUE(arena.blocks.empty());
}

TEST(Response, MaxHeadersAcceptedAndOneMoreRejected) {
  std::vector<fc_header_t> headers(FC_MAX_HEADERS + 1, fc_header_t{S("a"), S("b")});
  fc_response_t in{};
  in.status = 200;
  in.headers = headers.data();
  in.nheaders = FC_MAX_HEADERS;
  Bytes payload = EncodeResponse(in);
  Arena arena;
  fc_response_t out{};
  ASSERT_EQ(DecodeResponse(payload, &out, &arena), FC_OK);
  EXPECT_EQ(out.nheaders, static_cast<size_t>(FC_MAX_HEADERS));

  in.nheaders = FC_MAX_HEADERS + 1;
  Bytes buf(fc_response_size_bound(&in));
  size_t n = 0;
  EXPECT_EQ(fc_response_encode(&in, buf.data(), buf.size(), &n), FC_ETOOMANY);

  Mp m;
  m.Map(2).Str("status").Uint(200).Str("headers").Array(FC_MAX_HEADERS + 1);
  for (int i = 0; i <= FC_MAX_HEADERS; i++) m.Header("a", "b");
  EXPECT_EQ(DecodeResponse(m.bytes(), &out, &arena), FC_ETOOMANY);
}

TEST(Response, EncodeIntoEveryShortBufferIsNoSpace) {
  auto headers = SampleHeaders();
  fc_response_t in{};
  in.status = 200;
  in.headers = headers.data();
  in.nheaders = headers.size();
  in.instance = S("i-1");
  Bytes full = EncodeResponse(in);
  for (size_t cap = 0; cap < full.size(); cap++) {
    Bytes buf(cap);
    size_t n = 0;
    ASSERT_EQ(fc_response_encode(&in, buf.data(), cap, &n), FC_ENOSPACE) << cap;
  }
}

TEST(Error, RoundTripsEveryField) {
  fc_error_t in{};
  in.status = 503;
  in.code = S("QueueFull");
  in.message = S("the queue of function f is full (100 waiting)");
  Bytes payload = EncodeError(in);
  EXPECT_LE(payload.size(), fc_error_size_bound(&in));
  fc_error_t out{};
  ASSERT_EQ(DecodeError(payload, &out), FC_OK);
  EXPECT_EQ(out.status, 503u);
  EXPECT_EQ(V(out.code), "QueueFull");
  EXPECT_EQ(V(out.message), V(in.message));
}

TEST(Error, StatusAndCodeRequiredMessageOptional) {
  fc_error_t out{};
  ASSERT_EQ(DecodeError(Mp().Map(2).Str("status").Uint(502).Str("code").Str("X").bytes(), &out),
            FC_OK);
  EXPECT_EQ(out.message.data, nullptr);
  EXPECT_EQ(DecodeError(Mp().Map(1).Str("status").Uint(502).bytes(), &out), FC_ESCHEMA);
  EXPECT_EQ(DecodeError(Mp().Map(1).Str("code").Str("X").bytes(), &out), FC_ESCHEMA);
  EXPECT_EQ(DecodeError(Mp().Map(2).Str("status").Str("502").Str("code").Str("X").bytes(), &out),
            FC_ESCHEMA);
  EXPECT_EQ(DecodeError(Mp().Map(2).Str("status").Uint(502).Str("code").Uint(1).bytes(), &out),
            FC_ESCHEMA);
  EXPECT_EQ(DecodeError(Mp().Map(3).Str("status").Uint(502).Str("code").Str("X")
                            .Str("message").Bool(false).bytes(), &out),
            FC_ESCHEMA);
}

TEST(Error, EncodeIntoEveryShortBufferIsNoSpace) {
  fc_error_t in{};
  in.status = 504;
  in.code = S("FunctionTimeout");
  in.message = S("took too long");
  Bytes full = EncodeError(in);
  for (size_t cap = 0; cap < full.size(); cap++) {
    Bytes buf(cap);
    size_t n = 0;
    ASSERT_EQ(fc_error_encode(&in, buf.data(), cap, &n), FC_ENOSPACE) << cap;
  }
}

// ---- malformed msgpack, for every decoder ---------------------------------

// Runs all three decoders; they share the msgpack layer, so each malformed
// payload must fail the same way everywhere.
void ExpectAllDecodersFail(const Bytes &payload, int want, const std::string &what) {
  Arena arena;
  fc_request_t req{};
  fc_response_t resp{};
  fc_error_t err{};
  EXPECT_EQ(DecodeRequest(payload, &req, &arena), want) << what;
  EXPECT_EQ(DecodeResponse(payload, &resp, &arena), want) << what;
  EXPECT_EQ(DecodeError(payload, &err), want) << what;
  EXPECT_TRUE(arena.blocks.empty()) << what;
}

TEST(Malformed, EveryTruncationOfAValidPayloadIsMsgpackError) {
  auto headers = SampleHeaders();
  Bytes full = EncodeRequest(SampleRequest(headers));
  for (size_t len = 0; len < full.size(); len++) {
    Bytes cut(full.begin(), full.begin() + len);
    ExpectAllDecodersFail(cut, FC_EMSGPACK, "truncated to " + std::to_string(len));
  }
}

TEST(Malformed, TrailingBytesAfterTheObjectAreMsgpackError) {
  fc_error_t e{};
  e.status = 500;
  e.code = S("X");
  Bytes payload = EncodeError(e);
  payload.push_back(0xc0);
  ExpectAllDecodersFail(payload, FC_EMSGPACK, "trailing nil");
  Bytes two = EncodeError(e);
  Bytes again = EncodeError(e);
  two.insert(two.end(), again.begin(), again.end());
  ExpectAllDecodersFail(two, FC_EMSGPACK, "two maps");
}

TEST(Malformed, NonMapPayloadIsSchemaError) {
  ExpectAllDecodersFail(Mp().Array(0).bytes(), FC_ESCHEMA, "array");
  ExpectAllDecodersFail(Mp().Str("status").bytes(), FC_ESCHEMA, "str");
  ExpectAllDecodersFail(Mp().Uint(200).bytes(), FC_ESCHEMA, "int");
  ExpectAllDecodersFail(Mp().Nil().bytes(), FC_ESCHEMA, "nil");
}

TEST(Malformed, InvalidMsgpackIsMsgpackError) {
  ExpectAllDecodersFail(Bytes{}, FC_EMSGPACK, "empty");
  ExpectAllDecodersFail(Bytes{0xc1}, FC_EMSGPACK, "reserved byte 0xc1");
  ExpectAllDecodersFail(Bytes{0x81, 0xa1, 'a', 0xc1}, FC_EMSGPACK, "0xc1 inside a map");
  ExpectAllDecodersFail(Bytes{0x81, 0xa6, 's', 't', 'a'}, FC_EMSGPACK, "str past the end");
}

TEST(Malformed, HugeContainerCountsAreRejectedBeforeAllocating) {
  // a 5-byte array32 claiming 4G elements must not become a 100 GiB alloc
  ExpectAllDecodersFail(Bytes{0xdd, 0xff, 0xff, 0xff, 0xff}, FC_EMSGPACK, "array32");
  ExpectAllDecodersFail(Bytes{0xdf, 0xff, 0xff, 0xff, 0xff}, FC_EMSGPACK, "map32");
  ExpectAllDecodersFail(Bytes{0x81, 0xa1, 'h', 0xdc, 0xff, 0xff, 0x90}, FC_EMSGPACK,
                        "nested array16");
  ExpectAllDecodersFail(Bytes{0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, FC_EMSGPACK, "str32");
}

TEST(Malformed, DeepNestingIsRejectedNotRecursed) {
  Bytes deep = {0x81, 0xa1, 'x'};
  for (int i = 0; i < 1000; i++) deep.push_back(0x91);
  deep.push_back(0xc0);
  ExpectAllDecodersFail(deep, FC_EMSGPACK, "1000 nested arrays");
}

// Valid msgpack that uses every byte (containers nested with no slack) must
// not trip the pre-check that bounds container counts by the bytes left.
TEST(Malformed, TightlyNestedValidMsgpackIsAccepted) {
  auto nested = [](int arrays) {
    Bytes b = {0x82, 0xa6, 's', 't', 'a', 't', 'u', 's', 0xcc, 200, 0xa1, 'x'};
    for (int i = 0; i < arrays; i++) b.push_back(0x91);
    b.push_back(0xc0);
    return b;
  };
  Arena arena;
  fc_response_t out{};
  // the map plus 15 arrays: 16 open containers, the most the decoder allows
  EXPECT_EQ(DecodeResponse(nested(15), &out, &arena), FC_OK);
  EXPECT_EQ(out.status, 200u);
  EXPECT_EQ(DecodeResponse(nested(16), &out, &arena), FC_EMSGPACK);
  Bytes empties = {0x82, 0xa6, 's', 't', 'a', 't', 'u', 's', 0xcc, 200, 0xa1, 'x',
                   0x93, 0x90, 0x91, 0x80, 0x92, 0x90, 0x90};
  EXPECT_EQ(DecodeResponse(empties, &out, &arena), FC_OK);
}

// ---- the nginx module's entry points (issue 11) ----------------------------

fc_request_keys_t PackedKeys() {
  fc_request_keys_t keys;
  std::memset(&keys, 0xee, sizeof(keys));
  fc_request_keys_init(&keys);
  return keys;
}

size_t StringsLen(const fc_request_t &r) {
  size_t n = r.function.len + r.method.len + r.uri.len + r.version.len + r.remote_addr.len +
             r.scheme.len + r.host.len + r.request_id.len;
  for (size_t i = 0; i < r.nheaders; i++) n += r.headers[i].name.len + r.headers[i].value.len;
  return n;
}

// The span encoder writes fc_request_encode()'s bytes, within the bound
// summed from the lengths, at every size boundary of str and int.
TEST(RequestSpan, SameBytesAsTheEncoderWithinTheSummedBound) {
  const fc_request_keys_t keys = PackedKeys();
  EXPECT_EQ(keys.end[FC_REQUEST_NKEYS - 1], FC_REQUEST_KEYS_SIZE);
  for (size_t len : {0u, 1u, 7u, 8u, 9u, 31u, 32u, 255u, 256u, 65535u}) {
    for (int64_t cl : std::vector<int64_t>{-1, 0, 127, 128, 65536, 4294967296LL, INT64_MAX}) {
      std::string big(len, 'v');
      std::vector<fc_header_t> headers(len % 20, {S("n"), S(std::string_view(big).substr(0, len / 64))});
      fc_request_t in = SampleRequest(headers);
      // within FC_MAX_META_PAYLOAD with the rest: str8 and str16 forms
      in.uri = S(std::string_view(big).substr(0, std::min<size_t>(len, 40000)));
      in.content_length = cl;
      in.deadline_ms = static_cast<uint64_t>(cl < 0 ? 0 : cl) * 3;
      Bytes want = EncodeRequest(in);

      size_t bound = fc_request_size_bound_sum(StringsLen(in), in.nheaders);
      ASSERT_GE(bound, want.size()) << len;
      Bytes buf(bound);
      size_t n = 0;
      ASSERT_EQ(fc_request_encode_span(&in, &keys, buf.data(), buf.size(), &n), FC_OK) << len;
      buf.resize(n);
      EXPECT_EQ(buf, want) << "len " << len << " content_length " << cl;
    }
  }
}

// One byte short of the payload is FC_ENOSPACE, never a write past cap; and
// no payload over FC_MAX_META_PAYLOAD is written whatever cap says.
TEST(RequestSpan, ShortBufferAndOverLimitAreNoSpace) {
  const fc_request_keys_t keys = PackedKeys();
  auto headers = SampleHeaders();
  fc_request_t in = SampleRequest(headers);
  Bytes want = EncodeRequest(in);
  Bytes buf(want.size() + 16, 0xee);
  size_t n = 0;
  EXPECT_EQ(fc_request_encode_span(&in, &keys, buf.data(), want.size() - 1, &n), FC_ENOSPACE);
  for (size_t i = want.size() - 1; i < buf.size(); i++) EXPECT_EQ(buf[i], 0xee) << i;
  EXPECT_EQ(fc_request_encode_span(&in, &keys, buf.data(), want.size(), &n), FC_OK);
  EXPECT_EQ(n, want.size());

  std::string huge(FC_MAX_META_PAYLOAD, 'u');
  in.uri = S(huge);
  Bytes big(FC_MAX_META_PAYLOAD * 2);
  EXPECT_EQ(fc_request_encode_span(&in, &keys, big.data(), big.size(), &n), FC_ENOSPACE);

  std::vector<fc_header_t> many(FC_MAX_HEADERS + 1, {S("a"), S("b")});
  in = SampleRequest(many);
  EXPECT_EQ(fc_request_encode_span(&in, &keys, big.data(), big.size(), &n), FC_ETOOMANY);
  EXPECT_EQ(fc_request_size_bound_sum(0, FC_MAX_HEADERS + 1), SIZE_MAX);
}

// The in-zone decoder on a zone from fc_zone_create() (the module's), message
// after message, bad ones included: the zone is reusable after each.
TEST(ResponseZone, SameResultAsTheDecoderOnAKeptZone) {
  std::unique_ptr<msgpack_zone, void (*)(msgpack_zone *)> zone(fc_zone_create(), fc_zone_destroy);
  ASSERT_NE(zone, nullptr);
  std::vector<fc_header_t> many(FC_MAX_HEADERS, {S("name"), S("value")});
  auto headers = SampleHeaders();
  for (int round = 0; round < 3; round++) {
    for (const auto *hs : {&headers, &many}) {
      fc_response_t in{};
      in.status = 201;
      in.headers = const_cast<fc_header_t *>(hs->data());
      in.nheaders = hs->size();
      in.cold_start = round & 1;
      in.instance = S("fn-1");
      Bytes payload = EncodeResponse(in);
      Arena arena;
      fc_response_t out{};
      ASSERT_EQ(fc_response_decode_in_zone(zone.get(), payload.data(), payload.size(), &out, Arena::Alloc, &arena),
                FC_OK);
      EXPECT_EQ(out.status, 201u);
      EXPECT_EQ(out.cold_start, round & 1);
      EXPECT_EQ(V(out.instance), "fn-1");
      ExpectSameHeaders(out.headers, out.nheaders, *hs);
    }
    Arena arena;
    fc_response_t out{};
    Bytes no_status = {0x81, 0xa1, 'x', 0x01};
    EXPECT_EQ(fc_response_decode_in_zone(zone.get(), no_status.data(), no_status.size(), &out, Arena::Alloc, &arena),
              DecodeResponse(no_status, &out, &arena));
    Bytes truncated = {0x82, 0xa6, 's', 't', 'a', 't', 'u', 's'};
    EXPECT_EQ(fc_response_decode_in_zone(zone.get(), truncated.data(), truncated.size(), &out, Arena::Alloc, &arena),
              FC_EMSGPACK);
    Bytes not_map = {0x91, 0x01};
    EXPECT_EQ(fc_response_decode_in_zone(zone.get(), not_map.data(), not_map.size(), &out, Arena::Alloc, &arena),
              FC_ESCHEMA);
  }
}

// ---- decoding with a kept zone ----------------------------------------------

// One zone for message after message, failures among them: every message
// decodes as with a zone of its own, and the zone is left cleared after each.
TEST(KeptZone, ResponseAndErrorDecodeInTheModulesKeptZone) {
  msgpack_zone zone;
  ASSERT_TRUE(msgpack_zone_init(&zone, FC_ZONE_CHUNK_SIZE));
  Bytes response = EncodeResponse(fc_response_t{204, nullptr, 0, 1, S("c-1")});
  fc_response_t resp{};
  ASSERT_EQ(fc_response_decode_in_zone(&zone, response.data(), response.size(), &resp, Arena::Alloc, nullptr), FC_OK);
  EXPECT_EQ(resp.status, 204u);
  EXPECT_EQ(V(resp.instance), "c-1");
  fc_error_t err_in{503, S("QueueFull"), S("m")};
  Bytes error = EncodeError(err_in);
  fc_error_t err{};
  ASSERT_EQ(fc_error_decode_in_zone(&zone, error.data(), error.size(), &err), FC_OK);
  EXPECT_EQ(V(err.code), "QueueFull");
  msgpack_zone_destroy(&zone);
}

// The decoder looks keys up in the order encoders write them first; any
// other order, and a repeated key, still mean what they meant.
TEST(Request, KeysInAnyOrderDecodeAndARepeatedOneIsASchemaError) {
  Mp reversed;
  reversed.Map(5).Str("request_id").Str("rid").Str("uri").Str("/u").Str("unknown").Uint(1)
      .Str("method").Str("PUT").Str("function").Str("fn");
  Bytes payload = reversed.bytes();  // the decoded strings point into it
  Arena arena;
  fc_request_t out{};
  ASSERT_EQ(DecodeRequest(payload, &out, &arena), FC_OK);
  EXPECT_EQ(V(out.function), "fn");
  EXPECT_EQ(V(out.method), "PUT");
  EXPECT_EQ(V(out.uri), "/u");
  EXPECT_EQ(V(out.request_id), "rid");
  Mp repeated;
  repeated.Map(4).Str("function").Str("f").Str("method").Str("GET").Str("uri").Str("/").Str("method").Str("PUT");
  EXPECT_EQ(DecodeRequest(repeated.bytes(), &out, &arena), FC_ESCHEMA);
  // A key that is a prefix of a known one, or longer, is unknown.
  Mp near;
  near.Map(5).Str("function").Str("f").Str("method").Str("GET").Str("uri").Str("/")
      .Str("hos").Str("x").Str("hostname").Str("y");
  Bytes near_payload = near.bytes();
  fc_request_t n{};
  ASSERT_EQ(DecodeRequest(near_payload, &n, &arena), FC_OK);
  EXPECT_EQ(n.host.data, nullptr);
}

// ---- the RESPONSE's one-pass decoder ----------------------------------------

// The shapes fc_response_encode() writes are read without msgpack-c; every
// other one goes to the general decoder.  A root map32 (0xdf) is never read
// by the fast path, so the same message behind one is the general decoder's
// answer: each single-byte change and each truncation of an encoded RESPONSE
// must decode the same both ways.
Bytes AsMap32(const Bytes &fixmap_payload) {
  Bytes out = {0xdf, 0, 0, 0, static_cast<uint8_t>(fixmap_payload[0] & 0x0f)};
  out.insert(out.end(), fixmap_payload.begin() + 1, fixmap_payload.end());
  return out;
}

std::string Describe(int rc, const fc_response_t &r) {
  std::string s = std::to_string(rc);
  if (rc != FC_OK) return s;
  s += " " + std::to_string(r.status) + " " + std::to_string(r.cold_start) + " ["
       + std::string(V(r.instance)) + "]";
  for (size_t i = 0; i < r.nheaders; i++) {
    s += " " + std::string(V(r.headers[i].name)) + "=" + std::string(V(r.headers[i].value));
  }
  return s;
}

std::string DecodeDescribed(const Bytes &payload) {
  Arena arena;
  fc_response_t out{};
  int rc = DecodeResponse(payload, &out, &arena);
  return Describe(rc, out);
}

TEST(ResponseSpan, EveryChangedByteAndTruncationDecodesAsTheGeneralDecoder) {
  std::vector<fc_header_t> headers = {
      {S("Content-Type"), S("text/plain")}, {S("Set-Cookie"), S("a=1")},
      {S("Set-Cookie"), S("b=2")}, {S("X-Long"), S(std::string_view(
          "0123456789012345678901234567890123456789"))}};
  fc_response_t in{};
  in.status = 404;
  in.headers = headers.data();
  in.nheaders = headers.size();
  in.cold_start = 1;
  in.instance = S("fn/1");
  Bytes payload = EncodeResponse(in);
  ASSERT_EQ(payload[0] & 0xf0, 0x80);
  EXPECT_EQ(DecodeDescribed(payload), DecodeDescribed(AsMap32(payload)));
  EXPECT_EQ(DecodeDescribed(payload).substr(0, 6), "0 404 ");
  size_t checked = 0;
  for (size_t i = 1; i < payload.size(); i++) {
    for (int v : {0x00, 0x01, 0x7f, 0x80, 0x92, 0xa0, 0xbf, 0xc2, 0xc3, 0xcc, 0xcd, 0xd9,
                  0xdb, 0xdc, 0xde, 0xff}) {
      Bytes changed = payload;
      changed[i] = static_cast<uint8_t>(v);
      ASSERT_EQ(DecodeDescribed(changed), DecodeDescribed(AsMap32(changed))) << i << " " << v;
      checked++;
    }
    Bytes cut(payload.begin(), payload.begin() + i);
    ASSERT_EQ(DecodeDescribed(cut), DecodeDescribed(AsMap32(cut))) << i;
  }
  EXPECT_GT(checked, 100u);
}

TEST(ResponseSpan, ShapesTheEncoderDoesNotWriteStillDecode) {
  Arena arena;
  fc_response_t out{};
  // status as int16, uint32 and int8; names as bin; an unknown key; map16
  for (const Bytes &p : {Mp().Map(1).Str("status").Int(200).bytes(),
                         Bytes{0x81, 0xa6, 's', 't', 'a', 't', 'u', 's', 0xce, 0, 0, 0, 200},
                         Bytes{0x81, 0xa6, 's', 't', 'a', 't', 'u', 's', 0xd1, 0, 200},
                         Mp().Map(3).Str("status").Uint(200).Str("future").Array(1).Nil()
                             .Str("headers").Array(1).Array(2).Bin("Name").Bin("v").bytes(),
                         Bytes{0xde, 0, 1, 0xa6, 's', 't', 'a', 't', 'u', 's', 0xcc, 200}}) {
    ASSERT_EQ(DecodeResponse(p, &out, &arena), FC_OK);
    EXPECT_EQ(out.status, 200u);
  }
  // repeated keys: a schema error, as the general decoder says
  EXPECT_EQ(DecodeResponse(Mp().Map(2).Str("status").Uint(200).Str("status").Uint(201).bytes(),
                           &out, &arena),
            FC_ESCHEMA);
  EXPECT_EQ(DecodeResponse(Mp().Map(3).Str("status").Uint(200).Str("headers").Array(0)
                               .Str("headers").Array(0).bytes(), &out, &arena),
            FC_ESCHEMA);
}

TEST(ResponseSpan, HeadersAllocatedOnceAndOnlyForAGoodMessage) {
  Arena arena;
  fc_response_t out{};
  Bytes good = Mp().Map(2).Str("status").Uint(200).Str("headers").Array(2)
                   .Header("A", "1").Header("B", "2").bytes();
  ASSERT_EQ(DecodeResponse(good, &out, &arena), FC_OK);
  EXPECT_EQ(arena.blocks.size(), 1u);
  EXPECT_EQ(out.nheaders, 2u);
  Bytes bad = good;
  bad.push_back(0xc0);  // trailing byte
  Arena none;
  EXPECT_EQ(DecodeResponse(bad, &out, &none), FC_EMSGPACK);
  EXPECT_TRUE(none.blocks.empty());
  Arena failing;
  failing.fail = true;
  EXPECT_EQ(DecodeResponse(good, &out, &failing), FC_ENOMEM);
}

}  // namespace

// ---- the one-pass REQUEST decoder against msgpack-c -------------------------

namespace {
namespace reference {

// What fc_request_decode() must say, computed the long way: msgpack-c's
// object tree, then the fields.  The rules of DESIGN §3 and fc_proto.h,
// written once more independently of the decoder.
int Depth(const msgpack_object &o) {
  int deepest = 0;
  if (o.type == MSGPACK_OBJECT_ARRAY) {
    for (uint32_t i = 0; i < o.via.array.size; i++) deepest = std::max(deepest, Depth(o.via.array.ptr[i]));
    return deepest + 1;
  }
  if (o.type == MSGPACK_OBJECT_MAP) {
    for (uint32_t i = 0; i < o.via.map.size; i++) {
      deepest = std::max({deepest, Depth(o.via.map.ptr[i].key), Depth(o.via.map.ptr[i].val)});
    }
    return deepest + 1;
  }
  return 0;
}

bool Str(const msgpack_object &o, std::string_view *out) {
  if (o.type == MSGPACK_OBJECT_STR) {
    *out = std::string_view(o.via.str.ptr, o.via.str.size);
  } else if (o.type == MSGPACK_OBJECT_BIN) {
    *out = std::string_view(o.via.bin.ptr, o.via.bin.size);
  } else {
    return false;
  }
  return true;
}

struct Request {
  std::map<std::string, std::string> strings;
  std::vector<std::pair<std::string, std::string>> headers;
  uint64_t remote_port = 0;
  int64_t content_length = -1;
  uint64_t deadline_ms = 0;
};

// Returns an fc_status_e, or 1: msgpack-c could not allocate (not comparable).
int Decode(const Bytes &payload, Request *out) {
  if (payload.size() > FC_MAX_META_PAYLOAD) return FC_ETOOBIG;
  msgpack_zone zone;
  msgpack_zone_init(&zone, 2048);
  msgpack_object root;
  size_t off = 0;
  auto ret = msgpack_unpack(reinterpret_cast<const char *>(payload.data()), payload.size(), &off, &zone, &root);
  struct Zone {
    msgpack_zone *z;
    ~Zone() { msgpack_zone_destroy(z); }
  } guard{&zone};
  if (ret == MSGPACK_UNPACK_NOMEM_ERROR) return 1;
  if (ret != MSGPACK_UNPACK_SUCCESS || off != payload.size() || Depth(root) > 16) return FC_EMSGPACK;
  if (root.type != MSGPACK_OBJECT_MAP) return FC_ESCHEMA;
  static const std::set<std::string> kStrings = {"function", "method", "uri", "version", "remote_addr",
                                                 "scheme", "host", "request_id"};
  std::set<std::string> seen;
  for (uint32_t i = 0; i < root.via.map.size; i++) {
    std::string_view key;
    if (!Str(root.via.map.ptr[i].key, &key)) continue;
    std::string k(key);
    const msgpack_object &v = root.via.map.ptr[i].val;
    bool known = kStrings.count(k) || k == "headers" || k == "remote_port" || k == "content_length" ||
                 k == "deadline_ms";
    if (!known) continue;
    if (!seen.insert(k).second) return FC_ESCHEMA;
    std::string_view s;
    if (kStrings.count(k)) {
      if (!Str(v, &s)) return FC_ESCHEMA;
      out->strings[k] = std::string(s);
    } else if (k == "headers") {
      if (v.type != MSGPACK_OBJECT_ARRAY) return FC_ESCHEMA;
      if (v.via.array.size > FC_MAX_HEADERS) return FC_ETOOMANY;
      for (uint32_t j = 0; j < v.via.array.size; j++) {
        const msgpack_object &pair = v.via.array.ptr[j];
        std::string_view name, value;
        if (pair.type != MSGPACK_OBJECT_ARRAY || pair.via.array.size != 2 || !Str(pair.via.array.ptr[0], &name) ||
            !Str(pair.via.array.ptr[1], &value)) {
          return FC_ESCHEMA;
        }
        out->headers.emplace_back(name, value);
      }
    } else if (v.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
      if (k != "content_length" || v.via.i64 != -1) return FC_ESCHEMA;
      out->content_length = -1;
    } else if (v.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
      return FC_ESCHEMA;
    } else if (k == "remote_port") {
      if (v.via.u64 > 65535) return FC_ESCHEMA;
      out->remote_port = v.via.u64;
    } else if (k == "content_length") {
      if (v.via.u64 > uint64_t(INT64_MAX)) return FC_ESCHEMA;
      out->content_length = static_cast<int64_t>(v.via.u64);
    } else {
      out->deadline_ms = v.via.u64;
    }
  }
  for (const char *k : {"function", "method", "uri"}) {
    if (!seen.count(k)) return FC_ESCHEMA;
  }
  return FC_OK;
}

}  // namespace reference

// Compares the decoder with the reference on one payload; false when they
// disagree (the caller reports which payload).
::testing::AssertionResult AgreesWithReference(const Bytes &payload) {
  reference::Request want;
  int want_rc = reference::Decode(payload, &want);
  if (want_rc == 1) return ::testing::AssertionSuccess();
  Arena arena;
  fc_request_t got{};
  int rc = DecodeRequest(payload, &got, &arena);
  if (rc != want_rc) {
    return ::testing::AssertionFailure() << "decoder " << fc_strerror(rc) << ", reference " << fc_strerror(want_rc);
  }
  if (rc != FC_OK) {
    if (!arena.blocks.empty()) return ::testing::AssertionFailure() << "a failed decode allocated";
    return ::testing::AssertionSuccess();
  }
  const std::pair<const char *, fc_str_t> strings[] = {
      {"function", got.function}, {"method", got.method},   {"uri", got.uri},
      {"version", got.version},   {"remote_addr", got.remote_addr}, {"scheme", got.scheme},
      {"host", got.host},         {"request_id", got.request_id}};
  for (const auto &[key, value] : strings) {
    auto it = want.strings.find(key);
    std::string expected = it == want.strings.end() ? std::string() : it->second;
    if (V(value) != expected) return ::testing::AssertionFailure() << key << ": " << V(value);
    if (it == want.strings.end() && value.data != nullptr) return ::testing::AssertionFailure() << key << " not null";
  }
  if (got.nheaders != want.headers.size()) return ::testing::AssertionFailure() << "nheaders " << got.nheaders;
  for (size_t i = 0; i < got.nheaders; i++) {
    if (V(got.headers[i].name) != want.headers[i].first || V(got.headers[i].value) != want.headers[i].second) {
      return ::testing::AssertionFailure() << "header " << i;
    }
  }
  if (got.remote_port != want.remote_port || got.content_length != want.content_length ||
      got.deadline_ms != want.deadline_ms) {
    return ::testing::AssertionFailure() << "integers";
  }
  return ::testing::AssertionSuccess();
}

// Every payload a one-byte change of a real REQUEST makes (each position,
// each byte value), and every truncation: the one-pass decoder says what
// msgpack-c's tree and the rules say, error for error, field for field.
TEST(RequestOnePass, AgreesWithMsgpackCOnEveryOneByteChange) {
  auto headers = SampleHeaders();
  fc_request_t in = SampleRequest(headers);
  in.content_length = -1;
  in.deadline_ms = 30000;
  Bytes good = EncodeRequest(in);
  ASSERT_TRUE(AgreesWithReference(good));
  for (size_t pos = 0; pos < good.size(); pos++) {
    Bytes changed = good;
    for (int b = 0; b < 256; b++) {
      // 32-bit container counts would have msgpack-c allocate gigabytes
      // (the decoder's refusal: HugeContainerCountsAreRejectedBeforeAllocating)
      if (b == 0xdd || b == 0xdf) continue;
      changed[pos] = static_cast<uint8_t>(b);
      ASSERT_TRUE(AgreesWithReference(changed)) << "byte " << pos << " = " << b;
    }
    ASSERT_TRUE(AgreesWithReference(Bytes(good.begin(), good.begin() + pos))) << "cut at " << pos;
  }
}

// Unknown keys of every shape (a container key, nested values at the depth
// limit and one past it, every scalar form) around the known ones.
TEST(RequestOnePass, UnknownKeysAndValuesOfEveryShapeAreSkipped) {
  auto nested = [](int arrays) {
    Mp m;
    m.Map(4).Str("function").Str("f").Str("method").Str("GET").Str("uri").Str("/").Str("zone");
    Bytes b = m.bytes();
    for (int i = 0; i < arrays; i++) b.push_back(0x91);
    b.push_back(0xc0);
    return b;
  };
  // the map plus 15 arrays: 16 open containers, the most a decoder allows
  EXPECT_TRUE(AgreesWithReference(nested(15)));
  Arena arena;
  fc_request_t out{};
  EXPECT_EQ(DecodeRequest(nested(15), &out, &arena), FC_OK);
  EXPECT_EQ(DecodeRequest(nested(16), &out, &arena), FC_EMSGPACK);
  EXPECT_TRUE(AgreesWithReference(nested(16)));

  Bytes shapes = RequestWith(6, [](Mp &m) {
    m.Map(1).Str("k").Str("v").Str("a map as a key");
    m.Str("zone").Str("cn-hangzhou");
    m.Nil().Array(2).Uint(1).Int(-70000);
    m.Bin("bin key").Bool(false);
    m.Str("floaty").Array(0);
    m.Str("host").Str("h");
  });
  for (uint8_t b : {0xca, 0, 0, 0, 0}) shapes.push_back(b);  // a 7th pair: a float32 key ...
  shapes.push_back(0x07);                                      // ... and its value
  shapes[0] = 0x8a;                                            // 3 + 6 + 1 pairs
  EXPECT_TRUE(AgreesWithReference(shapes));
  ASSERT_EQ(DecodeRequest(shapes, &out, &arena), FC_OK);
  EXPECT_EQ(V(out.host), "h");
  EXPECT_EQ(V(out.function), "f");
}

// Each field in each of its msgpack forms, at the limits of its range.
TEST(RequestOnePass, EveryFieldAtItsLimits) {
  std::string long_value(60000, 'v');  // str16, the longest form a REQUEST can hold
  Bytes payload = Mp()
                      .Map(12)
                      .Str("function").Str(std::string(FC_MAX_FUNCTION_NAME, 'f'))
                      .Str("method").Bin("PATCH")
                      .Str("uri").Str(std::string(255, 'u'))
                      .Str("version").Str(std::string(256, 'v'))
                      .Str("headers").Array(0)
                      .Str("remote_addr").Str("::1")
                      .Str("remote_port").Int(65535)
                      .Str("scheme").Str("")
                      .Str("host").Str(std::string(31, 'h'))
                      .Str("request_id").Str(std::string(32, 'r'))
                      .Str("content_length").Int(INT64_MAX)
                      .Str("deadline_ms").Uint(UINT64_MAX)
                      .bytes();
  Arena arena;
  fc_request_t out{};
  ASSERT_EQ(DecodeRequest(payload, &out, &arena), FC_OK);
  EXPECT_EQ(out.function.len, static_cast<size_t>(FC_MAX_FUNCTION_NAME));
  EXPECT_EQ(V(out.method), "PATCH");
  EXPECT_EQ(out.uri.len, 255u);
  EXPECT_EQ(out.version.len, 256u);
  EXPECT_EQ(out.headers, nullptr);
  EXPECT_EQ(out.remote_port, 65535u);
  EXPECT_EQ(V(out.scheme), "");
  EXPECT_NE(out.scheme.data, nullptr) << "present but empty is not absent";
  EXPECT_EQ(out.host.len, 31u);
  EXPECT_EQ(out.content_length, INT64_MAX);
  EXPECT_EQ(out.deadline_ms, UINT64_MAX);
  EXPECT_TRUE(AgreesWithReference(payload));
  EXPECT_TRUE(arena.blocks.empty()) << "no headers, no allocation";

  // a header value of 60000 bytes within FC_MAX_META_PAYLOAD
  Bytes big = RequestWith(1, [&](Mp &m) { m.Str("headers").Array(1).Header("X-Long", long_value); });
  ASSERT_LE(big.size(), static_cast<size_t>(FC_MAX_META_PAYLOAD));
  ASSERT_EQ(DecodeRequest(big, &out, &arena), FC_OK);
  ASSERT_EQ(out.nheaders, 1u);
  EXPECT_EQ(V(out.headers[0].value), long_value);
  EXPECT_TRUE(AgreesWithReference(big));

  // a payload of exactly FC_MAX_META_PAYLOAD bytes decodes, one more does not
  auto sized = [](size_t total) {
    Bytes b = RequestWith(1, [](Mp &m) { m.Str("host").Str(std::string(60000, 'x')); });
    size_t overhead = b.size() - 60000;
    return RequestWith(1, [&](Mp &m) { m.Str("host").Str(std::string(total - overhead, 'x')); });
  };
  Bytes at_limit = sized(FC_MAX_META_PAYLOAD);
  ASSERT_EQ(at_limit.size(), static_cast<size_t>(FC_MAX_META_PAYLOAD));
  EXPECT_EQ(DecodeRequest(at_limit, &out, &arena), FC_OK);
  Bytes over = sized(FC_MAX_META_PAYLOAD + 1);
  ASSERT_EQ(over.size(), static_cast<size_t>(FC_MAX_META_PAYLOAD) + 1);
  EXPECT_EQ(DecodeRequest(over, &out, &arena), FC_ETOOBIG);

  // header pairs in the array16 form, and the 16-bit and 32-bit array headers
  Bytes wide = RequestWith(1, [](Mp &m) { m.Str("headers").Array(1).Array(2).Str("a").Str("b"); });
  Bytes forms = wide;
  size_t at = forms.size() - 6;  // 0x91 0x92 0xa1 'a' 0xa1 'b'
  ASSERT_EQ(forms[at], 0x91);
  forms.erase(forms.begin() + static_cast<long>(at), forms.begin() + static_cast<long>(at) + 2);
  const uint8_t array32_of_1[] = {0xdd, 0, 0, 0, 1, 0xdc, 0, 2};
  forms.insert(forms.begin() + static_cast<long>(at), std::begin(array32_of_1), std::end(array32_of_1));
  ASSERT_EQ(DecodeRequest(forms, &out, &arena), FC_OK);
  ASSERT_EQ(out.nheaders, 1u);
  EXPECT_EQ(V(out.headers[0].name), "a");
  EXPECT_EQ(V(out.headers[0].value), "b");
  EXPECT_TRUE(AgreesWithReference(forms));
}

// Malformed or ill-typed input fails with the same status as the tree
// decoders, whichever comes first in the bytes.
TEST(RequestOnePass, MalformedBeatsASchemaErrorBeforeIt) {
  // a wrong type early, then bytes that are not msgpack: malformed
  Bytes payload = RequestWith(2, [](Mp &m) { m.Str("remote_port").Str("x").Str("host"); });
  payload.push_back(0xc1);
  Arena arena;
  fc_request_t out{};
  EXPECT_EQ(DecodeRequest(payload, &out, &arena), FC_EMSGPACK);
  EXPECT_TRUE(AgreesWithReference(payload));
  // too many headers, then a truncation: malformed
  Bytes many = RequestWith(1, [](Mp &m) {
    m.Str("headers").Array(FC_MAX_HEADERS + 1);
    for (int i = 0; i <= FC_MAX_HEADERS; i++) m.Header("a", "b");
  });
  EXPECT_EQ(DecodeRequest(many, &out, &arena), FC_ETOOMANY);
  many.pop_back();
  EXPECT_EQ(DecodeRequest(many, &out, &arena), FC_EMSGPACK);
  // a missing required key in well-formed msgpack: schema
  Bytes missing = Mp().Map(2).Str("function").Str("f").Str("uri").Str("/").bytes();
  EXPECT_EQ(DecodeRequest(missing, &out, &arena), FC_ESCHEMA);
  EXPECT_TRUE(arena.blocks.empty());
}

}  // namespace
