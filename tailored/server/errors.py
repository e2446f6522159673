"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, raised from any route."""

from __future__ import annotations

from fastapi.responses import JSONResponse


class APIError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 headers: dict | None = None, param: str | None = None):
        self.status, self.message, self.kind, self.code, self.headers = status, message, kind, code, headers
        self.param = param


def error_response(status: int, message: str, kind: str, code: str | None = None, headers: dict | None = None,
                   param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status, headers)
