from tl_mcp.server.registry import ToolSpec

TOOLS: list[ToolSpec] = []
