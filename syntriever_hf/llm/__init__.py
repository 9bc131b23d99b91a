"""The LLM engine: OpenAI-compatible requests (online and Batch API), a response store, budget and progress.

It knows nothing about retrieval (that is :mod:`syntriever_hf.synthesis`) and imports no deep-learning framework.
"""

from syntriever_hf.llm.budget import Budget
from syntriever_hf.llm.client import ClientSettings, read_api_key, redact, redact_url
from syntriever_hf.llm.engine import (
    BatchSettings,
    Engine,
    EngineSettings,
    Estimate,
    FatalEndpointError,
    Outcome,
    ParseError,
    RunReport,
    resolve,
)
from syntriever_hf.llm.pricing import DEFAULT_PRICES, ModelPrice, PriceTable, load_price_table
from syntriever_hf.llm.request import ChatRequest, Completion, MalformedResponseError
from syntriever_hf.llm.store import STORE_FILENAME, ResponseStore

__all__ = [
    "DEFAULT_PRICES",
    "STORE_FILENAME",
    "BatchSettings",
    "Budget",
    "ChatRequest",
    "ClientSettings",
    "Completion",
    "Engine",
    "EngineSettings",
    "Estimate",
    "FatalEndpointError",
    "MalformedResponseError",
    "ModelPrice",
    "Outcome",
    "ParseError",
    "PriceTable",
    "ResponseStore",
    "RunReport",
    "load_price_table",
    "read_api_key",
    "redact",
    "redact_url",
    "resolve",
]
