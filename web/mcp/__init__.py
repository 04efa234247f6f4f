"""MCP server for AI agents: tools per app in `tools/` (registered through `registry`), dispatch and the SDK server
in `server`, HTTP transports (SSE over Channels, Streamable HTTP) in `transport`."""
