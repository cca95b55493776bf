# The benchmark's hello-world, the same code under fc, uWSGI and gunicorn.
BODY = b"hello\n"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [BODY]


def handler(event, context):
    return BODY
