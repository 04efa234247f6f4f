"""MCP server for AI agents: tools in `server`, HTTP transports (SSE over Channels, Streamable HTTP) in `transport`."""
