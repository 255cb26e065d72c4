"""openreward: build, serve and use reinforcement-learning environments over the Open Reward Standard (ORS).

Hand-maintained (nbdev rewrites only the version line): the top-level names of the reference SDK that this
package implements, re-exported from the modules that define them.
"""
__version__ = "0.1.0"

from .client import (AsyncEnvironmentsAPI, AsyncOpenReward, AsyncSession, BuiltinToolset, EnvironmentsAPI, OpenReward,
                     Session)
from .errors import ScoreGroupFailed, ScoreGroupUnsupported
from .formats import Provider, convert_messages, sanitize_tool_schema
from .types import (GroupCandidate, GroupScore, Message, ReasoningBlock, TerminalToolSpec, ToolCallBlock, ToolResultBlock,
                    ToolSpec)
from . import client_display as _client_display  # the client objects' notebook displays (patched onto their classes)

__all__ = ["AsyncEnvironmentsAPI", "AsyncOpenReward", "AsyncSession", "BuiltinToolset", "EnvironmentsAPI", "GroupCandidate",
           "GroupScore", "Message", "OpenReward", "Provider", "ReasoningBlock", "ScoreGroupFailed", "ScoreGroupUnsupported",
           "Session", "TerminalToolSpec", "ToolCallBlock", "ToolResultBlock", "ToolSpec", "convert_messages",
           "sanitize_tool_schema"]
