"""Synthesis tasks on top of the LLM engine: versioned prompts, strict parsers, stage-1 data and its card."""

from syntriever_hf.synthesis.inputs import QuerySet, read_query_file
from syntriever_hf.synthesis.pipeline import Stage1Estimate, Stage1Result, estimate_stage1, synthesize_stage1
from syntriever_hf.synthesis.prompts import STAGE1_TASKS, PromptTemplate, stage1_prompt, stage1_prompts
from syntriever_hf.synthesis.stage1 import Stage1Settings, Stage1Tasks

__all__ = [
    "STAGE1_TASKS",
    "PromptTemplate",
    "QuerySet",
    "Stage1Estimate",
    "Stage1Result",
    "Stage1Settings",
    "Stage1Tasks",
    "estimate_stage1",
    "read_query_file",
    "stage1_prompt",
    "stage1_prompts",
    "synthesize_stage1",
]
