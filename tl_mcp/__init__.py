"""tl-mcp: TwelveLabs video understanding as MCP tools, with an offline sandbox API."""

__version__ = "0.1.0"
