"""openreward: build, serve and use reinforcement-learning environments over the Open Reward Standard (ORS).

Hand-maintained (nbdev rewrites only the version line): the top-level names of the reference SDK that this
package implements, re-exported from the modules that define them.
"""
__version__ = "0.1.0"

from .client import (AsyncEnvironmentsAPI, AsyncOpenReward, AsyncSession, BuiltinToolset, EnvironmentsAPI, OpenReward,
                     Session)
from .errors import ScoreGroupFailed, ScoreGroupUnsupported
from .formats import Provider, convert_messages, sanitize_tool_schema
from .sandbox import (AsyncSandboxesAPI, MachineSize, RunResult, SandboxBucketConfig, SandboxEgressRule, SandboxesAPI,
                      SandboxHostAlias, SandboxNetworkPolicy, SandboxSettings, SandboxSidecarContainer, hf_model_rules)
from .types import (GroupCandidate, GroupScore, Message, ReasoningBlock, TerminalToolSpec, ToolCallBlock, ToolResultBlock,
                    ToolSpec)

__all__ = ["AsyncEnvironmentsAPI", "AsyncOpenReward", "AsyncSandboxesAPI", "AsyncSession", "BuiltinToolset",
           "EnvironmentsAPI", "GroupCandidate", "GroupScore", "MachineSize", "Message", "OpenReward",
           "Provider", "ReasoningBlock", "RunResult", "SandboxBucketConfig", "SandboxEgressRule",
           "SandboxHostAlias", "SandboxNetworkPolicy", "SandboxSettings", "SandboxSidecarContainer",
           "SandboxesAPI", "ScoreGroupFailed", "ScoreGroupUnsupported", "Session", "TerminalToolSpec",
           "ToolCallBlock", "ToolResultBlock", "ToolSpec", "convert_messages", "hf_model_rules",
           "sanitize_tool_schema"]
