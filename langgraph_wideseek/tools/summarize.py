"""The access summariser: an LLM condenses a page to what ``info_to_extract`` asks for (spec section 2)."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from ..errors import SummaryError
from ..model.hermes import strip_thinking
from ..prompts import Prompts, fill

__all__ = ["PageSummarizer", "SummaryError"]


class PageSummarizer:
    """Summarise one page for one request with any LangChain chat model (a separate endpoint is typical)."""

    def __init__(self, llm: BaseChatModel, prompts: Prompts, *, max_tokens: int | None = 2048) -> None:
        self.llm = llm
        self.prompts = prompts
        self.max_tokens = max_tokens
        self._system = SystemMessage(prompts.summarizer_system)

    async def summarize(self, url: str, page_text: str, info: str) -> str:
        user = fill(self.prompts.summarizer_user, url=url, info=info, page=page_text)
        kwargs: dict[str, Any] = {"max_tokens": self.max_tokens} if self.max_tokens else {}
        try:
            reply = await self.llm.ainvoke([self._system, HumanMessage(user)], **kwargs)
        except Exception as e:  # any failure of the model is a failed summary; the caller logs it
            raise SummaryError(f"{type(e).__name__}: {e}") from e
        text = strip_thinking(reply.content if isinstance(reply.content, str) else str(reply.content))
        if not text:
            raise SummaryError("the summariser returned an empty reply")
        return text
