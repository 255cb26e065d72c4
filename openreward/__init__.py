"""openreward: build, serve and use reinforcement-learning environments over the Open Reward Standard (ORS).

Hand-maintained (nbdev rewrites only the version line): the top-level names of the reference SDK that this
package implements, re-exported from the modules that define them.
"""
__version__ = "0.1.167.1"

from .client import (AsyncEnvironmentsAPI, AsyncOpenReward, AsyncSession, BuiltinToolset, EnvironmentsAPI, OpenReward,
                     ResponseChars, Session, TaskDifficulty)
from .errors import ScoreGroupFailed, ScoreGroupUnsupported
from .formats import Provider, convert_messages, sanitize_tool_schema
from .rollouts import (AssistantMessage, ImageItem, ReasoningItem, Rollout, RolloutAPI, RolloutInfo, RunInfo, RunType,
                       SystemMessage, ToolCall, ToolResult, TrainingStage, UploadType, UserMessage)
from .sandbox import (AsyncSandboxesAPI, MachineSize, RunResult, SandboxBucketConfig, SandboxEgressRule, SandboxesAPI,
                      SandboxHostAlias, SandboxNetworkPolicy, SandboxSettings, SandboxSidecarContainer, hf_model_rules)
from .types import (GroupCandidate, GroupScore, Message, ReasoningBlock, TerminalToolSpec, ToolCallBlock, ToolResultBlock,
                    ToolSpec)
from . import client_display as _client_display  # the client objects' notebook displays (patched onto their classes)
from . import toolsets  # `openreward.toolsets.X` after `import openreward`, as in the reference

__all__ = ["AssistantMessage", "AsyncEnvironmentsAPI", "AsyncOpenReward", "AsyncSandboxesAPI", "AsyncSession",
           "BuiltinToolset", "convert_messages", "EnvironmentsAPI", "GroupCandidate", "GroupScore", "hf_model_rules",
           "ImageItem", "MachineSize", "Message", "OpenReward", "Provider", "ReasoningBlock", "ReasoningItem",
           "ResponseChars", "Rollout", "RolloutAPI", "RolloutInfo", "RunInfo", "RunResult", "RunType",
           "SandboxBucketConfig", "SandboxEgressRule", "SandboxesAPI", "SandboxHostAlias", "SandboxNetworkPolicy",
           "SandboxSettings", "SandboxSidecarContainer", "sanitize_tool_schema", "ScoreGroupFailed",
           "ScoreGroupUnsupported", "Session", "SystemMessage", "TaskDifficulty", "TerminalToolSpec", "ToolCall",
           "ToolCallBlock", "ToolResult", "ToolResultBlock", "ToolSpec", "TrainingStage", "UploadType", "UserMessage"]

