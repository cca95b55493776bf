-- wrk: events are POSTs with a body (FC's InvokeFunction).
wrk.method = "POST"
wrk.body = "hello event"
wrk.headers["Content-Type"] = "application/octet-stream"
