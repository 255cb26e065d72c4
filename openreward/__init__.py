"""openreward: build, serve and use reinforcement-learning environments over the Open Reward Standard (ORS).

Hand-maintained (nbdev rewrites only the version line): the top-level names of the reference SDK that this
package implements, re-exported from the modules that define them.
"""
__version__ = "0.1.0"

from .client import (AsyncEnvironmentsAPI, AsyncOpenReward, AsyncSession, BuiltinToolset, EnvironmentsAPI, OpenReward,
                     Session)
from .errors import ScoreGroupFailed, ScoreGroupUnsupported
from .formats import Provider, convert_messages, sanitize_tool_schema
from .rollouts import (AssistantMessage, ImageItem, ReasoningItem, Rollout, RolloutAPI, RolloutInfo, RunInfo, RunType,
                       SystemMessage, ToolCall, ToolResult, TrainingStage, UploadType, UserMessage)
from .types import (GroupCandidate, GroupScore, Message, ReasoningBlock, TerminalToolSpec, ToolCallBlock, ToolResultBlock,
                    ToolSpec)

__all__ = ["AssistantMessage", "AsyncEnvironmentsAPI", "AsyncOpenReward", "AsyncSession", "BuiltinToolset", "EnvironmentsAPI",
           "GroupCandidate", "GroupScore", "ImageItem", "Message", "OpenReward", "Provider", "ReasoningBlock", "ReasoningItem",
           "Rollout", "RolloutAPI", "RolloutInfo", "RunInfo", "RunType", "ScoreGroupFailed", "ScoreGroupUnsupported", "Session",
           "SystemMessage", "TerminalToolSpec", "ToolCall", "ToolCallBlock", "ToolResult", "ToolResultBlock", "ToolSpec",
           "TrainingStage", "UploadType", "UserMessage", "convert_messages", "sanitize_tool_schema"]
