"""One module per toolset; each exposes `TOOLS`, a list of `ToolSpec`s the registry filters and registers."""
