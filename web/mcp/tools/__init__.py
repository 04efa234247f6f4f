"""The MCP tools, one module per app as in web/api/. Importing a module registers its tools (web.mcp.registry),
so the order of these imports is the order of tools/list."""

from web.mcp.tools import models  # noqa: F401
from web.mcp.tools import predictions  # noqa: F401
from web.mcp.tools import model_settings  # noqa: F401
from web.mcp.tools import alerts  # noqa: F401
from web.mcp.tools import system  # noqa: F401
from web.mcp.tools import backtests  # noqa: F401
from web.mcp.tools import quality  # noqa: F401
