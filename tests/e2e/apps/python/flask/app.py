# A plain Flask app (Debian python3-flask), unchanged for FC: handler app.app.
from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.route("/")
def index():
    return "flask index"


@app.route("/users/<int:user_id>")
def user(user_id):
    return jsonify(id=user_id, agent=request.headers.get("User-Agent", ""), remote=request.remote_addr)


@app.route("/old")
def old():
    return redirect(url_for("index"))


@app.route("/cookies")
def cookies():
    resp = app.make_response("two cookies")
    resp.set_cookie("first", "1")
    resp.set_cookie("second", "2", httponly=True)
    return resp


@app.route("/whoami")
def whoami():
    return "first=%s second=%s" % (request.cookies.get("first"), request.cookies.get("second"))


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(name=f.filename, size=len(data), checksum=sum(data) % 2**32, note=request.form.get("note"))
