"""The intake benchmark's baseline: a bare Flask endpoint under the same gunicorn settings, which
reads the body and answers with a small JSON document, as the webhook endpoint does."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/webhooks/stripe")
def bare():
    request.get_data(cache=False)
    return jsonify({"received": True, "duplicate": False, "status": "received"}), 200
