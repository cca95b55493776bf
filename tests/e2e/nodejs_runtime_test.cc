// The built-in nodejs runtime (issue 7), end to end through real nginx +
// fc-runner + runner/runtimes/nodejs/bootstrap.js: FC's event handlers in
// their three styles, initializers, errors, the context, concurrency on the
// event loop, and HTTP handlers (an unchanged Express 4 app, FC's
// (req, resp, context) with npm raw-body).
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "harness.h"
#include "nodejs_modules.h"

namespace fc::e2e {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string node_app(const std::string& name) { return app_path("nodejs/" + name); }

class NodejsRuntimeTest : public GatewayFixture {
 protected:
  // A nodejs function served at /<name>/...; the response carries the
  // instance and the request id (nginx's add_header), so tests can assert
  // who served what.
  void add_node_function(const std::string& name, const std::string& type, const std::string& code_dir,
                         const std::string& handler, const std::string& extra = "") {
    gw_.add_functions_yaml("  " + name + ":\n    runtime: nodejs\n    type: " + type + "\n    codeUri: " +
                           code_dir + "\n    handler: " + handler + "\n" + extra);
    gw_.add_server_conf("    location /" + name + "/ { rewrite ^/" + name + "(/.*)$ $1 break; fc_function " +
                        name +
                        "; add_header X-Fc-Instance $fc_instance always;"
                        " add_header X-Fc-Request-Id $fc_request_id always; }\n");
  }

  HttpResponse invoke(const std::string& name, const std::string& body) {
    HttpRequest req;
    req.method = "POST";
    req.url = gw_.url("/" + name + "/");
    req.body = body;
    return http(req);
  }

  // The HTTP test apps in this test's own directory, with node_modules
  // (express 4, raw-body) linked in from build/npm: codeUri/node_modules is
  // where FC's layout keeps them.
  std::string http_code_dir() {
    std::string dir = gw_.path("code-http");
    fs::copy(node_app("http"), dir, fs::copy_options::recursive);
    fs::create_directory_symlink(nodejs_test_modules(), dir + "/node_modules");
    return dir;
  }
};

TEST_F(NodejsRuntimeTest, InitializerAndHandlerShareOneInstanceState) {
  add_node_function("count", "event", node_app("event"), "index.addTwo",
                    "    initializer: index.addOne\n    maxInstances: 1\n");
  gw_.start();
  HttpResponse first = invoke("count", "");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.body, "3");
  HttpResponse second = invoke("count", "");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.body, "5");
  EXPECT_FALSE(first.header("x-fc-instance").empty());
  EXPECT_EQ(first.header("x-fc-instance"), second.header("x-fc-instance"));
  EXPECT_TRUE(gw_.runner_logged("FC Initialize End RequestId: "));
}

TEST_F(NodejsRuntimeTest, EventBytesComeBackUnchanged) {
  add_node_function("echo", "event", node_app("event"), "index.echo");
  gw_.start();
  std::string body;
  body.reserve(1 << 20);
  while (body.size() < (1u << 20)) body.push_back(static_cast<char>(body.size() % 256));
  HttpResponse resp = invoke("echo", body);
  ASSERT_EQ(resp.status, 200) << resp.error;
  ASSERT_EQ(resp.body.size(), body.size());
  EXPECT_TRUE(resp.body == body) << "the echoed bytes differ";
  // An empty event is an empty Buffer, not a missing one.
  HttpResponse empty = invoke("echo", "");
  ASSERT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "");
}

TEST_F(NodejsRuntimeTest, NonBufferResultsAreJsonStringified) {
  add_node_function("obj", "event", node_app("event"), "index.object");
  gw_.start();
  HttpResponse resp = invoke("obj", "four");
  ASSERT_EQ(resp.status, 200) << resp.body;
  EXPECT_EQ(resp.body, R"({"length":4,"nested":[1,"two",null]})");
}

TEST_F(NodejsRuntimeTest, EsModuleHandlerIsImported) {
  add_node_function("esm", "event", node_app("event"), "esm.handler");
  gw_.start();
  HttpResponse resp = invoke("esm", "12345");
  ASSERT_EQ(resp.status, 200) << resp.body;
  EXPECT_EQ(resp.body, "esm saw 5 bytes for true");
}

TEST_F(NodejsRuntimeTest, ThrowCallbackErrorAndRejectionAreFunctionErrors) {
  struct Case {
    const char* name;
    const char* handler;
    const char* type;
    const char* message;
  };
  const Case cases[] = {
      {"throws", "index.throws", "RangeError", "thrown on purpose"},
      {"cberr", "index.callbackError", "TypeError", "passed to the callback"},
      {"rejects", "index.rejects", "SyntaxError", "rejected on purpose"},
  };
  for (const Case& c : cases) add_node_function(c.name, "event", node_app("event"), c.handler);
  gw_.start();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    HttpResponse resp = invoke(c.name, "x");
    EXPECT_EQ(resp.header("x-fc-error-type"), "UnhandledInvocationError");
    json body = json::parse(resp.body);
    EXPECT_EQ(body["errorMessage"], c.message);
    EXPECT_EQ(body["errorType"], c.type);
    ASSERT_TRUE(body["stackTrace"].is_array());
    ASSERT_FALSE(body["stackTrace"].empty());
    // The user's frame is there, the runtime's own frames are not.
    EXPECT_NE(body["stackTrace"][0].get<std::string>().find("index.js"), std::string::npos) << body;
    EXPECT_EQ(body.dump().find("bootstrap.js"), std::string::npos) << body;
    std::string rid = resp.header("x-fc-request-id");
    ASSERT_FALSE(rid.empty());
    // The runner writes its log at the end of the loop iteration that sent
    // the response: the line may land a moment after the client has it.
    std::string end_line = "FC Invoke End RequestId: " + rid + ", Error: Unhandled function error";
    std::string log;
    EXPECT_TRUE(wait_until([&] { return (log = gw_.runner_log()).find(end_line) != std::string::npos; }, 5s)) << log;
    // The instance's own line, in FC's format, with the same request id.
    EXPECT_NE(log.find(" " + rid + " [ERROR] {\"errorMessage\":\"" + c.message), std::string::npos) << log;
  }
}

TEST_F(NodejsRuntimeTest, ContextCarriesFcFieldsAndTheLoggerTagsTheRequestId) {
  add_node_function("ctx", "event", node_app("event"), "index.context",
                    "    memorySize: 256\n    timeout: 7\n    initializer: index.addOne\n");
  gw_.start();
  HttpResponse resp = invoke("ctx", "");
  ASSERT_EQ(resp.status, 200) << resp.body;
  json ctx = json::parse(resp.body);
  std::string rid = resp.header("x-fc-request-id");
  ASSERT_FALSE(rid.empty());
  EXPECT_EQ(ctx["requestId"], rid);
  EXPECT_EQ(ctx["request_id"], rid);
  EXPECT_EQ(ctx["function"]["name"], "ctx");
  EXPECT_EQ(ctx["function"]["handler"], "index.context");
  EXPECT_EQ(ctx["function"]["memory"], 256);
  EXPECT_EQ(ctx["function"]["timeout"], 7);
  EXPECT_EQ(ctx["function"]["initializer"], "index.addOne");
  for (const char* key : {"name", "logProject", "logStore", "qualifier", "versionId"}) {
    EXPECT_TRUE(ctx["service"].contains(key)) << key;
  }
  for (const char* key : {"accessKeyId", "accessKeySecret", "securityToken"}) {
    EXPECT_EQ(ctx["credentials"][key], "") << key;
  }
  EXPECT_TRUE(ctx.contains("region"));
  EXPECT_TRUE(ctx.contains("accountId"));
  EXPECT_EQ(ctx["hasLogger"], true);
  std::string log = gw_.runner_log();
  std::regex line("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z " + rid + " \\[INFO\\] logged this from ctx");
  EXPECT_TRUE(std::regex_search(log, line)) << log;
  EXPECT_NE(log.find("plain console output"), std::string::npos);
}

// The seed's scenario on the nodejs runtime: B, sent 0.5 s after A while A's
// instance is still in its 1 s initializer, is served by A's instance.
TEST_F(NodejsRuntimeTest, QueuedRequestIsServedByTheFirstReadyInstance) {
  add_node_function("seed", "event", node_app("event"), "index.instance",
                    "    initializer: index.slowInit\n    instanceConcurrency: 1\n    maxInstances: 2\n");
  gw_.start();
  auto a = std::async(std::launch::async, [&] { return invoke("seed", "a"); });
  std::this_thread::sleep_for(500ms);
  HttpResponse rb = invoke("seed", "b");
  HttpResponse ra = a.get();
  ASSERT_EQ(ra.status, 200) << ra.body;
  ASSERT_EQ(rb.status, 200) << rb.body;
  ASSERT_FALSE(ra.body.empty());
  EXPECT_EQ(ra.body, ra.header("x-fc-instance"));  // FC_INSTANCE_ID is the gateway's instance id
  EXPECT_EQ(rb.body, ra.body) << "B waited for an instance of its own";
}

TEST_F(NodejsRuntimeTest, InstanceConcurrencyFourRunsFourAtOnceOnOneInstance) {
  add_node_function("conc", "event", node_app("event"), "index.sleepOneSecond",
                    "    instanceConcurrency: 4\n    maxInstances: 1\n");
  gw_.start();
  ASSERT_EQ(invoke("conc", "warm").status, 200);
  auto t0 = Clock::now();
  std::vector<std::future<HttpResponse>> calls;
  for (int i = 0; i < 4; i++) calls.push_back(std::async(std::launch::async, [&] { return invoke("conc", ""); }));
  std::set<std::string> instances;
  int max_inflight = 0;
  for (auto& c : calls) {
    HttpResponse r = c.get();
    ASSERT_EQ(r.status, 200) << r.body;
    json info = json::parse(r.body);
    instances.insert(info["instance"].get<std::string>());
    max_inflight = std::max(max_inflight, info["maxInflight"].get<int>());
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(elapsed, 1.6);
  EXPECT_EQ(instances.size(), 1u);
  EXPECT_EQ(max_inflight, 4);
}

TEST_F(NodejsRuntimeTest, PreStopHookNamedByThePreStopHandlerRunsBeforeTheInstanceRetires) {
  add_node_function("hooked", "event", node_app("event"), "index.echo",
                    "    idleTimeout: 1\n"
                    "    instanceLifecycleConfig: { preStop: { handler: index.preStop, timeout: 3 } }\n");
  gw_.start();
  ASSERT_EQ(invoke("hooked", "x").status, 200);
  // The runner retires the idle instance: GET /pre-stop, then SIGTERM.
  std::regex start("FC PreStop Start RequestId: ([0-9a-zA-Z-]+)");
  std::string rid;
  ASSERT_TRUE(wait_until(
      [&] {
        std::string log = gw_.runner_log();
        std::smatch m;
        if (!std::regex_search(log, m, start)) return false;
        rid = m[1].str();
        return log.find("FC PreStop End RequestId: " + rid) != std::string::npos;
      },
      10s))
      << gw_.runner_log();
  std::string log = gw_.runner_log();
  EXPECT_NE(log.find("preStop ran with request id " + rid), std::string::npos) << log;
  EXPECT_EQ(log.find("FC PreStop End RequestId: " + rid + ", Error"), std::string::npos) << log;
}

TEST_F(NodejsRuntimeTest, FailingInitializerIs503WithItsMessage) {
  add_node_function("badinit", "event", node_app("event"), "index.echo",
                    "    initializer: index.failingInit\n    maxInstances: 1\n");
  gw_.start();
  HttpResponse resp = invoke("badinit", "x");
  EXPECT_EQ(resp.status, 503);
  EXPECT_EQ(resp.header("x-fc-error-type"), "InitializationFailed");
  EXPECT_NE(resp.body.find("the database is not there"), std::string::npos) << resp.body;
}

TEST_F(NodejsRuntimeTest, MissingHandlerExportIsNamedInTheError) {
  add_node_function("noexport", "event", node_app("event"), "index.nothingHere", "    maxInstances: 1\n");
  gw_.start();
  HttpResponse resp = invoke("noexport", "x");
  EXPECT_EQ(resp.status, 503) << resp.body;
  EXPECT_TRUE(wait_until([&] { return gw_.runner_log().find("does not export a function nothingHere") !=
                                      std::string::npos; },
                         5s))
      << gw_.runner_log();
}

// An Express 4 app exported as the handler, unchanged.
TEST_F(NodejsRuntimeTest, ExpressAppRunsUnchanged) {
  add_node_function("web", "http", http_code_dir(), "app.handler");
  gw_.start();

  HttpResponse hello = http_get(gw_.url("/web/hello/fc?lang=en&lang=de"));
  ASSERT_EQ(hello.status, 200) << hello.body;
  json h = json::parse(hello.body);
  EXPECT_EQ(h["hello"], "fc");
  EXPECT_EQ(h["path"], "/hello/fc");
  EXPECT_EQ(h["query"]["lang"], json::array({"en", "de"}));
  EXPECT_EQ(hello.header("x-instance"), hello.header("x-fc-instance"));
  EXPECT_NE(hello.header("x-powered-by"), "");  // Express's own header came through

  HttpRequest post;
  post.method = "POST";
  post.url = gw_.url("/web/items");
  post.headers = {{"Content-Type", "application/json"}};
  post.body = R"({"name":"pen","tags":["a","b"]})";
  HttpResponse created = http(post);
  ASSERT_EQ(created.status, 201) << created.body;
  json c = json::parse(created.body);
  EXPECT_EQ(c["created"]["name"], "pen");
  EXPECT_EQ(c["created"]["tags"], json::array({"a", "b"}));
  EXPECT_EQ(c["type"], "application/json");

  HttpResponse stream = http_get(gw_.url("/web/stream"));
  ASSERT_EQ(stream.status, 200);
  EXPECT_EQ(stream.body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
  ASSERT_GE(stream.arrivals.size(), 2u);
  // 1.2 s between the first chunk and the last: streamed, not buffered.
  EXPECT_GT(stream.arrivals.back().first - stream.arrivals.front().first, 0.8);

  HttpResponse missing = http_get(gw_.url("/web/no/such/route"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("Cannot GET /no/such/route"), std::string::npos) << missing.body;
  EXPECT_EQ(missing.header("x-fc-error-type"), "");  // the app's 404, not a function error
}

// FC's (req, resp, context) handler shape, reading its body with raw-body.
TEST_F(NodejsRuntimeTest, FcHttpHandlerReadsItsBodyWithRawBody) {
  add_node_function("raw", "http", http_code_dir(), "rawbody.handler");
  gw_.start();
  HttpRequest req;
  req.method = "PUT";
  req.url = gw_.url("/raw/upload/file?a=1&b=two&b=three");
  req.headers = {{"Content-Type", "application/x-test"}};
  req.source_address = "127.0.0.2";  // not the runner's address
  std::string body;
  for (int i = 0; body.size() < 300 * 1000; i++) body += std::to_string(i) + ",";
  req.body = body;
  HttpResponse resp = http(req);
  ASSERT_EQ(resp.status, 201) << resp.body;
  EXPECT_TRUE(resp.body == body) << "the body read by raw-body differs";
  EXPECT_EQ(resp.header("x-removed"), "");
  json info = json::parse(resp.header("x-request"));
  EXPECT_EQ(info["method"], "PUT");
  EXPECT_EQ(info["path"], "/upload/file");
  EXPECT_EQ(info["url"], "/upload/file?a=1&b=two&b=three");
  EXPECT_EQ(info["queries"]["a"], "1");
  EXPECT_EQ(info["queries"]["b"], json::array({"two", "three"}));
  EXPECT_EQ(info["requestId"], resp.header("x-fc-request-id"));
  EXPECT_EQ(info["contentType"], "application/x-test");
  EXPECT_EQ(info["clientIP"], "127.0.0.2");
}

TEST_F(NodejsRuntimeTest, FcHttpHandlerStreamsAStreamAndItsErrorIsA500WithTheFcShape) {
  std::string code = http_code_dir();
  add_node_function("sse", "http", code, "fcstyle.stream");
  add_node_function("oops", "http", code, "fcstyle.throws");
  gw_.start();
  HttpResponse stream = http_get(gw_.url("/sse/"));
  ASSERT_EQ(stream.status, 200) << stream.body;
  EXPECT_EQ(stream.body, "part 0\npart 1\npart 2\n");
  ASSERT_GE(stream.arrivals.size(), 2u);
  EXPECT_GT(stream.arrivals.back().first - stream.arrivals.front().first, 0.4);

  HttpResponse oops = http_get(gw_.url("/oops/where"));
  EXPECT_EQ(oops.status, 500);
  json body = json::parse(oops.body);
  EXPECT_EQ(body["errorMessage"], "no luck for /where");
  EXPECT_EQ(body["errorType"], "Error");
  std::string rid = oops.header("x-fc-request-id");
  EXPECT_TRUE(gw_.runner_logged(" " + rid + " [ERROR] {\"errorMessage\":\"no luck for /where\""))
      << gw_.runner_log();
  // The instance lives on: the next request is served.
  EXPECT_EQ(http_get(gw_.url("/oops/again")).status, 500);
}

// FC-style handlers are served by the runtime's own HTTP server
// (lean_http.js): a chunked upload arrives whole as a stream, a body the
// handler never reads does not derail the next request on the runner's
// kept-alive connection, node's writeHead/write/end work on FC's resp, HEAD
// has no body, and a header that would split the response is refused.
TEST_F(NodejsRuntimeTest, FcHttpHandlersOnTheLeanServerKeepHttpSemantics) {
  std::string code = http_code_dir();
  const std::string one = "    initializer: lean.init\n    maxInstances: 1\n";
  add_node_function("echo", "http", code, "lean.echo", one);
  add_node_function("ignores", "http", code, "lean.ignores", "    maxInstances: 1\n");
  add_node_function("parts", "http", code, "lean.parts");
  add_node_function("bad", "http", code, "lean.badHeader");
  gw_.start();

  std::string body;
  for (int i = 0; body.size() < 1500 * 1000; i++) body += std::to_string(i * 7919) + ";";
  HttpRequest upload;
  upload.method = "POST";
  upload.url = gw_.url("/echo/up");
  upload.body = body;
  upload.chunked = true;
  upload.pause_mid_body = 300ms;  // the runner cannot know the length: it forwards the body chunked
  HttpResponse echoed = http(upload);
  ASSERT_EQ(echoed.status, 200) << echoed.body.substr(0, 200);
  EXPECT_TRUE(echoed.body == body) << "the echoed body differs (" << echoed.body.size() << " bytes)";
  json info = json::parse(echoed.header("x-info"));
  EXPECT_EQ(info["method"], "POST");
  EXPECT_EQ(info["transferEncoding"], "chunked");
  EXPECT_EQ(info["initialized"], 1);
  EXPECT_EQ(info["complete"], true);
  EXPECT_GT(info["chunks"].get<int>(), 1) << "the body came as one piece: not streamed";

  // One instance, one runner connection: each request follows an unread body.
  for (int i = 0; i < 3; i++) {
    HttpRequest unread;
    unread.method = "PUT";
    unread.url = gw_.url("/ignores/");
    unread.body = std::string(2 * 1000 * 1000, 'u');
    HttpResponse r = http(unread);
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(r.body, "ignored 2000000");
  }
  std::string instance;
  for (int i = 0; i < 50; i++) {
    HttpRequest small;
    small.method = "POST";
    small.url = gw_.url("/echo/small");
    small.body = "n=" + std::to_string(i);
    HttpResponse r = http(small);
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.body, "n=" + std::to_string(i));
    if (instance.empty()) instance = r.header("x-fc-instance");
    EXPECT_EQ(r.header("x-fc-instance"), instance);
  }

  HttpResponse parts = http_get(gw_.url("/parts/"));
  ASSERT_EQ(parts.status, 200) << parts.body;
  EXPECT_EQ(parts.body, "one,two,three");
  EXPECT_EQ(parts.header("x-parts"), "3");
  EXPECT_EQ(parts.header("content-type"), "text/plain");
  HttpRequest head;
  head.method = "HEAD";
  head.url = gw_.url("/parts/");
  HttpResponse headed = http(head);
  EXPECT_EQ(headed.status, 200);
  EXPECT_EQ(headed.body, "");
  EXPECT_EQ(headed.header("x-parts"), "3");

  HttpResponse bad = http_get(gw_.url("/bad/"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body, "ERR_INVALID_CHAR");
  EXPECT_EQ(bad.header("x-injected"), "");
}

TEST_F(NodejsRuntimeTest, HttpCallingConventionFollowsArityUnlessFcNodejsHttpStyleSaysOtherwise) {
  std::string code = http_code_dir();
  add_node_function("two", "http", code, "styles.twoArgs");
  add_node_function("three", "http", code, "styles.threeArgs");
  add_node_function("threenode", "http", code, "styles.threeArgs",
                    "    environmentVariables: { FC_NODEJS_HTTP_STYLE: node }\n");
  gw_.start();
  EXPECT_EQ(http_get(gw_.url("/two/")).body, "two: FC methods are function");
  EXPECT_EQ(http_get(gw_.url("/three/")).body, "three: third is the context");
  EXPECT_EQ(http_get(gw_.url("/threenode/")).body, "three: third is undefined");
}

TEST_F(NodejsRuntimeTest, FcVersionedNameRunsWithAWarningWhenTheLocalMajorDiffers) {
  gw_.add_functions_yaml("  old:\n    runtime: nodejs12\n    type: event\n    codeUri: " + node_app("event") +
                         "\n    handler: index.echo\n");
  gw_.add_server_conf("    location /old/ { fc_function old; }\n");
  gw_.start();
  HttpRequest req;
  req.method = "POST";
  req.url = gw_.url("/old/");
  req.body = "still runs";
  HttpResponse resp = http(req);
  ASSERT_EQ(resp.status, 200) << resp.body;
  EXPECT_EQ(resp.body, "still runs");
  std::string log = gw_.runner_log();
  EXPECT_TRUE(std::regex_search(log, std::regex("function old: runtime nodejs12 runs on the local Node\\.js "
                                                "(1[3-9]|[2-9][0-9]) \\(/usr/bin/node\\)")))
      << log;
}

}  // namespace
}  // namespace fc::e2e
