#include "frames.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "fc_errors.h"

namespace fc {
namespace {

fc_frame_header_t header_of(const std::string& frame) {
  fc_frame_header_t h{};
  EXPECT_EQ(fc_frame_header_decode(reinterpret_cast<const uint8_t*>(frame.data()), &h), FC_OK);
  return h;
}

TEST(Frames, ErrorFrameCarriesEndStreamAndDecodes) {
  std::string frame = error_frame({404, FC_ERR_FUNCTION_NOT_FOUND, "function 'x' is not defined"});
  fc_frame_header_t h = header_of(frame);
  EXPECT_EQ(h.type, FC_FRAME_ERROR);
  EXPECT_TRUE(h.flags & FC_FLAG_END_STREAM);
  ASSERT_EQ(h.length + FC_FRAME_HEADER_SIZE, frame.size());
  fc_error_t err{};
  ASSERT_EQ(fc_error_decode(reinterpret_cast<const uint8_t*>(frame.data()) + FC_FRAME_HEADER_SIZE, h.length, &err),
            FC_OK);
  EXPECT_EQ(err.status, 404u);
  EXPECT_EQ(std::string(err.code.data, err.code.len), "FunctionNotFound");
  EXPECT_EQ(std::string(err.message.data, err.message.len), "function 'x' is not defined");
}

TEST(Frames, ResponseFrameKeepsHeaderOrderAndDuplicates) {
  HeaderList headers = {{"Set-Cookie", "a=1"}, {"Content-Length", "3"}, {"Set-Cookie", "b=2"}};
  std::string frame = response_frame(201, headers, true, "c-1");
  fc_frame_header_t h = header_of(frame);
  EXPECT_EQ(h.type, FC_FRAME_RESPONSE);
  EXPECT_FALSE(h.flags & FC_FLAG_END_STREAM);
  fc_response_t resp{};
  ASSERT_EQ(fc_response_decode(reinterpret_cast<const uint8_t*>(frame.data()) + FC_FRAME_HEADER_SIZE, h.length,
                               &resp, [](void*, size_t n) { return std::malloc(n); }, nullptr),
            FC_OK);
  EXPECT_EQ(resp.status, 201u);
  EXPECT_TRUE(resp.cold_start);
  EXPECT_EQ(std::string(resp.instance.data, resp.instance.len), "c-1");
  ASSERT_EQ(resp.nheaders, 3u);
  EXPECT_EQ(std::string(resp.headers[2].value.data, resp.headers[2].value.len), "b=2");
  std::free(resp.headers);
}

TEST(Frames, DecodesARequest) {
  fc_header_t hs[2] = {{{"X-A", 3}, {"1", 1}}, {{"X-A", 3}, {"2", 1}}};
  fc_request_t req{};
  req.function = {"web", 3};
  req.method = {"POST", 4};
  req.uri = {"/p?q=1", 6};
  req.headers = hs;
  req.nheaders = 2;
  req.request_id = {"rid", 3};
  req.content_length = -1;
  std::string buf(fc_request_size_bound(&req), '\0');
  size_t written = 0;
  ASSERT_EQ(fc_request_encode(&req, reinterpret_cast<uint8_t*>(buf.data()), buf.size(), &written), FC_OK);
  RequestHead head;
  ASSERT_EQ(decode_request(reinterpret_cast<const uint8_t*>(buf.data()), written, head), FC_OK);
  EXPECT_EQ(head.function, "web");
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.uri, "/p?q=1");
  EXPECT_EQ(head.request_id, "rid");
  EXPECT_EQ(head.content_length, -1);
  ASSERT_EQ(head.headers.size(), 2u);
  EXPECT_EQ(head.headers[1].second, "2");
}

TEST(Frames, RejectsGarbageAsARequest) {
  RequestHead head;
  const uint8_t junk[] = {0xc1, 0x00, 0x12};
  EXPECT_NE(decode_request(junk, sizeof(junk), head), FC_OK);
}

// Written from the views without fc_response_t, the frame is byte for byte
// what fc_response_encode() makes, appended after what the buffer held; at
// most FC_MAX_HEADERS headers go.
TEST(Frames, AppendedResponseIsTheEncodersBytes) {
  std::vector<std::string> names;
  for (int i = 0; i < FC_MAX_HEADERS + 2; i++) names.push_back("X-H" + std::to_string(i));
  std::string long_value(300, 'v');
  for (size_t count : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{FC_MAX_HEADERS}, size_t{FC_MAX_HEADERS + 2}}) {
    HeaderViews views;
    for (size_t i = 0; i < count; i++) views.emplace_back(names[i], i % 2 ? std::string_view(long_value) : "");
    for (int status : {200, 101, 404, 599}) {
      std::string out = "before";
      ASSERT_TRUE(append_response_frame(out, status, views, status == 404, "fn-7"));
      std::vector<fc_header_t> hs;
      for (size_t i = 0; i < std::min<size_t>(count, FC_MAX_HEADERS); i++) {
        hs.push_back({{views[i].first.data(), views[i].first.size()}, {views[i].second.data(), views[i].second.size()}});
      }
      fc_response_t resp{static_cast<uint32_t>(status), hs.data(), hs.size(), status == 404, {"fn-7", 4}};
      std::string want(fc_response_size_bound(&resp), '\0');
      size_t written = 0;
      ASSERT_EQ(fc_response_encode(&resp, reinterpret_cast<uint8_t*>(want.data()), want.size(), &written), FC_OK);
      want.resize(written);
      ASSERT_EQ(out.substr(0, 6), "before");
      fc_frame_header_t h = header_of(out.substr(6));
      EXPECT_EQ(h.type, FC_FRAME_RESPONSE);
      ASSERT_EQ(h.length, written) << count;
      EXPECT_EQ(out.substr(6 + FC_FRAME_HEADER_SIZE), want) << count << " headers, status " << status;
    }
  }
}

// A head whose RESPONSE would pass FC_MAX_META_PAYLOAD is refused, the
// buffer left as it was; one that fits exactly is not.
TEST(Frames, ResponseOverTheMetaLimitIsRefused) {
  HeaderViews views;
  std::string value;
  auto size_with = [&](size_t len) {
    value.assign(len, 'v');
    views = {{"X-Big", value}};
    std::string out;
    return append_response_frame(out, 200, views, false, "i") ? out.size() - FC_FRAME_HEADER_SIZE : 0;
  };
  size_t small = size_with(60000);  // a str16 value, as at the limit
  ASSERT_GT(small, 0u);
  size_t exact = 60000 + (FC_MAX_META_PAYLOAD - small);
  EXPECT_EQ(size_with(exact), static_cast<size_t>(FC_MAX_META_PAYLOAD));
  value.assign(exact + 1, 'v');
  views = {{"X-Big", value}};
  std::string out = "kept";
  EXPECT_FALSE(append_response_frame(out, 200, views, false, "i"));
  EXPECT_EQ(out, "kept");
}

}  // namespace
}  // namespace fc
