"""The reference arm: the practical floor for Flask + gunicorn + PostgreSQL on this machine.

A bare Flask app on the gateway's gunicorn settings that checks a bearer token, proxies OpenAI
Chat Completions to the upstream with ``requests`` (streaming relayed chunk by chunk), and does
the database writes of a stored chat turn: insert the user message, insert the assistant
message, commit. No auth store, routing, tools, SDKs or logging: what the gateway adds on top
of this is the cost of its features.

Run by ``bench/run.py``: ``REF_DATABASE_URL=... REF_UPSTREAM=... REF_TOKEN=... gunicorn
-k gthread ... bench.reference_app:create_app()``.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import requests
from flask import Flask, Response, jsonify, request
from sqlalchemy import create_engine, text

SCHEMA = """
CREATE TABLE IF NOT EXISTS ref_messages (
    id bigserial PRIMARY KEY,
    conversation uuid NOT NULL,
    role text NOT NULL,
    content jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = text(
    "INSERT INTO ref_messages (conversation, role, content) "
    "VALUES (gen_random_uuid(), :role, CAST(:content AS jsonb))"
)


def create_app() -> Flask:
    """The app with its own engine (pool sized like the gateway's) and per-thread sessions."""
    upstream = os.environ["REF_UPSTREAM"].rstrip("/")
    token = os.environ["REF_TOKEN"]
    url = os.environ["REF_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1)
    engine = create_engine(
        url,
        pool_size=int(os.environ.get("DB_POOL_SIZE", "10")),
        max_overflow=int(os.environ.get("DB_MAX_OVERFLOW", "0")),
        pool_timeout=float(os.environ.get("DB_POOL_TIMEOUT", "5")),
        pool_pre_ping=True,
    )
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(4242)"))
        conn.execute(text(SCHEMA))
    local = threading.local()
    app = Flask(__name__)

    def session() -> requests.Session:
        s = getattr(local, "session", None)
        if s is None:
            s = local.session = requests.Session()
            s.trust_env = False
        return s

    def store(prompt: str, answer: str) -> None:
        with engine.begin() as conn:
            conn.execute(INSERT, {"role": "user", "content": json.dumps([prompt])})
            conn.execute(INSERT, {"role": "assistant", "content": json.dumps([answer])})

    @app.get("/health")
    def health() -> Any:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    def chat() -> Any:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return jsonify(error={"message": "invalid token", "type": "auth"}), 401
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body.get("messages"):
            return jsonify(error={"message": "messages required"}), 400
        prompt = str(body["messages"][-1].get("content", ""))
        up = session().post(
            f"{upstream}/chat/completions",
            json=body,
            stream=bool(body.get("stream")),
            headers={"Authorization": "Bearer x"},
            timeout=600,
        )
        if not body.get("stream"):
            answer = up.json()["choices"][0]["message"]["content"]
            store(prompt, answer)
            return Response(up.content, status=up.status_code, content_type="application/json")

        def relay() -> Any:
            parts = []
            try:
                for chunk in up.iter_content(chunk_size=None):
                    parts.append(chunk)
                    yield chunk
            finally:
                up.close()
            store(prompt, b"".join(parts).decode("utf-8", "replace")[:200])

        return Response(
            relay(),
            status=up.status_code,
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app
