"""Structured log lines (`TL_MCP_LOG_FORMAT=json`): one JSON object per record, on stderr like the rest.

The redaction filter runs on the handler before formatting, so what is serialized here is already
masked; the exception text goes through the same masking for the same reason.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from tl_mcp.redaction import SECRETS


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = SECRETS.mask(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)
