"""A Flask app behind a proxy, as FC users write one: Werkzeug's ProxyFix
trusts one X-Forwarded-For hop (the gateway's) and sets remote_addr from it.
GET / answers what the app sees as JSON."""
import os

from flask import Flask, jsonify, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import run_simple

app = Flask(__name__)
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)


@app.route("/", defaults={"path": ""})
@app.route("/<path:path>")
def seen(path):
    return jsonify(
        remote_addr=request.remote_addr,
        forwarded_for=request.headers.getlist("X-Forwarded-For"),
        headers=[[k, v] for k, v in request.headers.items()],
    )


run_simple("127.0.0.1", int(os.environ["FC_SERVER_PORT"]), app, threaded=True)
