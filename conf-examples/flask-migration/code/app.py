# A Flask app as it was under gunicorn or uWSGI, unchanged: FC's python3
# runtime serves its WSGI callable (handler: app.app).
from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)
notes = []


@app.route("/")
def index():
    return jsonify(message="Hello from Flask on fc-gateway", notes=len(notes))


@app.route("/notes", methods=["GET", "POST"])
def all_notes():
    if request.method == "POST":
        notes.append(request.get_json(force=True).get("text", ""))
        return jsonify(ok=True, count=len(notes)), 201
    return jsonify(notes=notes)


@app.route("/home")
def home():
    return redirect(url_for("index"))
