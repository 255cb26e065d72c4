"""openreward: build, serve and use reinforcement-learning environments over the Open Reward Standard (ORS).

Hand-maintained (nbdev rewrites only the version line): the top-level names of the reference SDK that this
package implements, re-exported from the modules that define them.
"""
__version__ = "0.1.167.1"

from .client import (AsyncEnvironmentsAPI, AsyncOpenReward, AsyncSession, BuiltinToolset, EnvironmentsAPI, OpenReward,
                     ResponseChars, Session, TaskDifficulty)
from .errors import ScoreGroupFailed, ScoreGroupUnsupported
from .formats import Provider, convert_messages, sanitize_tool_schema
from .types import (GroupCandidate, GroupScore, Message, ReasoningBlock, TerminalToolSpec, ToolCallBlock, ToolResultBlock,
                    ToolSpec)

__all__ = ["AsyncEnvironmentsAPI", "AsyncOpenReward", "AsyncSession", "BuiltinToolset", "EnvironmentsAPI", "GroupCandidate",
           "GroupScore", "Message", "OpenReward", "Provider", "ReasoningBlock", "ResponseChars", "ScoreGroupFailed",
           "ScoreGroupUnsupported", "Session", "TaskDifficulty", "TerminalToolSpec", "ToolCallBlock", "ToolResultBlock",
           "ToolSpec", "convert_messages", "sanitize_tool_schema"]
